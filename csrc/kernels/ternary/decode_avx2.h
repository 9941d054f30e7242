// The kDecode row-group decode into offset-code rows for the GEMM tiles, shared by the AVX2 kernels
// (matmul_avx2.cpp) and the AVX-VNNI kernels (matmul_avxvnni.cpp), with the horizontal sum both use. Everything here is in an anonymous namespace: each including file, compiled with its
// own target flags, keeps its own copy, so the linker can never hand the AVX-VNNI-flagged build of a
// function to the AVX2 kernel.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/hsum_avx2.h"
#include "kernels/ternary/kernels.h"

namespace bitmamba::ternary::detail {
namespace {

// Offset codes u of a kDecode row group's 4 rows into rows[r * k_padded + k]: bits 2i of a row
// chunk's byte j hold k = 32 i + j, so one shift and one mask per i.
inline void decode_group_avx2(const std::uint8_t* w, std::int64_t n_kb, std::uint8_t* rows,
                              std::int64_t k_padded) {
  const __m256i m3 = _mm256_set1_epi8(3);
  for (std::int64_t kb = 0; kb < n_kb; ++kb) {
    const std::uint8_t* wb = w + kb * kDecRows * kDecChunk;
    for (int r = 0; r < 4; ++r) {
      const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + r * kDecChunk));
      std::uint8_t* o = rows + r * k_padded + kb * kKBlock;
      for (int i = 0; i < 4; ++i)
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * i), _mm256_and_si256(_mm256_srli_epi16(v, 2 * i), m3));
    }
  }
}

}  // namespace
}  // namespace bitmamba::ternary::detail
