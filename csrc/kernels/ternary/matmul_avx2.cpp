// AVX2 ternary products on the kDecode packing (2-bit decode + vpmaddubsw) and on the kBase3 packing
// (base-3 digit decode + vpmaddubsw, at the end of this file; it shares the GEMM tiles).
//
// Exactness: weights are offset codes u = w + 1 in {0, 1, 2} (unsigned operand of maddubs), q the
// signed int8 operand, so one maddubs lane is u0*q0 + u1*q1 in [-512, 508]: never saturates. Four of
// them per 128-wide K block sum to at most 2048 in magnitude, and int16 partial sums are flushed to
// int32 (vpmaddwd with ones) every kFlushBlocks = 8 blocks, i.e. at most 16384 < 32767: exact for any
// K. The offset is removed at the end: sum(w*q) = sum(u*q) - sum(q), with sum(q) from the activations.
//
// GEMV (T = 1): the matrix is streamed once, sequentially (4 interleaved rows share each q load).
// GEMM (T > 1): each group of 4 rows is decoded once into an L1-resident buffer of unsigned codes and
// then multiplied with every token, 2 tokens x 4 rows per step, so decoding is amortized over T.
#include <immintrin.h>

#include <cstdint>
#include <vector>

#include "core/aligned_buffer.h"
#include "kernels/ternary/base3_driver.h"
#include "kernels/ternary/decode_avx2.h"
#include "kernels/ternary/decode_driver.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary::detail {
namespace {

constexpr std::int64_t kFlushBlocks = 8;

// 4 decoded rows x 2 tokens over k in [k0, k1) (k1 > k0, at most kFlushBlocks blocks): c[t * 4 + r]
// += the int32 sums of u[r][k] * q_t[k]. Out of line so the int32 accumulators are not live in
// registers during the inner loop (8 int16 accumulators + 4 weights + 2 temporaries fill the 16 ymm).
__attribute__((noinline)) void gemm_chunk2(const std::uint8_t* u, std::int64_t k_padded,
                                           const std::int8_t* qa, const std::int8_t* qb,
                                           std::int64_t k0, std::int64_t k1, __m256i* c) {
  const std::uint8_t *u0 = u, *u1 = u + k_padded, *u2 = u + 2 * k_padded, *u3 = u + 3 * k_padded;
  __m256i p00 = _mm256_setzero_si256(), p01 = p00, p02 = p00, p03 = p00;
  __m256i p10 = p00, p11 = p00, p12 = p00, p13 = p00;
#if defined(__GNUC__) && !defined(__clang__)
  // Hand-scheduled loop: GCC (12) turned the intrinsics version into a loop with reloaded weights, a
  // spill and a register copy per accumulator, ~40% slower. Here the 4 weight vectors live in
  // ymm8-11, the activations are memory operands of vpmaddubsw (micro-fused loads, L1 hits), and the
  // 8 int16 accumulators stay in registers: 4 loads + 8 vpmaddubsw + 8 vpaddw per 32 k.
  // AT&T order: vpmaddubsw signed_src, unsigned_src, dst.
  std::int64_t k = k0;
  __asm__ volatile(
      "1:\n\t"
      "vmovdqa (%[u0],%[k]), %%ymm8\n\t"
      "vmovdqa (%[u1],%[k]), %%ymm9\n\t"
      "vmovdqa (%[u2],%[k]), %%ymm10\n\t"
      "vmovdqa (%[u3],%[k]), %%ymm11\n\t"
      "vpmaddubsw (%[qa],%[k]), %%ymm8, %%ymm12\n\t"
      "vpmaddubsw (%[qa],%[k]), %%ymm9, %%ymm13\n\t"
      "vpaddw %%ymm12, %[p00], %[p00]\n\t"
      "vpaddw %%ymm13, %[p01], %[p01]\n\t"
      "vpmaddubsw (%[qa],%[k]), %%ymm10, %%ymm12\n\t"
      "vpmaddubsw (%[qa],%[k]), %%ymm11, %%ymm13\n\t"
      "vpaddw %%ymm12, %[p02], %[p02]\n\t"
      "vpaddw %%ymm13, %[p03], %[p03]\n\t"
      "vpmaddubsw (%[qb],%[k]), %%ymm8, %%ymm12\n\t"
      "vpmaddubsw (%[qb],%[k]), %%ymm9, %%ymm13\n\t"
      "vpaddw %%ymm12, %[p10], %[p10]\n\t"
      "vpaddw %%ymm13, %[p11], %[p11]\n\t"
      "vpmaddubsw (%[qb],%[k]), %%ymm10, %%ymm12\n\t"
      "vpmaddubsw (%[qb],%[k]), %%ymm11, %%ymm13\n\t"
      "vpaddw %%ymm12, %[p12], %[p12]\n\t"
      "vpaddw %%ymm13, %[p13], %[p13]\n\t"
      "add $32, %[k]\n\t"
      "cmp %[k1], %[k]\n\t"
      "jl 1b\n\t"
      : [k] "+r"(k), [p00] "+x"(p00), [p01] "+x"(p01), [p02] "+x"(p02), [p03] "+x"(p03),
        [p10] "+x"(p10), [p11] "+x"(p11), [p12] "+x"(p12), [p13] "+x"(p13)
      : [u0] "r"(u0), [u1] "r"(u1), [u2] "r"(u2), [u3] "r"(u3), [qa] "r"(qa), [qb] "r"(qb),
        [k1] "r"(k1)
      : "ymm8", "ymm9", "ymm10", "ymm11", "ymm12", "ymm13", "cc", "memory");
#else
  for (std::int64_t k = k0; k < k1; k += 32) {
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(u0 + k));
    const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(u1 + k));
    const __m256i w2 = _mm256_load_si256(reinterpret_cast<const __m256i*>(u2 + k));
    const __m256i w3 = _mm256_load_si256(reinterpret_cast<const __m256i*>(u3 + k));
    const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(qa + k));
    p00 = _mm256_add_epi16(p00, _mm256_maddubs_epi16(w0, x));
    p01 = _mm256_add_epi16(p01, _mm256_maddubs_epi16(w1, x));
    p02 = _mm256_add_epi16(p02, _mm256_maddubs_epi16(w2, x));
    p03 = _mm256_add_epi16(p03, _mm256_maddubs_epi16(w3, x));
    const __m256i y = _mm256_load_si256(reinterpret_cast<const __m256i*>(qb + k));
    p10 = _mm256_add_epi16(p10, _mm256_maddubs_epi16(w0, y));
    p11 = _mm256_add_epi16(p11, _mm256_maddubs_epi16(w1, y));
    p12 = _mm256_add_epi16(p12, _mm256_maddubs_epi16(w2, y));
    p13 = _mm256_add_epi16(p13, _mm256_maddubs_epi16(w3, y));
  }
