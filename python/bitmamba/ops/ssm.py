"""Mamba-2 SSM kernels on numpy arrays: causal conv1d, selective scan, SiLU gating, gated RMSNorm.

Thin wrappers over ``bitmamba._C.ssm`` (csrc/kernels/ssm). Inputs are converted to float32; states are
never modified in place here: the updated state is returned, so calls chain explicitly::

    out, conv_state = causal_conv1d(x, w, b)                 # prefill
    out1, conv_state = causal_conv1d(x1, w, b, conv_state)   # decode step continues it
    y, h = selective_scan(xc, dt, A, B, C, D, dt_bias)       # prefill, h is the final state
    y1, h = selective_scan(xc1, dt1, A, B1, C1, D, dt_bias, h0=h)
"""
from __future__ import annotations

import numpy as np

from .._native import native

__all__ = ["causal_conv1d", "selective_scan", "scan_method_for", "gate_silu", "gated_rmsnorm"]

_METHODS = ("auto", "sequential", "chunked")


def _f32(name, a, ndim=None):
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {a.shape}")
    return a


def _shape(name, a, want):
    if a.shape != tuple(want):
        raise ValueError(f"{name} must have shape {tuple(want)}, got {a.shape}")


def causal_conv1d(x, weight, bias=None, conv_state=None, silu=True):
    """Depthwise causal conv1d over tokens.

    x [T, C]; weight [C, W] (a [C, 1, W] PyTorch weight is accepted); bias [C] or None;
    conv_state [W-1, C]: the W-1 inputs before x (oldest first), zeros when None.
    Returns (out [T, C], new_state [W-1, C]) with out = silu(conv + bias) (or no activation when
    silu=False).
    """
    x = _f32("x", x, 2)
    weight = _f32("weight", weight)
    if weight.ndim == 3 and weight.shape[1] == 1:
        weight = np.ascontiguousarray(weight[:, 0, :])
    if weight.ndim != 2:
        raise ValueError(f"weight must be [C, W] (or [C, 1, W]), got shape {weight.shape}")
    T, C = x.shape
    W = weight.shape[1]
    _shape("weight", weight, (C, W))
    if W < 1:
        raise ValueError("weight must have a kernel width >= 1")
    if bias is not None:
        bias = _f32("bias", bias, 1)
        _shape("bias", bias, (C,))
    if conv_state is None:
        state = np.zeros((W - 1, C), np.float32)
    else:
        state = np.array(conv_state, dtype=np.float32, order="C", copy=True)
        _shape("conv_state", state, (W - 1, C))
    out = native().ssm.causal_conv1d(x, weight, bias, state, bool(silu))
    return out, state


def selective_scan(x, dt, A, B, C, D, dt_bias, h0=None, n_groups=None, method="auto",
                   chunk_size=None):
    """Mamba-2 selective scan (see csrc/kernels/ssm/ssm.h for the recurrence).

    x [T, H, P]; dt [T, H] (before softplus and dt_bias); A [H] (negative); B, C [T, G, N]
    (or [T, G*N] with n_groups given); D [H, P] or [H] (broadcast over the head's channels);
    dt_bias [H]; h0 [H, P, N] or None (zeros). method: 'auto' | 'sequential' | 'chunked';
    chunk_size: chunk length of the chunked method (None = default).
    Returns (y [T, H, P] float32, h [H, P, N] float32, the final state).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    x = _f32("x", x, 3)
    T, H, P = x.shape
    B = _f32("B", B)
    C = _f32("C", C)
    if B.ndim == 2:
        if n_groups is None:
            raise ValueError("B given as [T, G*N] needs n_groups")
        if B.shape[1] % n_groups:
            raise ValueError(f"B width {B.shape[1]} is not a multiple of n_groups={n_groups}")
        B = B.reshape(B.shape[0], n_groups, -1)
        C = C.reshape(C.shape[0], n_groups, -1) if C.ndim == 2 else C
    if B.ndim != 3:
        raise ValueError(f"B must be [T, G, N], got shape {B.shape}")
    G, N = B.shape[1], B.shape[2]
    if n_groups is not None and n_groups != G:
        raise ValueError(f"n_groups={n_groups} does not match B's group axis {G}")
    if G < 1 or N < 1 or H % G:
        raise ValueError(f"n_heads={H} must be a multiple of n_groups={G} (and N={N} >= 1)")
    _shape("B", B, (T, G, N))
    _shape("C", C, (T, G, N))
    dt = _f32("dt", dt)
    _shape("dt", dt, (T, H))
    A = _f32("A", A)
    _shape("A", A, (H,))
    dt_bias = _f32("dt_bias", dt_bias)
    _shape("dt_bias", dt_bias, (H,))
    D = _f32("D", D)
    if D.shape == (H,):
        D = np.ascontiguousarray(np.repeat(D[:, None], P, axis=1))
    elif D.shape == (H * P,):
        D = D.reshape(H, P)
    _shape("D", D, (H, P))
    if h0 is None:
        h = np.zeros((H, P, N), np.float32)
    else:
        h = np.array(h0, dtype=np.float32, order="C", copy=True)
        _shape("h0", h, (H, P, N))
    if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    y = native().ssm.selective_scan(x, dt, A, B, C, D, dt_bias, h, method, int(chunk_size or 0))
    return y, h


def scan_method_for(n_heads, head_dim, d_state, n_groups, T) -> str:
    """The method that method='auto' picks for this shape ('sequential' or 'chunked')."""
    return native().ssm.choose_scan_method(n_heads, head_dim, d_state, n_groups, T)


def _gate_operands(y, z):
    """(y, y2, z2) for the gating kernels, which work in place on [T, C] rows: y a float32 copy (the
    result, the caller's array untouched) and y2, z2 views of y and z as [T, C] (a [C] input is T = 1)."""
    y = np.array(y, dtype=np.float32, order="C", copy=True)
    z = _f32("z", z)
    if y.shape != z.shape:
        raise ValueError(f"y {y.shape} and z {z.shape} must have the same shape")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be [T, C] or [C], got shape {y.shape}")
    return y, y.reshape(-1, y.shape[-1]), z.reshape(-1, z.shape[-1])


def gate_silu(y, z):
    """Return y * silu(z) for y, z [T, C] (or [C])."""
    y, y2, z2 = _gate_operands(y, z)
    native().ssm.gate_silu(y2, z2)
    return y


def gated_rmsnorm(y, z, weight, n_groups=1, eps=1e-5):
    """Return rmsnorm(y * silu(z)) over each group of C/n_groups channels, times weight [C]."""
    y, y2, z2 = _gate_operands(y, z)
    weight = _f32("weight", weight, 1)
    _shape("weight", weight, (y2.shape[1],))
    if n_groups < 1 or y2.shape[1] % n_groups:
        raise ValueError(f"C={y2.shape[1]} is not a multiple of n_groups={n_groups}")
    native().ssm.gated_rmsnorm(y2, z2, weight, int(n_groups), float(eps))
    return y
