// The AVX-512 VNNI micro-kernels of the kDecode packing (the policy struct decode_driver.h runs), shared
// by the decode kernel (matmul_avx512.cpp) and the base3 kernel of the avx512vbmi set, which runs the
// same GEMM tiles on its decoded rows (matmul_avx512vbmi.cpp). Everything here is in an anonymous
// namespace: each including file, compiled with its own target flags, keeps its own copy, so the
// linker can never hand the VBMI-flagged build of a function to the avx512 kernel.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "core/aligned_buffer.h"
#include "kernels/hsum_avx2.h"
#include "kernels/ternary/decode_driver.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary::detail {
namespace {

// The micro-kernels rows_decode (decode_driver.h) runs; GEMM tiles of 4 tokens from DotTiles.
// Software prefetch distance of the GEMV, in bytes ahead in the weight stream (which runs on across
// row groups). The hardware prefetchers alone left the cold 1B GEMVs at 67-78% of the measured read
// bandwidth on a Sapphire Rapids VM; 1 KiB ahead: 83-92% (2 KiB about the same, 4 KiB worse).
constexpr std::int64_t kPrefetch = 1024;

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

  // Digit i of a packed byte sits at bits 2i: masking it in place (v & 3 << 2i) gives u * 4^i, so
  // one AND per digit instead of a shift and an AND; accumulator i is then 4^i times the digit's
  // sum in every lane (exact: |lane| <= 128 * 128 * K / 32, far inside int32 for any model width),
  // and an exact arithmetic shift brings it back. One accumulator per digit and row pair (8 per
  // token) keeps vpdpbusd throughput-bound: with 2 accumulators its 4-5 cycle latency capped the hot
  // GEMV. NT tokens share each load and AND of the packed bytes: with NT = 2 (16 accumulators) a
  // batch of 2 or 3 reads a group once from memory and never stores decoded rows, where the GEMM
  // path's decode stores and 1-token tiles (4 accumulators, latency-bound) cost more than the
  // products (docs/benchmarks_engine.md, "Eighth session").
  static constexpr int kGemvTokens = 2;
  static constexpr std::int64_t kGemmMinTokens = 4;
  template <int NT>
  static void gemv_tokens(const std::uint8_t* w, const std::int8_t* const* q, std::int64_t n_kb,
                          std::int32_t out[][4]) {
    const __m512i mask[4] = {_mm512_set1_epi8(0x03), _mm512_set1_epi8(0x0c), _mm512_set1_epi8(0x30),
                             _mm512_set1_epi8(static_cast<char>(0xc0))};
    __m512i acc01[NT][4], acc23[NT][4];
    for (int t = 0; t < NT; ++t)
      for (int i = 0; i < 4; ++i) acc01[t][i] = acc23[t][i] = _mm512_setzero_si512();
    for (std::int64_t kb = 0; kb < n_kb; ++kb) {
      const std::uint8_t* wb = w + kb * kDecRows * kDecChunk;
      _mm_prefetch(reinterpret_cast<const char*>(wb + kPrefetch), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(wb + kPrefetch + 64), _MM_HINT_T0);
      const __m512i v01 = _mm512_load_si512(reinterpret_cast<const void*>(wb));
      const __m512i v23 = _mm512_load_si512(reinterpret_cast<const void*>(wb + 64));
      for (int i = 0; i < 4; ++i) {
        const __m512i u01 = _mm512_and_si512(v01, mask[i]), u23 = _mm512_and_si512(v23, mask[i]);
        for (int t = 0; t < NT; ++t) {
          const __m512i qi = _mm512_broadcast_i64x4(
              _mm256_load_si256(reinterpret_cast<const __m256i*>(q[t] + kb * kKBlock + 32 * i)));
          acc01[t][i] = _mm512_dpbusd_epi32(acc01[t][i], u01, qi);
          acc23[t][i] = _mm512_dpbusd_epi32(acc23[t][i], u23, qi);
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      __m512i s01 = acc01[t][0], s23 = acc23[t][0];
      for (int i = 1; i < 4; ++i) {
        s01 = _mm512_add_epi32(s01, _mm512_srai_epi32(acc01[t][i], 2 * i));
        s23 = _mm512_add_epi32(s23, _mm512_srai_epi32(acc23[t][i], 2 * i));
      }
      out[t][0] = hsum_epi32(_mm512_castsi512_si256(s01));
      out[t][1] = hsum_epi32(_mm512_extracti64x4_epi64(s01, 1));
      out[t][2] = hsum_epi32(_mm512_castsi512_si256(s23));
      out[t][3] = hsum_epi32(_mm512_extracti64x4_epi64(s23, 1));
    }
  }
  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb, std::int32_t out[4]) {
    const std::int8_t* qs[1] = {q};
    std::int32_t o[1][4];
    gemv_tokens<1>(w, qs, n_kb, o);
    for (int r = 0; r < 4; ++r) out[r] = o[0][r];
  }

  // Offset codes u of a row group's 4 rows into rows[r * k_padded + k]. Bits 2i of byte j of a row's
  // 32-byte chunk hold k = 32 i + j, so the chunk broadcast to both halves of a zmm and shifted right
  // by 0 | 2 (16-bit lanes, low | high half) then masked gives k = 0..63, by 4 | 6 gives k = 64..127:
  // 2 shifts, 2 ANDs and 2 stores per 128 codes, half the operations of the 256-bit decode.
  static void decode(const std::uint8_t* w, std::int64_t n_kb, Unpacked* rows, std::int64_t k_padded) {
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m512i shift_lo = _mm512_load_si512(kShiftLo), shift_hi = _mm512_load_si512(kShiftHi);
    for (std::int64_t kb = 0; kb < n_kb; ++kb) {
      const std::uint8_t* wb = w + kb * kDecRows * kDecChunk;
      for (int r = 0; r < 4; ++r) {
        const __m512i v = _mm512_broadcast_i64x4(
            _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + r * kDecChunk)));
        std::uint8_t* o = rows + r * k_padded + kb * kKBlock;
        _mm512_store_si512(o, _mm512_and_si512(_mm512_srlv_epi16(v, shift_lo), m3));
        _mm512_store_si512(o + 64, _mm512_and_si512(_mm512_srlv_epi16(v, shift_hi), m3));
      }
    }
  }

  // The 4 x 4 tile's 16 horizontal sums in one tree (46 operations instead of 16 x 9): with
  // v[4 r + t] = acc[t][r], (1) pairs of vectors fold their 128-bit lanes 0+2 | 1+3 side by side,
  // (2) pairs of those fold again, so u[m] holds 4 partial sums of v[4 m + L] in 128-bit lane L,
  // (3, 4) a 4 x 4 transpose-and-add inside each lane leaves the sum of v[4 e + L] in dword 4 L + e,
  // i.e. of acc[L][e]: exactly out[t][r] in memory order, stored at once. Integer adds: exact.
  template <int TT, class A>
  static void reduce_tile(const A acc[][4], std::int32_t out[][4]) {
    if constexpr (TT != 4) {
      DotTiles<Avx512Decode>::reduce_tile<TT>(acc, out);
    } else {
      // The empty asm makes each accumulator a fresh value here: without it GCC 12 tied the tree's
      // reading order back into the k loop and copied all 16 accumulators twice per iteration.
      __m512i v[16];
      for (int j = 0; j < 16; ++j) {
        v[j] = acc[j % 4][j / 4];
#if defined(__AVX512F__)  // zmm registers; the intrinsics emulation of the tests compiles without them
        __asm__("" : "+v"(v[j]));
#endif
      }
      __m512i s[8];
      for (int k = 0; k < 8; ++k)
        s[k] = _mm512_add_epi32(_mm512_shuffle_i32x4(v[2 * k], v[2 * k + 1], 0x44),
                                _mm512_shuffle_i32x4(v[2 * k], v[2 * k + 1], 0xee));
      __m512i u[4];
      for (int m = 0; m < 4; ++m)
        u[m] = _mm512_add_epi32(_mm512_shuffle_i32x4(s[2 * m], s[2 * m + 1], 0x88),
                                _mm512_shuffle_i32x4(s[2 * m], s[2 * m + 1], 0xdd));
      const __m512i w01 = _mm512_add_epi32(_mm512_unpacklo_epi32(u[0], u[1]), _mm512_unpackhi_epi32(u[0], u[1]));
      const __m512i w23 = _mm512_add_epi32(_mm512_unpacklo_epi32(u[2], u[3]), _mm512_unpackhi_epi32(u[2], u[3]));
      _mm512_storeu_si512(&out[0][0],
                          _mm512_add_epi32(_mm512_unpacklo_epi64(w01, w23), _mm512_unpackhi_epi64(w01, w23)));
    }
  }

 private:
  // vpsrlvw counts for decode: 16 lanes of 0 | 16 of 2 (digits 0, 1), 4 | 6 (digits 2, 3).
  alignas(64) static constexpr std::uint16_t kShiftLo[32] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                             2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
  alignas(64) static constexpr std::uint16_t kShiftHi[32] = {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
                                                             6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6};
};

}  // namespace
}  // namespace bitmamba::ternary::detail
