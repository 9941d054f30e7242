"""SSM kernels (bitmamba.ops.ssm) against plain float64 numpy references written from the recurrence
(docs/model.md, "Mixer"; csrc/kernels/ssm/ssm.h) and the golden ssm-*.npz files, on every kernel set.

Tolerances (float32 kernels vs float64 references): values are compared relative to the size of the
reference, max|got - ref| <= RTOL * (1 + max|ref|) with RTOL = 2e-5 for the scan (T up to 1000, the
error grows slowly with T through the recurrence) and 1e-5 for conv / gating / norm.
"""
from __future__ import annotations

import numpy as np
import pytest

import bitmamba
from bitmamba.ops import ssm

SCAN_RTOL = 2e-5
ELEM_RTOL = 1e-5



def close(got, ref, rtol, what=""):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    err = np.max(np.abs(got - ref)) if got.size else 0.0
    bound = rtol * (1.0 + (np.max(np.abs(ref)) if ref.size else 0.0))
    assert err <= bound, f"{what}: max error {err:.3g} > {bound:.3g}"


# ---------------------------------------------------------------- float64 references
def softplus(v):
    return np.where(v > 20.0, v, np.log1p(np.exp(np.minimum(v, 20.0))))


def silu(v):
    return v / (1.0 + np.exp(-v))


def ref_scan(x, dt_raw, A, B, C, D, dt_bias, h0):
    x, dt_raw, A, B, C, D, dt_bias = (np.asarray(a, np.float64) for a in (x, dt_raw, A, B, C, D, dt_bias))
    T, H, P = x.shape
    G, N = B.shape[1], B.shape[2]
    h = np.array(h0, np.float64)
    y = np.zeros((T, H, P))
    for t in range(T):
        for hd in range(H):
            g = hd // (H // G)
            dt = softplus(dt_raw[t, hd] + dt_bias[hd])
            h[hd] = np.exp(A[hd] * dt) * h[hd] + dt * x[t, hd][:, None] * B[t, g][None, :]
            y[t, hd] = h[hd] @ C[t, g] + D[hd] * x[t, hd]
    return y, h


def ref_conv(x, w, b, state, act):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    W = w.shape[1]
    xx = np.concatenate([np.asarray(state, np.float64), x], axis=0)
    T = x.shape[0]
    out = np.zeros_like(x)
    for t in range(T):
        out[t] = (b if b is not None else 0.0) + np.sum(w.T * xx[t:t + W], axis=0)
    return (silu(out) if act else out), xx[T:]


def rand_scan(rng, T, H, P, N, G, scale=1.0):
    return dict(
        x=rng.standard_normal((T, H, P)).astype(np.float32) * scale,
        dt=rng.standard_normal((T, H)).astype(np.float32),
        A=-np.exp(rng.uniform(-1, 1.5, H)).astype(np.float32),
        B=rng.standard_normal((T, G, N)).astype(np.float32) / np.sqrt(N),
        C=rng.standard_normal((T, G, N)).astype(np.float32) / np.sqrt(N),
        D=rng.standard_normal((H, P)).astype(np.float32),
        dt_bias=rng.uniform(-3, 0, H).astype(np.float32),
    )


def call_scan(a, h0=None, **kw):
    return ssm.selective_scan(a["x"], a["dt"], a["A"], a["B"], a["C"], a["D"], a["dt_bias"], h0=h0, **kw)


def sub(a, t0, t1):
    out = dict(a)
    for k in ("x", "dt", "B", "C"):
        out[k] = a[k][t0:t1]
    return out


# ---------------------------------------------------------------- scan
# (T, H, P, N, G): small H*P for long T keeps the float64 reference quick.
SCAN_CASES = [
    (1, 4, 8, 1, 4), (2, 4, 8, 1, 4), (7, 4, 16, 1, 4), (256, 4, 16, 1, 4), (1000, 2, 8, 1, 2),
    (7, 3, 5, 1, 1),                              # odd sizes: vector tails
    (1, 2, 8, 16, 1), (7, 4, 8, 16, 4), (256, 4, 8, 16, 1), (1000, 2, 4, 16, 2),
    (2, 2, 8, 64, 2), (256, 2, 8, 64, 1), (7, 4, 4, 128, 2), (256, 2, 4, 128, 1),
    (37, 3, 7, 13, 1),                            # nothing a multiple of a vector
]


