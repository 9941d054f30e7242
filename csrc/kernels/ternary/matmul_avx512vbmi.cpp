// AVX-512 VBMI ternary product on the kBase3 packing (1.6 bits per weight, kernels.h): the base-3
// digits come out of byte-permute tables instead of the compare-and-multiply recurrence.
//
// Digit n of a packed byte b is a fixed function of b (b3_digit), so two 256-entry tables give them
// all: A[b] = u0 | u1 << 2 | u2 << 4 | u3 << 6 (four 2-bit digits, the decode packing's layout of a
// byte) and B[b] = u4. vpermi2b looks up 128 entries (two zmm) by the low 7 bits of each byte; the
// table half for b's top bit is picked with one masked blend, the mask taken once per 64 bytes. So 64
// bytes (320 weights, one activation vector shared by the 5 rows) cost 4 permutes, 2 blends and 1
// mask move for all 5 digits, then one AND and one vpdpbusd per digit: digit n of A is masked in place
// (u_n * 4^n, at most 128: still an unsigned byte), so accumulator n holds 4^n times digit n's sums
// and an exact arithmetic shift of the total undoes it. vpdpbusd adds 4 products of <= 128 * 128 into
// each int32 lane per 64 columns, exact for any model width (|lane| <= 2^16 * K / 64).
// GCC 12 makes that 23 vector instructions per 64 bytes (3 of them copies of the tables vpermt2b
// overwrites), against 35 per 32 bytes in the AVX2 base3 kernel: 3x fewer per weight. The 2-bit
// avx512 GEMV spends about 15 on the same 320 weights, which it reads in 80 bytes instead of 64.
//
// The GEMM (base3_driver.h) decodes each group of 5 rows once into offset codes with the same tables
// and runs the avx512 decode kernel's own 4 x 4 tiles on them (decode_avx512.h).
//
// Needs AVX-512 VBMI beyond the avx512 set (Ice Lake, Sapphire Rapids and later Xeons, Zen 4 and
// later; not Skylake-X or Cascade Lake), hence its own kernel set, avx512vbmi. Checked through the
// intrinsics emulation of tests/avx512_emu on any x86-64 CPU and run for real by the avx512vbmi / amx
// legs wherever the CPU has VBMI (bit-exact on a Zen 5 VM, 2026-12-06).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (matmul_avx512.cpp)
#include <immintrin.h>

#include <array>
#include <cstdint>

#include "kernels/ternary/base3_driver.h"
#include "kernels/ternary/decode_avx512.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary::detail {
namespace {

struct DigitTables {
  alignas(64) std::array<std::uint8_t, 256> a;  // u0 | u1 << 2 | u2 << 4 | u3 << 6
  alignas(64) std::array<std::uint8_t, 256> b;  // u4
};

const DigitTables& digit_tables() {
  static const DigitTables t = [] {
    DigitTables d{};
    for (int v = 0; v < 256; ++v) {
      const auto byte = static_cast<std::uint8_t>(v);
      d.a[v] = static_cast<std::uint8_t>(b3_digit(byte, 0) | b3_digit(byte, 1) << 2 |
                                         b3_digit(byte, 2) << 4 | b3_digit(byte, 3) << 6);
      d.b[v] = static_cast<std::uint8_t>(b3_digit(byte, 4));
    }
    return d;
  }();
  return t;
}

// A 256-entry byte table as the four zmm vpermi2b reads: entries 0..127 in lo, 128..255 in hi.
struct Table256 {
  __m512i lo0, lo1, hi0, hi1;
  explicit Table256(const std::uint8_t* t)
      : lo0(_mm512_load_si512(t)), lo1(_mm512_load_si512(t + 64)),
        hi0(_mm512_load_si512(t + 128)), hi1(_mm512_load_si512(t + 192)) {}
  // t[b] for each byte b of v; top = the bytes' top bits (_mm512_movepi8_mask(v)).
  __m512i lookup(__m512i v, __mmask64 top) const {
    return _mm512_mask_blend_epi8(top, _mm512_permutex2var_epi8(lo0, v, lo1),
                                  _mm512_permutex2var_epi8(hi0, v, hi1));
  }
};

struct Avx512VbmiBase3 {
  using Unpacked = std::uint8_t;
  static constexpr int kTile = Avx512Decode::kTile;

  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t k_padded,
                   const std::int32_t* /*row_sums: vpdpbusd takes the unsigned digits as they are*/,
                   std::int32_t out[5]) {
    const DigitTables& dt = digit_tables();
    const Table256 ta(dt.a.data()), tb(dt.b.data());
    const __m512i mask[4] = {_mm512_set1_epi8(0x03), _mm512_set1_epi8(0x0c), _mm512_set1_epi8(0x30),
                             _mm512_set1_epi8(static_cast<char>(0xc0))};
    __m512i acc[5];
    for (auto& v : acc) v = _mm512_setzero_si512();
    for (std::int64_t k = 0; k < k_padded; k += 64) {
      // The stream runs on across groups (each is k_padded bytes), so the prefetch may point into the
      // next group; past the matrix's end it is a hint that never faults.
      _mm_prefetch(reinterpret_cast<const char*>(w + k + kPrefetch), _MM_HINT_T0);
      const __m512i v = _mm512_load_si512(w + k);
      const __m512i qk = _mm512_load_si512(q + k);
      const __mmask64 top = _mm512_movepi8_mask(v);
      const __m512i a = ta.lookup(v, top);
      for (int n = 0; n < 4; ++n) acc[n] = _mm512_dpbusd_epi32(acc[n], _mm512_and_si512(a, mask[n]), qk);
      acc[4] = _mm512_dpbusd_epi32(acc[4], tb.lookup(v, top), qk);
    }
    for (int n = 0; n < 5; ++n) out[n] = _mm512_reduce_add_epi32(acc[n]) >> (n < 4 ? 2 * n : 0);
  }

  // Offset codes of the group's 5 rows into rows[n * k_padded + k].
  static void decode(const std::uint8_t* w, std::int64_t k_padded, Unpacked* rows) {
    const DigitTables& dt = digit_tables();
    const Table256 ta(dt.a.data()), tb(dt.b.data());
    const __m512i m3 = _mm512_set1_epi8(3);
    for (std::int64_t k = 0; k < k_padded; k += 64) {
      const __m512i v = _mm512_load_si512(w + k);
      const __mmask64 top = _mm512_movepi8_mask(v);
      const __m512i a = ta.lookup(v, top);
      // 16-bit shifts move the next byte's low bits into bits 6-7 only; the mask drops them.
      _mm512_store_si512(rows + k, _mm512_and_si512(a, m3));
      _mm512_store_si512(rows + k_padded + k, _mm512_and_si512(_mm512_srli_epi16(a, 2), m3));
      _mm512_store_si512(rows + 2 * k_padded + k, _mm512_and_si512(_mm512_srli_epi16(a, 4), m3));
      _mm512_store_si512(rows + 3 * k_padded + k, _mm512_and_si512(_mm512_srli_epi16(a, 6), m3));
      _mm512_store_si512(rows + 4 * k_padded + k, tb.lookup(v, top));
    }
  }

  template <int TT>
  static void tile(const Unpacked* rows, std::int64_t k_padded, const std::int8_t* const* q,
                   std::int32_t out[][4]) {
    Avx512Decode::tile<TT>(rows, k_padded, q, out);
  }
};

}  // namespace

BITMAMBA_BASE3_KERNEL(rows_avx512vbmi_base3, Avx512VbmiBase3)

}  // namespace bitmamba::ternary::detail
