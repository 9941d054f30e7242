// Unpacking of the kDecode and kBase3 packings with Advanced SIMD, shared by the neon and neondot kernels. Its
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

// ---- kBase3 (kernels.h): 5 rows' base-3 digits per byte ------------------------------------------------
// Digit n of byte b is floor(3 m_n / 256), m_0 = b, m_(n+1) = 3 m_n mod 256: 1 where m_n >= 86, 2 where
// m_n >= 171. Each unsigned compare gives -1 (all ones) per threshold passed, so the sum of the two is
// s = -u as a signed byte; the kernels multiply with s and negate the sum.
inline void b3_negated_digits(uint8x16_t m, int8x16_t s[5]) {
  const uint8x16_t t1 = vdupq_n_u8(86), t2 = vdupq_n_u8(171), three = vdupq_n_u8(3);
  for (int n = 0; n < 5; ++n) {
    s[n] = vreinterpretq_s8_u8(vaddq_u8(vcgeq_u8(m, t1), vcgeq_u8(m, t2)));
    if (n < 4) m = vmulq_u8(m, three);
  }
}

// Offset codes of a group's 5 rows into rows[n * k_padded + k] (the GEMM's decode-once buffer).
inline void b3_decode_group(const std::uint8_t* w, std::int64_t k_padded, std::int8_t* rows) {
  for (std::int64_t k = 0; k < k_padded; k += 16) {
    int8x16_t s[5];
    b3_negated_digits(vld1q_u8(w + k), s);
    for (int n = 0; n < 5; ++n) vst1q_s8(rows + n * k_padded + k, vnegq_s8(s[n]));
  }
}

}  // namespace
}  // namespace bitmamba::ternary::detail
