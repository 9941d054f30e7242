"""The engine's float arithmetic is defined, not approximate: for the BitMamba-2 layout its logits equal
bitmamba.reference.forward(..., np.float32) bit for bit, on every kernel set this CPU runs, for prefill,
decode and GGUF files alike (csrc/core/float_semantics.h, bitmamba/numerics.py).

Bit-exactness matters here because a BitLinear rounds x * s to int8: any float difference, however small,
can flip a value sitting near a .5 boundary, and one flip moves later logits by ~1e-2 (test_engine_golden).
"""
import json

import numpy as np
import pytest

import bitmamba
from bitmamba import numerics, reference
from bitmamba.formats.bit2 import read_bit2
from engine_fixtures import random_weights, write_bit2

GOLDEN = ["bit2-random-d128-l2-h2-v512", "bit2-random-d256-l4-h4-v2048"]



def _random_bit2(tmp_path, seed, **shape):
    rng = np.random.default_rng(seed)
    w, cfg = random_weights(rng, **shape)
    path = tmp_path / f"random-{seed}.bin"
    write_bit2(path, w, cfg)
    return path, rng


def _assert_bits_equal(got, want, what):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    assert got.shape == want.shape, what
    diff = got.view(np.uint32) != want.view(np.uint32)
    assert not diff.any(), (f"{what}: {int(diff.sum())} of {diff.size} logits differ, "
                            f"max |d| = {np.abs(got - want).max():.3g}")


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_models_prefill_equals_reference_bitwise(golden_dir, name, isa):
    ck = read_bit2(golden_dir / f"{name}.bin")
    model = bitmamba.load(golden_dir / f"{name}.bin")
    for i, case in enumerate(json.loads((golden_dir / f"{name}.json").read_text())["cases"]):
        ids = case["prompt"] + case["greedy"]
        want = reference.forward(ck, ids, np.float32)
        _assert_bits_equal(model.logits(ids), want, f"{name} case {i} [{isa}]")


@pytest.mark.parametrize("shape,T", [
    (dict(d_model=64, n_layers=1, n_heads=2), 1),        # one token
    (dict(d_model=100, n_layers=2, n_heads=5), 37),      # K = 100 / 200: pairwise sums with tails
    (dict(d_model=512, n_layers=2, n_heads=8), 300),     # K > 128: recursive pairwise; > one 256-token chunk
])
def test_random_models_prefill_and_decode_equal_reference_bitwise(tmp_path, shape, T, isa):
    path, rng = _random_bit2(tmp_path, seed=shape["d_model"], **shape)
    ck = read_bit2(path)
    model = bitmamba.load(path)
    ids = rng.integers(0, ck.config.vocab_size, size=T).tolist()
    want = reference.forward(ck, ids, np.float32)
    _assert_bits_equal(model.logits(ids), want, f"prefill [{isa}]")
    # Decode: a prefill of part of the prompt, then one token at a time (the generate path).
    st = model.new_state()
    k = T // 2
    if k:
        model.feed(ids[:k], st)
    for t in range(k, T):
        model.feed([ids[t]], st)
        _assert_bits_equal(st.logits, want[t], f"decode step {t} [{isa}]")


def test_gguf_converted_from_bit2_gives_the_same_bits(golden_dir, tmp_path):
    from bitmamba.convert import convert

    name = GOLDEN[1]
    src = golden_dir / f"{name}.bin"
    dst = tmp_path / "m.gguf"
    convert(src, dst)
    ids = json.loads((golden_dir / f"{name}.json").read_text())["cases"][0]["prompt"] + [1, 2, 3]
    _assert_bits_equal(bitmamba.load(dst).logits(ids), bitmamba.load(src).logits(ids), "GGUF vs BIT2")


def test_exp_f32_is_correctly_rounded_and_matches_the_engine_silu(isa):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-104, 89, 200_000), rng.uniform(-3, 3, 100_000)]).astype(np.float32)
    got = numerics.exp_f32(x)
    with np.errstate(over="ignore"):
        want = np.exp(x.astype(np.float64)).astype(np.float32)
    assert np.mean(got != want) < 1e-5  # differs only within ~1e-16 of a float rounding boundary
    fin = np.isfinite(want)
    assert np.array_equal(got[~fin], want[~fin])
    assert np.all(np.abs(got[fin].astype(np.float64) - want[fin]) <= np.spacing(want[fin]).astype(np.float64))
    # The engine's silu, through gate_silu on y = 1: 1 * silu(z) is silu(z) exactly.
    from bitmamba._native import native

    z = np.concatenate([x, np.float32([0, -0.0, 150, -150, 1e30, -1e30])])[None, :]
    y = np.ones_like(z)
    native().ssm.gate_silu(y, z)
    _assert_bits_equal(y[0], numerics.silu_f32(z[0]), f"silu [{isa}]")
