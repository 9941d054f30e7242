"""The engine's float arithmetic is defined, not approximate: for the BitMamba-2 layout its logits equal
bitmamba.reference.forward(..., np.float32) bit for bit, on every kernel set this CPU runs, for prefill,
decode and GGUF files alike (csrc/core/float_semantics.h, bitmamba/numerics.py), and with every weight
packing forced (2-bit decode, 2-bit LUT, 1.6-bit base-3): the packings change only how the exact integer
products are computed, never the float epilogue around them.

Bit-exactness matters here because a BitLinear rounds x * s to int8: any float difference, however small,
can flip a value sitting near a .5 boundary, and one flip moves later logits by ~1e-2 (test_engine_golden).
"""
import json

import numpy as np
import pytest

import bitmamba
from bitmamba import numerics, reference
from bitmamba.formats.bit2 import read_bit2
from bitmamba.ops import ternary as T
from engine_fixtures import random_weights, write_bit2, write_gguf

GOLDEN = ["bit2-random-d128-l2-h2-v512", "bit2-random-d256-l4-h4-v2048"]



@pytest.fixture(params=T.LAYOUTS)
def packing(request):
    """Build the models of the test in this weight packing (the policy every loader applies)."""
    before = T.get_layout_policy()
    T.set_layout_policy(request.param)
    yield request.param
    T.set_layout_policy(before)


def _assert_packing(model, packing):
    got = {(m, p) for m, p, _ in model.native.kernel_choices()}
    assert got == {(m, packing) for m in ("in_proj", "out_proj", "lm_head")}, got


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
def test_golden_models_prefill_equals_reference_bitwise(golden_dir, name, isa, packing):
    ck = read_bit2(golden_dir / f"{name}.bin")
    model = bitmamba.load(golden_dir / f"{name}.bin")
    _assert_packing(model, packing)
    for i, case in enumerate(json.loads((golden_dir / f"{name}.json").read_text())["cases"]):
        ids = case["prompt"] + case["greedy"]
        want = reference.forward(ck, ids, np.float32)
        _assert_bits_equal(model.logits(ids), want, f"{name} case {i} [{isa}, {packing}]")


@pytest.mark.parametrize("shape,T", [
    (dict(d_model=64, n_layers=1, n_heads=2), 1),        # one token
    (dict(d_model=100, n_layers=2, n_heads=5), 37),      # K = 100 / 200: pairwise sums with tails
    (dict(d_model=512, n_layers=2, n_heads=8), 300),     # K > 128: recursive pairwise; > one 256-token chunk
])
def test_random_models_prefill_and_decode_equal_reference_bitwise(tmp_path, shape, T, isa, packing):
    path, rng = _random_bit2(tmp_path, seed=shape["d_model"], **shape)
    ck = read_bit2(path)
    model = bitmamba.load(path)
    _assert_packing(model, packing)
    ids = rng.integers(0, ck.config.vocab_size, size=T).tolist()
    want = reference.forward(ck, ids, np.float32)
    _assert_bits_equal(model.logits(ids), want, f"prefill [{isa}, {packing}]")
    # Decode: a prefill of part of the prompt, then one token at a time (the generate path).
    st = model.new_state()
    k = T // 2
    if k:
        model.feed(ids[:k], st)
    for t in range(k, T):
        model.feed([ids[t]], st)
        _assert_bits_equal(st.logits, want[t], f"decode step {t} [{isa}, {packing}]")


def test_gguf_converted_from_bit2_gives_the_same_bits(golden_dir, tmp_path):
    from bitmamba.convert import convert

    name = GOLDEN[1]
    src = golden_dir / f"{name}.bin"
    dst = tmp_path / "m.gguf"
    convert(src, dst)
    ids = json.loads((golden_dir / f"{name}.json").read_text())["cases"][0]["prompt"] + [1, 2, 3]
    _assert_bits_equal(bitmamba.load(dst).logits(ids), bitmamba.load(src).logits(ids), "GGUF vs BIT2")


@pytest.mark.parametrize("ternary", ["TQ1_0", "TQ2_0"])
def test_tq_gguf_in_every_packing_gives_the_reference_bits(tmp_path, ternary, packing):
    # A GGUF of 256-multiple rows (TQ1_0 / TQ2_0 tensors), loaded into each packing, then prefill and
    # batched decode steps (the server's path) against the reference.
    pytest.importorskip("gguf")
    from bitmamba._native import native
    from bitmamba.formats.gguf_io import read_gguf

    rng = np.random.default_rng(21)
    w, cfg = random_weights(rng, vocab=256, d_model=256, n_layers=2, n_heads=4)
    path = tmp_path / f"m-{ternary}.gguf"
    write_gguf(path, w, cfg, ternary=ternary)
    ck = read_gguf(path)
    model = bitmamba.load(path)
    _assert_packing(model, packing)
    prompts = [rng.integers(0, 256, size=n).tolist() for n in (7, 12, 1)]
    sts, gens = [], []
    for ids in prompts:
        st = model.new_state()
        model.feed(ids, st)
        _assert_bits_equal(st.logits, reference.forward(ck, ids, np.float32)[-1], f"prefill [{ternary}, {packing}]")
        sts.append(st)
        gens.append(model._generator([], st, dict(max_new_tokens=4, temperature=0.0, top_k=0, top_p=1.0,
                                                 min_p=0.0, repeat_penalty=1.0, repeat_window=0, seed=0),
                                     ignore_eos=True))
    for step in range(3):
        toks = native().batch_step(model.native, gens, [], [])
        for ids, tok, st in zip(prompts, toks, sts):
            ids.append(tok)
            want = reference.forward(ck, ids, np.float32)[-1]
            _assert_bits_equal(st.logits, want, f"batched decode step {step} [{ternary}, {packing}]")


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
