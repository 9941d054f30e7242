"""A plain numpy forward pass of BitMamba-2 / Mamba-2 (docs/model.md, "Forward pass"), written to be read, not to
be fast.

It runs a `bitmamba.formats.Checkpoint` (ternary codes + exact fp32 scale_w; in binary models the mixer
projections are signs + fp32 alpha, beta per row, docs/binary.md) over a whole token sequence with the
sequential recurrence, for both layouts. BitLinear follows the integer semantics exactly: int8 activations
by round-half-to-even, an exact integer accumulator, one division at the end. `dtype` picks the float
precision of everything around the integer part:
- float32 is the engine's own arithmetic (bitmamba.numerics, csrc/core/float_semantics.h): numpy float32 in
  the operation order of docs/model.md, exp and log1p evaluated in float64 by numerics' explicit definitions and
  rounded (no numpy transcendental, whose last bits vary by CPU). The engine's BitMamba-2 logits equal it
  bit for bit on every kernel set (tests/test_engine_exact.py), on any CPU (tests/test_numerics.py);
- float64 is the high-precision reference.
Used by the tests of the converter, the engine and the PyTorch model.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from . import numerics
from .formats.checkpoint import Binary, Checkpoint, Ternary


def silu(x):
    if x.dtype == np.float32:
        return numerics.silu_f32(x)
    return x / (1 + np.exp(-x))


def softplus(x):
    # Same convention as torch.nn.functional.softplus (threshold 20): v for v > 20.
    if x.dtype == np.float32:
        return numerics.softplus_f32(x)
    with np.errstate(over="ignore"):
        return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


def exp(x):
    return numerics.exp_f32(x) if x.dtype == np.float32 else np.exp(x)


def rms_norm(x, g, eps, dtype):
    x = x.astype(dtype)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + dtype(eps)) * g.astype(dtype)


def quantize_activations(xn, dtype):
    """absmax int8 per row: s = 127 / (max|xn| + 1e-5), q = clamp(round_half_even(xn * s), -128, 127)."""
    s = dtype(127) / (np.max(np.abs(xn), axis=-1, keepdims=True) + dtype(1e-5))
    q = np.clip(np.rint(xn * s), -128, 127)
    return q, s


def bitlinear(x, norm_w, w: Ternary, eps, dtype=np.float32):
    """BitLinear (docs/model.md, "BitLinear"): own RMSNorm, int8 activations, ternary weight, exact integer
    dot products."""
    xn = rms_norm(x, norm_w, eps, dtype)
    q, s = quantize_activations(xn, dtype)
    # Integer accumulator: int64 products summed exactly.
    acc = q.astype(np.int64) @ w.codes.T.astype(np.int64)
    if dtype == np.float32:
        # The engine: acc / (s * scale_w) in float64 (s * scale_w is exact there), rounded once.
        inv = 1.0 / (s.astype(np.float64) * np.float64(w.scale))
        return (acc.astype(np.float64) * inv).astype(np.float32)
    return (acc.astype(dtype) / (s * dtype(w.scale))).astype(dtype)


def binary_linear(x, norm_w, w: Binary, eps, dtype=np.float32):
    """A binary projection (docs/binary.md, "Exact evaluation"): BitLinear's own RMSNorm and int8
    activations, then acc = signs . q (exact integer) and S = sum(q) per token, and
    y = (alpha * acc + beta * S) / s."""
    xn = rms_norm(x, norm_w, eps, dtype)
    q, s = quantize_activations(xn, dtype)
    qi = q.astype(np.int64)
    acc = qi @ w.signs.T.astype(np.int64)
    S = qi.sum(axis=-1, keepdims=True)
    if dtype == np.float32:
        # The engine: in float64, in this order, no fused multiply-add (numpy has none), rounded once.
        a64, b64 = w.alpha.astype(np.float64), w.beta.astype(np.float64)
        return ((a64 * acc.astype(np.float64) + b64 * S.astype(np.float64)) / s.astype(np.float64)).astype(np.float32)
    return ((w.alpha.astype(dtype) * acc.astype(dtype) + w.beta.astype(dtype) * S.astype(dtype)) / s).astype(dtype)


def projection(x, norm_w, w, eps, dtype=np.float32):
    """A mixer projection of either kind."""
    if isinstance(w, Binary):
        return binary_linear(x, norm_w, w, eps, dtype)
    return bitlinear(x, norm_w, w, eps, dtype)


def causal_conv1d(x, w, b, dtype):
    """Depthwise causal conv: x [T, C], w [C, K], b [C] -> out[t] = b + sum_k w[:, k] * x[t - (K-1) + k]."""
    T, C = x.shape
    K = w.shape[-1]
    xp = np.concatenate([np.zeros((K - 1, C), dtype), x.astype(dtype)], axis=0)
    out = np.broadcast_to(b.astype(dtype), (T, C)).copy()
    for k in range(K):
        out += xp[k:k + T] * w[:, k].astype(dtype)
    return out


def mixer(ck: Checkpoint, i: int, x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """One Mamba-2 mixer (without the residual) over x [T, d_model], starting from a zero state."""
    cfg = ck.config
    p = f"layers.{i}."
    t = ck.tensors
    H, P, N, G = cfg.n_heads, cfg.head_dim, cfg.d_state, cfg.n_groups
    di, gn = cfg.d_inner, cfg.n_groups * cfg.d_state
    T = x.shape[0]

    proj = projection(x, t[p + "in_proj.norm.weight"], t[p + "in_proj.weight"], cfg.norm_eps, dtype)
    z, xs, B, C, dt = np.split(proj, np.cumsum([di, di, gn, gn]), axis=-1)
    conv_w = np.asarray(t[p + "conv1d.weight"], np.float32).reshape(cfg.conv_dim, cfg.d_conv)
    conv_b = np.asarray(t[p + "conv1d.bias"], np.float32)
    if cfg.layout == "bitmamba2":
        xc = silu(causal_conv1d(xs, conv_w, conv_b, dtype))
    else:
        xbc = silu(causal_conv1d(np.concatenate([xs, B, C], axis=-1), conv_w, conv_b, dtype))
        xc, B, C = np.split(xbc, [di, di + gn], axis=-1)
    dt = softplus(dt + np.asarray(t[p + "dt_bias"], dtype))  # [T, H]
    A = -exp(np.asarray(t[p + "A_log"], dtype))  # [H]
    Dv = np.asarray(t[p + "D"], dtype)
    Dc = Dv if Dv.size == di else np.repeat(Dv, P)  # per channel

    heads_per_group = H // G
    Bh = np.repeat(B.reshape(T, G, N), heads_per_group, axis=1)  # [T, H, N]
    Ch = np.repeat(C.reshape(T, G, N), heads_per_group, axis=1)
    xh = xc.reshape(T, H, P)
    h = np.zeros((H, P, N), dtype)
    y = np.empty((T, H, P), dtype)
    for s in range(T):
        dA = exp(A * dt[s])  # [H]
        h = h * dA[:, None, None] + xh[s][:, :, None] * (Bh[s] * dt[s][:, None])[:, None, :]
        y[s] = np.einsum("hpn,hn->hp", h, Ch[s])
    y = y.reshape(T, di) + xc * Dc
    y = y * silu(z)
    if cfg.layout == "mamba2":
        gw = np.asarray(t[p + "norm.weight"], dtype)
        yg = y.reshape(T, G, di // G)
        yg = yg / np.sqrt(np.mean(yg * yg, axis=-1, keepdims=True) + dtype(cfg.ssm_norm_eps))
        y = yg.reshape(T, di) * gw
    return projection(y, t[p + "out_proj.norm.weight"], t[p + "out_proj.weight"], cfg.norm_eps, dtype)


def forward(ck: Checkpoint, ids: Sequence[int], dtype=np.float32) -> np.ndarray:
    """Logits [T, vocab] for the token ids, from a zero state."""
    dtype = np.dtype(dtype).type
    cfg = ck.config
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError("ids must be a non-empty 1-D sequence")
    if ids.min() < 0 or ids.max() >= cfg.vocab_size:
        raise ValueError(f"token id out of range [0, {cfg.vocab_size})")
    x = np.asarray(ck.tensors["embed.weight"], np.float32)[ids].astype(dtype)
    for i in range(cfg.n_layers):
        x = x + mixer(ck, i, x, dtype)
    x = rms_norm(x, np.asarray(ck.tensors["norm_f.weight"]), cfg.norm_eps, dtype)
    return bitlinear(x, ck.tensors["lm_head.norm.weight"], ck.tensors["lm_head.weight"], cfg.norm_eps, dtype)


def greedy(ck: Checkpoint, prompt: Sequence[int], n: int, dtype=np.float32) -> List[int]:
    """Greedy continuation (recomputes the whole prefix each step: fine for the tiny test models)."""
    ids = list(prompt)
    out = []
    for _ in range(n):
        nxt = int(np.argmax(forward(ck, ids, dtype)[-1]))
        out.append(nxt)
        ids.append(nxt)
    return out
