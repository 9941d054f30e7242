// ARM NEON + dot product (sdot) binary product (binary.h): acc = 2 P - S with P the sum of q over the
// set bits (kernels.h driver).
//
// Bits become byte masks m = -1 where set, 0 where clear (expand_neon.h: tbl + cmtst), so
// sdot(m, q) adds -q of 4 kept columns straight into an int32 lane (no narrow intermediate): exact for
// any K, and P is the negated lane sum. 3 instructions per 16 columns per row in the GEMV (4 rows
// share each q load); the GEMM expands a 4-row group into masks once and reuses them for every token,
// 4 rows x 4 tokens per step.
#include <arm_neon.h>

#include <cstdint>

#include "kernels/binary/binary.h"
#include "kernels/binary/expand_neon.h"
#include "kernels/binary/kernels.h"

namespace bitmamba::binary::detail {
namespace {

using ternary::kKBlock;

struct NeonDotBinary {
  using Unpacked = std::int8_t;
  static constexpr int kTile = 4;
  static constexpr bool kGemvPermutesQ = false;

  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb, std::int32_t out[4]) {
    const NeonExpander ex;
    int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    for (std::int64_t kb = 0; kb < n_kb; ++kb) {
      const std::int8_t* qb = q + kb * kKBlock;
      int8x16_t qv[8];
      for (int m = 0; m < 8; ++m) qv[m] = vld1q_s8(qb + 16 * m);
      const std::uint8_t* wb = w + kb * kBinRows * kBinChunk;
      for (int r = 0; r < 4; ++r) {
        int8x16_t mk[8];
        ex(wb + r * kBinChunk, mk);
        for (int m = 0; m < 8; ++m) acc[r] = vdotq_s32(acc[r], mk[m], qv[m]);
      }
    }
    for (int r = 0; r < 4; ++r) out[r] = -vaddvq_s32(acc[r]);
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
    for (std::int64_t k = 0; k < k_padded; k += 16) {
      int8x16_t wv[4];
      for (int r = 0; r < 4; ++r) wv[r] = vld1q_s8(u + r * k_padded + k);
      for (int t = 0; t < TT; ++t) {
        const int8x16_t x = vld1q_s8(q[t] + k);
        for (int r = 0; r < 4; ++r) acc[t][r] = vdotq_s32(acc[t][r], wv[r], x);
      }
    }
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) out[t][r] = -vaddvq_s32(acc[t][r]);
  }
};

}  // namespace

BITMAMBA_BINARY_KERNEL(rows_neondot_binary, NeonDotBinary)

}  // namespace bitmamba::binary::detail
