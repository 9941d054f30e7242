// aarch64 Advanced SIMD vector operations for ssm_impl.h (4 floats). Same algorithms and error
// bounds as vec_math_avx2.h: the fast exp (relative error <= 2.5e-7 on [-87.33654, 88.37626]) for the
// chunked scan, and silu and softplus through fp::exp_f32 and fp::log1p_f32 (core/float_semantics.h),
// bit-identical everywhere.
#pragma once

#include <arm_neon.h>

#include "core/float_semantics.h"

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
  // fp::exp_f32 on 2 doubles: the same double operations in the same order as the scalar version.
  static float64x2_t exp_pd(float64x2_t x) {
    x = vminq_f64(vmaxq_f64(x, vdupq_n_f64(fp::kExpLo)), vdupq_n_f64(fp::kExpHi));  // NaN stays NaN
    const float64x2_t k = vrndnq_f64(vmulq_f64(x, vdupq_n_f64(fp::kExpL2E)));     // ties to even
    float64x2_t r = vsubq_f64(x, vmulq_f64(k, vdupq_n_f64(fp::kExpLn2Hi)));
    r = vsubq_f64(r, vmulq_f64(k, vdupq_n_f64(fp::kExpLn2Lo)));
    const auto mul = [](float64x2_t a, float64x2_t b) { return vmulq_f64(a, b); };
    const auto add = [](float64x2_t a, float64x2_t b) { return vaddq_f64(a, b); };
    const auto set = [](double c) { return vdupq_n_f64(c); };
    const float64x2_t p = fp::exp_poly_estrin<float64x2_t>(r, mul, add, set);
    const int64x2_t e = vshlq_n_s64(vaddq_s64(vcvtq_s64_f64(k), vdupq_n_s64(1023)), 52);
    return vmulq_f64(p, vreinterpretq_f64_s64(e));
  }
  // exp rounded to float from a double evaluation (fp::exp_f32, bit-identical to it).
  static V exp_f32(V v) {
    const float32x2_t lo = vcvt_f32_f64(exp_pd(vcvt_f64_f32(vget_low_f32(v))));
    return vcvt_high_f32_f64(lo, exp_pd(vcvt_high_f64_f32(v)));
  }
  // silu(v) = v / (1 + exp_f32(-v)), fp::silu_f32 exactly.
  static V silu(V v) { return vdivq_f32(v, vaddq_f32(vdupq_n_f32(1.0f), exp_f32(vnegq_f32(v)))); }
  // fp::log1p_f32 on 2 doubles: the same double operations in the same order as the scalar version,
  // frexp done on the exponent bits (as vec_math_avx2.h), the special lanes blended in last.
  static float64x2_t log1p_pd(float64x2_t y) {
    const float64x2_t u = vaddq_f64(vdupq_n_f64(1.0), y);
    const uint64x2_t bits = vreinterpretq_u64_f64(u);
    const float64x2_t m0 = vreinterpretq_f64_u64(vorrq_u64(vandq_u64(bits, vdupq_n_u64(0x000FFFFFFFFFFFFFull)),
                                                           vdupq_n_u64(0x3FE0000000000000ull)));
    const float64x2_t e0 = vsubq_f64(vreinterpretq_f64_u64(vorrq_u64(vshrq_n_u64(bits, 52),
                                                                     vdupq_n_u64(0x4330000000000000ull))),
                                     vdupq_n_f64(4503599627370496.0 + 1022.0));
    const uint64x2_t low = vcltq_f64(m0, vdupq_n_f64(fp::kLogSqrtHalf));
    const float64x2_t m = vbslq_f64(low, vaddq_f64(m0, m0), m0);
    const float64x2_t k = vbslq_f64(low, vsubq_f64(e0, vdupq_n_f64(1.0)), e0);
    const auto mul = [](float64x2_t a, float64x2_t b) { return vmulq_f64(a, b); };
    const auto add = [](float64x2_t a, float64x2_t b) { return vaddq_f64(a, b); };
    const auto sub = [](float64x2_t a, float64x2_t b) { return vsubq_f64(a, b); };
    const auto div = [](float64x2_t a, float64x2_t b) { return vdivq_f64(a, b); };
    const auto set = [](double c) { return vdupq_n_f64(c); };
    float64x2_t r = fp::log_reduced<float64x2_t>(k, m, mul, add, sub, div, set);
    // y itself where |y| < 2^-29, y = inf or y is NaN (not y == y); -inf at -1; NaN below.
    const float64x2_t ay = vabsq_f64(y);
    const uint64x2_t nan = vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vceqq_f64(y, y))));
    const uint64x2_t keep = vorrq_u64(vorrq_u64(vcltq_f64(ay, vdupq_n_f64(fp::kLog1pTiny)),
                                                vceqq_f64(ay, vdupq_n_f64(INFINITY))), nan);
    r = vbslq_f64(keep, y, r);
    r = vbslq_f64(vceqq_f64(y, vdupq_n_f64(-1.0)), vdupq_n_f64(-INFINITY), r);
    return vbslq_f64(vcltq_f64(y, vdupq_n_f64(-1.0)), vdupq_n_f64(NAN), r);
  }
  // log1p rounded to float from a double evaluation (fp::log1p_f32, bit-identical to it).
  static V log1p_f32(V v) {
    const float32x2_t lo = vcvt_f32_f64(log1p_pd(vcvt_f64_f32(vget_low_f32(v))));
    return vcvt_high_f32_f64(lo, log1p_pd(vcvt_high_f64_f32(v)));
  }
  // softplus(v) = v > 20 ? v : log1p_f32(exp_f32(v)), fp::softplus_f32 exactly (NaN stays NaN).
  static V softplus(V v) { return vbslq_f32(vcgtq_f32(v, vdupq_n_f32(20.0f)), v, log1p_f32(exp_f32(v))); }
  static float hsum(V v) { return vaddvq_f32(v); }
};

}  // namespace bitmamba::ssm::vm_neon
