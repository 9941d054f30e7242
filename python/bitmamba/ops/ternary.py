"""Ternary BitLinear ops: numpy in, numpy out, over the C++ kernels (bitmamba._C.ternary).

The math (docs/model.md, "BitLinear"; csrc/kernels/ternary/ternary.h)::

    scale_w = 1 / max(mean|W|, 1e-5)                    per tensor
    codes   = clamp(round(W * scale_w), -1, 1)          int8 in {-1, 0, +1}
    xn      = x / sqrt(mean(x^2) + eps) * g             per token, RMSNorm with the layer's weight g
    s       = 127 / (max|xn| + 1e-5)
    q       = clamp(round(xn * s), -128, 127)           int8
    y       = (codes . q) / (s * scale_w)               exact int32 product, then one division

Rounding is round-half-to-even everywhere (as torch.round, jnp.round and np.rint).

File encodings: BIT2 (bitmamba.c, 4 codes per byte, flat), GGUF TQ2_0 (2.0625 bits/weight) and TQ1_0
(1.6875 bits/weight), both with rows of a multiple of 256 codes. TQ blocks carry an fp16 scale `d`; we
write d = 1/scale_w rounded to fp16 (generic GGUF tools then dequantize correctly) while the engine
keeps the exact fp32 scale_w separately (docs/formats.md).

Kernel layouts (docs/ternary_kernels.md): 'decode' (2 bits per weight), 'lut' (2 bits, table lookup)
and 'base3' (1.6 bits: 5 rows' codes per byte as base-3 digits, TQ1_0's fixed-point encoding).
"""
from __future__ import annotations

import numpy as np

from .._native import native

__all__ = [
    "absmean_scale",
    "ternarize",
    "quantize_activations",
    "pack_bit2",
    "unpack_bit2",
    "pack_tq2_0",
    "unpack_tq2_0",
    "pack_tq1_0",
    "unpack_tq1_0",
    "tq_d",
    "LAYOUTS",
    "set_layout_policy",
    "get_layout_policy",
    "TernaryMatrix",
]


def _T():
    return native().ternary


def _codes(codes, ndim=None) -> np.ndarray:
    """Validate ternary codes (any integer dtype) and return them as C-contiguous int8."""
    c = np.asarray(codes)
    if ndim is not None and c.ndim != ndim:
        raise ValueError(f"codes must be {ndim}-D, got shape {c.shape}")
    if c.size and not np.issubdtype(c.dtype, np.integer):
        if not np.all(np.isin(c, (-1, 0, 1))):
            raise ValueError("codes must be integers in {-1, 0, +1}")
    if c.size and (c.min() < -1 or c.max() > 1):
        bad = np.flatnonzero((c.reshape(-1) < -1) | (c.reshape(-1) > 1))[0]
        raise ValueError(f"codes must be in {{-1, 0, +1}}: found {c.reshape(-1)[bad]} at flat index {bad}")
    return np.ascontiguousarray(c, dtype=np.int8)


def _f32(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _u8(data) -> np.ndarray:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)


# ---- quantization ----------------------------------------------------------------------------------
def absmean_scale(w) -> float:
    """scale_w = 1 / max(mean|w|, 1e-5) over the whole tensor (mean in float64)."""
    return float(_T().absmean_scale(_f32(w)))


def ternarize(w, scale_w: float | None = None) -> np.ndarray:
    """int8 codes clamp(round_half_even(w * scale_w), -1, 1); scale_w defaults to absmean_scale(w)."""
    w = _f32(w)
    if scale_w is None:
        scale_w = absmean_scale(w)
    return _T().ternarize(w, float(scale_w))


def quantize_activations(x, g=None, eps: float = 1e-6):
    """RMSNorm (weight g, or none) + per-token absmax int8.

    x: [T, K] or [K] float. Returns (q int8 [T, K], scale float32 [T], sum int32 [T]) where
    sum[t] = q[t].sum() (what offset-binary kernels subtract).
    """
    x = _f32(x)
    return _T().quantize_activations(x, None if g is None else _f32(g), float(eps))


# ---- file encodings ----------------------------------------------------------------------------------
def tq_d(scale_w: float) -> np.float16:
    """The fp16 block scale we write into TQ blocks: 1/scale_w rounded to fp16."""
    return np.float16(np.float32(1.0) / np.float32(scale_w))


def pack_bit2(codes) -> np.ndarray:
    """BIT2 payload: flat codes, byte = (c0+1) | (c1+1)<<2 | (c2+1)<<4 | (c3+1)<<6; ceil(n/4) bytes."""
    return _T().pack_bit2(_codes(codes).reshape(-1))


