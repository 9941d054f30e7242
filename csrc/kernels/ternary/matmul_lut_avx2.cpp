// AVX2 table-lookup (T-MAC style) ternary product on the kLut packing.
//
// Per token, every pair of activations (q0, q1) gets a 16-entry table of its 9 possible partial sums
// w0*q0 + w1*q1 (w in {-1, 0, +1}, entry 3*(w0+1) + (w1+1); entries 9..15 unused). The entries need
// 16 bits (|entry| <= 256), so each table is stored as 16 low bytes + 16 high bytes. A weight byte
// vector holds 32 rows' 4-bit indices for two pairs; one vpshufb per table half looks up 32 rows at
// once, vpunpck{l,h}bw reassembles the int16 values. int16 partial sums cover one 128-wide K block
// (64 pairs, |sum| <= 64 * 256 = 16384) and are then widened into int32: exact for any K.
//
// This trades the decode's shift/mask/multiply for table lookups; which one is faster depends on the
// shape and the machine, so TernaryMatrix can autotune between them at build time (dispatch.cpp).
#include <immintrin.h>

#include <cstdint>

#include "core/aligned_buffer.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary::detail {
namespace {

// tbl[p * 32 + 0..15] = low bytes, [p * 32 + 16..31] = high bytes of pair p's 16 int16 entries.
void build_tables(const std::int8_t* q, std::int64_t k_padded, std::uint8_t* tbl) {
  const __m256i A = _mm256_setr_epi16(-1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0);
  const __m256i B = _mm256_setr_epi16(-1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0, 0, 0, 0, 0, 0);
  // Within each 128-bit lane: even (low) bytes first, then odd (high) bytes.
  const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                         0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  for (std::int64_t p = 0; p < k_padded / 2; ++p) {
    const __m256i q0 = _mm256_set1_epi16(q[2 * p]), q1 = _mm256_set1_epi16(q[2 * p + 1]);
    const __m256i v = _mm256_add_epi16(_mm256_mullo_epi16(q0, A), _mm256_mullo_epi16(q1, B));
    // [lo 0-7 | hi 0-7 | lo 8-15 | hi 8-15] -> [lo 0-7 | lo 8-15 | hi 0-7 | hi 8-15]
    const __m256i s = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, split), 0xd8);
    _mm256_store_si256(reinterpret_cast<__m256i*>(tbl + p * 32), s);
  }
}

inline __m256i bcast(const std::uint8_t* p) {
  return _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
}

// 32 rows of one group for one token: out[0..32) = sum_k w[r][k] * q[k].
void lut_group(const std::uint8_t* w, const std::uint8_t* tbl, std::int64_t n_kb, std::int32_t* out) {
  const __m256i m15 = _mm256_set1_epi8(15);
  __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  for (std::int64_t kb = 0; kb < n_kb; ++kb) {
    const std::uint8_t* wb = w + kb * kLutBlockBytes;
    const std::uint8_t* tb = tbl + kb * (kKBlock / 2) * 32;
    __m256i a16 = _mm256_setzero_si256(), b16 = _mm256_setzero_si256();
    for (int u = 0; u < kKBlock / 4; ++u) {
      const __m256i idx = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + u * kLutRows));
      const __m256i lo = _mm256_and_si256(idx, m15);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(idx, 4), m15);
      const std::uint8_t* t0 = tb + (2 * u) * 32;
      const __m256i l0 = _mm256_shuffle_epi8(bcast(t0), lo);
      const __m256i h0 = _mm256_shuffle_epi8(bcast(t0 + 16), lo);
      const __m256i l1 = _mm256_shuffle_epi8(bcast(t0 + 32), hi);
      const __m256i h1 = _mm256_shuffle_epi8(bcast(t0 + 48), hi);
      a16 = _mm256_add_epi16(a16, _mm256_add_epi16(_mm256_unpacklo_epi8(l0, h0), _mm256_unpacklo_epi8(l1, h1)));
      b16 = _mm256_add_epi16(b16, _mm256_add_epi16(_mm256_unpackhi_epi8(l0, h0), _mm256_unpackhi_epi8(l1, h1)));
    }
    // a16 holds rows 0-7 | 16-23, b16 rows 8-15 | 24-31 (in-lane unpack order).
    acc0 = _mm256_add_epi32(acc0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(a16)));
    acc1 = _mm256_add_epi32(acc1, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(b16)));
    acc2 = _mm256_add_epi32(acc2, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(a16, 1)));
    acc3 = _mm256_add_epi32(acc3, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(b16, 1)));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), acc0);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8), acc1);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), acc2);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 24), acc3);
}

}  // namespace

void rows_avx2_lut(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0,
                   std::int64_t r1, std::int32_t* acc, std::int64_t ld_acc) {
  const std::int64_t n_kb = W.k_padded_ / kKBlock;
  thread_local AlignedBuffer<std::uint8_t> tbl;
  const auto tbl_bytes = static_cast<std::size_t>(W.k_padded_ / 2 * 32);
  if (tbl.size() < tbl_bytes) tbl.resize(tbl_bytes, false);
  alignas(32) std::int32_t s[kLutRows];
  for (std::int64_t t = 0; t < a.T; ++t) {
    build_tables(a.q.data() + t * a.K_padded, W.k_padded_, tbl.data());
    for (std::int64_t g = r0 / kLutRows; g * kLutRows < r1; ++g) {
      lut_group(W.packed_.data() + g * n_kb * kLutBlockBytes, tbl.data(), n_kb, s);
      const std::int64_t base = g * kLutRows;
      const std::int64_t n = (r1 - base) < kLutRows ? (r1 - base) : kLutRows;
      for (std::int64_t i = 0; i < n; ++i) acc[t * ld_acc + base + i] = s[i];
    }
  }
}

}  // namespace bitmamba::ternary::detail
