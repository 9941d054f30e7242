"""The engine's float32 arithmetic in numpy (csrc/core/float_semantics.h), for the reference forward.

The engine's float steps follow plain numpy float32 semantics in a fixed order, with one exception: the
transcendental functions. numpy's own float32 exp and log1p (and its float64 exp and log) are SIMD
approximations chosen at run time (AVX2, AVX-512/SVML, or the C library's), and their last bit depends
on numpy's build and on the CPU's features. So the engine defines each one it uses, and this module
evaluates the same float64 operations in the same order (only +, -, *, /, comparisons, rint, frexp and
ldexp, which every numpy build computes exactly), so
`reference.forward(..., np.float32)` equals the engine's logits bit for bit on any CPU
(tests/test_engine_exact.py, tests/test_numerics.py):

- `exp_f32`: exp evaluated in float64 by one fixed polynomial (Cody-Waite reduction, degree-12 Taylor by
  Estrin's scheme), then rounded to float32;
- `log1p_f32`: log1p evaluated in float64 (u = 1 + y, exact for every float32 y used; u = m 2^k by frexp
  with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m - 1) / (m + 1), by a 10-term series;
  k ln2 split in two parts; log1p(y) rounds to y itself for |y| < 2^-29), then rounded to float32;
- `silu_f32(v) = v / (1 + exp_f32(-v))`, `softplus_f32(v) = v if v > 20 else log1p_f32(exp_f32(v))`.

exp_f32 and log1p_f32 are the correctly rounded float32 functions except when the float64 value lies
within ~2e-16 relative of a float32 rounding boundary (a few inputs in 10^9).
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


# log1p_f32 (float_semantics.h log1p_f32 / log_reduced): the same constants and operations.
_SQRT_HALF = 0.7071067811865476  # frexp mantissas below it are doubled: m in [sqrt(1/2), sqrt(2))
_TINY = 2.0 ** -29  # below it log1p(y) rounds to y
# c[i] = 2 / (2i + 3): 2 atanh(s) = 2s + s (c[0] z + c[1] z^2 + ...), z = s^2 (the same doubles as kLogC).
_C = [2.0 / (2 * i + 3) for i in range(10)]


def _log_reduced(k, m):
    """fp::log_reduced: log(2^k m) for m in [sqrt(1/2), sqrt(2)), the same operations in the same order."""
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    p = _C[9]
    for c in _C[8::-1]:
        p = c + p * z
    R = z * p
    hfsq = 0.5 * (f * f)
    t = hfsq - (s * (hfsq + R) + k * _LN2_LO)
    return k * _LN2_HI - (t - f)


def log1p_f32(v) -> np.ndarray:
    """log1p of float32 values, evaluated in float64 and rounded once to float32 (the engine's log1p)."""
    y = np.asarray(v, np.float32).astype(np.float64)
    with np.errstate(all="ignore"):  # the special lanes compute garbage that np.where discards
        m, e = np.frexp(1.0 + y)
        low = m < _SQRT_HALF
        m = np.where(low, m + m, m)
        k = (e - low).astype(np.float64)
        out = _log_reduced(k, m)
        out = np.where((np.abs(y) < _TINY) | (y == np.inf) | np.isnan(y), y, out)
        out = np.where(y == -1.0, -np.inf, out)
        out = np.where(y < -1.0, np.nan, out)
        return out.astype(np.float32)


def softplus_f32(v) -> np.ndarray:
    """v for v > 20, else log1p_f32(exp_f32(v))."""
    v = np.asarray(v, np.float32)
    return np.where(v > 20, v, log1p_f32(exp_f32(np.minimum(v, np.float32(20))))).astype(np.float32)
