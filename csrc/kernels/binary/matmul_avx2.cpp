// AVX2 binary product (binary.h): P = sum of q over the set bits, acc = 2 P - S (kernels.h driver).
//
// GEMV (T = 1), 4 instructions per 32 columns per row: vpbroadcastd puts bytes 4m .. 4m + 3 of a
// row's 16-byte chunk (columns 32m + 8j + i, j = 0..3, i = 0..7) in every dword, so byte p of the
// vector holds byte j = p % 4; AND with 1 << (p / 4) isolates bit i = p / 4 and an unsigned min with 1
// turns it into u in {0, 1} for column 32m + 8 (p % 4) + p / 4. The activations are permuted to that
// order once per call (permute_q: a 4 x 8 byte transpose per 32 columns, K bytes in all), so the
// broadcast, a load, replaces a shuffle per 32 columns: and, min, vpmaddubsw(u, q), add.
// GEMM (T > 1): a 4-row group is expanded once into 4 * k_padded bytes of u in column order (vpshufb
// replicates byte 4m + j of the chunk, broadcast to both lanes, into bytes 8j .. 8j + 7 of vector m;
// AND with 1 << (k % 8), min with 1) and reused for every token, 4 rows x 2 tokens per step (8 int16
// accumulators + 4 weight vectors fit the 16 ymm).
//
// Exactness: a vpmaddubsw lane is u0 q0 + u1 q1 in [-256, 254] (never saturates). GEMV: 4 of them per
// 128-column block go into each int16 lane, |.| <= 1024, flushed into int32 (vpmaddwd with ones) every
// kFlushBlocks = 16 blocks (<= 16384 < 32767). GEMM tiles: one per 32 columns, flushed every
// kFlushK = 2048 columns (64 steps, <= 16384). Exact for any K.
#include <immintrin.h>

#include <cstdint>

#include "kernels/binary/binary.h"
#include "kernels/binary/expand_avx2.h"
#include "kernels/binary/kernels.h"

namespace bitmamba::binary::detail {
namespace {

constexpr std::int64_t kFlushBlocks = 16;
constexpr std::int64_t kFlushK = 2048;

struct Avx2Binary {
  using Unpacked = std::uint8_t;
  static constexpr int kTile = 2;
  static constexpr bool kGemvPermutesQ = true;

  static void permute_q(const std::int8_t* q, std::int64_t k_padded, std::int8_t* out) {
    permute_q_avx2(q, k_padded, out);
  }

  // One token (q from permute_q), rows [g*4, g*4+4) of a row group: the 4 sums P.
  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb, std::int32_t out[4]) {
    const GemvBits bits;
    const __m256i one = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    auto u = [&](const std::uint8_t* p) { return _mm256_min_epu8(bits(p), one); };
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    for (std::int64_t kb0 = 0; kb0 < n_kb; kb0 += kFlushBlocks) {
      const std::int64_t kb1 = kb0 + kFlushBlocks < n_kb ? kb0 + kFlushBlocks : n_kb;
      __m256i p[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
      for (std::int64_t kb = kb0; kb < kb1; ++kb) {
        const std::int8_t* qb = q + kb * kKBlock;
        __m256i qv[4];
        for (int m = 0; m < 4; ++m) qv[m] = _mm256_load_si256(reinterpret_cast<const __m256i*>(qb + 32 * m));
        const std::uint8_t* wb = w + kb * kBinRows * kBinChunk;
        for (int r = 0; r < 4; ++r) {
          const std::uint8_t* c = wb + r * kBinChunk;
          const __m256i s01 = _mm256_add_epi16(_mm256_maddubs_epi16(u(c), qv[0]), _mm256_maddubs_epi16(u(c + 4), qv[1]));
          const __m256i s23 = _mm256_add_epi16(_mm256_maddubs_epi16(u(c + 8), qv[2]), _mm256_maddubs_epi16(u(c + 12), qv[3]));
          p[r] = _mm256_add_epi16(p[r], _mm256_add_epi16(s01, s23));
        }
      }
      for (int r = 0; r < 4; ++r) acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(p[r], ones16));
    }
    for (int r = 0; r < 4; ++r) out[r] = hsum_epi32(acc[r]);
  }

  // u of the group's 4 rows into rows[r * k_padded + k].
  static void decode(const std::uint8_t* w, std::int64_t n_kb, Unpacked* rows, std::int64_t k_padded) {
    expand_group_avx2(w, n_kb, rows, k_padded);
  }

  template <int TT>
  static void tile(const Unpacked* u, std::int64_t k_padded, const std::int8_t* const* q,
                   std::int32_t out[][4]) {
    static_assert(TT == 1 || TT == 2, "AVX2 binary GEMM tiles hold 1 or 2 tokens");
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256i c[TT][4];
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) c[t][r] = _mm256_setzero_si256();
    for (std::int64_t k0 = 0; k0 < k_padded; k0 += kFlushK) {
      const std::int64_t k1 = k0 + kFlushK < k_padded ? k0 + kFlushK : k_padded;
      __m256i p[TT][4];
      for (int t = 0; t < TT; ++t)
        for (int r = 0; r < 4; ++r) p[t][r] = _mm256_setzero_si256();
      for (std::int64_t k = k0; k < k1; k += 32) {
        __m256i wv[4];
        for (int r = 0; r < 4; ++r) wv[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(u + r * k_padded + k));
        for (int t = 0; t < TT; ++t) {
          const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(q[t] + k));
          for (int r = 0; r < 4; ++r) p[t][r] = _mm256_add_epi16(p[t][r], _mm256_maddubs_epi16(wv[r], x));
        }
      }
      for (int t = 0; t < TT; ++t)
        for (int r = 0; r < 4; ++r) c[t][r] = _mm256_add_epi32(c[t][r], _mm256_madd_epi16(p[t][r], ones16));
    }
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) out[t][r] = hsum_epi32(c[t][r]);
  }
};

}  // namespace

BITMAMBA_BINARY_KERNEL(rows_avx2_binary, Avx2Binary)

}  // namespace bitmamba::binary::detail
