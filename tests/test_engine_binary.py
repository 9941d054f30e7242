"""Binary (1-bit) models end to end (docs/binary.md): the engine's logits equal
bitmamba.reference.forward(..., np.float32) bit for bit for random binary checkpoints (the mamba2 layout to
float32 rounding, as for ternary models) of odd shapes (K tails inside a byte and inside a 128-column block), in prefill, decode and batched decode,
on every kernel set; the GGUF encoding round-trips exactly; a PyTorch directory in the contract's naming
converts and runs; broken files fail with one-line FormatErrors naming the tensor or key."""
import json

import numpy as np
import pytest

import bitmamba
from bitmamba import reference
from bitmamba.config import BitMambaConfig
from bitmamba.formats.checkpoint import Binary, Checkpoint, NonFiniteError, Ternary, binarize, expected_shapes
from bitmamba.numerics import exp_f32

pytest.importorskip("bitmamba._C")
gguf = pytest.importorskip("gguf")

from bitmamba._native import native  # noqa: E402
from bitmamba.formats.gguf_io import gguf_tensor_names, read_gguf, write_gguf  # noqa: E402


def _assert_bits_equal(got, want, what, layout="bitmamba2"):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    assert got.shape == want.shape, what
    if layout == "mamba2":
        # The engine's mamba2 layout (grouped scan, gated RMSNorm) sums floats in another order than the
        # reference, for ternary models as much as binary ones (docs/engine.md, "Exactness": bit for bit
        # is the BitMamba-2 layout's promise); the integer products stay exact, so the logits agree to
        # float32 rounding (observed <= 2e-6).
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4, err_msg=what)
        return
    diff = got.view(np.uint32) != want.view(np.uint32)
    assert not diff.any(), (f"{what}: {int(diff.sum())} of {diff.size} logits differ, "
                            f"max |d| = {np.abs(got - want).max():.3g}")


def random_binary_checkpoint(rng, vocab=200, d_model=100, n_layers=2, n_heads=4, layout="bitmamba2", d_state=1,
                             n_groups=None) -> Checkpoint:
    """A random binary model: every value a float32, signs uniform, alpha > 0 of a size that keeps the
    activations O(1), small beta (some rows exactly zero), a ternary lm_head."""
    kw = dict(vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads, layout=layout,
              d_state=d_state, eos_token_id=vocab - 1, weights="binary")
    if n_groups is not None:
        kw["n_groups"] = n_groups
    cfg = BitMambaConfig(**kw)
    f32 = lambda *s, lo=-1.0, hi=1.0: rng.uniform(lo, hi, size=s).astype(np.float32)  # noqa: E731
    t = {}
    for name, shape in expected_shapes(cfg).items():
        if name.endswith(("in_proj.weight", "out_proj.weight")):
            rows, cols = shape
            alpha = f32(rows, lo=0.5, hi=2.0) / np.float32(np.sqrt(cols))
            beta = f32(rows, lo=-0.05, hi=0.05)
            beta[::5] = 0
            t[name] = Binary(rng.choice(np.int8([-1, 1]), size=shape), alpha, beta)
        elif name == "lm_head.weight":
            t[name] = Ternary(rng.integers(-1, 2, size=shape).astype(np.int8), np.float32(rng.uniform(1, 3)))
        elif name.endswith("norm.weight"):
            t[name] = f32(*shape, lo=0.5, hi=1.5)
        elif name.endswith("conv1d.weight"):
            t[name] = f32(*shape, lo=-0.5, hi=0.5)
        elif name.endswith("conv1d.bias"):
            t[name] = f32(*shape, lo=-0.1, hi=0.1)
        elif name.endswith("dt_bias"):
            t[name] = f32(*shape, lo=-3, hi=0)
        elif name.endswith("A_log"):
            t[name] = f32(*shape, lo=0, hi=2)
        elif name.endswith(".D"):
            t[name] = f32(*shape, lo=0.5, hi=1.5)
        else:  # the embedding
            t[name] = f32(*shape)
    ck = Checkpoint(cfg, t, name="random-binary")
    ck.validate()
    return ck


