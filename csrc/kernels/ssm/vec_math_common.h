// The vector math of the SIMD SSM kernel sets (vec_math_avx2.h, vec_math_avx512.h, vec_math_neon.h),
// written once over lane policies. Each ISA's Ops derives from VecMath<Ops, D>, where Ops supplies the
// float-lane primitives and D the double-lane ones (and names the float vector type, D::F, which
// its lanes widen from); VecMath adds:
//
//   exp(v)        the fast float exp: x clamped to [-87.33654, 88.37626] (results between FLT_MIN and
//                 ~2.4e38: below that the true value is under 1.2e-38 and is returned as 1.18e-38,
//                 above it saturates instead of inf), range reduction x = n ln2 + r, |r| <= ln2/2, with
//                 ln2 split in two parts, the Cephes degree-6 polynomial for exp(r) and 2^n built in
//                 the exponent bits. Relative error <= 2.5e-7 (about 2 ulp) on the clamped range; the
//                 chunked scan uses it for its decay factors.
//   exp_f32(v)    fp::exp_f32, log1p_f32(v) fp::log1p_f32 (core/float_semantics.h): evaluated in double
//                 lanes with the same double operations in the same order as the scalar version, then
//                 rounded to float, so bit-identical to it on every kernel set. exp_f32 first tries a
//                 shorter polynomial whose error bracket decides the float (exp_bracket_lanes) and
//                 falls back to those operations (exp_f32_reference) where it does not.
//   silu(v)       v / (1 + exp_f32(-v)), fp::silu_f32 exactly.
//   softplus(v)   v > 20 ? v : log1p_f32(exp_f32(v)), fp::softplus_f32 exactly (NaN stays NaN).
//
// Float-lane primitives (O, vectors V): set1, zero, add, sub, mul, div, min, max, fma(a, b, c) = a*b + c
// and fnmadd(a, b, c) = c - a*b (both fused, one rounding), round (to nearest even), pow2i(n) (2^n for
// integral n), neg, select_gt(x, t, a, b) = x > t ? a : b (ordered), widen_lo / widen_hi (the low /
// high half of the lanes as doubles), narrow(lo, hi) (back to floats, rounded), all_eq(a, b) (every
// lane ordered-equal).
// Double-lane primitives (D, vectors D::V, masks D::M, the float vector D::F): set, add, sub, mul,
// fma(a, b, c) = a*b + c (fused), div, clamp(x, lo, hi)
// (NaN stays NaN), round_even, pow2(k) (2^k for integral k), frexp_mantissa(u) (u's mantissa with the
// exponent of 0.5), exponent_field(u) (u's 11 exponent bits as the low mantissa bits of 2^52), lt, eq
// (ordered), abs, inf_or_nan, either (mask or), select(m, a, b) = m ? a : b.
//
// Bounds and bit identity are checked by csrc/tests/test_ssm.cpp.
#pragma once

#include <cmath>

#include "core/float_semantics.h"

