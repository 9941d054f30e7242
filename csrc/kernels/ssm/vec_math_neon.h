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
  // log and softplus: same algorithms and bounds as vec_math_avx2.h.
  static V log(V x) {
    const int32x4_t xi = vreinterpretq_s32_f32(x);
    V e = vcvtq_f32_s32(vsubq_s32(vshrq_n_s32(xi, 23), vdupq_n_s32(127)));
    V m = vreinterpretq_f32_s32(vorrq_s32(vandq_s32(xi, vdupq_n_s32(0x007fffff)), vdupq_n_s32(0x3f800000)));
    const uint32x4_t big = vcgtq_f32(m, vdupq_n_f32(1.41421356f));
    m = vbslq_f32(big, vmulq_f32(m, vdupq_n_f32(0.5f)), m);
    e = vaddq_f32(e, vbslq_f32(big, vdupq_n_f32(1.0f), vdupq_n_f32(0.0f)));
    const V f = vsubq_f32(m, vdupq_n_f32(1.0f));
    const V z = vmulq_f32(f, f);
    V p = vdupq_n_f32(7.0376836292e-2f);
    p = vfmaq_f32(vdupq_n_f32(-1.1514610310e-1f), p, f);
    p = vfmaq_f32(vdupq_n_f32(1.1676998740e-1f), p, f);
    p = vfmaq_f32(vdupq_n_f32(-1.2420140846e-1f), p, f);
    p = vfmaq_f32(vdupq_n_f32(1.4249322787e-1f), p, f);
    p = vfmaq_f32(vdupq_n_f32(-1.6668057665e-1f), p, f);
    p = vfmaq_f32(vdupq_n_f32(2.0000714765e-1f), p, f);
    p = vfmaq_f32(vdupq_n_f32(-2.4999993993e-1f), p, f);
    p = vfmaq_f32(vdupq_n_f32(3.3333331174e-1f), p, f);
    V y = vmulq_f32(vmulq_f32(p, f), z);
    y = vfmaq_f32(y, e, vdupq_n_f32(-2.12194440e-4f));
    y = vfmsq_f32(y, z, vdupq_n_f32(0.5f));
    return vfmaq_f32(vaddq_f32(f, y), e, vdupq_n_f32(0.693359375f));
  }
  static V softplus(V v) {
    const V u = exp(vminq_f32(v, vdupq_n_f32(20.0f)));
    const V w = vaddq_f32(vdupq_n_f32(1.0f), u);
    const V d = vsubq_f32(w, vdupq_n_f32(1.0f));
    const uint32x4_t one = vceqq_f32(d, vdupq_n_f32(0.0f));
    const V l = vdivq_f32(vmulq_f32(log(w), u), vbslq_f32(one, vdupq_n_f32(1.0f), d));
    const V r = vbslq_f32(one, u, l);
    return vbslq_f32(vcgtq_f32(v, vdupq_n_f32(20.0f)), v, r);
  }
  static V silu(V v) { return vdivq_f32(v, vaddq_f32(vdupq_n_f32(1.0f), exp(vnegq_f32(v)))); }
  static float hsum(V v) { return vaddvq_f32(v); }
};

}  // namespace bitmamba::ssm::vm_neon
