// ARM NEON + dot product (sdot) ternary products on the kDecode packing and (at the end of this file)
// the kBase3 packing.
//
// Offset codes u = w + 1 in {0, 1, 2} are used as signed bytes; sdot adds 4 products u*q into each
// int32 lane directly (no narrow intermediate): exact for any K. The offset is removed at the end,
// sum(w*q) = sum(u*q) - sum(q). A 32-byte row chunk is two 16-byte loads; bits 2i of byte 16h + j
// hold k = 32i + 16h + j, so one shift + mask lines a vector up with q[32i + 16h, +16).
// GEMV streams the matrix once (4 rows share each q load); GEMM decodes a 4-row group into a buffer
// once and reuses it for all tokens, 4 rows x 4 tokens per step.
#include <arm_neon.h>

#include <cstdint>

#include "core/aligned_buffer.h"
#include "kernels/ternary/base3_driver.h"
#include "kernels/ternary/decode_driver.h"
#include "kernels/ternary/decode_neon.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary::detail {
namespace {

// The micro-kernels rows_decode (decode_driver.h) runs; GEMM tiles of 4 tokens from DotTiles.
struct NeonDotDecode : DotTiles<NeonDotDecode> {
  using Unpacked = std::int8_t;
  using Vec = int8x16_t;
  using Acc = int32x4_t;
  static constexpr int kTile = 4;
  static constexpr std::int64_t kStep = 16;
  static Acc zero() { return vdupq_n_s32(0); }
  static Vec load(const void* p) { return vld1q_s8(static_cast<const std::int8_t*>(p)); }
  static Acc dot(Acc acc, Vec w, Vec q) { return vdotq_s32(acc, w, q); }
  static std::int32_t reduce(Acc acc) { return vaddvq_s32(acc); }

  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb, std::int32_t out[4]) {
    int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    for_each_block_row(w, q, 0, n_kb, [&](int r, const int8x16_t* u, const int8x16_t* qv) {
      for (int m = 0; m < 8; ++m) acc[r] = vdotq_s32(acc[r], u[m], qv[m]);
    });
    for (int r = 0; r < 4; ++r) out[r] = vaddvq_s32(acc[r]);
  }

  static void decode(const std::uint8_t* w, std::int64_t n_kb, Unpacked* rows, std::int64_t k_padded) {
    decode_group(w, n_kb, rows, k_padded);
  }
};

// kBase3: digits as negated signed bytes s = -u (decode_neon.h), sdot(s, q) straight into int32 (exact
// for any K), the sum negated. One activation vector serves the 5 rows of a byte.
struct NeonDotBase3 {
  using Unpacked = std::int8_t;
  static constexpr int kTile = NeonDotDecode::kTile;

  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t k_padded,
                   const std::int32_t*, std::int32_t out[5]) {
    int32x4_t acc[5];
    for (auto& v : acc) v = vdupq_n_s32(0);
    for (std::int64_t k = 0; k < k_padded; k += 16) {
      const int8x16_t qv = vld1q_s8(q + k);
      int8x16_t s[5];
      b3_negated_digits(vld1q_u8(w + k), s);
      for (int n = 0; n < 5; ++n) acc[n] = vdotq_s32(acc[n], s[n], qv);
    }
    for (int n = 0; n < 5; ++n) out[n] = -vaddvq_s32(acc[n]);
  }

  static void decode(const std::uint8_t* w, std::int64_t k_padded, Unpacked* rows) {
    b3_decode_group(w, k_padded, rows);
  }

  template <int TT>
  static void tile(const Unpacked* rows, std::int64_t k_padded, const std::int8_t* const* q,
                   std::int32_t out[][4]) {
    NeonDotDecode::tile<TT>(rows, k_padded, q, out);
  }
};

}  // namespace

BITMAMBA_DECODE_KERNEL(rows_neondot_decode, NeonDotDecode)
BITMAMBA_BASE3_KERNEL(rows_neondot_base3, NeonDotBase3)

}  // namespace bitmamba::ternary::detail
