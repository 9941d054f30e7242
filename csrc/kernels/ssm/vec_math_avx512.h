// AVX-512F vector operations for ssm_impl.h (16 floats, 8 doubles); the exp / log1p / silu /
// softplus math over them is vec_math_common.h.
#pragma once

#include <immintrin.h>

#include "kernels/ssm/vec_math_common.h"

namespace bitmamba::ssm::vm_avx512 {

struct Lanes8d {
  using V = __m512d;
  using M = __mmask8;
  using F = __m512;  // the float vector of Ops
  static V set(double c) { return _mm512_set1_pd(c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V div(V a, V b) { return _mm512_div_pd(a, b); }
  // max/min return their second operand when one is NaN: x goes second so NaN stays NaN.
  static V clamp(V x, double lo, double hi) { return _mm512_min_pd(set(hi), _mm512_max_pd(set(lo), x)); }
  static V round_even(V x) { return _mm512_roundscale_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V pow2(V k) {
    const __m512i e = _mm512_slli_epi64(
        _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_cvtpd_epi32(k)), _mm512_set1_epi64(1023)), 52);
    return _mm512_castsi512_pd(e);
  }
  static V frexp_mantissa(V u) {
    return _mm512_castsi512_pd(_mm512_or_si512(_mm512_and_si512(_mm512_castpd_si512(u), _mm512_set1_epi64(0x000FFFFFFFFFFFFF)),
                                               _mm512_set1_epi64(0x3FE0000000000000)));
  }
  static V exponent_field(V u) {
    return _mm512_castsi512_pd(
        _mm512_or_si512(_mm512_srli_epi64(_mm512_castpd_si512(u), 52), _mm512_set1_epi64(0x4330000000000000)));
  }
  static M lt(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static M eq(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ); }
  static V abs(V a) { return _mm512_abs_pd(a); }
  static M inf_or_nan(V a) { return _mm512_cmp_pd_mask(a, _mm512_set1_pd(INFINITY), _CMP_EQ_UQ); }  // unordered: NaN
  static M either(M a, M b) { return a | b; }
  static V select(M m, V a, V b) { return _mm512_mask_blend_pd(m, b, a); }
};

struct Ops : VecMath<Ops, Lanes8d> {
  using V = __m512;
  static constexpr int W = 16;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float f) { return _mm512_set1_ps(f); }
  static V zero() { return _mm512_setzero_ps(); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V pow2i(V n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  static V neg(V a) { return _mm512_sub_ps(_mm512_setzero_ps(), a); }
  static V select_gt(V x, V t, V a, V b) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, t, _CMP_GT_OQ), b, a); }
  static __m512d widen_lo(V v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
  static __m512d widen_hi(V v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  }
  static V narrow(__m512d lo, __m512d hi) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
  }
  static float hsum(V v) { return _mm512_reduce_add_ps(v); }
  static bool all_eq(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ) == 0xFFFF; }
};

}  // namespace bitmamba::ssm::vm_avx512
