// AVX-512 VNNI ternary product on the kDecode packing: 2-bit decode + vpdpbusd.
//
// vpdpbusd multiplies unsigned bytes (offset codes u = w + 1 in {0, 1, 2}) by signed bytes (q) and adds
// each group of 4 products straight into an int32 lane (no saturating intermediate), so there is no
// int16 stage to flush: exact for any K. The offset is removed at the end: sum(w*q) = sum(u*q) - sum(q).
//
// GEMV: one 128-wide K block of a 4-row group is 128 contiguous bytes = two zmm (rows 0|1, rows 2|3);
// each 32-byte q chunk is broadcast to both 256-bit halves, so one decode step feeds two rows.
// GEMM: a row group is decoded once into an L1 buffer and reused for all tokens, 4 rows x 4 tokens
// per step (16 zmm accumulators).
//
// Not executable on the development machine (no AVX-512 there): compiled in every x86 build, tested
// by the avx512 ctest / pytest legs wherever the CPU has AVX-512 VNNI.
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own "undefined" idiom (__Y = __Y in
// the cast / extract intrinsics): a header false positive, silenced for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "core/aligned_buffer.h"
#include "kernels/ternary/decode_avx2.h"
#include "kernels/ternary/decode_driver.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary::detail {
namespace {

inline std::int32_t hsum256(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// The micro-kernels rows_decode (decode_driver.h) runs; GEMM tiles of 4 tokens from DotTiles.
struct Avx512Decode : DotTiles<Avx512Decode> {
  using Unpacked = std::uint8_t;
  using Vec = __m512i;
  using Acc = __m512i;
  static constexpr int kTile = 4;
  static constexpr std::int64_t kStep = 64;
  static Acc zero() { return _mm512_setzero_si512(); }
  static Vec load(const void* p) { return _mm512_load_si512(p); }
  static Acc dot(Acc acc, Vec w, Vec q) { return _mm512_dpbusd_epi32(acc, w, q); }
  static std::int32_t reduce(Acc acc) { return _mm512_reduce_add_epi32(acc); }

  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb, std::int32_t out[4]) {
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512i acc01 = _mm512_setzero_si512(), acc23 = _mm512_setzero_si512();
    for (std::int64_t kb = 0; kb < n_kb; ++kb) {
      const std::int8_t* qb = q + kb * kKBlock;
      const std::uint8_t* wb = w + kb * kDecRows * kDecChunk;
      const __m512i v01 = _mm512_load_si512(reinterpret_cast<const void*>(wb));
      const __m512i v23 = _mm512_load_si512(reinterpret_cast<const void*>(wb + 64));
      for (int i = 0; i < 4; ++i) {
        const __m512i qi = _mm512_broadcast_i64x4(
            _mm256_load_si256(reinterpret_cast<const __m256i*>(qb + 32 * i)));
        const __m512i u01 = _mm512_and_si512(_mm512_srli_epi16(v01, 2 * i), m3);
        const __m512i u23 = _mm512_and_si512(_mm512_srli_epi16(v23, 2 * i), m3);
        acc01 = _mm512_dpbusd_epi32(acc01, u01, qi);
        acc23 = _mm512_dpbusd_epi32(acc23, u23, qi);
      }
    }
    out[0] = hsum256(_mm512_castsi512_si256(acc01));
    out[1] = hsum256(_mm512_extracti64x4_epi64(acc01, 1));
    out[2] = hsum256(_mm512_castsi512_si256(acc23));
    out[3] = hsum256(_mm512_extracti64x4_epi64(acc23, 1));
  }

  static void decode(const std::uint8_t* w, std::int64_t n_kb, Unpacked* rows, std::int64_t k_padded) {
    decode_group(w, n_kb, rows, k_padded);
  }
};

}  // namespace

BITMAMBA_DECODE_KERNEL(rows_avx512_decode, Avx512Decode)

}  // namespace bitmamba::ternary::detail