SHAPES = [
    # in_proj K = 100 (a byte tail of 4 bits), out_proj K = 200; one token.
    (dict(d_model=100, n_layers=1, n_heads=4), 1),
    # K = 100 / 200 again over a prompt that crosses nothing but a decode run.
    (dict(d_model=100, n_layers=2, n_heads=5), 37),
    # K = 136 / 272: more than one 128-column block with a tail in the second; > one 256-token chunk.
    (dict(d_model=136, n_layers=2, n_heads=4), 300),
    # the canonical Mamba-2 layout (conv over x|B|C, gated norm): K = 72 / 144.
    (dict(d_model=72, n_layers=2, n_heads=4, layout="mamba2", d_state=8, n_groups=2), 29),
]


@pytest.mark.parametrize("shape,T", SHAPES)
def test_binary_prefill_and_decode_equal_reference_bitwise(tmp_path, shape, T, isa):
    rng = np.random.default_rng(shape["d_model"] + T)
    ck = random_binary_checkpoint(rng, **shape)
    path = tmp_path / "b.gguf"
    write_gguf(ck, path)
    model = bitmamba.load(path)
    assert model.config["weights"] == "binary"
    choices = {m: (p, k) for m, p, k in model.kernel_choices()}
    assert choices["in_proj"][0] == choices["out_proj"][0] == "binary"
    assert choices["lm_head"][0] != "binary"
    ids = rng.integers(0, ck.config.vocab_size, size=T).tolist()
    want = reference.forward(ck, ids, np.float32)
    assert np.isfinite(want).all() and np.abs(want).max() > 0.1  # the test sees real values
    layout = ck.config.layout
    _assert_bits_equal(model.logits(ids), want, f"prefill [{isa}]", layout)
    st = model.new_state()
    k = T // 2
    if k:
        model.feed(ids[:k], st)
    for t in range(k, T):
        model.feed([ids[t]], st)
        _assert_bits_equal(st.logits, want[t], f"decode step {t} [{isa}]", layout)


@pytest.mark.parametrize("layout", ["bitmamba2", "mamba2"])
def test_binary_batched_decode_equals_reference_bitwise(tmp_path, layout, isa):
    # The server's path: several sequences through batch_step (Model::forward_batch), decoders and a
    # prefill chunk in the same step.
    rng = np.random.default_rng(5)
    extra = dict(layout="mamba2", d_state=4, n_groups=2) if layout == "mamba2" else {}
    ck = random_binary_checkpoint(rng, vocab=150, d_model=84, n_layers=2, n_heads=4, **extra)
    path = tmp_path / "b.gguf"
    write_gguf(ck, path)
    model = bitmamba.load(path)
    opt = dict(max_new_tokens=8, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
               repeat_window=0, seed=0)
    prompts = [rng.integers(0, 150, size=n).tolist() for n in (5, 11, 1)]
    sts, gens = [], []
    for ids in prompts:
        st = model.new_state()
        model.feed(ids, st)
        sts.append(st)
        gens.append(model._generator([], st, opt, ignore_eos=True))
    late = rng.integers(0, 150, size=9).tolist()
    late_st = model.new_state()
    late_gen = model._generator(late, late_st, opt, ignore_eos=True, prime=False)  # batch_step feeds it
    for step in range(3):
        prefill, chunks = ([late_gen], [late]) if step == 1 else ([], [])
        toks = native().batch_step(model.native, gens, prefill, chunks)
        for ids, tok, st in zip(prompts, toks, sts):
            ids.append(tok)
            _assert_bits_equal(st.logits, reference.forward(ck, ids, np.float32)[-1], f"step {step} [{isa}]", layout)
        if step == 1:
            _assert_bits_equal(late_st.logits, reference.forward(ck, late, np.float32)[-1], f"prefill [{isa}]",
                               layout)


def test_binary_gguf_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(11)
    ck = random_binary_checkpoint(rng, d_model=100, n_layers=2, n_heads=4)
    write_gguf(ck, tmp_path / "a.gguf")
    back = read_gguf(tmp_path / "a.gguf")
    assert back.config.weights == "binary"
    assert set(back.tensors) == set(ck.tensors)
    for n, t in ck.tensors.items():
        u = back.tensors[n]
        assert type(u) is type(t), n
        if isinstance(t, Binary):
            assert np.array_equal(u.signs, t.signs), n
            assert u.alpha.tobytes() == t.alpha.tobytes() and u.beta.tobytes() == t.beta.tobytes(), n
        elif isinstance(t, Ternary):
            assert np.array_equal(u.codes, t.codes) and u.scale.tobytes() == t.scale.tobytes(), n
        else:
            assert np.asarray(u, np.float32).tobytes() == np.asarray(t, np.float32).tobytes(), n
    # ... and writing it again gives the same file.
    write_gguf(back, tmp_path / "b.gguf")
    assert (tmp_path / "a.gguf").read_bytes() == (tmp_path / "b.gguf").read_bytes()


