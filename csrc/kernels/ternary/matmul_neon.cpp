// ARM NEON (baseline, no dot product) ternary products on the kDecode packing and (at the end of this
// file) the kBase3 packing.
//
// Offset codes u = w + 1 in {0, 1, 2} are used as signed bytes; smull/smlal(2) multiply-accumulate
// u*q (|u*q| <= 256) into int16 lanes, 2 products per lane per 16 k, i.e. 16 per 128-wide block, so
// |partial| <= 4096 per block; int16 partials are widened into int32 (sadalp) every kFlushBlocks = 4
// blocks (<= 16384 < 32767): exact for any K. The offset is removed at the end,
// sum(w*q) = sum(u*q) - sum(q). A 32-byte row chunk is two 16-byte loads; bits 2i of byte 16h + j
// hold k = 32i + 16h + j, so one shift + mask lines a vector up with q[32i + 16h, +16).
// GEMV streams the matrix once (4 rows share each q load); GEMM decodes a 4-row group into a buffer
// once and reuses it for all tokens, 4 rows x 4 tokens per step. Same layout as the sdot kernel.
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

constexpr std::int64_t kFlushBlocks = 4;

inline int16x8_t mac(int16x8_t p, int8x16_t w, int8x16_t q) {
  return vmlal_high_s8(vmlal_s8(p, vget_low_s8(w), vget_low_s8(q)), w, q);
}

// The micro-kernels rows_decode (decode_driver.h) runs.
struct NeonDecode {
  using Unpacked = std::int8_t;
  static constexpr int kTile = 4;

  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t n_kb, std::int32_t out[4]) {
    int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    for (std::int64_t kb0 = 0; kb0 < n_kb; kb0 += kFlushBlocks) {
      const std::int64_t kb1 = kb0 + kFlushBlocks < n_kb ? kb0 + kFlushBlocks : n_kb;
      int16x8_t p[4] = {vdupq_n_s16(0), vdupq_n_s16(0), vdupq_n_s16(0), vdupq_n_s16(0)};
      for_each_block_row(w, q, kb0, kb1, [&](int r, const int8x16_t* u, const int8x16_t* qv) {
        for (int m = 0; m < 8; ++m) p[r] = mac(p[r], u[m], qv[m]);
      });
      for (int r = 0; r < 4; ++r) acc[r] = vpadalq_s16(acc[r], p[r]);
    }
    for (int r = 0; r < 4; ++r) out[r] = vaddvq_s32(acc[r]);
  }

  static void decode(const std::uint8_t* w, std::int64_t n_kb, Unpacked* rows, std::int64_t k_padded) {
    decode_group(w, n_kb, rows, k_padded);
  }

  // int16 partial sums, flushed into int32 every kFlushBlocks blocks.
  template <int TT>
  static void tile(const std::int8_t* u, std::int64_t k_padded, const std::int8_t* const* q,
                   std::int32_t out[][4]) {
    int32x4_t acc[TT][4];
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) acc[t][r] = vdupq_n_s32(0);
    const std::int64_t flush = kFlushBlocks * kKBlock;
    for (std::int64_t k0 = 0; k0 < k_padded; k0 += flush) {
      const std::int64_t k1 = k0 + flush < k_padded ? k0 + flush : k_padded;
      int16x8_t p[TT][4];
      for (int t = 0; t < TT; ++t)
        for (int r = 0; r < 4; ++r) p[t][r] = vdupq_n_s16(0);
      for (std::int64_t k = k0; k < k1; k += 16) {
        int8x16_t w[4];
        for (int r = 0; r < 4; ++r) w[r] = vld1q_s8(u + r * k_padded + k);
        for (int t = 0; t < TT; ++t) {
          const int8x16_t qv = vld1q_s8(q[t] + k);
          for (int r = 0; r < 4; ++r) p[t][r] = mac(p[t][r], w[r], qv);
        }
      }
      for (int t = 0; t < TT; ++t)
        for (int r = 0; r < 4; ++r) acc[t][r] = vpadalq_s16(acc[t][r], p[t][r]);
    }
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) out[t][r] = vaddvq_s32(acc[t][r]);
  }
};

// kBase3: digits as negated signed bytes s = -u (decode_neon.h), smull/smlal s*q (|s q| <= 256) into
// int16, 2 products per lane per 16 columns, widened into int32 every kB3FlushK = 512 columns
// (<= 16384 < 32767): exact for any K. One activation vector serves the 5 rows of a byte.
constexpr std::int64_t kB3FlushK = 512;

struct NeonBase3 {
  using Unpacked = std::int8_t;
  static constexpr int kTile = NeonDecode::kTile;

  static void gemv(const std::uint8_t* w, const std::int8_t* q, std::int64_t k_padded,
                   const std::int32_t*, std::int32_t out[5]) {
    int32x4_t acc[5];
    for (auto& v : acc) v = vdupq_n_s32(0);
    for (std::int64_t k0 = 0; k0 < k_padded; k0 += kB3FlushK) {
      const std::int64_t k1 = k0 + kB3FlushK < k_padded ? k0 + kB3FlushK : k_padded;
      int16x8_t p[5];
      for (auto& v : p) v = vdupq_n_s16(0);
      for (std::int64_t k = k0; k < k1; k += 16) {
        const int8x16_t qv = vld1q_s8(q + k);
        int8x16_t s[5];
        b3_negated_digits(vld1q_u8(w + k), s);
        for (int n = 0; n < 5; ++n) p[n] = mac(p[n], s[n], qv);
      }
      for (int n = 0; n < 5; ++n) acc[n] = vpadalq_s16(acc[n], p[n]);
    }
    for (int n = 0; n < 5; ++n) out[n] = -vaddvq_s32(acc[n]);
  }

  static void decode(const std::uint8_t* w, std::int64_t k_padded, Unpacked* rows) {
    b3_decode_group(w, k_padded, rows);
  }

  template <int TT>
  static void tile(const Unpacked* rows, std::int64_t k_padded, const std::int8_t* const* q,
                   std::int32_t out[][4]) {
    NeonDecode::tile<TT>(rows, k_padded, q, out);
  }
};

}  // namespace

BITMAMBA_DECODE_KERNEL(rows_neon_decode, NeonDecode)
BITMAMBA_BASE3_KERNEL(rows_neon_base3, NeonBase3)

}  // namespace bitmamba::ternary::detail
