// AVX-512 binary product (binary.h) for the avx512 and amx kernel sets: P = sum of q over the set
// bits, acc = 2 P - S (kernels.h driver).
//
// In the kernel layout the 64 bits of columns 64h .. 64h + 63 of a 128-column block are 8 consecutive
// bytes of the row's chunk, bit n = column 64h + n (little endian): exactly an AVX-512BW byte mask
// for the 64 activations q[64h, 64h + 64). vmovdqu8 with zero masking keeps q where the bit is set,
// and vpdpbusd with a vector of unsigned ones adds each group of 4 kept bytes straight into an int32
// lane (no saturating intermediate): exact for any K.
//
// GEMV: per 128-column block and row, 2 mask loads + 2 masked moves + 2 vpdpbusd, the 4 rows of a
// group sharing the two activation vectors; two accumulators per row halve the vpdpbusd dependency
// chains. GEMM: a 4-row group is expanded once (masked move of ones) into 4 * k_padded bytes of
// u in {0, 1} and reused for every token, vpdpbusd(u, q), 4 rows x 4 tokens per step.
//
// Checked against the scalar kernel through the intrinsics emulation of tests/avx512_emu
// (tests/test_ternary_avx512_emulated.py) on any x86-64 CPU, and run for real by the avx512 / amx
// ctest and pytest legs wherever the CPU has AVX-512 (bit-exact on a Sapphire Rapids VM, 2026-12-03).
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own "undefined" idiom: a header false
// positive, silenced for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/binary/binary.h"
#include "kernels/binary/kernels.h"

namespace bitmamba::binary::detail {
namespace {

using ternary::kKBlock;

// The byte mask of 64 columns: 8 bytes of a chunk, bit n of the little-endian word = column n.
inline __mmask64 mask_at(const std::uint8_t* p) {
  std::uint64_t m;
  std::memcpy(&m, p, 8);
  return static_cast<__mmask64>(m);
}

// Software prefetch distance of the GEMV in bytes ahead in the weight stream, as in the ternary
// AVX-512 GEMV: on a Sapphire Rapids VM the cold 1B in_proj GEMV took 121 us with 512 and 99 us with
// 1024 (one cache line of weights per 128-column block).
constexpr std::int64_t kPrefetch = 1024;

struct Avx512Binary {
  using Unpacked = std::uint8_t;
  static constexpr int kTile = 4;
  static constexpr bool kGemvPermutesQ = false;

  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb, std::int32_t out[4]) {
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i acc[4][2];
    for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    for (std::int64_t kb = 0; kb < n_kb; ++kb) {
      const std::int8_t* qb = q + kb * kKBlock;
      const __m512i q0 = _mm512_load_si512(reinterpret_cast<const void*>(qb));
      const __m512i q1 = _mm512_load_si512(reinterpret_cast<const void*>(qb + 64));
      const std::uint8_t* wb = w + kb * kBinRows * kBinChunk;
      _mm_prefetch(reinterpret_cast<const char*>(wb + kPrefetch), _MM_HINT_T0);
      for (int r = 0; r < 4; ++r) {
        const std::uint8_t* c = wb + r * kBinChunk;
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], ones, _mm512_maskz_mov_epi8(mask_at(c), q0));
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], ones, _mm512_maskz_mov_epi8(mask_at(c + 8), q1));
      }
    }
    for (int r = 0; r < 4; ++r) out[r] = _mm512_reduce_add_epi32(_mm512_add_epi32(acc[r][0], acc[r][1]));
  }

  static void decode(const std::uint8_t* w, std::int64_t n_kb, Unpacked* rows, std::int64_t k_padded) {
    const __m512i ones = _mm512_set1_epi8(1);
    for (std::int64_t kb = 0; kb < n_kb; ++kb) {
      const std::uint8_t* wb = w + kb * kBinRows * kBinChunk;
      for (int r = 0; r < 4; ++r) {
        std::uint8_t* o = rows + r * k_padded + kb * kKBlock;
        _mm512_store_si512(o, _mm512_maskz_mov_epi8(mask_at(wb + r * kBinChunk), ones));
        _mm512_store_si512(o + 64, _mm512_maskz_mov_epi8(mask_at(wb + r * kBinChunk + 8), ones));
      }
    }
  }

  template <int TT>
  static void tile(const Unpacked* u, std::int64_t k_padded, const std::int8_t* const* q,
                   std::int32_t out[][4]) {
    __m512i acc[TT][4];
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) acc[t][r] = _mm512_setzero_si512();
    for (std::int64_t k = 0; k < k_padded; k += 64) {
      __m512i wv[4];
      for (int r = 0; r < 4; ++r) wv[r] = _mm512_load_si512(reinterpret_cast<const void*>(u + r * k_padded + k));
      for (int t = 0; t < TT; ++t) {
        const __m512i x = _mm512_load_si512(reinterpret_cast<const void*>(q[t] + k));
        for (int r = 0; r < 4; ++r) acc[t][r] = _mm512_dpbusd_epi32(acc[t][r], wv[r], x);
      }
    }
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) out[t][r] = _mm512_reduce_add_epi32(acc[t][r]);
  }
};

}  // namespace

BITMAMBA_BINARY_KERNEL(rows_avx512_binary, Avx512Binary)

}  // namespace bitmamba::binary::detail
