// Width-1 "vector" operations for the scalar kernel set: the same kernel code (ssm_impl.h) as the
// SIMD sets, with std::exp for the fast exp and fp::silu_f32 / fp::softplus_f32 (core/float_semantics.h).
#pragma once

#include <cmath>

#include "core/float_semantics.h"

namespace bitmamba::ssm::vm_scalar {

struct Ops {
  using V = float;
  static constexpr int W = 1;
  static V load(const float* p) { return *p; }
  static void store(float* p, V v) { *p = v; }
  static V set1(float f) { return f; }
  static V zero() { return 0.0f; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V fma(V a, V b, V c) { return a * b + c; }  // a*b + c
  static V exp(V a) { return std::exp(a); }
  static V softplus(V a) { return fp::softplus_f32(a); }
  static V log1p_f32(V a) { return fp::log1p_f32(a); }
  static V exp_f32(V a) { return fp::exp_f32(a); }
  static V exp_f32_reference(V a) { return fp::exp_f32(a); }
  static V silu(V a) { return fp::silu_f32(a); }
  static float hsum(V a) { return a; }
};

}  // namespace bitmamba::ssm::vm_scalar
