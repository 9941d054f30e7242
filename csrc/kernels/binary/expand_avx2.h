// The 256-bit steps the AVX2 binary kernel (matmul_avx2.cpp) and the AVX-VNNI one (matmul_avxvnni.cpp)
// share: the GEMV's column order of the activations (permute_q_avx2), the bit of each byte of a
// broadcast dword (GemvBits), and the expansion of a row group's bits into bytes u in {0, 1} for the
// GEMM tiles (expand_group_avx2). In an anonymous namespace: each including file, compiled with its
// own target flags, keeps its own copy.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/binary/binary.h"
#include "kernels/hsum_avx2.h"

namespace bitmamba::binary::detail {
namespace {

using ternary::kKBlock;

// The GEMV reads bytes 4m .. 4m + 3 of a row's 16-byte chunk (columns 32m + 8j + i, j = 0..3,
// i = 0..7) broadcast to every dword, so byte p of the vector holds chunk byte 4m + p % 4; ANDed with
// `bit`, byte p keeps bit i = p / 4 (value 1 << i, or 0) of it, for column 32m + 8 (p % 4) + p / 4.
struct GemvBits {
  __m256i bit = _mm256_setr_epi8(1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8,
                                 16, 16, 16, 16, 32, 32, 32, 32, 64, 64, 64, 64, -128, -128, -128, -128);
  // The 32 columns of the 4 chunk bytes at p, each byte its column's bit in place.
  __m256i operator()(const std::uint8_t* p) const {
    std::int32_t d;
    std::memcpy(&d, p, 4);
    return _mm256_and_si256(_mm256_set1_epi32(d), bit);
  }
};

// The activations in that column order: out[32m + 4i + j] = q[32m + 8j + i]. vpermd gathers dwords
// {0, 2, 4, 6} (i < 4) into lane 0 and {1, 3, 5, 7} (i >= 4) into lane 1, then vpshufb transposes each
// lane's 4 x 4 bytes. Once per call, K bytes.
inline void permute_q_avx2(const std::int8_t* q, std::int64_t k_padded, std::int8_t* out) {
  const __m256i dw = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const __m256i tr = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                      0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  for (std::int64_t k = 0; k < k_padded; k += 32) {
    const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + k));
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + k),
                       _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(v, dw), tr));
  }
}

// Shuffle control of sub-block m: byte 8j + i of the result is byte 4m + j of the chunk (j = 0..3;
// lanes: j = 0, 1 in lane 0, j = 2, 3 in lane 1, where vpshufb indexes within the lane).
inline __m256i expand_index(int m) {
  const char a = static_cast<char>(4 * m), b = static_cast<char>(4 * m + 1);
  const char c = static_cast<char>(4 * m + 2), d = static_cast<char>(4 * m + 3);
  return _mm256_setr_epi8(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b,
                          c, c, c, c, c, c, c, c, d, d, d, d, d, d, d, d);
}

struct Expander {
  __m256i idx[4], bit, one;
  Expander() {
    for (int m = 0; m < 4; ++m) idx[m] = expand_index(m);
    bit = _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128,
                           1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
    one = _mm256_set1_epi8(1);
  }
  // u in {0, 1} of columns 32m .. 32m + 31 of the chunk broadcast in v.
  __m256i operator()(__m256i v, int m) const {
    return _mm256_min_epu8(_mm256_and_si256(_mm256_shuffle_epi8(v, idx[m]), bit), one);
  }
  static __m256i load_chunk(const std::uint8_t* p) {
    return _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
  }
};

// u of a row group's 4 rows into rows[r * k_padded + k], in column order.
inline void expand_group_avx2(const std::uint8_t* w, std::int64_t n_kb, std::uint8_t* rows,
                              std::int64_t k_padded) {
  const Expander ex;
  for (std::int64_t kb = 0; kb < n_kb; ++kb) {
    const std::uint8_t* wb = w + kb * kBinRows * kBinChunk;
    for (int r = 0; r < 4; ++r) {
      const __m256i v = Expander::load_chunk(wb + r * kBinChunk);
      std::uint8_t* o = rows + r * k_padded + kb * kKBlock;
      for (int m = 0; m < 4; ++m) _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * m), ex(v, m));
    }
  }
}

}  // namespace
}  // namespace bitmamba::binary::detail
