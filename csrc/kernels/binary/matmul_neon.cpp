// ARM NEON (baseline, no dot product) binary product (binary.h): P = sum of q over the set bits,
// acc = 2 P - S (kernels.h driver).
//
// Bits become byte masks (expand_neon.h: tbl + cmtst, 2 instructions per 16 columns); AND with q keeps
// q where the bit is set and sadalp adds the kept bytes pairwise into int16 lanes. Exactness: a lane
// takes 2 bytes (|.| <= 256) per 16 columns, so 2048 per 128-column block; GEMV partials are widened
// into int32 (sadalp) every kFlushBlocks = 8 blocks, GEMM partials every kFlushK = 1024 columns
// (<= 16384 < 32767 both): exact for any K.
// GEMV streams the bits once (4 rows share each q load); GEMM expands a 4-row group into masks once
// and reuses them for every token, 4 rows x 4 tokens per step.
#include <arm_neon.h>

#include <cstdint>

#include "kernels/binary/binary.h"
#include "kernels/binary/expand_neon.h"
#include "kernels/binary/kernels.h"

namespace bitmamba::binary::detail {
namespace {

using ternary::kKBlock;
constexpr std::int64_t kFlushBlocks = 8;
constexpr std::int64_t kFlushK = 1024;

struct NeonBinary {
  using Unpacked = std::int8_t;
  static constexpr int kTile = 4;
  static constexpr bool kGemvPermutesQ = false;

  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb, std::int32_t out[4]) {
    const NeonExpander ex;
    int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    for (std::int64_t kb0 = 0; kb0 < n_kb; kb0 += kFlushBlocks) {
      const std::int64_t kb1 = kb0 + kFlushBlocks < n_kb ? kb0 + kFlushBlocks : n_kb;
      int16x8_t p[4] = {vdupq_n_s16(0), vdupq_n_s16(0), vdupq_n_s16(0), vdupq_n_s16(0)};
      for (std::int64_t kb = kb0; kb < kb1; ++kb) {
        const std::int8_t* qb = q + kb * kKBlock;
        int8x16_t qv[8];
        for (int m = 0; m < 8; ++m) qv[m] = vld1q_s8(qb + 16 * m);
        const std::uint8_t* wb = w + kb * kBinRows * kBinChunk;
        for (int r = 0; r < 4; ++r) {
          int8x16_t mk[8];
          ex(wb + r * kBinChunk, mk);
          for (int m = 0; m < 8; ++m) p[r] = vpadalq_s8(p[r], vandq_s8(mk[m], qv[m]));
        }
      }
      for (int r = 0; r < 4; ++r) acc[r] = vpadalq_s16(acc[r], p[r]);
    }
    for (int r = 0; r < 4; ++r) out[r] = vaddvq_s32(acc[r]);
  }

  static void decode(const std::uint8_t* w, std::int64_t n_kb, Unpacked* rows, std::int64_t k_padded) {
    decode_masks(w, n_kb, rows, k_padded);
  }

  template <int TT>
  static void tile(const std::int8_t* u, std::int64_t k_padded, const std::int8_t* const* q,
                   std::int32_t out[][4]) {
    int32x4_t acc[TT][4];
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) acc[t][r] = vdupq_n_s32(0);
    for (std::int64_t k0 = 0; k0 < k_padded; k0 += kFlushK) {
      const std::int64_t k1 = k0 + kFlushK < k_padded ? k0 + kFlushK : k_padded;
      int16x8_t p[TT][4];
      for (int t = 0; t < TT; ++t)
        for (int r = 0; r < 4; ++r) p[t][r] = vdupq_n_s16(0);
      for (std::int64_t k = k0; k < k1; k += 16) {
        int8x16_t wv[4];
        for (int r = 0; r < 4; ++r) wv[r] = vld1q_s8(u + r * k_padded + k);
        for (int t = 0; t < TT; ++t) {
          const int8x16_t x = vld1q_s8(q[t] + k);
          for (int r = 0; r < 4; ++r) p[t][r] = vpadalq_s8(p[t][r], vandq_s8(wv[r], x));
        }
      }
      for (int t = 0; t < TT; ++t)
        for (int r = 0; r < 4; ++r) acc[t][r] = vpadalq_s16(acc[t][r], p[t][r]);
    }
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) out[t][r] = vaddvq_s32(acc[t][r]);
  }
};

}  // namespace

BITMAMBA_BINARY_KERNEL(rows_neon_binary, NeonBinary)

}  // namespace bitmamba::binary::detail
