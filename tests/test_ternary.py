"""Ternary kernels from Python: quantization vs a numpy reference, packings vs gguf-py, and the
products vs numpy int64 on every kernel set this CPU can run (each layout, random shapes and tails).

Integer results are compared exactly. Float outputs: bit-exact against a numpy float32 emulation of
the same formula, and within the int8 quantization bound against the unquantized float64 product.
"""
from __future__ import annotations

import numpy as np
import pytest

import bitmamba
from bitmamba.ops import ternary as T

LAYOUTS = T.LAYOUTS  # decode, lut, base3


@pytest.fixture(scope="module")
def isas():
    return bitmamba.cpu_info()["supported_isas"]


@pytest.fixture
def each_isa(isas):
    """Yield-loop helper: run a body under every supported kernel set, restoring the original."""
    before = bitmamba.get_isa()

    def run(body):
        try:
            for isa in isas:
                bitmamba.set_isa(isa)
                body(isa)
        finally:
            bitmamba.set_isa(before)

    return run


# ---- numpy references ----------------------------------------------------------------------------
def ref_absmean_scale(w):
    m = np.mean(np.abs(np.asarray(w, dtype=np.float64)))
    return np.float32(1.0 / max(m, 1e-5))


def ref_quantize(x, g=None, eps=1e-6):
    """The exact float32 operation order of quantize.cpp (documented there): numpy float32 semantics."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    r = np.sqrt(np.mean(x * x, axis=1) + np.float32(eps))  # float32, numpy's pairwise summation
    xn = x / r[:, None]
    if g is not None:
        xn = xn * np.asarray(g, dtype=np.float32)[None, :]
    s = np.float32(127.0) / (np.abs(xn).max(axis=1) + np.float32(1e-5))
    q = np.clip(np.rint(xn * s[:, None]), -128, 127).astype(np.int8)  # rint: half to even
    return q, s.astype(np.float32), q.astype(np.int32).sum(axis=1), xn


def rand_codes(rng, rows, cols, p_zero=0.4):
    c = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(rows, cols),
                   p=[(1 - p_zero) / 2, p_zero, (1 - p_zero) / 2])
    return c


# ---- quantization ----------------------------------------------------------------------------------
def test_absmean_and_ternarize_match_numpy():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.02, size=(37, 129)).astype(np.float32)
    s = T.absmean_scale(w)
    assert np.float32(s) == ref_absmean_scale(w)
    codes = T.ternarize(w, s)
    assert codes.dtype == np.int8 and codes.shape == w.shape
    np.testing.assert_array_equal(codes, np.clip(np.rint(w * np.float32(s)), -1, 1).astype(np.int8))
    # Exact halves round to even (0), not away from zero.
    np.testing.assert_array_equal(T.ternarize(np.array([0.5, -0.5, 1.5, -1.5, 0.51]), 1.0), [0, 0, 1, -1, 1])
    assert T.absmean_scale(np.zeros(4)) == pytest.approx(1e5)


# Sizes around numpy's pairwise-summation boundaries (8, 128, recursive halves) and the 32-wide
# vector loop; 40 rows of 2048 take the multi-threaded path.
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (1, 8), (2, 31), (1, 128), (2, 129), (3, 300), (5, 2048),
                                   (2, 4096), (1, 8200), (40, 2048)])
def test_quantize_activations_matches_numpy(shape, each_isa):
    rng = np.random.default_rng(shape[1])
    x = (rng.standard_normal(shape) * rng.uniform(0.1, 30, size=(shape[0], 1))).astype(np.float32)
    g = rng.uniform(0.2, 2.0, size=shape[1]).astype(np.float32)

    def body(isa):
        for gg in (None, g):
            q, s, sm = T.quantize_activations(x, gg)
            rq, rs, rsum, _ = ref_quantize(x, gg)
            np.testing.assert_array_equal(q, rq, err_msg=isa)
            np.testing.assert_array_equal(s, rs, err_msg=isa)
            np.testing.assert_array_equal(sm, rsum, err_msg=isa)
        q1, _, _ = T.quantize_activations(x[0])  # 1-D input = one token
        np.testing.assert_array_equal(q1[0], ref_quantize(x[0])[0][0], err_msg=isa)

    each_isa(body)


def _g_for_exact_product(a, s, target):
    """A float32 g with float32(float32(a * g) * s) == target exactly, by bisection over the ordered
    float32 bit patterns (the product is monotone in g > 0); None when no float32 g hits it."""
    f32 = np.float32
    lo, hi = np.array(f32(1e-3)).view(np.int32).item(), np.array(f32(1e3)).view(np.int32).item()
    val = lambda bits: f32(f32(a * np.array(bits, np.int32).view(np.float32)) * s)
    up = val(hi) > val(lo)
    while lo <= hi:
        mid = (lo + hi) // 2
        v = val(mid)
        if v == target:
            return np.array(mid, np.int32).view(np.float32).item()
        if (v < target) == up:
            lo = mid + 1
        else:
            hi = mid - 1
    return None


def test_quantize_activations_rounds_half_to_even():
    # Build a token where some (x/r)*g*s land exactly on k + 0.5 (g does not enter the RMS factor,
    # and these elements stay below max|xn|, so s is unchanged); ties must round to even.
    rng = np.random.default_rng(11)
    K = 64
    x = rng.standard_normal(K).astype(np.float32)
    x[0] = 40.0  # the absmax element, g = 1
    g = np.ones(K, np.float32)
    _, s, _, _ = ref_quantize(x[None, :], g)
    r = np.sqrt(np.mean(x * x) + np.float32(1e-6))
    made = {}
    for j, target in zip(range(1, 20), [0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 4.5, -3.5] * 3):
        a = np.float32(x[j] / r)
        if (a > 0) != (target > 0):
            continue
        gj = _g_for_exact_product(a, s[0], np.float32(target))
        if gj is not None:
            g[j] = gj
            made[j] = target
    assert len(made) >= 4 and any(abs(t) in (0.5, 2.5) for t in made.values()), made
    q, s2, _ = T.quantize_activations(x, g)
    assert s2[0] == s[0]
    for j, target in made.items():
        assert q[0, j] == np.rint(target), (j, target, q[0, j])  # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, ...
    np.testing.assert_array_equal(q, ref_quantize(x[None, :], g)[0])


def test_quantize_rejects_bad_shapes():
    with pytest.raises(ValueError):
        T.quantize_activations(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError):
        T.quantize_activations(np.ones((2, 8), np.float32), g=np.ones(7, np.float32))


# ---- packings ----------------------------------------------------------------------------------------
def test_bit2_roundtrip_and_byte_format():
    rng = np.random.default_rng(1)
    c = rand_codes(rng, 6, 130)
    b = T.pack_bit2(c)
    assert b.dtype == np.uint8 and b.size == (c.size + 3) // 4
    np.testing.assert_array_equal(T.unpack_bit2(b, c.shape), c)
    flat = (c.reshape(-1).astype(np.int32) + 1)
    want = flat[0::4] | (flat[1::4] << 2) | (flat[2::4] << 4) | (flat[3::4] << 6)
    np.testing.assert_array_equal(b, want.astype(np.uint8))
    np.testing.assert_array_equal(T.unpack_bit2(np.array([0xFF], np.uint8), 4), [1, 1, 1, 1])


@pytest.mark.parametrize("fmt", ["tq2_0", "tq1_0"])
def test_tq_roundtrip_and_bytes_equal_gguf_reference(fmt):
    gq = pytest.importorskip("gguf.quants")
    from gguf import GGMLQuantizationType as QT

    rng = np.random.default_rng(2)
    rows, cols, scale_w = 7, 768, np.float32(37.3)
    c = rand_codes(rng, rows, cols)
    pack, unpack = getattr(T, f"pack_{fmt}"), getattr(T, f"unpack_{fmt}")
    b = pack(c, scale_w)
    bpb = 66 if fmt == "tq2_0" else 54
    assert b.shape == (rows, cols // 256 * bpb)
    np.testing.assert_array_equal(unpack(b, rows, cols), c)
    # gguf-py's quantizer on codes / scale_w: every block's absmax is 1/scale_w (all blocks here have
    # a nonzero code), so its fp16 d and its packed codes must equal ours byte for byte.
    assert np.all(np.abs(c.reshape(-1, 256)).max(axis=1) == 1)
    ref = gq.quantize(c.astype(np.float32) * (np.float32(1) / scale_w), getattr(QT, fmt.upper()))
    np.testing.assert_array_equal(b, ref.reshape(b.shape))
    d = b.reshape(-1, bpb)[:, -2:].copy().view(np.float16)
    assert np.all(d == T.tq_d(scale_w))
    # gguf-py's dequantizer agrees with our codes * d.
    deq = gq.dequantize(b.reshape(-1), getattr(QT, fmt.upper())).reshape(rows, cols)
    np.testing.assert_array_equal(deq, c.astype(np.float32) * np.float32(T.tq_d(scale_w)))
    # All-zero blocks: gguf writes d = 0 there, we write 1/scale_w; the code bytes still agree.
    z = np.zeros((1, 256), np.int8)
    assert np.array_equal(pack(z, scale_w)[0, :-2], gq.quantize(z.astype(np.float32), getattr(QT, fmt.upper()))[0, :-2])


def test_tq_errors():
    with pytest.raises(ValueError):
        T.pack_tq2_0(np.zeros((2, 100), np.int8), 1.0)
    with pytest.raises(ValueError):
        T.pack_tq1_0(np.full((1, 256), 2), 1.0)
    with pytest.raises(ValueError, match="multiple of 256"):
        T.TernaryMatrix.from_tq2_0(np.zeros(66, np.uint8), 1, 128, 1.0)
    with pytest.raises(ValueError):  # too few bytes
        T.TernaryMatrix.from_tq1_0(np.zeros(10, np.uint8), 1, 256, 1.0)
    from bitmamba._native import native

    with pytest.raises(native().FormatError, match="not a ternary code"):
        T.TernaryMatrix.from_tq2_0(np.full(66, 0xFF, np.uint8), 1, 256, 1.0)  # 2-bit value 3


@pytest.mark.parametrize("layout", LAYOUTS)
def test_matrix_importers_roundtrip(layout):
    rng = np.random.default_rng(3)
    rows, cols, s = 45, 512, 3.25
    c = rand_codes(rng, rows, cols)
    T.set_layout_policy(layout)
    try:
        for W in (T.TernaryMatrix.from_codes(c, s),
                  T.TernaryMatrix.from_bit2(T.pack_bit2(c), rows, cols, s),
                  T.TernaryMatrix.from_tq2_0(T.pack_tq2_0(c, s), rows, cols, s),
                  T.TernaryMatrix.from_tq1_0(T.pack_tq1_0(c, s), rows, cols, s)):
            assert W.layout == layout and W.shape == (rows, cols) and W.scale_w == s
            np.testing.assert_array_equal(W.to_codes(), c)
    finally:
        T.set_layout_policy("auto")
    with pytest.raises(ValueError):
        T.TernaryMatrix.from_codes(np.full((2, 2), 5), 1.0)
    with pytest.raises(ValueError):
        T.TernaryMatrix.from_codes(c, 1.0, layout="bogus")


# ---- products ----------------------------------------------------------------------------------------
SHAPES = [  # rows, cols, T
    (1, 1, 1), (3, 3, 3), (1, 129, 64), (64, 64, 1), (33, 1000, 3), (97, 257, 64), (130, 2048, 2),
    (5, 4100, 5),
    # Many tokens (a prefill chunk reuses each decoded row group for all of them), odd counts.
    (9, 4100, 67), (6, 2048, 131),
    # Around the amx set's 16-token tiles (T < 16 there runs the avx512 kernel) with row / K tails.
    (47, 300, 15), (47, 300, 16), (33, 129, 17), (130, 700, 33), (17, 2125, 19),
    # Batches of 2-3 read the packed rows straight into 2 tokens' products where the kernel set has
    # that (avx512); past the last full GEMM tile, 1, 2 or 3 tokens share one tile.
    (51, 700, 6), (13, 2048, 7), (29, 4096, 2), (70, 1000, 10),
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_matmul_int32_exact_on_every_isa(each_isa, layout):
    rng = np.random.default_rng(4)
    cases = []
    for rows, cols, t in SHAPES:
        c = rand_codes(rng, rows, cols)
        q = rng.integers(-128, 128, size=(t, cols), dtype=np.int8)
        cases.append((c, q, (q.astype(np.int64) @ c.astype(np.int64).T)))
    # Extremes: |acc| = 128 * K, far past int16.
    for qv, wv in ((127, 1), (-128, 1), (-128, -1)):
        c = np.full((9, 6000), wv, np.int8)
        for t in (2, 17):
            q = np.full((t, 6000), qv, np.int8)
            cases.append((c, q, q.astype(np.int64) @ c.astype(np.int64).T))

    def body(isa):
        for c, q, want in cases:
            W = T.TernaryMatrix.from_codes(c, 1.0, layout)
            got = W.matmul_int32(q)
            assert got.dtype == np.int32
            np.testing.assert_array_equal(got, want, err_msg=f"{isa} {W.kernel} {c.shape} T={q.shape[0]}")
        # 1-D q is one token.
        c, q, want = cases[3]
        np.testing.assert_array_equal(T.TernaryMatrix.from_codes(c, 1.0, layout).matmul_int32(q[0]), want[0])

    each_isa(body)


@pytest.mark.parametrize("cols,rows", [(1024, 4144), (2048, 1024)])
def test_matmul_real_shapes(each_isa, cols, rows):
    rng = np.random.default_rng(cols + rows)
    c = rand_codes(rng, rows, cols)
    q = rng.integers(-128, 128, size=(3, cols), dtype=np.int8)
    want = q.astype(np.int64) @ c.astype(np.int64).T
    mats = [T.TernaryMatrix.from_codes(c, 1.0, lay) for lay in LAYOUTS]

    def body(isa):
        for W in mats:
            np.testing.assert_array_equal(W.matmul_int32(q), want, err_msg=f"{isa} {W.kernel}")
            np.testing.assert_array_equal(W.matmul_int32(q[:1]), want[:1], err_msg=f"{isa} {W.kernel} gemv")

    each_isa(body)


# t = 1: the GEMV with the separate conversion; t >= 2: the fused epilogue where the kernel set has one.
@pytest.mark.parametrize("t", [1, 2, 4, 20, 77])
def test_matmul_float_output(each_isa, t):
    rng = np.random.default_rng(5)
    rows, cols = 300, 700
    w = rng.normal(0, 0.05, size=(rows, cols)).astype(np.float32)
    g = rng.uniform(0.5, 1.5, size=cols).astype(np.float32)
    x = rng.standard_normal((t, cols)).astype(np.float32) * 3
    W = T.TernaryMatrix.from_float(w)
    sw = np.float32(W.scale_w)
    c = W.to_codes()
    q, s, _, xn = ref_quantize(x, g)
    acc = q.astype(np.int64) @ c.astype(np.int64).T
    # The C++ epilogue: acc / (s * scale_w) in float64 (the product is exact there), rounded once.
    exact = (acc.astype(np.float64) * (1.0 / (s[:, None].astype(np.float64) * np.float64(sw)))).astype(np.float32)
    # Unquantized-activation product in float64; |q/s - xn| <= 0.5/s per element (no clamping since
    # max|xn * s| <= 127), so |y - y_ref| <= 0.5/s * sum|codes| / scale_w (+ float32 rounding).
    y_ref = xn.astype(np.float64) @ (c.astype(np.float64).T / np.float64(sw))
    bound = 0.5 / s[:, None].astype(np.float64) * np.abs(c).sum(axis=1)[None, :] / np.float64(sw)

    def body(isa):
        y = W.matmul(x, g)
        np.testing.assert_array_equal(y, exact, err_msg=isa)
        np.testing.assert_array_equal(W.matmul_q(q, s), exact, err_msg=isa)
        assert np.all(np.abs(y - y_ref) <= bound * (1 + 1e-5) + 1e-6)
        np.testing.assert_array_equal(W(x[-1], g), exact[-1])

    each_isa(body)


def test_matmul_shape_errors():
    W = T.TernaryMatrix.from_codes(np.zeros((4, 10), np.int8), 1.0)
    with pytest.raises(ValueError, match="columns"):
        W.matmul_int32(np.zeros((2, 11), np.int8))
    with pytest.raises(ValueError):
        W.matmul(np.zeros((2, 9), np.float32))
    with pytest.raises(ValueError):
        W.matmul_int32(np.full((1, 10), 300))


def test_autotune_policy_builds_a_working_layout():
    rng = np.random.default_rng(6)
    c = rand_codes(rng, 600, 640)  # large enough (> 2^18 weights) to be timed
    q = rng.integers(-128, 128, size=(2, 640), dtype=np.int8)
    assert T.get_layout_policy() == "auto"
    W = T.TernaryMatrix.from_codes(c, 1.0)
    assert W.layout in LAYOUTS
    np.testing.assert_array_equal(W.matmul_int32(q), q.astype(np.int64) @ c.astype(np.int64).T)


def test_base3_tokens_one_to_forty_row_and_k_tails(each_isa):
    # 5 rows share a byte in the base-3 layout: row counts around multiples of 5 (and of the 32-row
    # thread ranges), K tails, and every token count from the GEMV through several GEMM tiles.
    rng = np.random.default_rng(8)
    mats = []
    for rows, cols in ((1, 1), (4, 130), (5, 128), (6, 255), (21, 300), (67, 129), (165, 1000)):
        c = rand_codes(rng, rows, cols)
        q = rng.integers(-128, 128, size=(40, cols), dtype=np.int8)
        mats.append((T.TernaryMatrix.from_codes(c, 1.0, "base3"), q, q.astype(np.int64) @ c.astype(np.int64).T))
    assert all(W.layout == "base3" for W, _, _ in mats)

    def body(isa):
        for W, q, want in mats:
            for t in range(1, 41):
                np.testing.assert_array_equal(W.matmul_int32(q[:t]), want[:t], err_msg=f"{isa} {W.kernel} {W.shape} T={t}")

    each_isa(body)


def test_base3_is_smaller_and_policy_forces_it():
    rng = np.random.default_rng(9)
    c = rand_codes(rng, 1000, 2048)
    d, b = (T.TernaryMatrix.from_codes(c, 1.0, lay) for lay in ("decode", "base3"))
    assert d.packed_bytes == 1000 * 2048 // 4
    assert b.packed_bytes == 200 * 2048 + 1000 * 4  # 5 rows per byte per column, + row sums
    assert b.packed_bytes < 0.82 * d.packed_bytes
    T.set_layout_policy("base3")
    try:
        assert T.get_layout_policy() == "base3"
        assert T.TernaryMatrix.from_codes(c, 1.0).layout == "base3"
        assert T.TernaryMatrix.from_tq1_0(T.pack_tq1_0(c, 1.0), 1000, 2048, 1.0).layout == "base3"
    finally:
        T.set_layout_policy("auto")
    with pytest.raises(ValueError, match="base3"):
        T.set_layout_policy("tq1")


def test_packing_policy_from_the_environment(tmp_path):
    import subprocess
    import sys

    code = ("from bitmamba.ops import ternary as T; import numpy as np; "
            "print(T.get_layout_policy(), T.TernaryMatrix.from_codes(np.ones((600, 640), np.int8), 1.0).layout)")
    env = dict(__import__("os").environ, BITMAMBA_PACKING="base3")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["base3", "base3"]
    env["BITMAMBA_PACKING"] = "bogus"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "BITMAMBA_PACKING" in r.stderr and "base3" in r.stderr


def test_measure_read_bandwidth():
    from bitmamba._native import native

    gbs = native().measure_read_bandwidth(n_bytes=16 << 20, threads=1, repeats=1)
    assert 0.05 < gbs < 10000
    with pytest.raises(ValueError):
        native().measure_read_bandwidth(n_bytes=10)
