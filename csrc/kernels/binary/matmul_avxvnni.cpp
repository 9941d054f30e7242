// AVX-VNNI binary product (binary.h) for the avxvnni kernel set: P = sum of q over the set bits,
// acc = 2 P - S (kernels.h driver), with the 256-bit (VEX) vpdpbusd.
//
// GEMV (T = 1), 3 instructions per 32 columns per row: the AVX2 kernel's dword broadcast of 4 chunk
// bytes and AND with the bit of each byte (expand_avx2.h) leave byte p holding its column's bit in
// place, 1 << (p / 4) or 0. The AVX2 kernel needs u in {0, 1} for vpmaddubsw (an unsigned min), but
// vpdpbusd adds the 4 bytes of a dword lane into that lane only, and all 4 bytes of lane L carry the
// same bit L: so lane L accumulates 2^L times its sum, and an exact shift per lane (vpsravd by L,
// every lane a multiple of its scale) brings it back. and, vpdpbusd per 32 columns, no min, no int16
// stage; the shift is applied every kShiftBlocks blocks so no lane can overflow (|lane| < 2^18 per
// block). Two accumulators per row (8 per group) keep vpdpbusd near its issue rate.
// GEMM (T > 1): the row group expanded once into bytes u in {0, 1} (expand_avx2.h), then the ternary
// kernels' dot-product tiles (DotTiles, decode_driver.h): vpdpbusd(u, q), 4 rows x 2 tokens per step.
//
// Checked through the intrinsics emulation of tests/avx512_emu on any x86-64 CPU, and run for real by
// the avxvnni ctest and pytest legs wherever the CPU has AVX-VNNI.
#include <immintrin.h>

#include <cstdint>

#include "kernels/binary/binary.h"
#include "kernels/binary/expand_avx2.h"
#include "kernels/binary/kernels.h"
#include "kernels/dpbusd_avxvnni.h"
#include "kernels/ternary/decode_driver.h"

namespace bitmamba::binary::detail {
namespace {

// Per block a lane of a + b gains at most 4 vpdpbusd x 4 products x 2^7 (the bit) x 128 (|q|) = 2^18:
// 1024 blocks stay below 2^28.
constexpr std::int64_t kShiftBlocks = 1024;

struct AvxVnniBinary : ternary::detail::DotTiles<AvxVnniBinary>, VnniDot256 {
  using Unpacked = std::uint8_t;
  static constexpr int kTile = 2;
  static constexpr bool kGemvPermutesQ = true;

  static void permute_q(const std::int8_t* q, std::int64_t k_padded, std::int8_t* out) {
    permute_q_avx2(q, k_padded, out);
  }

  // One token (q from permute_q), rows [g*4, g*4+4) of a row group: the 4 sums P.
  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb, std::int32_t out[4]) {
    const GemvBits u;
    const __m256i scale = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i total[4];
    for (auto& v : total) v = _mm256_setzero_si256();
    for (std::int64_t kb0 = 0; kb0 < n_kb; kb0 += kShiftBlocks) {
      const std::int64_t kb1 = kb0 + kShiftBlocks < n_kb ? kb0 + kShiftBlocks : n_kb;
      __m256i a[4], b[4];  // per row: sub-blocks 0, 2 | 1, 3
      for (int r = 0; r < 4; ++r) a[r] = b[r] = _mm256_setzero_si256();
      for (std::int64_t kb = kb0; kb < kb1; ++kb) {
        const std::int8_t* qb = q + kb * kKBlock;
        const __m256i q0 = load(qb), q1 = load(qb + 32), q2 = load(qb + 64), q3 = load(qb + 96);
        const std::uint8_t* wb = w + kb * kBinRows * kBinChunk;
        for (int r = 0; r < 4; ++r) {
          const std::uint8_t* c = wb + r * kBinChunk;
          a[r] = dpbusd(a[r], u(c), q0);
          b[r] = dpbusd(b[r], u(c + 4), q1);
          a[r] = dpbusd(a[r], u(c + 8), q2);
          b[r] = dpbusd(b[r], u(c + 12), q3);
        }
      }
      for (int r = 0; r < 4; ++r)
        total[r] = _mm256_add_epi32(total[r], _mm256_srav_epi32(_mm256_add_epi32(a[r], b[r]), scale));
    }
    for (int r = 0; r < 4; ++r) out[r] = hsum_epi32(total[r]);
  }

  static void decode(const std::uint8_t* w, std::int64_t n_kb, Unpacked* rows, std::int64_t k_padded) {
    expand_group_avx2(w, n_kb, rows, k_padded);
  }
};

}  // namespace

BITMAMBA_BINARY_KERNEL(rows_avxvnni_binary, AvxVnniBinary)

}  // namespace bitmamba::binary::detail
