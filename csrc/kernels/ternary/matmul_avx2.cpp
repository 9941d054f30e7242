// AVX2 ternary product on the kDecode layout: 2-bit decode + vpmaddubsw.
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
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary::detail {
namespace {

constexpr std::int64_t kFlushBlocks = 8;

inline std::int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// One token, rows [g*4, g*4+4) of a row group: returns the 4 sums of u*q (offset not removed).
inline void gemv_group(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb,
                       std::int32_t out[4]) {
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

// Unsigned codes of the 4 rows of group g into buf[r * k_padded + k].
inline void decode_group(const std::uint8_t* w, std::int64_t n_kb, std::uint8_t* buf,
                         std::int64_t k_padded) {
  const __m256i m3 = _mm256_set1_epi8(3);
  for (std::int64_t kb = 0; kb < n_kb; ++kb) {
    const std::uint8_t* wb = w + kb * kDecRows * kDecChunk;
    for (int r = 0; r < 4; ++r) {
      const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + r * kDecChunk));
      std::uint8_t* o = buf + r * k_padded + kb * kKBlock;
      _mm256_store_si256(reinterpret_cast<__m256i*>(o), _mm256_and_si256(v, m3));
      _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32), _mm256_and_si256(_mm256_srli_epi16(v, 2), m3));
      _mm256_store_si256(reinterpret_cast<__m256i*>(o + 64), _mm256_and_si256(_mm256_srli_epi16(v, 4), m3));
      _mm256_store_si256(reinterpret_cast<__m256i*>(o + 96), _mm256_and_si256(_mm256_srli_epi16(v, 6), m3));
    }
  }
}

// 4 decoded rows x TT tokens: out[t][r] = sum_k u[r][k] * q[t][k] (offset not removed).
template <int TT>
inline void gemm_tile(const std::uint8_t* u, std::int64_t k_padded, const std::int8_t* const* q,
                      std::int32_t out[TT][4]) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[TT][4];
  for (int t = 0; t < TT; ++t)
    for (int r = 0; r < 4; ++r) acc[t][r] = _mm256_setzero_si256();
  const std::int64_t flush = kFlushBlocks * kKBlock;
  for (std::int64_t k0 = 0; k0 < k_padded; k0 += flush) {
    const std::int64_t k1 = k0 + flush < k_padded ? k0 + flush : k_padded;
    __m256i p[TT][4];
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) p[t][r] = _mm256_setzero_si256();
    for (std::int64_t k = k0; k < k1; k += 32) {
      __m256i w[4];
      for (int r = 0; r < 4; ++r)
        w[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(u + r * k_padded + k));
      for (int t = 0; t < TT; ++t) {
        const __m256i qv = _mm256_load_si256(reinterpret_cast<const __m256i*>(q[t] + k));
        for (int r = 0; r < 4; ++r) p[t][r] = _mm256_add_epi16(p[t][r], _mm256_maddubs_epi16(w[r], qv));
      }
    }
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) acc[t][r] = _mm256_add_epi32(acc[t][r], _mm256_madd_epi16(p[t][r], ones));
  }
  for (int t = 0; t < TT; ++t)
    for (int r = 0; r < 4; ++r) out[t][r] = hsum_epi32(acc[t][r]);
}

}  // namespace

void rows_avx2_decode(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0,
                      std::int64_t r1, std::int32_t* acc, std::int64_t ld_acc) {
  const std::int64_t n_kb = W.k_padded_ / kKBlock;
  const std::int64_t group_bytes = n_kb * kDecRows * kDecChunk;
  const std::uint8_t* packed = W.packed_.data();
  auto store = [&](std::int64_t t, std::int64_t r, std::int32_t v) {
    if (r < r1) acc[t * ld_acc + r] = v - a.sum[static_cast<std::size_t>(t)];
  };
  if (a.T == 1) {
    const std::int8_t* q = a.q.data();
    for (std::int64_t g = r0 / kDecRows; g * kDecRows < r1; ++g) {
      std::int32_t s[4];
      gemv_group(packed + g * group_bytes, q, n_kb, s);
      for (int r = 0; r < 4; ++r) store(0, g * kDecRows + r, s[r]);
    }
    return;
  }
  // GEMM: decode each row group once (4 * k_padded bytes, L1/L2 resident), reuse it for all tokens.
  thread_local AlignedBuffer<std::uint8_t> ubuf;
  if (ubuf.size() < static_cast<std::size_t>(4 * W.k_padded_))
    ubuf.resize(static_cast<std::size_t>(4 * W.k_padded_), false);
  std::uint8_t* u = ubuf.data();
  for (std::int64_t g = r0 / kDecRows; g * kDecRows < r1; ++g) {
    decode_group(packed + g * group_bytes, n_kb, u, W.k_padded_);
    std::int64_t t = 0;
    for (; t + 2 <= a.T; t += 2) {
      const std::int8_t* qs[2] = {a.q.data() + t * a.K_padded, a.q.data() + (t + 1) * a.K_padded};
      std::int32_t s[2][4];
      gemm_tile<2>(u, W.k_padded_, qs, s);
      for (int i = 0; i < 2; ++i)
        for (int r = 0; r < 4; ++r) store(t + i, g * kDecRows + r, s[i][r]);
    }
    for (; t < a.T; ++t) {
      const std::int8_t* qs[1] = {a.q.data() + t * a.K_padded};
      std::int32_t s[1][4];
      gemm_tile<1>(u, W.k_padded_, qs, s);
      for (int r = 0; r < 4; ++r) store(t, g * kDecRows + r, s[0][r]);
    }
  }
}

}  // namespace bitmamba::ternary::detail
