// Unpacking of the kDecode packing with Advanced SIMD, shared by the neon and neondot kernels. Its
// functions are in an anonymous namespace: each including file (compiled with its own target flags)
// keeps its own copy, so the linker can never hand the dotprod build of one to the baseline kernel.
#pragma once

#include <arm_neon.h>

#include <cstdint>

#include "kernels/ternary/kernels.h"

namespace bitmamba::ternary::detail {
namespace {

// One row's 32-byte chunk of a 128-wide K block as 8 vectors of offset codes u = w + 1 (as signed
// bytes): bits 2i of byte 16h + j hold k = 32i + 16h + j, so u[2i + h] lines up with q[16(2i+h), +16).
inline void unpack_chunk(const std::uint8_t* chunk, int8x16_t u[8]) {
  const uint8x16_t m3 = vdupq_n_u8(3);
  const uint8x16_t v0 = vld1q_u8(chunk), v1 = vld1q_u8(chunk + 16);
  u[0] = vreinterpretq_s8_u8(vandq_u8(v0, m3));
  u[1] = vreinterpretq_s8_u8(vandq_u8(v1, m3));
  u[2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v0, 2), m3));
  u[3] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v1, 2), m3));
  u[4] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v0, 4), m3));
  u[5] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v1, 4), m3));
  u[6] = vreinterpretq_s8_u8(vshrq_n_u8(v0, 6));
  u[7] = vreinterpretq_s8_u8(vshrq_n_u8(v1, 6));
}

// The GEMV's walk over a row group's K blocks [kb0, kb1): per block, the 8 activation vectors are
// loaded once and f(r, u, qv) runs for each of the 4 rows with the row's 8 code vectors u.
template <class F>
inline void for_each_block_row(const std::uint8_t* w, const std::int8_t* q, std::int64_t kb0,
                               std::int64_t kb1, F&& f) {
  for (std::int64_t kb = kb0; kb < kb1; ++kb) {
    const std::int8_t* qb = q + kb * kKBlock;
    int8x16_t qv[8];
    for (int m = 0; m < 8; ++m) qv[m] = vld1q_s8(qb + 16 * m);
    const std::uint8_t* wb = w + kb * kDecRows * kDecChunk;
    for (int r = 0; r < 4; ++r) {
      int8x16_t u[8];
      unpack_chunk(wb + r * kDecChunk, u);
      f(r, u, qv);
    }
  }
}

// Offset codes of a row group's 4 rows into buf[r * k_padded + k], in natural k order (the GEMM's
// decode-once buffer).
inline void decode_group(const std::uint8_t* w, std::int64_t n_kb, std::int8_t* buf, std::int64_t k_padded) {
  for (std::int64_t kb = 0; kb < n_kb; ++kb) {
    const std::uint8_t* wb = w + kb * kDecRows * kDecChunk;
    for (int r = 0; r < 4; ++r) {
      int8x16_t u[8];
      unpack_chunk(wb + r * kDecChunk, u);
      std::int8_t* o = buf + r * k_padded + kb * kKBlock;
      for (int m = 0; m < 8; ++m) vst1q_s8(o + 16 * m, u[m]);
    }
  }
}

}  // namespace
}  // namespace bitmamba::ternary::detail
