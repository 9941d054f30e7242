// AVX2 + FMA vector operations for ssm_impl.h (8 floats, 4 doubles); the exp / log1p / silu /
// softplus math over them is vec_math_common.h.
#pragma once

#include <immintrin.h>

#include "kernels/ssm/vec_math_common.h"

namespace bitmamba::ssm::vm_avx2 {

struct Lanes4d {
  using V = __m256d;
  using M = __m256d;
  using F = __m256;  // the float vector of Ops
  static V set(double c) { return _mm256_set1_pd(c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V div(V a, V b) { return _mm256_div_pd(a, b); }
  // max/min return their second operand when one is NaN: x goes second so NaN stays NaN.
  static V clamp(V x, double lo, double hi) { return _mm256_min_pd(set(hi), _mm256_max_pd(set(lo), x)); }
  static V round_even(V x) { return _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V pow2(V k) {
    const __m256i e = _mm256_slli_epi64(
        _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k)), _mm256_set1_epi64x(1023)), 52);
    return _mm256_castsi256_pd(e);
  }
  static V frexp_mantissa(V u) {
    return _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(_mm256_castpd_si256(u), _mm256_set1_epi64x(0x000FFFFFFFFFFFFF)),
                                               _mm256_set1_epi64x(0x3FE0000000000000)));
  }
  static V exponent_field(V u) {
    return _mm256_castsi256_pd(
        _mm256_or_si256(_mm256_srli_epi64(_mm256_castpd_si256(u), 52), _mm256_set1_epi64x(0x4330000000000000)));
  }
  static M lt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static M eq(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_EQ_OQ); }
  static V abs(V a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static M inf_or_nan(V a) { return _mm256_cmp_pd(a, _mm256_set1_pd(INFINITY), _CMP_EQ_UQ); }  // unordered: NaN
  static M either(M a, M b) { return _mm256_or_pd(a, b); }
  static V select(M m, V a, V b) { return _mm256_blendv_pd(b, a, m); }
};

struct Ops : VecMath<Ops, Lanes4d> {
  using V = __m256;
  static constexpr int W = 8;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float f) { return _mm256_set1_ps(f); }
  static V zero() { return _mm256_setzero_ps(); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V round(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V pow2i(V n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  static V neg(V a) { return _mm256_sub_ps(_mm256_setzero_ps(), a); }
  static V select_gt(V x, V t, V a, V b) { return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, t, _CMP_GT_OQ)); }
  static __m256d widen_lo(V v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
  static __m256d widen_hi(V v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
  static V narrow(__m256d lo, __m256d hi) { return _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo)); }
  static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static bool all_eq(V a, V b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ)) == 0xFF; }
};

}  // namespace bitmamba::ssm::vm_avx2
