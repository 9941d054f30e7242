// AVX-VNNI ternary product on the kDecode packing: 2-bit decode + the 256-bit (VEX) vpdpbusd, for the
// CPUs that have AVX2 and AVX-VNNI but no AVX-512 (Intel Alder Lake and later client cores: the
// hybrid P/E-core parts turn AVX-512 off). On the AVX2 kernel each 32 products cost a vpmaddubsw, a
// vpaddw into int16 partial sums and, every 8 blocks, a vpmaddwd flush into int32; vpdpbusd multiplies
// unsigned bytes (offset codes u = w + 1 in {0, 1, 2}) by signed bytes (q) and adds each 4 products
// straight into an int32 lane: one instruction, no saturating stage, exact for any model width (a
// lane of the GEMV's scale-4 sums gains at most 2 x 4 x 8 x 128 per 128-column block). The offset is
// removed at the end: sum(w*q) = sum(u*q) - sum(q).
//
// GEMV: per row chunk one shift (v >> 4 in 16-bit lanes) and four ANDs give the four digit vectors, two
// of them masked in place (v & 0x0c = 4 u), so a row needs 2 accumulators: digits 0 and 2 at scale 1,
// digits 1 and 3 at scale 4, brought back by an exact shift at the end (every lane of the scale-4 sums
// is a multiple of 4). 8 accumulators per 4-row group keep vpdpbusd near its issue rate. Per 128
// weights: 1 load, 1 shift, 4 ANDs, 4 vpdpbusd, against 1 + 3 + 4 + 4 vpmaddubsw + 3 vpaddw (+ the
// flush) on AVX2.
// Batches of 2-3 tokens: 2 tokens in one pass straight from the packed bytes (gemv_tokens), the third
// through the GEMV. GEMM (T >= 4): a row group is decoded once into an L1 buffer (decode_avx2.h) and
// reused for every token, 4 rows x kTile tokens per step (DotTiles).
//
// The vpdpbusd is written out (kernels/dpbusd_avxvnni.h): GCC 12 copied the intrinsic's accumulators
// once per step. Compiled in every x86 build (GCC >= 11, Clang >= 12 know -mavxvnni); checked through
// the intrinsics emulation of tests/avx512_emu on any x86-64 CPU, and run for real by the avxvnni
// ctest and pytest legs wherever the CPU has AVX-VNNI.
#include <immintrin.h>

#include <cstdint>

#include "core/aligned_buffer.h"
#include "kernels/dpbusd_avxvnni.h"
#include "kernels/ternary/decode_avx2.h"
#include "kernels/ternary/decode_driver.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary::detail {
namespace {

struct AvxVnniDecode : DotTiles<AvxVnniDecode>, VnniDot256 {
  using Unpacked = std::uint8_t;
  static constexpr int kTile = 2;

  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb, std::int32_t out[4]) {
    const __m256i m03 = _mm256_set1_epi8(0x03), m0c = _mm256_set1_epi8(0x0c);
    __m256i lo[4], hi[4];  // per row: digits 0, 2 (scale 1) | digits 1, 3 (scale 4)
    for (int r = 0; r < 4; ++r) lo[r] = hi[r] = _mm256_setzero_si256();
    for (std::int64_t kb = 0; kb < n_kb; ++kb) {
      const std::uint8_t* wb = w + kb * kDecRows * kDecChunk;
      const std::int8_t* qb = q + kb * kKBlock;
      const __m256i q0 = load(qb), q1 = load(qb + 32), q2 = load(qb + 64), q3 = load(qb + 96);
      for (int r = 0; r < 4; ++r) {
        const __m256i v = load(wb + r * kDecChunk);
        const __m256i v4 = _mm256_srli_epi16(v, 4);
        lo[r] = dpbusd(lo[r], _mm256_and_si256(v, m03), q0);
        hi[r] = dpbusd(hi[r], _mm256_and_si256(v, m0c), q1);
        lo[r] = dpbusd(lo[r], _mm256_and_si256(v4, m03), q2);
        hi[r] = dpbusd(hi[r], _mm256_and_si256(v4, m0c), q3);
      }
    }
    for (int r = 0; r < 4; ++r) out[r] = hsum_epi32(_mm256_add_epi32(lo[r], _mm256_srai_epi32(hi[r], 2)));
  }

  // Two tokens straight from the packed bytes (decode_driver.h, MultiGemv): the digits shifted down
  // (3 shifts, 4 ANDs per row chunk, shared by both tokens), one accumulator per row and token, 8 in
  // all. Batches of 2 and 3 run one such pass over each group and the third token through gemv()
  // (an L1 hit), storing no decoded rows: in the 1B model on a Zen 5 VM a batch of 2 went 1.26-1.6x
  // and one of 3 1.15-1.35x faster. Hot, one thread, the passes also beat the decode-and-tile GEMM at T = 4-8 (1.12-1.45x),
  // but in the model batches of 4 and 8 gave 0.8-1.15x, within the noise of that host, so the GEMM
  // keeps T >= 4 (docs/benchmarks_engine.md, "Ninth session").
  static constexpr int kGemvTokens = 2;
  static constexpr std::int64_t kGemmMinTokens = 4;
  template <int NT>
  static void gemv_tokens(const std::uint8_t* w, const std::int8_t* const* q, std::int64_t n_kb,
                          std::int32_t out[][4]) {
    static_assert(NT == 2, "the 2-token pass; one token takes gemv()");
    const __m256i m03 = _mm256_set1_epi8(0x03);
    __m256i acc[2][4];
    for (int t = 0; t < 2; ++t)
      for (int r = 0; r < 4; ++r) acc[t][r] = _mm256_setzero_si256();
    for (std::int64_t kb = 0; kb < n_kb; ++kb) {
      const std::uint8_t* wb = w + kb * kDecRows * kDecChunk;
      const std::int8_t* qa = q[0] + kb * kKBlock;
      const std::int8_t* qb = q[1] + kb * kKBlock;
      for (int r = 0; r < 4; ++r) {
        const __m256i v = load(wb + r * kDecChunk);
        for (int i = 0; i < 4; ++i) {
          const __m256i u = _mm256_and_si256(i == 0 ? v : _mm256_srli_epi16(v, 2 * i), m03);
          acc[0][r] = dpbusd(acc[0][r], u, load(qa + 32 * i));
          acc[1][r] = dpbusd(acc[1][r], u, load(qb + 32 * i));
        }
      }
    }
    for (int t = 0; t < 2; ++t)
      for (int r = 0; r < 4; ++r) out[t][r] = hsum_epi32(acc[t][r]);
  }

  static void decode(const std::uint8_t* w, std::int64_t n_kb, Unpacked* rows, std::int64_t k_padded) {
    decode_group_avx2(w, n_kb, rows, k_padded);
  }
};

}  // namespace

BITMAMBA_DECODE_KERNEL(rows_avxvnni_decode, AvxVnniDecode)

}  // namespace bitmamba::ternary::detail
