// aarch64 Advanced SIMD vector operations for ssm_impl.h (4 floats, 2 doubles); the exp / log1p /
// silu / softplus math over them is vec_math_common.h.
#pragma once

#include <arm_neon.h>

#include "kernels/ssm/vec_math_common.h"

namespace bitmamba::ssm::vm_neon {

struct Lanes2d {
  using V = float64x2_t;
  using M = uint64x2_t;
  using F = float32x4_t;  // the float vector of Ops
  static V set(double c) { return vdupq_n_f64(c); }
  static V add(V a, V b) { return vaddq_f64(a, b); }
  static V sub(V a, V b) { return vsubq_f64(a, b); }
  static V mul(V a, V b) { return vmulq_f64(a, b); }
  static V fma(V a, V b, V c) { return vfmaq_f64(c, a, b); }
  static V div(V a, V b) { return vdivq_f64(a, b); }
  static V clamp(V x, double lo, double hi) { return vminq_f64(vmaxq_f64(x, set(lo)), set(hi)); }  // NaN stays NaN
  static V round_even(V x) { return vrndnq_f64(x); }
  static V pow2(V k) { return vreinterpretq_f64_s64(vshlq_n_s64(vaddq_s64(vcvtq_s64_f64(k), vdupq_n_s64(1023)), 52)); }
  static V frexp_mantissa(V u) {
    return vreinterpretq_f64_u64(vorrq_u64(vandq_u64(vreinterpretq_u64_f64(u), vdupq_n_u64(0x000FFFFFFFFFFFFFull)),
                                           vdupq_n_u64(0x3FE0000000000000ull)));
  }
  static V exponent_field(V u) {
    return vreinterpretq_f64_u64(vorrq_u64(vshrq_n_u64(vreinterpretq_u64_f64(u), 52), vdupq_n_u64(0x4330000000000000ull)));
  }
  static M lt(V a, V b) { return vcltq_f64(a, b); }
  static M eq(V a, V b) { return vceqq_f64(a, b); }
  static V abs(V a) { return vabsq_f64(a); }
  static M inf_or_nan(V a) {  // NaN: not a == a
    const M nan = vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vceqq_f64(a, a))));
    return vorrq_u64(vceqq_f64(a, vdupq_n_f64(INFINITY)), nan);
  }
  static M either(M a, M b) { return vorrq_u64(a, b); }
  static V select(M m, V a, V b) { return vbslq_f64(m, a, b); }
};

struct Ops : VecMath<Ops, Lanes2d> {
  using V = float32x4_t;
  static constexpr int W = 4;
  static V load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static V set1(float f) { return vdupq_n_f32(f); }
  static V zero() { return vdupq_n_f32(0.0f); }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  static V sub(V a, V b) { return vsubq_f32(a, b); }
  static V mul(V a, V b) { return vmulq_f32(a, b); }
  static V div(V a, V b) { return vdivq_f32(a, b); }
  static V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  static V fnmadd(V a, V b, V c) { return vfmsq_f32(c, a, b); }
  static V min(V a, V b) { return vminq_f32(a, b); }
  static V max(V a, V b) { return vmaxq_f32(a, b); }
  static V round(V a) { return vrndnq_f32(a); }
  static V pow2i(V n) { return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23)); }
  static V neg(V a) { return vnegq_f32(a); }
  static V select_gt(V x, V t, V a, V b) { return vbslq_f32(vcgtq_f32(x, t), a, b); }
  static float64x2_t widen_lo(V v) { return vcvt_f64_f32(vget_low_f32(v)); }
  static float64x2_t widen_hi(V v) { return vcvt_high_f64_f32(v); }
  static V narrow(float64x2_t lo, float64x2_t hi) { return vcvt_high_f32_f64(vcvt_f32_f64(lo), hi); }
  static float hsum(V v) { return vaddvq_f32(v); }
  static bool all_eq(V a, V b) { return vminvq_u32(vceqq_f32(a, b)) == 0xFFFFFFFFu; }
};

}  // namespace bitmamba::ssm::vm_neon
