"""The engine's transcendental functions are defined, not borrowed (bitmamba/numerics.py,
csrc/core/float_semantics.h): log1p_f32 is the correctly rounded float32 log1p, the C++ and numpy versions
give the same bits, and the float32 reference gives the same bits whatever numpy's CPU dispatch picks.

Why: numpy's float32 log1p and exp (and its float64 log on AVX-512) are SIMD loops whose last bits depend on
the CPU and on numpy's build; a reference that used them matched the engine on one machine and failed
test_engine_exact.py on another.
"""
import decimal
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bitmamba
from bitmamba import numerics, reference
from bitmamba.formats.bit2 import read_bit2
from engine_fixtures import random_weights, write_bit2
from skips import not_applicable

F32_MAX = np.finfo(np.float32).max


def _log1p_arguments():
    """Random arguments over the whole domain, and the edges: zeros, subnormals, the small-argument
    threshold 2^-29 and its neighbours, 1, values near -1, huge values, the special values."""
    rng = np.random.default_rng(17)
    tiny = np.float32(2.0 ** -29)
    edges = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40, np.finfo(np.float32).tiny, tiny, -tiny,
                      np.nextafter(tiny, np.float32(0)), np.nextafter(-tiny, np.float32(0)),
                      np.nextafter(tiny, np.float32(1)), 1.0, -0.5, 0.41421356, -0.29289322, 1 - 2.0 ** -24,
                      -1 + 2.0 ** -24, 2.0 ** 53, 2.0 ** 60, F32_MAX, -1.0, -1.5, -np.inf, np.inf, np.nan],
                     np.float32)
    mags = np.exp2(rng.uniform(-40, 128, 4000))
    with np.errstate(over="ignore"):
        rand = np.concatenate([rng.uniform(-1, 1, 4000), np.minimum(mags, F32_MAX),
                               -1 + np.exp2(rng.uniform(-24, -1, 1000)), rng.uniform(0, 100, 1000)])
    return np.concatenate([edges, rand.astype(np.float32)])


_CTX = decimal.Context(prec=50)


def _correctly_rounded_log1p(y: np.float32):
    """(the correctly rounded float32 log1p(y), relative distance of the exact value to the nearest float32
    rounding boundary), from a 50-digit decimal logarithm."""
    y = float(y)
    if np.isnan(y) or y < -1:
        return np.float32(np.nan), 1.0
    if y == -1:
        return np.float32(-np.inf), 1.0
    if np.isinf(y) or y == 0:
        return np.float32(y), 1.0
    exact = _CTX.ln(_CTX.add(1, decimal.Decimal(y)))
    c = np.float32(float(exact))
    nbrs = [np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf))]
    best = min(nbrs, key=lambda f: abs(decimal.Decimal(float(f)) - exact))
    mids = [(decimal.Decimal(float(best)) + decimal.Decimal(float(np.nextafter(best, np.float32(s))))) / 2
            for s in (-np.inf, np.inf)]
    return best, float(min(abs(exact - m) for m in mids) / abs(exact))