@pytest.mark.parametrize("method", ["sequential", "chunked"])
@pytest.mark.parametrize("T,H,P,N,G", SCAN_CASES)
def test_scan_matches_reference(isa, method, T, H, P, N, G):
    rng = np.random.default_rng(T * 1000 + H * 100 + N + G)
    a = rand_scan(rng, T, H, P, N, G)
    h0 = rng.standard_normal((H, P, N)).astype(np.float32)
    y_ref, h_ref = ref_scan(a["x"], a["dt"], a["A"], a["B"], a["C"], a["D"], a["dt_bias"], h0)
    chunk = 64 if T < 200 else 48  # 48 does not divide 256 or 1000
    y, h = call_scan(a, h0, method=method, chunk_size=chunk)
    close(y, y_ref, SCAN_RTOL, f"y {isa} {method}")
    close(h, h_ref, SCAN_RTOL, f"h {isa} {method}")


@pytest.mark.parametrize("chunk", [1, 3, 16, 25, 64, 100, 300])
def test_chunked_equals_sequential_any_chunk(isa, chunk):
    rng = np.random.default_rng(chunk)
    a = rand_scan(rng, 100, 4, 8, 16, 2)
    h0 = rng.standard_normal((4, 8, 16)).astype(np.float32)
    ys, hs = call_scan(a, h0, method="sequential")
    yc, hc = call_scan(a, h0, method="chunked", chunk_size=chunk)
    close(yc, ys, SCAN_RTOL, "y")
    close(hc, hs, SCAN_RTOL, "h")


@pytest.mark.parametrize("N,G", [(1, 4), (16, 1), (64, 2)])
@pytest.mark.parametrize("method", ["auto", "sequential", "chunked"])
def test_prefill_then_step_equals_longer_prefill(isa, N, G, method):
    rng = np.random.default_rng(N)
    T = 70
    a = rand_scan(rng, T + 1, 4, 8, N, G)
    y_full, h_full = call_scan(a, method=method)
    y_pre, h = call_scan(sub(a, 0, T), method=method)
    y_step, h = call_scan(sub(a, T, T + 1), h0=h, method=method)
    close(np.concatenate([y_pre, y_step]), y_full, SCAN_RTOL, "y")
    close(h, h_full, SCAN_RTOL, "h")


def test_state_carried_across_uneven_calls(isa):
    rng = np.random.default_rng(5)
    a = rand_scan(rng, 150, 4, 8, 16, 2)
    y_ref, h_ref = ref_scan(a["x"], a["dt"], a["A"], a["B"], a["C"], a["D"], a["dt_bias"],
                            np.zeros((4, 8, 16)))
    h, ys = None, []
    for t0, t1 in [(0, 1), (1, 3), (3, 70), (70, 71), (71, 150)]:
        y, h = call_scan(sub(a, t0, t1), h0=h, method="chunked", chunk_size=16)
        ys.append(y)
    close(np.concatenate(ys), y_ref, SCAN_RTOL, "y")
    close(h, h_ref, SCAN_RTOL, "h")


def test_scan_extremes_stay_finite(isa):
    # Large dt (softplus linear branch, exp(A dt) -> 0) and tiny dt: no inf/nan, matches reference.
    rng = np.random.default_rng(9)
    a = rand_scan(rng, 130, 2, 8, 16, 1)
    a["dt"][::3] = 40.0
    a["dt"][1::3] = -30.0
    y_ref, h_ref = ref_scan(a["x"], a["dt"], a["A"], a["B"], a["C"], a["D"], a["dt_bias"], np.zeros((2, 8, 16)))
    for method in ("sequential", "chunked"):
        y, h = call_scan(a, method=method, chunk_size=32)
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(h))
        close(y, y_ref, SCAN_RTOL, method)
        close(h, h_ref, SCAN_RTOL, method)


@pytest.mark.parametrize("N,G,method", [(1, 4, "sequential"), (16, 2, "sequential"), (16, 2, "chunked"),
                                        (128, 1, "chunked")])
