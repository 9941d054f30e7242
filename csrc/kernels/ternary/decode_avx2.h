// Unpacking of the kDecode packing with AVX2, shared by the avx2 and avx512 kernels (the avx512 files
// are compiled with the AVX2 flags too). In an anonymous namespace: each including file keeps its own
// copy, compiled with its own target flags.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/ternary/kernels.h"

namespace bitmamba::ternary::detail {
namespace {

// Unsigned offset codes u = w + 1 of a row group's 4 rows into buf[r * k_padded + k] (the GEMM's
// decode-once buffer): bits 2i of a row chunk's byte j hold k = 32i + j.
inline void decode_group(const std::uint8_t* w, std::int64_t n_kb, std::uint8_t* buf, std::int64_t k_padded) {
  const __m256i m3 = _mm256_set1_epi8(3);
  for (std::int64_t kb = 0; kb < n_kb; ++kb) {
    const std::uint8_t* wb = w + kb * kDecRows * kDecChunk;
    for (int r = 0; r < 4; ++r) {
      const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + r * kDecChunk));
      std::uint8_t* o = buf + r * k_padded + kb * kKBlock;
      for (int i = 0; i < 4; ++i)
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * i), _mm256_and_si256(_mm256_srli_epi16(v, 2 * i), m3));
    }
  }
}

}  // namespace
}  // namespace bitmamba::ternary::detail