#endif
  const __m256i ones = _mm256_set1_epi16(1);
  c[0] = _mm256_add_epi32(c[0], _mm256_madd_epi16(p00, ones));
  c[1] = _mm256_add_epi32(c[1], _mm256_madd_epi16(p01, ones));
  c[2] = _mm256_add_epi32(c[2], _mm256_madd_epi16(p02, ones));
  c[3] = _mm256_add_epi32(c[3], _mm256_madd_epi16(p03, ones));
  c[4] = _mm256_add_epi32(c[4], _mm256_madd_epi16(p10, ones));
  c[5] = _mm256_add_epi32(c[5], _mm256_madd_epi16(p11, ones));
  c[6] = _mm256_add_epi32(c[6], _mm256_madd_epi16(p12, ones));
  c[7] = _mm256_add_epi32(c[7], _mm256_madd_epi16(p13, ones));
}

inline void gemm_tile2(const std::uint8_t* u, std::int64_t k_padded, const std::int8_t* qa,
                       const std::int8_t* qb, std::int32_t out[2][4]) {
  __m256i c[8];
  for (auto& v : c) v = _mm256_setzero_si256();
  const std::int64_t flush = kFlushBlocks * kKBlock;
  for (std::int64_t k0 = 0; k0 < k_padded; k0 += flush)
    gemm_chunk2(u, k_padded, qa, qb, k0, k0 + flush < k_padded ? k0 + flush : k_padded, c);
  for (int t = 0; t < 2; ++t)
    for (int r = 0; r < 4; ++r) out[t][r] = hsum_epi32(c[t * 4 + r]);
}

// 4 decoded rows x 1 token (the odd token left over by gemm_tile2).
inline void gemm_tile1(const std::uint8_t* u, std::int64_t k_padded, const std::int8_t* qa,
                       std::int32_t out[4]) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i c[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                  _mm256_setzero_si256()};
  const std::int64_t flush = kFlushBlocks * kKBlock;
  for (std::int64_t k0 = 0; k0 < k_padded; k0 += flush) {
    const std::int64_t k1 = k0 + flush < k_padded ? k0 + flush : k_padded;
    __m256i p[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                    _mm256_setzero_si256()};
    for (std::int64_t k = k0; k < k1; k += 32) {
      const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(qa + k));
      for (int r = 0; r < 4; ++r)
        p[r] = _mm256_add_epi16(
            p[r], _mm256_maddubs_epi16(
                      _mm256_load_si256(reinterpret_cast<const __m256i*>(u + r * k_padded + k)), x));
    }
    for (int r = 0; r < 4; ++r) c[r] = _mm256_add_epi32(c[r], _mm256_madd_epi16(p[r], ones));
  }
  for (int r = 0; r < 4; ++r) out[r] = hsum_epi32(c[r]);
}