def test_forced_scalar_matches_vector_paths(N, G, method):
    """The scalar kernel set and every vector set agree closely (same algorithm, different exp/sums)."""
    rng = np.random.default_rng(N + G)
    a = rand_scan(rng, 300, 4, 24, N, G)
    h0 = rng.standard_normal((4, 24, N)).astype(np.float32)
    before = bitmamba.get_isa()
    try:
        bitmamba.set_isa("scalar")
        y_s, h_s = call_scan(a, h0, method=method)
        w = rng.standard_normal((96, 4)).astype(np.float32)
        conv_s = ssm.causal_conv1d(a["x"].reshape(300, -1), w, None)[0]
        for isa in bitmamba.cpu_info()["supported_isas"]:
            bitmamba.set_isa(isa)
            y, h = call_scan(a, h0, method=method)
            close(y, y_s, SCAN_RTOL, f"y {isa}")
            close(h, h_s, SCAN_RTOL, f"h {isa}")
            close(ssm.causal_conv1d(a["x"].reshape(300, -1), w, None)[0], conv_s, ELEM_RTOL, f"conv {isa}")
    finally:
        bitmamba.set_isa(before)


def test_scan_empty_sequence_keeps_state(isa):
    rng = np.random.default_rng(1)
    a = rand_scan(rng, 0, 2, 4, 3, 1)
    h0 = rng.standard_normal((2, 4, 3)).astype(np.float32)
    y, h = call_scan(a, h0)
    assert y.shape == (0, 2, 4)
    np.testing.assert_array_equal(h, h0)


@pytest.mark.parametrize("name", ["ssm-bitmamba-T64-H16-P128-N1-G16", "ssm-canonical-T37-H4-P16-N8-G2",
                                  "ssm-canonical-T300-H8-P64-N128-G1"])
@pytest.mark.parametrize("method", ["auto", "sequential", "chunked"])
def test_scan_golden(golden_dir, isa, name, method):
    path = golden_dir / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"{path} missing")
    g = np.load(path)
    y, h = ssm.selective_scan(g["x"], g["dt_raw"], g["A"], g["B"], g["C"], g["D"], g["dt_bias"],
                              h0=g["h0"], method=method)
    close(y, g["y"], SCAN_RTOL, f"{name} y")
    close(h, g["h_final"], SCAN_RTOL, f"{name} h")


def test_scan_accepts_flat_B_C_and_per_head_D():
    rng = np.random.default_rng(3)
    T, H, P, N, G = 9, 4, 8, 5, 2
    a = rand_scan(rng, T, H, P, N, G)
    Dh = rng.standard_normal(H).astype(np.float32)
    y_ref, h_ref = ref_scan(a["x"], a["dt"], a["A"], a["B"], a["C"], np.repeat(Dh[:, None], P, 1),
                            a["dt_bias"], np.zeros((H, P, N)))
    y, h = ssm.selective_scan(a["x"], a["dt"], a["A"], a["B"].reshape(T, G * N), a["C"].reshape(T, G * N),
                              Dh, a["dt_bias"], n_groups=G)
    close(y, y_ref, SCAN_RTOL, "y")
    close(h, h_ref, SCAN_RTOL, "h")
    with pytest.raises(ValueError, match="n_groups"):
        ssm.selective_scan(a["x"], a["dt"], a["A"], a["B"].reshape(T, G * N), a["C"].reshape(T, G * N),
                           Dh, a["dt_bias"])


def test_scan_bad_input_errors():
    rng = np.random.default_rng(0)
    a = rand_scan(rng, 5, 4, 8, 2, 2)
    with pytest.raises(ValueError, match="method"):
        call_scan(a, method="fast")
    with pytest.raises(ValueError, match="dt"):
        ssm.selective_scan(a["x"], a["dt"][:, :3], a["A"], a["B"], a["C"], a["D"], a["dt_bias"])
    with pytest.raises(ValueError, match="multiple"):
        b = rand_scan(rng, 5, 4, 8, 2, 3)
        call_scan(b)
    with pytest.raises(ValueError, match="h0"):
        call_scan(a, h0=np.zeros((4, 8, 3)))
    with pytest.raises(ValueError, match="chunk_size"):
        call_scan(a, chunk_size=0)
    with pytest.raises(ValueError, match="C must"):
        ssm.selective_scan(a["x"], a["dt"], a["A"], a["B"], a["C"][:4], a["D"], a["dt_bias"])