def _same_bits(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


def test_log1p_f32_is_the_correctly_rounded_float32_log1p():
    x = _log1p_arguments()
    got = numerics.log1p_f32(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    wrong = []
    for y, g in zip(x, got):
        want, boundary = _correctly_rounded_log1p(y)
        # Allowed only where the exact value lies within 1e-15 relative of a rounding boundary (the double
        # evaluation is within ~2e-16 of it); none of these arguments is that close.
        if not _same_bits(g, want) and boundary > 1e-15:
            wrong.append((float(y), float(g), float(want)))
    assert not wrong, f"{len(wrong)} of {x.size} wrong, e.g. {wrong[:5]}"
    # IEEE special values, and the sign of zero.
    assert np.signbit(numerics.log1p_f32(np.float32(-0.0)))
    assert numerics.log1p_f32(np.float32(-1)) == -np.inf
    assert np.isnan(numerics.log1p_f32(np.float32([-1.5, -np.inf, np.nan]))).all()


def test_softplus_f32_is_log1p_f32_of_exp_f32():
    v = np.linspace(-110, 30, 20001, dtype=np.float32)
    want = np.where(v > 20, v, numerics.log1p_f32(numerics.exp_f32(v)))
    assert _same_bits(numerics.softplus_f32(v), want).all()


def test_engine_log1p_softplus_and_silu_equal_numerics_bitwise(isa):
    """C++ and numpy give the same bits, through each kernel set's vector functions (the scalar set's are
    fp::log1p_f32 / softplus_f32 / silu_f32 themselves; the engine's dt uses those)."""
    from bitmamba._native import native

    x = _log1p_arguments()
    rng = np.random.default_rng(5)
    v = np.concatenate([rng.uniform(-120, 120, 20000), rng.uniform(-6, 22, 20000),
                        [0, -0.0, 20, 20.000002, 88.7, 89, -104, -150, 1e30, -1e30, np.inf, -np.inf, np.nan]])
    v = v.astype(np.float32)
    ssm = native().ssm
    with np.errstate(invalid="ignore"):  # silu(-inf) = -inf / inf is NaN, on both sides
        cases = [("log1p", x, numerics.log1p_f32(x)), ("softplus", v, numerics.softplus_f32(v)),
                 ("silu", v, numerics.silu_f32(v))]
    for name, arg, want in cases:
        got = ssm.float_function(name, arg)
        bad = ~_same_bits(got, want)
        assert not bad.any(), f"{name} [{isa}]: {int(bad.sum())} differ, e.g. {arg[bad][:5]}"
    with pytest.raises(ValueError, match="log1p"):
        ssm.float_function("tanh", v)


_NUMPY_TRANSCENDENTALS = ["exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "tanh", "sinh", "cosh",
                          "power", "float_power", "logaddexp", "logaddexp2"]


def test_float32_reference_calls_no_numpy_transcendental(tmp_path, monkeypatch):
    """Every transcendental of the float32 reference is one of numerics' explicit ones."""
    rng = np.random.default_rng(2)
    w, cfg = random_weights(rng, vocab=64, d_model=64, n_layers=2, n_heads=4)
    write_bit2(tmp_path / "m.bin", w, cfg)
    ck = read_bit2(tmp_path / "m.bin")
    want = reference.forward(ck, [1, 2, 3], np.float32)

    def forbidden(name):
        def f(*a, **k):
            raise AssertionError(f"the float32 reference called np.{name}")
        return f

    for name in _NUMPY_TRANSCENDENTALS:
        monkeypatch.setattr(np, name, forbidden(name))
    assert _same_bits(reference.forward(ck, [1, 2, 3], np.float32), want).all()


_CHILD = r"""
import json, sys
import numpy as np
from numpy._core import _multiarray_umath as mu
from bitmamba import numerics, reference
from bitmamba.formats.bit2 import read_bit2

model, ids, out, disabled = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4].split()
# The features really are off in this process (numpy ignores names it does not know).
off = [f for f in disabled if mu.__cpu_features__.get(f)]
assert not off, f"numpy still reports {off} enabled"
rng = np.random.default_rng(9)
x = np.concatenate([rng.uniform(-120, 120, 50000), rng.uniform(-1, 3, 50000)]).astype(np.float32)
np_exp = np.exp(x)  # numpy's own float32 exp: its loop follows the dispatch (the control)
np.savez(out, logits=reference.forward(read_bit2(model), ids, np.float32), exp=numerics.exp_f32(x),
         log1p=numerics.log1p_f32(np.abs(x) - 1), silu=numerics.silu_f32(x), softplus=numerics.softplus_f32(x),
         np_exp=np_exp, exp_target=json.dumps(getattr(mu, "__cpu_targets_info__", {}).get("exp", {}).get("ff")))
"""


def _dispatchable_features():
    from numpy._core import _multiarray_umath as mu

    return [f for f in mu.__cpu_dispatch__ if mu.__cpu_features__.get(f)]


def test_reference_bits_do_not_depend_on_numpy_cpu_dispatch(tmp_path):
    """The float32 reference run twice in fresh processes, once as numpy dispatches on this CPU and once
    with every dispatchable (non-baseline) feature it supports disabled (NPY_DISABLE_CPU_FEATURES):
    the same logits and function values, bit for bit."""
    features = _dispatchable_features()
    if not features:
        not_applicable("numpy dispatches no feature beyond its baseline on this CPU")
    rng = np.random.default_rng(4)
    w, cfg = random_weights(rng, vocab=128, d_model=100, n_layers=2, n_heads=5)
    model = tmp_path / "m.bin"
    write_bit2(model, w, cfg)
    ids = rng.integers(0, 128, 40).tolist()
    pkg_root = str(Path(bitmamba.__file__).resolve().parent.parent)
    runs = {}
    for label, disabled in (("native", ""), ("baseline", " ".join(features))):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]))
        env.pop("NPY_DISABLE_CPU_FEATURES", None)
        if disabled:
            env["NPY_DISABLE_CPU_FEATURES"] = disabled
        out = tmp_path / f"{label}.npz"
        r = subprocess.run([sys.executable, "-c", _CHILD, str(model), json.dumps(ids), str(out), disabled],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{label} run failed:\n{r.stderr[-3000:]}"
        runs[label] = np.load(out)
    a, b = runs["native"], runs["baseline"]
    for key in ("logits", "exp", "log1p", "silu", "softplus"):
        bad = ~_same_bits(a[key], b[key])
        assert not bad.any(), (f"{key}: {int(bad.sum())} of {bad.size} differ with numpy features "
                               f"{features} disabled")
    # The control: where numpy's own float32 exp changed its loop, its values changed too, so the
    # disabled features did change numpy's arithmetic in the child and the comparison above can fail.
    if str(a["exp_target"]) != str(b["exp_target"]):
        assert not _same_bits(a["np_exp"], b["np_exp"]).all()
