// The horizontal sum of a 256-bit vector's int32 lanes, for every kernel file built with at least
// AVX2. In an anonymous namespace: each including file, compiled with its own target flags, keeps
// its own copy, so the linker can never hand a copy built for a wider instruction set to a narrower
// kernel.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace bitmamba {
namespace {

inline std::int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

}  // namespace
}  // namespace bitmamba