def test_auto_rule():
    # The measured rule of csrc/kernels/ssm/ssm_internal.h (kChunkedMinTokens & co).
    assert ssm.scan_method_for(32, 128, 1, 32, 512) == "sequential"    # BitMamba-2: d_state 1
    assert ssm.scan_method_for(32, 128, 1, 32, 1) == "sequential"
    assert ssm.scan_method_for(64, 64, 128, 1, 1) == "sequential"      # decode step
    assert ssm.scan_method_for(64, 64, 128, 1, 128) == "sequential"
    assert ssm.scan_method_for(64, 64, 128, 1, 1024) == "chunked"
    assert ssm.scan_method_for(16, 64, 16, 1, 64) == "chunked"


# ---------------------------------------------------------------- conv
@pytest.mark.parametrize("T,C,W", [(1, 8, 4), (2, 5, 4), (7, 37, 4), (256, 70, 4), (5, 16, 1), (9, 130, 3),
                                   (3, 64, 6)])
@pytest.mark.parametrize("act", [True, False])
def test_conv_matches_reference_and_chains(isa, T, C, W, act):
    rng = np.random.default_rng(T + C + W)
    x = rng.standard_normal((T, C)).astype(np.float32)
    w = rng.standard_normal((C, W)).astype(np.float32) * 0.5
    b = rng.standard_normal(C).astype(np.float32)
    s0 = rng.standard_normal((W - 1, C)).astype(np.float32)
    out_ref, st_ref = ref_conv(x, w, b, s0, act)
    out, st = ssm.causal_conv1d(x, w, b, s0, silu=act)
    close(out, out_ref, ELEM_RTOL, "out")
    np.testing.assert_array_equal(st, st_ref.astype(np.float32))
    # Token by token from the same state gives the same outputs (decode chaining).
    st = s0
    for t in range(T):
        o, st = ssm.causal_conv1d(x[t:t + 1], w, b, st, silu=act)
        close(o[0], out_ref[t], ELEM_RTOL, f"step {t}")
    np.testing.assert_array_equal(st, st_ref.astype(np.float32))


def test_conv_no_bias_zero_state_and_errors():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 10)).astype(np.float32)
    w = rng.standard_normal((10, 1, 4)).astype(np.float32)
    out, st = ssm.causal_conv1d(x, w, None)
    ref, _ = ref_conv(x, w[:, 0], None, np.zeros((3, 10)), True)
    close(out, ref, ELEM_RTOL, "out")
    with pytest.raises(ValueError, match="conv_state"):
        ssm.causal_conv1d(x, w, None, np.zeros((4, 10)))
    with pytest.raises(ValueError, match="bias"):
        ssm.causal_conv1d(x, w, np.zeros(3))
    with pytest.raises(ValueError, match="weight"):
        ssm.causal_conv1d(x, np.zeros((9, 4)), None)


# ---------------------------------------------------------------- gating
@pytest.mark.parametrize("T,C", [(1, 1), (1, 8), (3, 37), (17, 256)])
def test_gate_silu(isa, T, C):
    rng = np.random.default_rng(C)
    y = rng.standard_normal((T, C)).astype(np.float32)
    z = (rng.standard_normal((T, C)) * 6).astype(np.float32)
    z[0, 0] = -100.0  # far tail of silu
    close(ssm.gate_silu(y, z), y.astype(np.float64) * silu(z.astype(np.float64)), ELEM_RTOL, "gate")


@pytest.mark.parametrize("T,C,G", [(1, 8, 1), (3, 37, 1), (5, 48, 3), (9, 256, 4)])
def test_gated_rmsnorm(isa, T, C, G):
    rng = np.random.default_rng(C + G)
    y = rng.standard_normal((T, C)).astype(np.float32)
    z = (rng.standard_normal((T, C)) * 3).astype(np.float32)
    w = rng.uniform(0.5, 1.5, C).astype(np.float32)
    v = y.astype(np.float64) * silu(z.astype(np.float64))
    vg = v.reshape(T, G, C // G)
    ref = (vg / np.sqrt(np.mean(vg ** 2, axis=-1, keepdims=True) + 1e-5)).reshape(T, C) * w
    close(ssm.gated_rmsnorm(y, z, w, n_groups=G), ref, ELEM_RTOL, "norm")
    with pytest.raises(ValueError, match="multiple"):
        ssm.gated_rmsnorm(y, z, w, n_groups=C + 1)