def test_bits_encoding_is_the_documented_one(tmp_path):
    # docs/binary.md: bit i (LSB first) of byte j of row r is column 8 j + i, set = +1, padding 0. Decoded
    # here with an explicit loop, independent of the writer's numpy packbits.
    from bitmamba.formats.gguf_reader import GGUFFile

    rng = np.random.default_rng(2)
    ck = random_binary_checkpoint(rng, d_model=100, n_layers=1, n_heads=4)
    write_gguf(ck, tmp_path / "m.gguf")
    r = GGUFFile(tmp_path / "m.gguf")
    assert r.fields["bitmamba2.weights"] == "binary"
    assert "blk.0.ssm_in.weight" not in r.tensors and "blk.0.ssm_in.scale" not in r.tensors
    signs = ck.tensors["layers.0.in_proj.weight"].signs
    t = r.tensors["blk.0.ssm_in.bits"]
    assert t.type_name == "I8" and t.shape == (signs.shape[0], 13)
    raw = np.asarray(t.data).view(np.uint8)
    for row in range(signs.shape[0]):
        for c in range(104):
            bit = (int(raw[row, c // 8]) >> (c % 8)) & 1
            assert bit == (int(signs[row, c] > 0) if c < 100 else 0), (row, c)
    assert r.tensors["blk.0.ssm_in.alpha"].type_name == "F32"
    assert r.tensors["blk.0.ssm_in.beta"].shape == (signs.shape[0],)
    assert "output.scale" in r.tensors  # the head stays ternary


def test_binarize_signs_and_non_finite():
    w = np.float32([[0.5, -0.0, 0.0, -1e-30], [-2, 3, 0, -0.25]])
    b = binarize(w, [0.1, 0.2], [0.0, -0.1], "p")
    assert b.signs.tolist() == [[1, 1, 1, -1], [-1, 1, 1, -1]]  # zero (either sign) counts as +1
    assert b.alpha.dtype == np.float32 and b.beta.tolist() == [0.0, np.float32(-0.1)]
    for bad in (dict(w=np.float32([[np.nan, 1]])), dict(alpha=[np.inf]), dict(beta=[np.nan])):
        args = dict(w=np.float32([[1, 1]]), alpha=[1.0], beta=[0.0])
        args.update(bad)
        with pytest.raises(NonFiniteError, match="p: 1 NaN/Inf values in the"):
            binarize(args["w"], args["alpha"], args["beta"], "p")
    with pytest.raises(ValueError, match=r"alpha and beta need shape \(2,\)"):
        binarize(w, [1.0], [0.0, 0.0], "p")
    with pytest.raises(ValueError, match="-1 or \\+1"):
        Binary(np.int8([[0, 1]]), [1.0], [0.0])


# ---- a PyTorch directory in the contract's naming, written with numpy + safetensors -------------------
def _write_pytorch_dir(d, ck: Checkpoint, latent_rng):
    """config.json + model.safetensors as a binary training run saves them: latent float weights whose
    signs are the checkpoint's (magnitudes random, some exact zeros that must read as +1), alpha, beta."""
    from safetensors.numpy import save_file

    d.mkdir()
    sd = {}
    for n, t in ck.tensors.items():
        if isinstance(t, Binary):
            mag = latent_rng.uniform(0, 0.1, size=t.shape).astype(np.float32)
            mag[t.signs > 0] *= latent_rng.integers(0, 2, size=int((t.signs > 0).sum()))  # exact zeros -> +1
            sd[n] = np.where(t.signs > 0, mag, -mag - np.float32(1e-6)).astype(np.float32)
            sd[n[: -len(".weight")] + ".alpha"] = t.alpha
            sd[n[: -len(".weight")] + ".beta"] = t.beta
        elif isinstance(t, Ternary):
            sd[n] = (t.codes.astype(np.float32) / t.scale).astype(np.float32)
        else:
            sd[n] = np.asarray(t, np.float32)
    save_file(sd, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps({"model_type": "bitmamba2", **ck.config.to_dict()}))
    return sd


def test_pytorch_binary_directory_converts_and_runs_exactly(tmp_path, capsys):
    from bitmamba.cli import main
    from bitmamba.formats.pytorch_dir import read_pytorch_dir

    rng = np.random.default_rng(8)
    ck = random_binary_checkpoint(rng, vocab=256, d_model=100, n_layers=2, n_heads=4)
    _write_pytorch_dir(tmp_path / "ckpt", ck, rng)
    got = read_pytorch_dir(tmp_path / "ckpt")
    assert got.config.weights == "binary"
    for n, t in ck.tensors.items():
        if isinstance(t, Binary):
            u = got.tensors[n]
            assert np.array_equal(u.signs, t.signs), n
            assert u.alpha.tobytes() == t.alpha.tobytes() and u.beta.tobytes() == t.beta.tobytes(), n
    out = tmp_path / "m.gguf"
    assert main(["convert", str(tmp_path / "ckpt"), str(out), "--no-tokenizer"]) == 0
    report = capsys.readouterr().out
    assert "binary in_proj / out_proj" in report
    # in_proj: K = 100 -> 13 bytes of bits + 8 of alpha/beta per row = 168 bits per 100 weights; out_proj:
    # K = 200 -> 25 + 8 bytes = 264 bits per 200; lm_head: rows of 100 are I8 codes + the 4-byte scale.
    bpw = "bits/weight: in_proj 1.680 (binary), out_proj 1.320 (binary), lm_head 8.001 (I8)"
    assert bpw in report, report
    assert "% +1 overall" in report and "alpha mean" in report
    ids = rng.integers(0, 256, size=23).tolist()
    # The reference runs what the reader made of the directory (its lm_head re-quantized from the latent
    # float weight, as a training run's would be).
    _assert_bits_equal(bitmamba.load(out).logits(ids), reference.forward(got, ids, np.float32), "converted")


def test_converter_refuses_float_teachers_and_bit2_for_binary(tmp_path, capsys):
    from bitmamba.cli import main

    rng = np.random.default_rng(9)
    ck = random_binary_checkpoint(rng, vocab=64, d_model=64, n_layers=1, n_heads=2)
    _write_pytorch_dir(tmp_path / "bin", ck, rng)
    assert main(["convert", str(tmp_path / "bin"), str(tmp_path / "m.bin")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "BIT2 holds ternary models only" in err
    assert not (tmp_path / "m.bin").exists()
    cfg = json.loads((tmp_path / "bin" / "config.json").read_text())
    (tmp_path / "bin" / "config.json").write_text(json.dumps({**cfg, "weights": "float"}))
    assert main(["convert", str(tmp_path / "bin"), str(tmp_path / "f.gguf")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "weights: float" in err and "teacher" in err
    assert not (tmp_path / "f.gguf").exists()
    from bitmamba.formats.bit2 import write_bit2

    with pytest.raises(ValueError, match="BIT2 holds ternary models only"):
        write_bit2(ck, tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()


def test_pytorch_binary_directory_errors(tmp_path):
    from bitmamba.convert import ConversionError, convert

    rng = np.random.default_rng(10)
    ck = random_binary_checkpoint(rng, vocab=64, d_model=64, n_layers=1, n_heads=2)
    sd = _write_pytorch_dir(tmp_path / "c", ck, rng)
    from safetensors.numpy import save_file

    def with_state(**changes):
        s = dict(sd)
        for k, v in changes.items():
            if v is None:
                s.pop(k)
            else:
                s[k] = v
        save_file(s, str(tmp_path / "c" / "model.safetensors"))

    with_state(**{"layers.0.out_proj.beta": None})
    with pytest.raises(ValueError, match="lacks layers.0.out_proj.beta"):
        convert(tmp_path / "c", tmp_path / "o.gguf", embed_tokenizer=False)
    with_state(**{"layers.0.in_proj.alpha": np.ones(3, np.float32)})
    with pytest.raises(ValueError, match=r"layers.0.in_proj.alpha has shape \(3,\)"):
        convert(tmp_path / "c", tmp_path / "o.gguf", embed_tokenizer=False)
    a = sd["layers.0.in_proj.alpha"].copy()
    a[2] = np.nan
    with_state(**{"layers.0.in_proj.alpha": a})
    with pytest.raises(ConversionError, match="layers.0.in_proj.weight: 1 NaN/Inf values in the alpha"):
        convert(tmp_path / "c", tmp_path / "o.gguf", embed_tokenizer=False)
    assert not (tmp_path / "o.gguf").exists()


# ---- broken binary files: one-line FormatErrors ---------------------------------------------------
def _write_raw(path, ck: Checkpoint, weights="binary", skip=(), replace=None, add=None):
    """A GGUF of `ck` written here tensor by tensor (not by gguf_io), so a test can leave a tensor out,
    replace one, add one, or give bitmamba2.weights another value."""
    replace, add = replace or {}, add or {}
    cfg = ck.config
    w = gguf.GGUFWriter(str(path), "bitmamba2")
    a = "bitmamba2."
    for k, v in (("vocab_size", cfg.vocab_size), ("embedding_length", cfg.d_model), ("block_count", cfg.n_layers),
                 ("ssm.inner_size", cfg.d_inner), ("ssm.head_count", cfg.n_heads), ("ssm.state_size", cfg.d_state),
                 ("ssm.group_count", cfg.n_groups), ("ssm.conv_kernel", cfg.d_conv)):
        w.add_uint32(a + k, v)
    w.add_string(a + "ssm.layout", cfg.layout)
    if weights is not None:
        w.add_string(a + "weights", weights)
    tensors = {}
    for src, dst in gguf_tensor_names(cfg).items():
        t = ck.tensors[src]
        base = dst[: -len(".weight")]
        if isinstance(t, Binary):
            rows, cols = t.shape
            bits = np.zeros((rows, (cols + 7) // 8), np.uint8)
            for c in range(cols):
                bits[:, c // 8] |= (t.signs[:, c] > 0).astype(np.uint8) << (c % 8)
            tensors[base + ".bits"] = bits.view(np.int8)
            tensors[base + ".alpha"] = t.alpha
            tensors[base + ".beta"] = t.beta
        elif isinstance(t, Ternary):
            tensors[dst] = t.codes
            tensors[base + ".scale"] = np.array([t.scale], np.float32)
        elif src.endswith("A_log"):
            tensors[dst] = -exp_f32(np.asarray(t, np.float32))
        elif src.endswith("conv1d.weight"):
            tensors[dst] = np.asarray(t, np.float32).reshape(cfg.conv_dim, cfg.d_conv)
        else:
            tensors[dst] = np.asarray(t, np.float32)
    tensors.update(replace)
    tensors.update(add)
    for name, arr in tensors.items():
        if name not in skip:
            w.add_tensor(name, np.ascontiguousarray(arr))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def small_binary():
    return random_binary_checkpoint(np.random.default_rng(4), vocab=64, d_model=60, n_layers=2, n_heads=2)


def _both_loaders_refuse(path, pattern):
    """The engine (bitmamba.load) and the converter's reader (read_gguf) both refuse, in one line."""
    for load in (bitmamba.load, read_gguf):
        with pytest.raises(bitmamba.FormatError, match=pattern) as e:
            load(path)
        assert "\n" not in str(e.value), str(e.value)


def test_the_independent_writer_gives_a_file_that_runs_exactly(tmp_path, small_binary):
    # The control for the broken files below: untouched, this writer's file is a good model.
    _write_raw(tmp_path / "ok.gguf", small_binary)
    ids = [1, 5, 9, 33, 2]
    _assert_bits_equal(bitmamba.load(tmp_path / "ok.gguf").logits(ids),
                       reference.forward(small_binary, ids, np.float32), "independent writer")


def _alpha(ck, i=1, proj="out_proj"):
    return ck.tensors[f"layers.{i}.{proj}.weight"].alpha.copy()


@pytest.mark.parametrize("case,pattern", [
    ("missing_bits", r"missing tensor '?blk\.1\.ssm_in\.bits"),
    ("missing_beta", r"missing tensor '?blk\.0\.ssm_out\.beta"),
    ("bits_shape", r"blk\.0\.ssm_in\.bits'? has shape"),
    ("bits_type", r"blk\.0\.ssm_in\.bits'? has type"),
    ("alpha_type", r"blk\.1\.ssm_out\.alpha'? has type"),
    ("nan_alpha", r"blk\.1\.ssm_out\.alpha'? holds .*NaN/Inf"),
    ("inf_beta", r"blk\.0\.ssm_in\.beta'? holds .*NaN/Inf"),
    ("padding_bits", r"blk\.0\.ssm_in\.bits'?:? row 3 has set bits past column 60"),
    ("mixed", r"blk\.0\.ssm_out'? is stored both binary .* and ternary"),
    ("ternary_in_binary", r"blk\.0\.ssm_out\.weight'? is ternary, but bitmamba2\.weights is 'binary'"),
    ("unknown_weights", r"bitmamba2\.weights'? (=|is) '?quaternary"),
    ("float_weights", r"bitmamba2\.weights'? (=|is) '?float"),
    ("binary_in_ternary", r"blk\.0\.ssm_in\.bits'? is binary, but bitmamba2\.weights is '?ternary"),
])
def test_broken_binary_files_give_one_line_format_errors(tmp_path, small_binary, case, pattern):
    ck = small_binary
    rows_in = ck.config.in_proj_dim
    kw = {}
    if case == "missing_bits":
        kw = dict(skip=("blk.1.ssm_in.bits",))
    elif case == "missing_beta":
        kw = dict(skip=("blk.0.ssm_out.beta",))
    elif case == "bits_shape":
        kw = dict(replace={"blk.0.ssm_in.bits": np.zeros((rows_in, 7), np.int8)})
    elif case == "bits_type":
        kw = dict(replace={"blk.0.ssm_in.bits": np.zeros((rows_in, 8), np.float32)})
    elif case == "alpha_type":
        kw = dict(replace={"blk.1.ssm_out.alpha": _alpha(ck).astype(np.float16)})
    elif case == "nan_alpha":
        a = _alpha(ck)
        a[7] = np.nan
        kw = dict(replace={"blk.1.ssm_out.alpha": a})
    elif case == "inf_beta":
        b = ck.tensors["layers.0.in_proj.weight"].beta.copy()
        b[0] = -np.inf
        kw = dict(replace={"blk.0.ssm_in.beta": b})
    elif case == "padding_bits":
        bits = np.zeros((rows_in, 8), np.uint8)
        bits[3, 7] = 0x10  # column 60: past the 60 columns of d_model
        kw = dict(replace={"blk.0.ssm_in.bits": bits.view(np.int8)})
    elif case == "mixed":
        kw = dict(add={"blk.0.ssm_out.weight": np.zeros((ck.config.d_model, ck.config.d_inner), np.int8),
                       "blk.0.ssm_out.scale": np.ones(1, np.float32)})
    elif case == "ternary_in_binary":
        kw = dict(skip=("blk.0.ssm_out.bits", "blk.0.ssm_out.alpha", "blk.0.ssm_out.beta"),
                  add={"blk.0.ssm_out.weight": np.zeros((ck.config.d_model, ck.config.d_inner), np.int8),
                       "blk.0.ssm_out.scale": np.ones(1, np.float32)})
    elif case == "unknown_weights":
        kw = dict(weights="quaternary")
    elif case == "float_weights":
        kw = dict(weights="float")
    elif case == "binary_in_ternary":
        kw = dict(weights=None)
    _write_raw(tmp_path / "bad.gguf", ck, **kw)
    _both_loaders_refuse(tmp_path / "bad.gguf", pattern)


@pytest.mark.parametrize("keep", [0.3, 0.7, 0.999])
def test_truncated_binary_file(tmp_path, small_binary, keep):
    _write_raw(tmp_path / "ok.gguf", small_binary)
    data = (tmp_path / "ok.gguf").read_bytes()
    (tmp_path / "t.gguf").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(bitmamba.FormatError) as e:
        bitmamba.load(tmp_path / "t.gguf")
    assert "\n" not in str(e.value)


# ---- random binary models for benchmarks -----------------------------------------------------------
def _padded(n, m):
    return -(-n // m) * m


def test_random_binary_model_reports_the_binary_kernel_and_bytes():
    from bitmamba.ops import ternary as T

    shape = dict(vocab_size=300, d_model=96, n_layers=3, d_inner=192, n_heads=4, n_groups=4)
    before = T.get_layout_policy()
    T.set_layout_policy("decode")  # a known ternary byte count: 2 bits a weight, rows by 4, K by 128
    try:
        b = bitmamba.Model.random("custom", embed="f32", seed=3, weights="binary", **shape)
        t = bitmamba.Model.random("custom", embed="f32", seed=3, **shape)
    finally:
        T.set_layout_policy(before)
    assert b.config["weights"] == "binary" and t.config["weights"] == "ternary"
    ch = b.kernel_choices()
    assert [m for m, _, _ in ch] == ["in_proj", "out_proj", "lm_head"]
    assert ch[0][1] == ch[1][1] == "binary" and ch[0][2] and ch[1][2], ch
    assert ch[2] == t.kernel_choices()[2]  # the head is the same ternary matrix
    n_in = 2 * 192 + 2 * 4 + 4

    def binary_bytes(rows, cols):  # 1 bit a weight, padded like the ternary decode packing, + alpha, beta
        return _padded(rows, 4) * _padded(cols, 128) // 8 + 8 * rows

    def ternary_bytes(rows, cols):
        return _padded(rows, 4) * _padded(cols, 128) // 4

    proj = [(n_in, 96), (96, 192)]
    want = 3 * sum(binary_bytes(*p) - ternary_bytes(*p) for p in proj)
    assert b.native.packed_weight_bytes - t.native.packed_weight_bytes == want
    assert b.native.bytes_per_token - t.native.bytes_per_token == want
    logits = b.logits([1, 2, 3])
    assert np.isfinite(logits).all() and np.abs(logits).max() > 0
    with pytest.raises(ValueError, match="unknown weights 'float'"):
        bitmamba.Model.random("custom", embed="f32", weights="float", **shape)


def test_bench_random_binary_shape(capsys):
    from bitmamba.cli import main

    assert main(["bench", "--shape", "255m", "--weights", "binary", "--json", "--prompt-tokens", "2",
                 "--decode-tokens", "1", "--repeats", "1", "--bandwidth-mib", "8", "--threads", "1"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["weights"] == "binary" and "255m binary" in d["model"]
    assert [(k["matrix"], k["packing"]) for k in d["kernels"][:2]] == [("in_proj", "binary"), ("out_proj", "binary")]
    assert d["kernels"][2]["packing"] != "binary" and all(k["kernel"] for k in d["kernels"])
    # The 255m projections alone, binary: 24 layers of in_proj [4144, 1024] and out_proj [1024, 2048] at
    # 1 bit a weight plus alpha and beta; the rest of what a token reads (ternary head, small parameters,
    # one embedding row) comes on top.
    proj = 24 * (4144 * 1024 // 8 + 8 * 4144 + 1024 * 2048 // 8 + 8 * 1024)
    assert proj < d["bytes_per_token"] < proj + 50257 * 1024 // 2 + 8 * 2**20
    assert d["decode_tok_s"] > 0 and d["prefill_tok_s"] > 0
    assert main(["bench", "--weights", "binary", "some.gguf"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--weights" in err and "--shape" in err


def test_report_bits_per_weight_of_ternary_targets():
    # The bits/weight line for ternary models: TQ2_0 66 bytes / 256 codes, TQ1_0 54, I8 rows of other
    # widths, BIT2 2 bits + a 16-byte record header; each with the 4-byte scale. No binary table.
    from bitmamba.convert import format_report

    rng = np.random.default_rng(1)
    cfg = BitMambaConfig(vocab_size=64, d_model=256, n_layers=1, n_heads=4, eos_token_id=0)
    t = {}
    for n, shape in expected_shapes(cfg).items():
        if n.endswith(".weight") and len(shape) == 2 and n != "embed.weight":
            t[n] = Ternary(rng.integers(-1, 2, size=shape).astype(np.int8), np.float32(2))
        else:
            t[n] = rng.uniform(0.5, 1, size=shape).astype(np.float32)
    ck = Checkpoint(cfg, t)
    ck.validate()
    tq2 = format_report(ck, [])
    assert "bits/weight: in_proj 2.063 (TQ2_0), out_proj 2.063 (TQ2_0), lm_head 2.064 (TQ2_0)" in tq2, tq2
    assert "binary" not in tq2
    tq1 = format_report(ck, [], ternary_type="tq1_0")
    assert "in_proj 1.688 (TQ1_0)" in tq1, tq1
    bit2 = format_report(ck, [], to="bit2")
    assert "lm_head 2.008 (BIT2)" in bit2, bit2