// The micro-kernels rows_decode (decode_driver.h) runs: GEMM tiles of 2 tokens (gemm_tile2), 1 for the rest.
struct Avx2Decode {
  using Unpacked = std::uint8_t;
  static constexpr int kTile = 2;

  // One token, rows [g*4, g*4+4) of a row group: returns the 4 sums of u*q (offset not removed).
  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb, std::int32_t out[4]) {
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    for (std::int64_t kb0 = 0; kb0 < n_kb; kb0 += kFlushBlocks) {
      const std::int64_t kb1 = kb0 + kFlushBlocks < n_kb ? kb0 + kFlushBlocks : n_kb;
      __m256i p[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
      for (std::int64_t kb = kb0; kb < kb1; ++kb) {
        const std::int8_t* qb = q + kb * kKBlock;
        const __m256i q0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(qb));
        const __m256i q1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(qb + 32));
        const __m256i q2 = _mm256_load_si256(reinterpret_cast<const __m256i*>(qb + 64));
        const __m256i q3 = _mm256_load_si256(reinterpret_cast<const __m256i*>(qb + 96));
        const std::uint8_t* wb = w + kb * kDecRows * kDecChunk;
        for (int r = 0; r < 4; ++r) {
          const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + r * kDecChunk));
          const __m256i u0 = _mm256_and_si256(v, m3);
          const __m256i u1 = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
          const __m256i u2 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
          const __m256i u3 = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
          const __m256i s01 = _mm256_add_epi16(_mm256_maddubs_epi16(u0, q0), _mm256_maddubs_epi16(u1, q1));
          const __m256i s23 = _mm256_add_epi16(_mm256_maddubs_epi16(u2, q2), _mm256_maddubs_epi16(u3, q3));
          p[r] = _mm256_add_epi16(p[r], _mm256_add_epi16(s01, s23));
        }
      }
      for (int r = 0; r < 4; ++r) acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(p[r], ones));
    }
    for (int r = 0; r < 4; ++r) out[r] = hsum_epi32(acc[r]);
  }

  static void decode(const std::uint8_t* w, std::int64_t n_kb, Unpacked* rows, std::int64_t k_padded) {
    decode_group_avx2(w, n_kb, rows, k_padded);
  }

  template <int TT>
  static void tile(const Unpacked* rows, std::int64_t k_padded, const std::int8_t* const* q,
                   std::int32_t out[][4]) {
    static_assert(TT == 1 || TT == 2, "AVX2 GEMM tiles hold 1 or 2 tokens");
    if constexpr (TT == 2) {
      gemm_tile2(rows, k_padded, q[0], q[1], out);
    } else {
      gemm_tile1(rows, k_padded, q[0], out[0]);
    }
  }
};

// ---- kBase3: 5 rows' base-3 digits per byte (kernels.h) ----------------------------------------------
// Digit n of byte b is floor(3 m_n / 256) with m_0 = b, m_(n+1) = 3 m_n mod 256, i.e. 1 where
// m_n >= 86 and 2 where m_n >= 171. AVX2 has no unsigned byte compare, so m is kept biased by -128
// (x ^ 0x80, as a signed byte: m - 128), which maps the thresholds to > -43 and > 42 and commutes with
// the recurrence (3 (m - 128) = 3 m - 128 mod 256). The two compares give -1 per threshold passed, so
// their sum s is -u. vpmaddubsw needs one unsigned operand: it takes q + 128 (q ^ 0x80), and
// sum u q = -sum s (q + 128) - 128 sum u, with sum u the row's stored sum (TernaryMatrix::row_sums_).
// Per 32 bytes (160 weights, one activation vector shared by the 5 rows): 2 compares + 1 add per
// digit, 2 adds per step of the recurrence, 1 multiply-add + 1 add per digit.
// Exactness: a vpmaddubsw lane is two products (q + 128) * s in [-510, 0] each, so |lane| <= 1020, and
// int16 partials are widened into int32 every kB3FlushK = 1024 columns (32 steps: <= 32640 < 32767).
constexpr std::int64_t kB3FlushK = 1024;

