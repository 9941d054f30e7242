// aarch64 Advanced SIMD vector operations for ssm_impl.h (4 floats). Same exp/silu algorithm and
// error bounds as vec_math_avx2.h (relative error <= 2.5e-7 for exp on [-87.33654, 88.37626],
// <= 5e-7 for silu).
#pragma once

#include <arm_neon.h>

namespace bitmamba::ssm::vm_neon {

struct Ops {
  using V = float32x4_t;
  static constexpr int W = 4;
  static V load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static V set1(float f) { return vdupq_n_f32(f); }
  static V zero() { return vdupq_n_f32(0.0f); }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  static V sub(V a, V b) { return vsubq_f32(a, b); }
  static V mul(V a, V b) { return vmulq_f32(a, b); }
  static V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  static V exp(V x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.33654f)), vdupq_n_f32(88.37626f));
    const int32x4_t ni = vcvtnq_s32_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    const V n = vcvtq_f32_s32(ni);
    V r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    V p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    const int32x4_t e = vshlq_n_s32(vaddq_s32(ni, vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
  }
  static V silu(V v) { return vdivq_f32(v, vaddq_f32(vdupq_n_f32(1.0f), exp(vnegq_f32(v)))); }
  static float hsum(V v) { return vaddvq_f32(v); }
};

}  // namespace bitmamba::ssm::vm_neon
