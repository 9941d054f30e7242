"""bitmamba convert: PyTorch dir / Flax msgpack / BIT2 / GGUF -> GGUF (TQ2_0, TQ1_0, I8) or BIT2.

Parity checks run bitmamba.reference (numpy) on the converted file and compare with the PyTorch model's exact
inference mode: the ternary codes and scales are identical by construction, so the only differences are float32
reduction orders; tolerance 1e-5 absolute on O(1) logits (observed ~2e-7), with the int8 near-tie allowance of
tests/nn_parity.py."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bitmamba import reference
from bitmamba.cli import main as cli_main
from bitmamba.convert import ConversionError, convert, detect_source_kind
from bitmamba.formats.bit2 import read_bit2
from bitmamba.formats.gguf_io import read_gguf
from bitmamba.formats.ternary_pack import pack_tq1_0, pack_tq2_0, unpack_tq1_0, unpack_tq2_0
from nn_parity import assert_logits_match

gguf = pytest.importorskip("gguf")
ROOT = Path(__file__).resolve().parent.parent
ATOL = 1e-5


# ---- packing -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows,cols", [(1, 256), (3, 512), (7, 1024)])
@pytest.mark.parametrize("kind", ["tq2_0", "tq1_0"])
def test_tq_packing_matches_gguf_reference_quantizer(rows, cols, kind):
    rng = np.random.default_rng(rows * cols)
    codes = rng.integers(-1, 2, (rows, cols)).astype(np.int8)
    codes[0, :256] = 0  # an all-zero block: gguf-py gives it d = 0, we keep d; the codes must agree
    codes[-1, -256:] = 1
    qt = gguf.GGMLQuantizationType.TQ2_0 if kind == "tq2_0" else gguf.GGMLQuantizationType.TQ1_0
    pack, unpack, bb = (pack_tq2_0, unpack_tq2_0, 66) if kind == "tq2_0" else (pack_tq1_0, unpack_tq1_0, 54)
    mine = pack(codes, 1.0)
    ref = gguf.quants.quantize(codes.astype(np.float32), qt)
    assert mine.shape == ref.shape and mine.dtype == np.uint8
    m, r = mine.reshape(-1, bb), ref.reshape(-1, bb)
    nonzero = np.abs(codes.reshape(-1, 256)).max(axis=1) > 0
    np.testing.assert_array_equal(m[nonzero], r[nonzero])
    np.testing.assert_array_equal(m[~nonzero, :-2], r[~nonzero, :-2])
    np.testing.assert_array_equal(unpack(mine, rows, cols), codes)
    # Generic GGUF tools dequantize our blocks to codes * d.
    d = np.float16(0.0123)
    deq = gguf.quants.dequantize(pack(codes, float(d)), qt).reshape(rows, cols)
    np.testing.assert_array_equal(deq, codes.astype(np.float32) * np.float32(d))


def test_tq_packing_rejects_bad_rows():
    with pytest.raises(ValueError, match="multiple of 256"):
        pack_tq2_0(np.zeros((2, 100), np.int8), 1.0)


# ---- a tiny PyTorch model --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch_model_dir(tmp_path_factory):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from bitmamba.nn import BitMambaConfig, BitMambaLM

    torch.manual_seed(0)
    cfg = BitMambaConfig(vocab_size=512, d_model=256, n_layers=2, n_heads=4, eos_token_id=0)
    model = BitMambaLM(cfg)
    with torch.no_grad():
        for layer in model.layers:
            layer.dt_bias.uniform_(-1, 1)
            layer.in_proj.norm.weight.uniform_(0.5, 1.5)
    d = tmp_path_factory.mktemp("ckpt") / "tiny"
    model.save_pretrained(d)
    ids = np.random.default_rng(0).integers(0, 512, 30)
    with torch.no_grad():
        logits = model.set_exact(True)(torch.from_numpy(ids)[None])[0].numpy()
    return d, ids, logits


@pytest.mark.parametrize("ttype", ["tq2_0", "tq1_0"])
def test_pytorch_to_gguf_matches_torch_exact(torch_model_dir, tmp_path, ttype):
    d, ids, want = torch_model_dir
    out = tmp_path / "m.gguf"
    res = convert(d, out, ternary_type=ttype, embed_tokenizer=False)
    assert res.source_kind == "pytorch" and res.file_size == out.stat().st_size
    r = gguf.GGUFReader(str(out))
    assert r.fields["general.architecture"].contents() == "bitmamba2"
    types = {t.name: t.tensor_type.name for t in r.tensors}
    assert types["blk.0.ssm_in.weight"] == ttype.upper() and types["output.weight"] == ttype.upper()
    assert types["blk.0.ssm_out.scale"] == "F32" and types["token_embd.weight"] == "F32"
    ck = read_gguf(out)
    assert_logits_match(reference.forward(ck, ids), want, ATOL)


def test_pytorch_to_bit2_matches_torch_exact_and_round_trips(torch_model_dir, tmp_path):
    d, ids, want = torch_model_dir
    b1 = tmp_path / "m.bin"
    res = convert(d, b1)
    assert res.target_kind == "bit2"
    assert_logits_match(reference.forward(read_bit2(b1), ids), want, ATOL)
    g = tmp_path / "m.gguf"
    convert(b1, g, embed_tokenizer=False)
    b2 = tmp_path / "back.bin"
    convert(g, b2)
    assert b1.read_bytes() == b2.read_bytes()


@pytest.mark.parametrize("etype,atol", [("f16", 2e-2), ("q8_0", 5e-2)])
def test_embedding_types(torch_model_dir, tmp_path, etype, atol):
    d, ids, want = torch_model_dir
    out = tmp_path / "m.gguf"
    convert(d, out, embed_type=etype, embed_tokenizer=False)
    r = gguf.GGUFReader(str(out))
    assert {t.name: t.tensor_type.name for t in r.tensors}["token_embd.weight"] == etype.upper()
    got = reference.forward(read_gguf(out), ids)
    # A rounded embedding perturbs the BitLinear inputs; logits stay close, not equal.
    assert_logits_match(got, want, atol, what=etype)


@pytest.mark.parametrize("name", ["bit2-random-d128-l2-h2-v512.bin", "bit2-random-d256-l4-h4-v2048.bin"])
@pytest.mark.parametrize("ttype", ["tq2_0", "tq1_0"])
def test_golden_bit2_gguf_bit2_round_trip_is_byte_exact(golden_dir, tmp_path, name, ttype):
    src = golden_dir / name
    g = tmp_path / "x.gguf"
    convert(src, g, ternary_type=ttype, embed_tokenizer=False)
    convert(g, tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == src.read_bytes()


def test_mamba2_layout_to_gguf_and_refused_for_bit2(tmp_path):
    torch = pytest.importorskip("torch")
    from bitmamba.nn import BitMambaConfig, BitMambaLM

    torch.manual_seed(5)
    cfg = BitMambaConfig(vocab_size=300, d_model=256, n_layers=1, n_heads=8, d_state=16, n_groups=2,
                         layout="mamba2", eos_token_id=0)
    model = BitMambaLM(cfg)
    d = tmp_path / "m2"
    model.save_pretrained(d)
    ids = np.arange(17) * 7 % 300
    with torch.no_grad():
        want = model.set_exact(True)(torch.from_numpy(ids)[None])[0].numpy()
    convert(d, tmp_path / "m2.gguf", embed_tokenizer=False)
    ck = read_gguf(tmp_path / "m2.gguf")
    assert ck.config.layout == "mamba2" and ck.tensors["layers.0.D"].shape == (8,)
    assert_logits_match(reference.forward(ck, ids), want, ATOL)
    with pytest.raises(ConversionError, match="BIT2"):
        convert(d, tmp_path / "m2.bin")
    assert not (tmp_path / "m2.bin").exists()


def test_tokenizer_embedded_and_i8_rows(tmp_path, data_dir):
    torch = pytest.importorskip("torch")
    from bitmamba.nn import BitMambaConfig, BitMambaLM

    tok_path = data_dir / "tokenizers" / "gpt2" / "tokenizer.json"
    torch.manual_seed(4)
    model = BitMambaLM(BitMambaConfig(vocab_size=50257, d_model=32, n_layers=1, n_heads=2))
    d = tmp_path / "gpt2tiny"
    model.save_pretrained(d)
    out = tmp_path / "t.gguf"
    res = convert(d, out, tokenizer=str(tok_path.parent))
    assert res.tokenizer_embedded
    from bitmamba.formats.gguf_reader import GGUFFile

    r = GGUFFile(out)  # (gguf-py's reader takes ~10 s on a 50k vocabulary; checked on small files above)
    f = r.fields
    assert f["tokenizer.ggml.model"] == "gpt2"
    tokens = f["tokenizer.ggml.tokens"]
    assert len(tokens) == 50257 and tokens[50256] == "<|endoftext|>" and tokens[262] == "Ġthe"
    assert tokens[40559] == "ĠClaude"  # the shared copy's defect is repaired (assets/gpt2/README.md)
    assert f["tokenizer.ggml.eos_token_id"] == 50256 and f["tokenizer.ggml.bos_token_id"] == 50256
    assert len(f["tokenizer.ggml.merges"]) == 50000 and f["tokenizer.ggml.merges"][0] == "Ġ t"
    assert f["tokenizer.ggml.token_type"][50256] == 3 and f["tokenizer.ggml.token_type"][0] == 1
    hf = f["tokenizer.huggingface.json"]
    spec, orig = json.loads(hf), json.loads(tok_path.read_text(encoding="utf-8"))
    assert spec["model"]["merges"] == orig["model"]["merges"] and spec["added_tokens"] == orig["added_tokens"]
    assert spec["model"]["type"] == "BPE"
    from tokenizers import Tokenizer

    text = "The quick brown fox: naïve café, 1234! Claude"
    assert Tokenizer.from_str(hf).encode(text).ids[:3] == [464, 2068, 7586]
    types = {t.name: t.type_name for t in r.tensors.values()}
    assert types["output.weight"] == "I8" and types["blk.0.ssm_in.weight"] == "I8"  # rows of 32: not TQ
    ids = np.array([464, 2068, 7586, 21831, 50256])
    with torch.no_grad():
        want = model.set_exact(True)(torch.from_numpy(ids)[None])[0].numpy()
    ck = read_gguf(out)
    assert ck.tokenizer_json == hf
    assert_logits_match(reference.forward(ck, ids), want, ATOL)


def test_tokenizer_vocab_mismatch(torch_model_dir, tmp_path, data_dir):
    d, _, _ = torch_model_dir
    tok = data_dir / "tokenizers" / "gpt2" / "tokenizer.json"
    with pytest.raises(ConversionError, match="50257 tokens"):
        convert(d, tmp_path / "x.gguf", tokenizer=str(tok))
    assert not (tmp_path / "x.gguf").exists()


# ---- Flax msgpack ------------------------------------------------------------------------------------------
def _flax_ext(a: np.ndarray, bf16=False):
    """An ndarray as flax.serialization writes it: ExtType(1, msgpack((shape, dtype name, C bytes)))."""
    import msgpack

    if bf16:
        raw = (np.ascontiguousarray(a, np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
        payload = (list(a.shape), "bfloat16", raw)
    else:
        payload = (list(a.shape), a.dtype.name, np.ascontiguousarray(a).tobytes("C"))
    return msgpack.ExtType(1, msgpack.packb(payload, use_bin_type=True))


def test_flax_msgpack_converts_and_matches(torch_model_dir, tmp_path):
    import msgpack

    from bitmamba.formats.pytorch_dir import read_safetensors

    d, ids, want = torch_model_dir
    sd = read_safetensors(d / "model.safetensors")
    cfg = json.loads((d / "config.json").read_text())
    # The lm_head RMSNorm scale is stored as bfloat16 (values chosen exactly representable) to cover that path.
    sd["lm_head.norm.weight"] = (sd["lm_head.norm.weight"].view(np.uint32) & 0xFFFF0000).view(np.float32)
    emb = sd["embed.weight"]
    half = emb.size // 2
    params = {
        # A large array as flax chunks it (here forced on a small one to exercise the reader).
        "Embed_0": {"embedding": {"__msgpack_chunked_array__": True, "shape": list(emb.shape),
                                  "chunks": {"0": _flax_ext(emb.ravel()[:half]), "1": _flax_ext(emb.ravel()[half:])}}},
        "RMSNorm_0": {"scale": _flax_ext(sd["norm_f.weight"])},
        "BitLinear_0": {"kernel": _flax_ext(sd["lm_head.weight"].T),
                        "RMSNorm_0": {"scale": _flax_ext(sd["lm_head.norm.weight"], bf16=True)}},
    }
    for i in range(cfg["n_layers"]):
        p = f"layers.{i}."
        params[f"BitMambaBlock_{i}"] = {
            "BitLinear_0": {"kernel": _flax_ext(sd[p + "in_proj.weight"].T),
                            "RMSNorm_0": {"scale": _flax_ext(sd[p + "in_proj.norm.weight"])}},
            "Conv_0": {"kernel": _flax_ext(sd[p + "conv1d.weight"].transpose(2, 1, 0)),
                       "bias": _flax_ext(sd[p + "conv1d.bias"])},
            "BitLinear_1": {"kernel": _flax_ext(sd[p + "out_proj.weight"].T),
                            "RMSNorm_0": {"scale": _flax_ext(sd[p + "out_proj.norm.weight"])}},
            "dt_bias": _flax_ext(sd[p + "dt_bias"]), "A_log": _flax_ext(sd[p + "A_log"]),
            "D": _flax_ext(sd[p + "D"]),
        }
    src = tmp_path / "bitmamba_tiny.msgpack"
    src.write_bytes(msgpack.packb({"params": params}, use_bin_type=True))
    assert detect_source_kind(src) == "flax"
    out = tmp_path / "flax.gguf"
    res = convert(src, out, embed_tokenizer=False)
    ck = read_gguf(out)
    assert (ck.config.d_model, ck.config.n_layers, ck.config.n_heads) == (256, 2, 4)
    assert res.source_kind == "flax"
    # Same weights as the torch model: the converted file reproduces torch's exact logits.
    assert_logits_match(reference.forward(ck, ids), want, ATOL)
    # And converting the torch directory gives the very same ternary codes and scales.
    ck_t = read_gguf(convert(d, tmp_path / "t.gguf", embed_tokenizer=False).out_path)
    for k, v in ck_t.tensors.items():
        if hasattr(v, "codes"):
            np.testing.assert_array_equal(ck.tensors[k].codes, v.codes)
            assert ck.tensors[k].scale == v.scale


def test_flax_missing_arrays_are_reported(tmp_path):
    import msgpack

    src = tmp_path / "bad.msgpack"
    src.write_bytes(msgpack.packb({"params": {"Embed_0": {"embedding": _flax_ext(np.zeros((4, 8), np.float32))}}}))
    with pytest.raises(ValueError, match="BitMambaBlock"):
        convert(src, tmp_path / "o.gguf")


# ---- checks, report, atomic output, bad input ------------------------------------------------------------
def _copy_ckpt(d, tmp_path, edit):
    from safetensors.numpy import save_file

    from bitmamba.formats.pytorch_dir import read_safetensors

    sd = read_safetensors(d / "model.safetensors")
    edit(sd)
    nd = tmp_path / "edited"
    nd.mkdir()
    (nd / "config.json").write_text((d / "config.json").read_text())
    save_file(sd, str(nd / "model.safetensors"))
    return nd


@pytest.mark.parametrize("tensor", ["layers.1.out_proj.norm.weight", "layers.0.in_proj.weight"])
def test_nan_refuses_to_write(torch_model_dir, tmp_path, tensor):
    d, _, _ = torch_model_dir

    def poison(sd):
        sd[tensor] = sd[tensor].copy()
        sd[tensor].flat[3] = np.nan

    nd = _copy_ckpt(d, tmp_path, poison)
    out = tmp_path / "out" / "x.gguf"
    out.parent.mkdir()
    with pytest.raises(ConversionError, match="NaN"):
        convert(nd, out)
    assert list(out.parent.iterdir()) == []
    assert cli_main(["convert", str(nd), str(out)]) == 1
    assert list(out.parent.iterdir()) == []


def test_dead_layer_warning_and_report(torch_model_dir, tmp_path, capsys):
    d, _, _ = torch_model_dir

    def kill(sd):
        sd["layers.0.out_proj.weight"] = np.zeros_like(sd["layers.0.out_proj.weight"])

    nd = _copy_ckpt(d, tmp_path, kill)
    out = tmp_path / "x.bin"
    assert cli_main(["convert", str(nd), str(out)]) == 0
    text = capsys.readouterr().out
    assert "dead tensor: layers.0.out_proj.weight" in text
    assert "parameters:" in text and "zeros" in text and f"{out.stat().st_size:,} bytes" in text
    n_params = read_bit2(out).num_parameters()
    assert f"{n_params:,} total" in text


def test_interrupted_write_leaves_no_file(torch_model_dir, tmp_path, monkeypatch):
    d, _, _ = torch_model_dir
    out = tmp_path / "x.bin"
    out.write_bytes(b"previous contents")
    import bitmamba.formats.bit2 as bit2

    calls = {"n": 0}
    real = bit2.pack_bit2_codes

    def flaky(codes):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-write
        return real(codes)

    monkeypatch.setattr(bit2, "pack_bit2_codes", flaky)
    with pytest.raises(KeyboardInterrupt):
        convert(d, out)
    assert out.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_bad_inputs(tmp_path, golden_dir):
    src = golden_dir / "bit2-random-d128-l2-h2-v512.bin"
    trunc = tmp_path / "trunc.bin"
    trunc.write_bytes(src.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated"):
        convert(trunc, tmp_path / "o.gguf")
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not a recognised"):
        convert(junk, tmp_path / "o.gguf")
    badgguf = tmp_path / "bad.gguf"
    badgguf.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 40)
    with pytest.raises(ValueError):
        convert(badgguf, tmp_path / "o.bin")
    with pytest.raises(FileNotFoundError):
        convert(tmp_path / "missing", tmp_path / "o.gguf")
    assert not (tmp_path / "o.gguf").exists() and not (tmp_path / "o.bin").exists()


def test_script_entry_point_dry_run(golden_dir, tmp_path):
    out = tmp_path / "never.gguf"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "convert.py"),
                        str(golden_dir / "bit2-random-d128-l2-h2-v512.bin"), str(out), "--dry-run", "--no-tokenizer"],
                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "ternary:" in r.stdout and not out.exists()


def test_truncated_or_corrupt_gguf_is_a_clear_error(golden_dir, tmp_path):
    g = tmp_path / "ok.gguf"
    convert(golden_dir / "bit2-random-d128-l2-h2-v512.bin", g, embed_tokenizer=False)
    data = g.read_bytes()
    for cut in (0, 3, 10, 30, 200, 2000, len(data) // 2, len(data) - 40):  # (the last 28 bytes are padding)
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError):
            read_gguf(bad)
    # A tensor offset pointing past the end of the file.
    from bitmamba.formats.gguf_reader import GGUFFile

    f = GGUFFile(g)
    t = f.tensors["token_embd.weight"]
    del f
    info_at = data.index(b"token_embd.weight") + len(b"token_embd.weight")
    # n_dims (u32) + 2 dims (u64) + type (u32) then the u64 offset
    off_pos = info_at + 4 + 16 + 4
    bad = bytearray(data)
    bad[off_pos:off_pos + 8] = (len(data) * 4).to_bytes(8, "little")
    (tmp_path / "badoff.gguf").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="outside the file"):
        read_gguf(tmp_path / "badoff.gguf")
    assert t.shape == (512, 128)


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_pytorch_dir_with_half_precision_safetensors(torch_model_dir, tmp_path, dtype):
    """Checkpoints saved in F16 / BF16 (e.g. from a mixed-precision run) convert to the same model as the
    float32 values they hold."""
    from bitmamba.formats.pytorch_dir import read_pytorch_dir, read_safetensors

    d, _, _ = torch_model_dir
    sd = read_safetensors(d / "model.safetensors")
    header, blobs, off = {}, [], 0
    rounded = {}
    for k, v in sd.items():
        if dtype == "F16":
            raw = v.astype(np.float16)
            rounded[k] = raw.astype(np.float32)
        else:  # truncate to bfloat16 (numpy has no such dtype: keep the top 16 bits)
            raw = (np.ascontiguousarray(v).view(np.uint32) >> 16).astype(np.uint16)
            rounded[k] = (raw.astype(np.uint32) << 16).view(np.float32)
        b = raw.tobytes()
        header[k] = {"dtype": dtype, "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header).encode()
    nd = tmp_path / "half"
    nd.mkdir()
    (nd / "config.json").write_text((d / "config.json").read_text())
    (nd / "model.safetensors").write_bytes(len(hj).to_bytes(8, "little") + hj + b"".join(blobs))
    ck = read_pytorch_dir(nd)
    from bitmamba.formats.checkpoint import quantize_ternary

    for k, v in rounded.items():
        t = ck.tensors[k]
        if hasattr(t, "codes"):
            q = quantize_ternary(v)
            np.testing.assert_array_equal(t.codes, q.codes)
            assert t.scale == q.scale
        else:
            np.testing.assert_array_equal(t, v)


# ---- a full disk and a killed earlier run ---------------------------------------------------------------
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("how", ["errno", "numpy"])
def test_full_disk_is_one_line_and_leaves_nothing(golden_dir, tmp_path, monkeypatch, capsys, how):
    """The tensor data cannot be written: /dev/full refuses it as a full disk would. gguf-py writes tensors
    with numpy's tofile, whose error has no errno ("N requested and M written"); a Python write has ENOSPC.
    Either way: one line naming the output and the cause, exit status 1, OUT as it was, no temporary."""
    import os

    src = golden_dir / "bit2-random-d128-l2-h2-v512.bin"
    d = tmp_path / "out"
    d.mkdir()
    out = d / "x.gguf"
    out.write_bytes(b"previous contents")

    def write_tensors_to_full_disk(self, *args, **kwargs):
        with open("/dev/full", "wb") as dev:
            if how == "numpy":
                np.zeros(3216448, np.uint8).tofile(dev)
            dev.write(b"\0" * 3216448)

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", write_tensors_to_full_disk)
    if how == "numpy":  # only a file system that is (nearly) full makes an errno-less short write ENOSPC
        real = os.statvfs(d)
        full = os.statvfs_result((real.f_bsize, real.f_frsize, real.f_blocks, 2, 2, real.f_files, real.f_ffree,
                                  real.f_favail, real.f_flag, real.f_namemax))
        monkeypatch.setattr(os, "statvfs", lambda p: full)
    assert cli_main(["convert", str(src), str(out), "--no-tokenizer"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"bitmamba convert: error: no space left on device while writing {out}" in err
    assert "requested and" not in err and "[Errno" not in err
    assert out.read_bytes() == b"previous contents"
    assert [p.name for p in d.iterdir()] == ["x.gguf"]


def test_stale_temporary_of_an_interrupted_convert_is_removed(golden_dir, tmp_path):
    """kill -9 during a convert leaves .OUT.tmp-PID-XXXXXXXX; the next convert to OUT removes it once that
    process is gone, and leaves everything else."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    out = tmp_path / "m.gguf"
    stale = tmp_path / f".m.gguf.tmp-{p.pid}-abcdefgh"
    stale.write_bytes(b"\0" * 100000)
    others = [tmp_path / f".n.gguf.tmp-{p.pid}-abcdefgh", tmp_path / "m.gguf.old"]
    for o in others:
        o.write_bytes(b"keep")
    assert cli_main(["convert", str(golden_dir / "bit2-random-d128-l2-h2-v512.bin"), str(out), "--quiet",
                     "--no-tokenizer"]) == 0
    assert not stale.exists() and all(o.exists() for o in others)
    assert read_gguf(out).config.vocab_size == 512
