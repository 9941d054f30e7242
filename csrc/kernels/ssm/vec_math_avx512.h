// AVX-512F vector operations for ssm_impl.h (16 floats). Same algorithms and error bounds as
// vec_math_avx2.h: the fast exp (relative error <= 2.5e-7 on [-87.33654, 88.37626]) for the chunked
// scan, and silu and softplus through fp::exp_f32 and fp::log1p_f32 (core/float_semantics.h),
// bit-identical on every kernel set.
#pragma once

#include <immintrin.h>

#include "core/float_semantics.h"

namespace bitmamba::ssm::vm_avx512 {

struct Ops {
  using V = __m512;
  static constexpr int W = 16;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float f) { return _mm512_set1_ps(f); }
  static V zero() { return _mm512_setzero_ps(); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V exp(V x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.37626f));
    const V n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    V p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  }
  // fp::exp_f32 on 8 doubles: the same double operations in the same order as the scalar version.
  static __m512d exp_pd(__m512d x) {
    // max/min return their second operand when one is NaN: x goes second so NaN stays NaN.
    x = _mm512_min_pd(_mm512_set1_pd(fp::kExpHi), _mm512_max_pd(_mm512_set1_pd(fp::kExpLo), x));
    const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(fp::kExpL2E)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_sub_pd(x, _mm512_mul_pd(k, _mm512_set1_pd(fp::kExpLn2Hi)));
    r = _mm512_sub_pd(r, _mm512_mul_pd(k, _mm512_set1_pd(fp::kExpLn2Lo)));
    const auto mul = [](__m512d a, __m512d b) { return _mm512_mul_pd(a, b); };
    const auto add = [](__m512d a, __m512d b) { return _mm512_add_pd(a, b); };
    const auto set = [](double c) { return _mm512_set1_pd(c); };
    const __m512d p = fp::exp_poly_estrin<__m512d>(r, mul, add, set);
    const __m512i e = _mm512_slli_epi64(
        _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_cvtpd_epi32(k)), _mm512_set1_epi64(1023)), 52);
    return _mm512_mul_pd(p, _mm512_castsi512_pd(e));
  }
  // exp rounded to float from a double evaluation (fp::exp_f32, bit-identical to it).
  static V exp_f32(V v) {
    const __m256 lo = _mm512_cvtpd_ps(exp_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v))));
    const __m256 hi = _mm512_cvtpd_ps(
        exp_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))));
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
  }
  // silu(v) = v / (1 + exp_f32(-v)), fp::silu_f32 exactly.
  static V silu(V v) {
    const V den = _mm512_add_ps(_mm512_set1_ps(1.0f), exp_f32(_mm512_sub_ps(_mm512_setzero_ps(), v)));
    return _mm512_div_ps(v, den);
  }
  // fp::log1p_f32 on 8 doubles: the same double operations in the same order as the scalar version,
  // frexp done on the exponent bits (as vec_math_avx2.h), the special lanes blended in last.
  static __m512d log1p_pd(__m512d y) {
    const __m512d u = _mm512_add_pd(_mm512_set1_pd(1.0), y);
    const __m512i bits = _mm512_castpd_si512(u);
    const __m512d m0 = _mm512_castsi512_pd(_mm512_or_si512(
        _mm512_and_si512(bits, _mm512_set1_epi64(0x000FFFFFFFFFFFFF)), _mm512_set1_epi64(0x3FE0000000000000)));
    const __m512d e0 = _mm512_sub_pd(
        _mm512_castsi512_pd(_mm512_or_si512(_mm512_srli_epi64(bits, 52), _mm512_set1_epi64(0x4330000000000000))),
        _mm512_set1_pd(4503599627370496.0 + 1022.0));
    const __mmask8 low = _mm512_cmp_pd_mask(m0, _mm512_set1_pd(fp::kLogSqrtHalf), _CMP_LT_OQ);
    const __m512d m = _mm512_mask_blend_pd(low, m0, _mm512_add_pd(m0, m0));
    const __m512d k = _mm512_mask_blend_pd(low, e0, _mm512_sub_pd(e0, _mm512_set1_pd(1.0)));
    const auto mul = [](__m512d a, __m512d b) { return _mm512_mul_pd(a, b); };
    const auto add = [](__m512d a, __m512d b) { return _mm512_add_pd(a, b); };
    const auto sub = [](__m512d a, __m512d b) { return _mm512_sub_pd(a, b); };
    const auto div = [](__m512d a, __m512d b) { return _mm512_div_pd(a, b); };
    const auto set = [](double c) { return _mm512_set1_pd(c); };
    __m512d r = fp::log_reduced<__m512d>(k, m, mul, add, sub, div, set);
    // y itself where |y| < 2^-29, y = inf or y is NaN (the unordered compare); -inf at -1; NaN below.
    const __m512d ay = _mm512_abs_pd(y);
    const __mmask8 keep = _mm512_cmp_pd_mask(ay, _mm512_set1_pd(fp::kLog1pTiny), _CMP_LT_OQ) |
                          _mm512_cmp_pd_mask(ay, _mm512_set1_pd(INFINITY), _CMP_EQ_UQ);
    r = _mm512_mask_blend_pd(keep, r, y);
    r = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(y, _mm512_set1_pd(-1.0), _CMP_EQ_OQ), r, _mm512_set1_pd(-INFINITY));
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(y, _mm512_set1_pd(-1.0), _CMP_LT_OQ), r, _mm512_set1_pd(NAN));
  }
  // log1p rounded to float from a double evaluation (fp::log1p_f32, bit-identical to it).
  static V log1p_f32(V v) {
    const __m256 lo = _mm512_cvtpd_ps(log1p_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v))));
    const __m256 hi = _mm512_cvtpd_ps(
        log1p_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))));
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
  }
  // softplus(v) = v > 20 ? v : log1p_f32(exp_f32(v)), fp::softplus_f32 exactly (NaN stays NaN).
  static V softplus(V v) {
    const V l = log1p_f32(exp_f32(v));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_set1_ps(20.0f), _CMP_GT_OQ), l, v);
  }
  static float hsum(V v) { return _mm512_reduce_add_ps(v); }
};

}  // namespace bitmamba::ssm::vm_avx512
