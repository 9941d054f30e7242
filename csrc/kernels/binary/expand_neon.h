// Bit expansion of the binary kernel layout with Advanced SIMD, shared by the neon and neondot binary
// kernels. In an anonymous namespace: each including file (compiled with its own target flags) keeps
// its own copy, so the linker can never hand the dotprod build of one to the baseline kernel.
#pragma once

#include <arm_neon.h>

#include <cstdint>

#include "kernels/binary/binary.h"
#include "kernels/binary/kernels.h"

namespace bitmamba::binary::detail {
namespace {

// A row's 16-byte chunk of a 128-column block as 8 byte masks (0xFF where the bit is set, else 0),
// mask m lined up with q[16m, 16m + 16): tbl replicates byte 2m into bytes 0..7 and byte 2m + 1 into
// bytes 8..15, and cmtst against 1 << (k % 8) tests column 16m + k's bit.
struct NeonExpander {
  uint8x16_t idx[8], bit;
  NeonExpander() {
    for (int m = 0; m < 8; ++m)
      idx[m] = vcombine_u8(vdup_n_u8(static_cast<std::uint8_t>(2 * m)), vdup_n_u8(static_cast<std::uint8_t>(2 * m + 1)));
    static const std::uint8_t bits[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    bit = vld1q_u8(bits);
  }
  void operator()(const std::uint8_t* chunk, int8x16_t mask[8]) const {
    const uint8x16_t v = vld1q_u8(chunk);
    for (int m = 0; m < 8; ++m) mask[m] = vreinterpretq_s8_u8(vtstq_u8(vqtbl1q_u8(v, idx[m]), bit));
  }
};

// The masks of a row group's 4 rows into buf[r * k_padded + k], in column order (the GEMM's
// expand-once buffer).
inline void decode_masks(const std::uint8_t* w, std::int64_t n_kb, std::int8_t* buf, std::int64_t k_padded) {
  const NeonExpander ex;
  for (std::int64_t kb = 0; kb < n_kb; ++kb) {
    const std::uint8_t* wb = w + kb * kBinRows * kBinChunk;
    for (int r = 0; r < 4; ++r) {
      int8x16_t mk[8];
      ex(wb + r * kBinChunk, mk);
      std::int8_t* o = buf + r * k_padded + kb * ternary::kKBlock;
      for (int m = 0; m < 8; ++m) vst1q_s8(o + 16 * m, mk[m]);
    }
  }
}

}  // namespace
}  // namespace bitmamba::binary::detail
