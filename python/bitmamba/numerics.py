"""The engine's float32 arithmetic in numpy (csrc/core/float_semantics.h), for the reference forward.

The engine's float steps follow plain numpy float32 semantics in a fixed order, with one exception:
numpy's own float32 exp is a fast SIMD approximation whose last bit depends on numpy's build and CPU, so
the engine defines exp as `exp_f32` below: exp evaluated in float64 by one fixed polynomial (Cody-Waite
reduction, degree-12 Taylor by Estrin's scheme), then rounded to float32. This module evaluates the same
float64 operations in the same order, so `reference.forward(..., np.float32)` equals the engine's logits
bit for bit (tests/test_engine_exact.py). The result is the correctly rounded float32 exp except when the
float64 value lies within ~1e-16 relative of a float32 rounding boundary.
"""
from __future__ import annotations

import math

import numpy as np

_L2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_LO, _HI = -150.0, 100.0
# a[i] = 1/i! (float_semantics.h kExpA: the same correctly rounded doubles).
_A = [1.0 / math.factorial(i) for i in range(13)]


def _poly(r):
    """fp::exp_poly_estrin: the same products and sums in the same order."""
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4

    def pair(i):
        return _A[i] + _A[i + 1] * r

    f0 = pair(0) + pair(2) * r2
    f1 = pair(4) + pair(6) * r2
    f2 = pair(8) + pair(10) * r2
    g0 = f0 + f1 * r4
    g1 = f2 + _A[12] * r4
    return g0 + g1 * r8


def exp_f32(v) -> np.ndarray:
    """exp of float32 values, evaluated in float64 and rounded once to float32 (the engine's exp)."""
    x = np.asarray(v, np.float32).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # overflow to inf is the float32 result
        x = np.minimum(_HI, np.maximum(_LO, x))  # NaN propagates through numpy's min/max
        k = np.rint(x * _L2E)
        r = x - k * _LN2_HI
        r = r - k * _LN2_LO
        out = np.ldexp(_poly(r), np.nan_to_num(k).astype(np.int32))
        return out.astype(np.float32)


def silu_f32(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / (np.float32(1) + exp_f32(-v))


def softplus_f32(v) -> np.ndarray:
    """v for v > 20, else log1p(exp_f32(v)) with numpy's float32 log1p (the C library's log1pf)."""
    v = np.asarray(v, np.float32)
    return np.where(v > 20, v, np.log1p(exp_f32(np.minimum(v, np.float32(20))))).astype(np.float32)