def unpack_bit2(data, shape) -> np.ndarray:
    """Codes of a BIT2 payload (2-bit value 3 decodes to +1, as bitmamba.c does)."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    n = int(np.prod(shape))
    return _T().unpack_bit2(_u8(data), n).reshape(shape)


def pack_tq2_0(codes, scale_w: float) -> np.ndarray:
    """GGUF TQ2_0 bytes ([rows, cols] codes, cols % 256 == 0), block scale d = fp16(1/scale_w)."""
    c = _codes(codes, ndim=2)
    return _T().pack_tq2_0(c, float(tq_d(scale_w))).reshape(c.shape[0], -1)


def unpack_tq2_0(data, rows: int, cols: int) -> np.ndarray:
    return _T().unpack_tq2_0(_u8(data), int(rows), int(cols))


def pack_tq1_0(codes, scale_w: float) -> np.ndarray:
    """GGUF TQ1_0 bytes ([rows, cols] codes, cols % 256 == 0), block scale d = fp16(1/scale_w)."""
    c = _codes(codes, ndim=2)
    return _T().pack_tq1_0(c, float(tq_d(scale_w))).reshape(c.shape[0], -1)


def unpack_tq1_0(data, rows: int, cols: int) -> np.ndarray:
    return _T().unpack_tq1_0(_u8(data), int(rows), int(cols))


# ---- kernel layouts --------------------------------------------------------------------------------
LAYOUTS = ("decode", "lut", "base3")


def set_layout_policy(policy: str) -> None:
    """How TernaryMatrix.from_* and model loading pick the kernel layout, process-wide: 'auto' (time
    one GEMV of each layout the active kernel set has a kernel of its own for, once per shape, and
    keep the fastest), or force 'decode', 'lut' or 'base3'. The default is 'auto', or the
    BITMAMBA_PACKING environment variable. Matrices already built keep their layout."""
    _T().set_layout_policy(policy)


def get_layout_policy() -> str:
    return _T().get_layout_policy()


class TernaryMatrix:
    """A ternary weight matrix [rows = out_features, cols = in_features] repacked for the kernels."""

    __slots__ = ("_m",)

    def __init__(self, native_matrix):
        self._m = native_matrix

    # constructors
    @classmethod
    def from_codes(cls, codes, scale_w: float, layout: str | None = None) -> "TernaryMatrix":
        """From [rows, cols] codes in {-1, 0, +1}. layout: None (policy), 'decode', 'lut' or 'base3'."""
        return cls(_T().TernaryMatrix.from_codes(_codes(codes, ndim=2), float(scale_w), layout))

    @classmethod
    def from_float(cls, w, layout: str | None = None) -> "TernaryMatrix":
        """Ternarize a float [rows, cols] weight with its absmean scale."""
        s = absmean_scale(w)
        return cls.from_codes(ternarize(w, s), s, layout)

    @classmethod
    def from_bit2(cls, data, rows: int, cols: int, scale_w: float) -> "TernaryMatrix":
        return cls(_T().TernaryMatrix.from_bit2(_u8(data), int(rows), int(cols), float(scale_w)))

    @classmethod
    def from_tq2_0(cls, data, rows: int, cols: int, scale_w: float) -> "TernaryMatrix":
        return cls(_T().TernaryMatrix.from_tq2_0(_u8(data), int(rows), int(cols), float(scale_w)))

    @classmethod
    def from_tq1_0(cls, data, rows: int, cols: int, scale_w: float) -> "TernaryMatrix":
        return cls(_T().TernaryMatrix.from_tq1_0(_u8(data), int(rows), int(cols), float(scale_w)))

    # properties
    rows = property(lambda self: self._m.rows)
    cols = property(lambda self: self._m.cols)
    shape = property(lambda self: (self._m.rows, self._m.cols))
    scale_w = property(lambda self: self._m.scale_w)
    packed_bytes = property(lambda self: self._m.packed_bytes, doc="bytes one GEMV reads")
    layout = property(lambda self: self._m.layout, doc="'decode', 'lut' or 'base3'")
    kernel = property(lambda self: self._m.kernel, doc="kernel used under the active ISA")

    def __repr__(self) -> str:
        return (f"TernaryMatrix(rows={self.rows}, cols={self.cols}, scale_w={self.scale_w:.6g}, "
                f"layout={self.layout!r}, kernel={self.kernel!r})")

    def to_codes(self) -> np.ndarray:
        return self._m.to_codes()

    # products
    def matmul_int32(self, q) -> np.ndarray:
        """Exact int32 codes . q for int8 q [T, cols] (or [cols]); returns [T, rows] (or [rows])."""
        q = np.asarray(q)
        if q.dtype != np.int8:
            if q.size and (q.min() < -128 or q.max() > 127):
                raise ValueError("q must fit in int8")
            q = q.astype(np.int8)
        return self._m.matmul_int32(np.ascontiguousarray(q))

    def matmul_q(self, q, scale) -> np.ndarray:
        """(codes . q) / (scale * scale_w) for already quantized int8 q and per-token scale."""
        return self._m.matmul_q(np.ascontiguousarray(q, dtype=np.int8),
                                np.atleast_1d(_f32(scale)))

    def matmul(self, x, g=None, eps: float = 1e-6) -> np.ndarray:
        """The whole BitLinear on float x [T, cols] (or [cols]): RMSNorm(g) -> int8 -> product."""
        return self._m.matmul(_f32(x), None if g is None else _f32(g), float(eps))

    __call__ = matmul

    def time_matmul_int32(self, q, repeats: int = 10, clock: str = "wall") -> list:
        """Seconds per matmul_int32 call, timed in C++ (clock 'wall' or 'thread_cpu')."""
        return self._m.time_matmul_int32(np.ascontiguousarray(q, dtype=np.int8), int(repeats), clock)