namespace bitmamba::ssm {

// D's arithmetic as lambdas (distinct types, so the fp:: templates inline them for certain).
template <class D>
struct LaneOps {
  using V = typename D::V;
  static constexpr auto mul = [](V a, V b) { return D::mul(a, b); };
  static constexpr auto add = [](V a, V b) { return D::add(a, b); };
  static constexpr auto sub = [](V a, V b) { return D::sub(a, b); };
  static constexpr auto div = [](V a, V b) { return D::div(a, b); };
  static constexpr auto set = [](double c) { return D::set(c); };
};

// exp_f32's clamp and range reduction x = k ln2 + r (fp::exp_f32's operations), shared by the
// reference polynomial and the bracketed fast path so both see the same k and r.
template <class D>
void exp_reduce_lanes(typename D::V x, typename D::V& k, typename D::V& r) {
  x = D::clamp(x, fp::kExpLo, fp::kExpHi);
  k = D::round_even(D::mul(x, D::set(fp::kExpL2E)));
  r = D::sub(x, D::mul(k, D::set(fp::kExpLn2Hi)));
  r = D::sub(r, D::mul(k, D::set(fp::kExpLn2Lo)));
}

template <class D>
typename D::V exp_lanes(typename D::V x) {
  using V = typename D::V;
  V k, r;
  exp_reduce_lanes<D>(x, k, r);
  using L = LaneOps<D>;
  const V p = fp::exp_poly_estrin<V>(r, L::mul, L::add, L::set);
  return D::mul(p, D::pow2(k));
}

// exp_f32's fast path: the same clamp and range reduction as exp_lanes (exp_reduce_lanes), then
// the degree-10 Taylor polynomial by Horner with fused multiply-adds instead of the degree-12 one
// without, and y = p 2^k bracketed as lo = y (1 - d), hi = y (1 + d). For |r| <= 0.35 the two
// polynomials differ by at most 2.5e-13 (the omitted terms r^11/11! + r^12/12!) plus their
// evaluation errors (< 1e-14), so relative to y the reference value lies within 3.7e-13 of y; with
// d = 1e-12 it lies inside [lo, hi] after the two roundings of the bracket. Rounding to float is
// monotonic (subnormal results, FLT_MAX and overflow to inf included), so where lo and hi round to
// the same float the reference rounds to it too.
constexpr double kExpBracket = 1e-12;
template <class D>
void exp_bracket_lanes(typename D::V x, typename D::V& lo, typename D::V& hi) {
  using V = typename D::V;
  V k, r;
  exp_reduce_lanes<D>(x, k, r);
  V p = D::set(fp::kExpA[10]);
  for (int i = 9; i >= 0; --i) p = D::fma(p, r, D::set(fp::kExpA[i]));
  const V y = D::mul(p, D::pow2(k));
  lo = D::mul(y, D::set(1.0 - kExpBracket));
  hi = D::mul(y, D::set(1.0 + kExpBracket));
}

template <class D>
typename D::V log1p_lanes(typename D::V y) {
  using V = typename D::V;
  using M = typename D::M;
  const V u = D::add(D::set(1.0), y);
  // frexp of the positive normal u, on its bits: subtracting 2^52 + 1022 from the exponent field
  // placed in the mantissa of 2^52 gives the exponent.
  const V m0 = D::frexp_mantissa(u);
  const V e0 = D::sub(D::exponent_field(u), D::set(4503599627370496.0 + 1022.0));
  const M low = D::lt(m0, D::set(fp::kLogSqrtHalf));
  const V m = D::select(low, D::add(m0, m0), m0);
  const V k = D::select(low, D::sub(e0, D::set(1.0)), e0);
  using L = LaneOps<D>;
  V r = fp::log_reduced<V>(k, m, L::mul, L::add, L::sub, L::div, L::set);
  // y itself where |y| < 2^-29, y = inf or y is NaN; -inf at -1; NaN below.
  const V ay = D::abs(y);
  r = D::select(D::either(D::lt(ay, D::set(fp::kLog1pTiny)), D::inf_or_nan(ay)), y, r);
  r = D::select(D::eq(y, D::set(-1.0)), D::set(-INFINITY), r);
  return D::select(D::lt(y, D::set(-1.0)), D::set(NAN), r);
}

template <class O, class D>
struct VecMath {
  using V = typename D::F;
  static V exp(V x) {
    x = O::min(O::max(x, O::set1(-87.33654f)), O::set1(88.37626f));
    const V n = O::round(O::mul(x, O::set1(1.44269504088896341f)));
    V r = O::fnmadd(n, O::set1(0.693359375f), x);
    r = O::fnmadd(n, O::set1(-2.12194440e-4f), r);
    V p = O::set1(1.9875691500e-4f);
    p = O::fma(p, r, O::set1(1.3981999507e-3f));
    p = O::fma(p, r, O::set1(8.3334519073e-3f));
    p = O::fma(p, r, O::set1(4.1665795894e-2f));
    p = O::fma(p, r, O::set1(1.6666665459e-1f));
    p = O::fma(p, r, O::set1(5.0000001201e-1f));
    p = O::fma(p, O::mul(r, r), O::add(r, O::set1(1.0f)));
    return O::mul(p, O::pow2i(n));
  }
  // fp::exp_f32 bit for bit: the bracket of exp_bracket_lanes where both ends round to the same
  // floats in every lane, else the reference polynomial (the bracket, 2e-12 wide, straddles a float
  // rounding boundary for a few lanes in 10^5, so a few vectors in 10^4 pay for both paths). NaN
  // lanes never compare equal, so they take the reference path too.
  static V exp_f32(V v) {
    const auto xl = O::widen_lo(v), xh = O::widen_hi(v);
    typename D::V lo_l, hi_l, lo_h, hi_h;
    exp_bracket_lanes<D>(xl, lo_l, hi_l);
    exp_bracket_lanes<D>(xh, lo_h, hi_h);
    const V lo = O::narrow(lo_l, lo_h);
    if (O::all_eq(lo, O::narrow(hi_l, hi_h))) return lo;
    return exp_f32_reference(v);
  }
  // The reference path alone (the tests compare exp_f32 with it over every float).
  static V exp_f32_reference(V v) { return O::narrow(exp_lanes<D>(O::widen_lo(v)), exp_lanes<D>(O::widen_hi(v))); }
  static V log1p_f32(V v) {
    return O::narrow(log1p_lanes<D>(O::widen_lo(v)), log1p_lanes<D>(O::widen_hi(v)));
  }
  static V silu(V v) { return O::div(v, O::add(O::set1(1.0f), exp_f32(O::neg(v)))); }
  static V softplus(V v) { return O::select_gt(v, O::set1(20.0f), v, log1p_f32(exp_f32(v))); }
};

}  // namespace bitmamba::ssm