// 4 decoded rows x kTile tokens: the kDecode kernel's tiles (decode_driver.h).
struct Avx2Base3 {
  using Unpacked = std::uint8_t;
  static constexpr int kTile = Avx2Decode::kTile;

  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t k_padded,
                   const std::int32_t* row_sums, std::int32_t out[5]) {
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
    const __m256i t1 = _mm256_set1_epi8(-43), t2 = _mm256_set1_epi8(42), ones = _mm256_set1_epi16(1);
    __m256i acc[5];
    for (auto& v : acc) v = _mm256_setzero_si256();
    for (std::int64_t k0 = 0; k0 < k_padded; k0 += kB3FlushK) {
      const std::int64_t k1 = k0 + kB3FlushK < k_padded ? k0 + kB3FlushK : k_padded;
      __m256i p[5];
      for (auto& v : p) v = _mm256_setzero_si256();
#if defined(__GNUC__) && !defined(__clang__)
      // Hand-scheduled: GCC (12) rewrites one of the two compares as vpminsb + vpcmpeqb and adds a
      // register copy per accumulator, ~25% more instructions than the 35 per 32 bytes here.
      // AT&T order: vpcmpgtb b, a, dst is dst = a > b; vpmaddubsw signed_src, unsigned_src, dst.
#define BM_B3_DIGIT(P)                            \
  "vpcmpgtb %[t1], %%ymm13, %%ymm14\n\t"          \
  "vpcmpgtb %[t2], %%ymm13, %%ymm15\n\t"          \
  "vpaddb %%ymm15, %%ymm14, %%ymm14\n\t"          \
  "vpmaddubsw %%ymm14, %%ymm12, %%ymm14\n\t"      \
  "vpaddw %%ymm14, %[" P "], %[" P "]\n\t"
#define BM_B3_TIMES3                              \
  "vpaddb %%ymm13, %%ymm13, %%ymm14\n\t"          \
  "vpaddb %%ymm14, %%ymm13, %%ymm13\n\t"
      std::int64_t k = k0;
      __asm__ volatile(
          "1:\n\t"
          "vpxor (%[q],%[k]), %[bias], %%ymm12\n\t"
          "vpxor (%[w],%[k]), %[bias], %%ymm13\n\t"
          BM_B3_DIGIT("p0") BM_B3_TIMES3
          BM_B3_DIGIT("p1") BM_B3_TIMES3
          BM_B3_DIGIT("p2") BM_B3_TIMES3
          BM_B3_DIGIT("p3") BM_B3_TIMES3
          BM_B3_DIGIT("p4")
          "add $32, %[k]\n\t"
          "cmp %[k1], %[k]\n\t"
          "jl 1b\n\t"
          : [k] "+r"(k), [p0] "+x"(p[0]), [p1] "+x"(p[1]), [p2] "+x"(p[2]), [p3] "+x"(p[3]), [p4] "+x"(p[4])
          : [q] "r"(q), [w] "r"(w), [k1] "r"(k1), [bias] "x"(bias), [t1] "x"(t1), [t2] "x"(t2)
          : "ymm12", "ymm13", "ymm14", "ymm15", "cc", "memory");
#undef BM_B3_DIGIT
#undef BM_B3_TIMES3
#else
      for (std::int64_t k = k0; k < k1; k += 32) {
        const __m256i qu = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(q + k)), bias);
        __m256i m = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(w + k)), bias);
        for (int n = 0; n < 5; ++n) {
          const __m256i s = _mm256_add_epi8(_mm256_cmpgt_epi8(m, t1), _mm256_cmpgt_epi8(m, t2));
          p[n] = _mm256_add_epi16(p[n], _mm256_maddubs_epi16(qu, s));
          if (n < 4) m = _mm256_add_epi8(m, _mm256_add_epi8(m, m));
        }
      }
#endif
      for (int n = 0; n < 5; ++n) acc[n] = _mm256_add_epi32(acc[n], _mm256_madd_epi16(p[n], ones));
    }
    for (int n = 0; n < 5; ++n) out[n] = -hsum_epi32(acc[n]) - 128 * row_sums[n];
  }

  static void decode(const std::uint8_t* w, std::int64_t k_padded, Unpacked* rows) {
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
    const __m256i t1 = _mm256_set1_epi8(-43), t2 = _mm256_set1_epi8(42), zero = _mm256_setzero_si256();
    for (std::int64_t k = 0; k < k_padded; k += 32) {
      __m256i m = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(w + k)), bias);
      for (int n = 0; n < 5; ++n) {
        const __m256i u = _mm256_sub_epi8(_mm256_sub_epi8(zero, _mm256_cmpgt_epi8(m, t1)), _mm256_cmpgt_epi8(m, t2));
        _mm256_store_si256(reinterpret_cast<__m256i*>(rows + n * k_padded + k), u);
        if (n < 4) m = _mm256_add_epi8(m, _mm256_add_epi8(m, m));
      }
    }
  }

  template <int TT>
  static void tile(const Unpacked* rows, std::int64_t k_padded, const std::int8_t* const* q,
                   std::int32_t out[][4]) {
    Avx2Decode::tile<TT>(rows, k_padded, q, out);
  }
};

}  // namespace

BITMAMBA_DECODE_KERNEL(rows_avx2_decode, Avx2Decode)
BITMAMBA_BASE3_KERNEL(rows_avx2_base3, Avx2Base3)

}  // namespace bitmamba::ternary::detail
