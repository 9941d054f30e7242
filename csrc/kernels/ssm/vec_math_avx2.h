// AVX2 + FMA vector operations for ssm_impl.h (8 floats), with a polynomial exp.
//
// exp(x): x is clamped to [-87.33654, 88.37626] (results between FLT_MIN and ~2.4e38: below that
// the true value is under 1.2e-38 and is returned as 1.18e-38, above it saturates instead of inf).
// Range reduction x = n ln2 + r, |r| <= ln2/2, with ln2 split in two parts, then the Cephes degree-6
// polynomial for exp(r) and 2^n built in the exponent bits. Relative error <= 2.5e-7 (about 2 ulp)
// on the clamped range; the chunked scan uses it for its decay factors. silu(v) = v / (1 + exp(-v))
// uses exp_f32 instead, the engine's exact exp, and softplus exp_f32 and log1p_f32
// (core/float_semantics.h: evaluated in double, rounded to float, bit-identical on every kernel set).
// Bounds and bit identity are checked by csrc/tests/test_ssm.cpp.
#pragma once

#include <immintrin.h>

#include "core/float_semantics.h"

namespace bitmamba::ssm::vm_avx2 {

struct Ops {
  using V = __m256;
  static constexpr int W = 8;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float f) { return _mm256_set1_ps(f); }
  static V zero() { return _mm256_setzero_ps(); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V exp(V x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.37626f));
    const V n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    V p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  }
  // fp::exp_f32 on 4 doubles: the same double operations in the same order as the scalar version.
  static __m256d exp_pd(__m256d x) {
    // max/min return their second operand when one is NaN: x goes second so NaN stays NaN.
    x = _mm256_min_pd(_mm256_set1_pd(fp::kExpHi), _mm256_max_pd(_mm256_set1_pd(fp::kExpLo), x));
    const __m256d k = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(fp::kExpL2E)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_sub_pd(x, _mm256_mul_pd(k, _mm256_set1_pd(fp::kExpLn2Hi)));
    r = _mm256_sub_pd(r, _mm256_mul_pd(k, _mm256_set1_pd(fp::kExpLn2Lo)));
    const auto mul = [](__m256d a, __m256d b) { return _mm256_mul_pd(a, b); };
    const auto add = [](__m256d a, __m256d b) { return _mm256_add_pd(a, b); };
    const auto set = [](double c) { return _mm256_set1_pd(c); };
    const __m256d p = fp::exp_poly_estrin<__m256d>(r, mul, add, set);
    const __m256i e = _mm256_slli_epi64(
        _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k)), _mm256_set1_epi64x(1023)), 52);
    return _mm256_mul_pd(p, _mm256_castsi256_pd(e));
  }
  // exp rounded to float from a double evaluation (fp::exp_f32, bit-identical to it).
  static V exp_f32(V v) {
    const __m128 lo = _mm256_cvtpd_ps(exp_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v))));
    const __m128 hi = _mm256_cvtpd_ps(exp_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
    return _mm256_set_m128(hi, lo);
  }
  // silu(v) = v / (1 + exp_f32(-v)), fp::silu_f32 exactly.
  static V silu(V v) {
    const V den = _mm256_add_ps(_mm256_set1_ps(1.0f), exp_f32(_mm256_sub_ps(_mm256_setzero_ps(), v)));
    return _mm256_div_ps(v, den);
  }
  // fp::log1p_f32 on 4 doubles (the float arguments widened): the same double operations in the same
  // order as the scalar version, frexp done on the exponent bits, the special lanes blended in last.
  static __m256d log1p_pd(__m256d y) {
    const __m256d u = _mm256_add_pd(_mm256_set1_pd(1.0), y);
    const __m256i bits = _mm256_castpd_si256(u);
    // frexp of the positive normal u: the mantissa with the exponent of 0.5, and the exponent field
    // (11 bits) put in the low mantissa bits of 2^52, so subtracting 2^52 + 1022 gives the exponent.
    const __m256d m0 = _mm256_castsi256_pd(_mm256_or_si256(
        _mm256_and_si256(bits, _mm256_set1_epi64x(0x000FFFFFFFFFFFFF)), _mm256_set1_epi64x(0x3FE0000000000000)));
    const __m256d e0 = _mm256_sub_pd(
        _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(bits, 52), _mm256_set1_epi64x(0x4330000000000000))),
        _mm256_set1_pd(4503599627370496.0 + 1022.0));
    const __m256d low = _mm256_cmp_pd(m0, _mm256_set1_pd(fp::kLogSqrtHalf), _CMP_LT_OQ);
    const __m256d m = _mm256_blendv_pd(m0, _mm256_add_pd(m0, m0), low);
    const __m256d k = _mm256_sub_pd(e0, _mm256_and_pd(low, _mm256_set1_pd(1.0)));
    const auto mul = [](__m256d a, __m256d b) { return _mm256_mul_pd(a, b); };
    const auto add = [](__m256d a, __m256d b) { return _mm256_add_pd(a, b); };
    const auto sub = [](__m256d a, __m256d b) { return _mm256_sub_pd(a, b); };
    const auto div = [](__m256d a, __m256d b) { return _mm256_div_pd(a, b); };
    const auto set = [](double c) { return _mm256_set1_pd(c); };
    __m256d r = fp::log_reduced<__m256d>(k, m, mul, add, sub, div, set);
    // y itself where |y| < 2^-29, y = inf or y is NaN (the unordered compare); -inf at -1; NaN below.
    const __m256d ay = _mm256_andnot_pd(_mm256_set1_pd(-0.0), y);
    const __m256d keep = _mm256_or_pd(_mm256_cmp_pd(ay, _mm256_set1_pd(fp::kLog1pTiny), _CMP_LT_OQ),
                                      _mm256_cmp_pd(ay, _mm256_set1_pd(INFINITY), _CMP_EQ_UQ));
    r = _mm256_blendv_pd(r, y, keep);
    r = _mm256_blendv_pd(r, _mm256_set1_pd(-INFINITY), _mm256_cmp_pd(y, _mm256_set1_pd(-1.0), _CMP_EQ_OQ));
    return _mm256_blendv_pd(r, _mm256_set1_pd(NAN), _mm256_cmp_pd(y, _mm256_set1_pd(-1.0), _CMP_LT_OQ));
  }
  // log1p rounded to float from a double evaluation (fp::log1p_f32, bit-identical to it).
  static V log1p_f32(V v) {
    const __m128 lo = _mm256_cvtpd_ps(log1p_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v))));
    const __m128 hi = _mm256_cvtpd_ps(log1p_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
    return _mm256_set_m128(hi, lo);
  }
  // softplus(v) = v > 20 ? v : log1p_f32(exp_f32(v)), fp::softplus_f32 exactly (NaN stays NaN).
  static V softplus(V v) {
    const V l = log1p_f32(exp_f32(v));
    return _mm256_blendv_ps(l, v, _mm256_cmp_ps(v, _mm256_set1_ps(20.0f), _CMP_GT_OQ));
  }
  static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace bitmamba::ssm::vm_avx2
