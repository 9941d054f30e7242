"""Loader robustness: truncated, bit-flipped and inconsistent GGUF / BIT2 files raise a Python
exception naming the problem (FormatError, a ValueError), never crash or hang. A flipped byte inside
weight values can leave a loadable file; such a model must still run, or, where the flip made an
embedding value NaN/Inf, raise FormatError when that row is read."""
import numpy as np
import pytest

import bitmamba
from engine_fixtures import random_weights, write_gguf

pytest.importorskip("bitmamba._C")


def _load_or_raise(path):
    try:
        m = bitmamba.load(path)
    except bitmamba.FormatError as e:
        assert str(e)
        return None
    try:
        m.logits([0, 1, 2])  # whatever loaded must run
    except bitmamba.FormatError as e:  # or name the embedding row a flip made NaN/Inf (read per token)
        assert "holds a NaN/Inf value" in str(e)
        return None
    return m


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory):
    rng = np.random.default_rng(1)
    w, cfg = random_weights(rng, vocab=64, d_model=256, n_layers=1, n_heads=2, d_state=4, n_groups=1,
                            layout="mamba2")
    p = tmp_path_factory.mktemp("fz") / "m.gguf"
    write_gguf(p, w, cfg, ternary="TQ2_0", embed="Q8_0")
    return p, w, cfg


def test_truncations_bit2(golden_dir, tmp_path):
    raw = (golden_dir / "bit2-random-d128-l2-h2-v512.bin").read_bytes()
    rng = np.random.default_rng(0)
    cuts = sorted(set([0, 1, 3, 4, 19, 20, 21, 35, 36, len(raw) - 1]) | set(rng.integers(0, len(raw), 40).tolist()))
    for n in cuts:
        p = tmp_path / "t.bin"
        p.write_bytes(raw[:n])
        with pytest.raises(bitmamba.FormatError):
            bitmamba.load(p)
    p.write_bytes(raw + b"\0")
    with pytest.raises(bitmamba.FormatError, match="lm_head"):
        bitmamba.load(p)


def test_truncations_gguf(small_gguf, tmp_path):
    import gguf

    path = small_gguf[0]
    raw = path.read_bytes()
    # The writer pads the file after the last tensor; cutting only padding leaves a valid file.
    end = max(int(t.data_offset) + int(t.n_bytes) for t in gguf.GGUFReader(str(path)).tensors)
    rng = np.random.default_rng(1)
    cuts = sorted(set([0, 3, 4, 8, 16, 24, 100, end - 1]) | set(rng.integers(0, end, 40).tolist()))
    for n in cuts:
        p = tmp_path / "t.gguf"
        p.write_bytes(raw[:n])
        with pytest.raises(bitmamba.FormatError):
            bitmamba.load(p)


@pytest.mark.parametrize("which", ["bit2", "gguf"])
def test_byte_flips(which, golden_dir, small_gguf, tmp_path):
    src = golden_dir / "bit2-random-d128-l2-h2-v512.bin" if which == "bit2" else small_gguf[0]
    raw = src.read_bytes()
    rng = np.random.default_rng(2)
    # Most flips in the headers (BIT2: header + first record header; GGUF: metadata and tensor
    # directory in the first 4 KiB), the rest anywhere.
    head = 36 if which == "bit2" else 4096
    positions = rng.integers(0, head, 60).tolist() + rng.integers(0, len(raw), 40).tolist()
    raised = 0
    for pos in positions:
        b = bytearray(raw)
        b[pos] ^= 1 << int(rng.integers(0, 8))
        p = tmp_path / ("f." + which)
        p.write_bytes(bytes(b))
        raised += _load_or_raise(p) is None
    assert raised > 0


def test_gguf_inconsistencies_are_named(tmp_path):
    rng = np.random.default_rng(4)
    w, cfg = random_weights(rng, vocab=64, d_model=256, n_layers=1, n_heads=2)
    write_gguf(tmp_path / "a.gguf", w, cfg, skip_tensor="blk.0.ssm_out.scale")
    with pytest.raises(bitmamba.FormatError, match="blk.0.ssm_out.scale"):
        bitmamba.load(tmp_path / "a.gguf")
    bad = dict(cfg, n_heads=3)  # d_inner 512 not a multiple of 3
    write_gguf(tmp_path / "b.gguf", w, bad)
    with pytest.raises(bitmamba.FormatError, match="multiple of n_heads"):
        bitmamba.load(tmp_path / "b.gguf")
    bad = dict(cfg, vocab_size=65)
    write_gguf(tmp_path / "c.gguf", w, bad)
    with pytest.raises(bitmamba.FormatError, match="token_embd.weight"):
        bitmamba.load(tmp_path / "c.gguf")
    bad = dict(cfg, layout="mamba3")
    write_gguf(tmp_path / "d.gguf", w, bad)
    with pytest.raises(bitmamba.FormatError, match="layout"):
        bitmamba.load(tmp_path / "d.gguf")
    # ternary code outside {-1, 0, 1} in an I8 tensor
    w2 = dict(w)
    w2["lm_codes"] = w["lm_codes"].copy()
    w2["lm_codes"][0, 0] = 2
    write_gguf(tmp_path / "e.gguf", w2, cfg, ternary="I8")
    with pytest.raises(bitmamba.FormatError, match="output.weight"):
        bitmamba.load(tmp_path / "e.gguf")
    (tmp_path / "f.gguf").write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(bitmamba.FormatError, match="neither a GGUF nor a BIT2"):
        bitmamba.load(tmp_path / "f.gguf")
    with pytest.raises(FileNotFoundError):
        bitmamba.load(tmp_path / "missing.gguf")


def test_gguf_wrong_architecture(tmp_path):
    import gguf

    wr = gguf.GGUFWriter(str(tmp_path / "llama.gguf"), "llama")
    wr.add_tensor("x", np.zeros(4, np.float32))
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    with pytest.raises(bitmamba.FormatError, match="architecture is 'llama'"):
        bitmamba.load(tmp_path / "llama.gguf")


# ---- metadata strings that are not UTF-8 ------------------------------------------------------------------
def _gguf_strings(raw: bytes):
    """(what the loaders call it, first byte, length) of every string in a GGUF file's header: keys, string
    values, string-array elements and tensor names."""
    import struct

    pos = 24
    n_tensors, n_kv = struct.unpack_from("<QQ", raw, 8)
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    out = []

    def string(what):
        nonlocal pos
        (n,) = struct.unpack_from("<Q", raw, pos)
        out.append((what, pos + 8, n))
        pos += 8 + n
        return raw[pos - n:pos].decode()

    for k in range(n_kv):
        key = string(f"metadata key #{k}")
        (t,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if t == 8:
            string(f"metadata key '{key}'")
        elif t == 9:
            et, n = struct.unpack_from("<IQ", raw, pos)
            pos += 12
            if et == 8:
                for i in range(n):
                    string(f"metadata key '{key}' element {i}")
            else:
                pos += n * sizes[et]
        else:
            pos += sizes[t]
    for k in range(n_tensors):
        string(f"the name of tensor #{k}")
        (nd,) = struct.unpack_from("<I", raw, pos)
        pos += 4 + 8 * nd + 4 + 8
    return [s for s in out if s[2] > 0]


@pytest.fixture(scope="module")
def gguf_with_tokenizer(tmp_path_factory):
    """A GGUF as `bitmamba convert` writes it: tokenizer.ggml.* arrays and tokenizer.huggingface.json."""
    import datagen
    from bitmamba.convert import convert
    from bitmamba.formats.gguf_tokenizer import tokenizer_metadata

    d = tmp_path_factory.mktemp("fztok")
    tok = datagen.make_tokenizer(d / "tokenizer.json", 120)
    vocab = len(tokenizer_metadata(tok.read_text(encoding="utf-8"))["tokens"])
    w, cfg = random_weights(np.random.default_rng(7), vocab=vocab, d_model=256, n_layers=1, n_heads=2)
    write_gguf(d / "plain.gguf", w, cfg)
    convert(d / "plain.gguf", d / "m.gguf", tokenizer=str(tok))
    return d / "m.gguf"


def _convert_reads(path):
    """The convert path reading a GGUF: the Python reader, then the embedded tokenizer it would embed."""
    from bitmamba.convert import convert

    convert(path, path.with_name("out.gguf"), dry_run=True)


def test_invalid_utf8_strings_name_the_file_and_key(gguf_with_tokenizer, tmp_path, capsys):
    """A byte that cannot occur in UTF-8 (0xff) inside any header string: both loaders raise
    bitmamba.FormatError naming the file and the key, and the CLI prints that one line."""
    from bitmamba.cli import main as cli_main

    raw = gguf_with_tokenizer.read_bytes()
    strings = _gguf_strings(raw)
    names = [s[0] for s in strings]
    assert "metadata key 'tokenizer.huggingface.json'" in names and "metadata key #0" in names
    rng = np.random.default_rng(5)
    picks = [s for s in strings if "element" not in s[0]]  # every key, value and tensor name
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges"):
        picks += [s for s in strings if s[0].startswith(f"metadata key '{key}' element")][:3]
    for what, start, n in picks:
        b = bytearray(raw)
        b[start + int(rng.integers(0, n))] = 0xFF
        p = tmp_path / "bad.gguf"
        p.write_bytes(bytes(b))
        for load in (bitmamba.load, _convert_reads):
            with pytest.raises(bitmamba.FormatError) as e:
                load(p)
            msg = str(e.value)
            assert str(p) in msg and what in msg and "not valid UTF-8" in msg, (load, msg)
    # As a user sees it: one line, exit status 1, nothing written.
    out = tmp_path / "out.gguf"
    assert cli_main(["convert", str(p), str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid UTF-8" in err and "Traceback" not in err
    assert not out.exists()


def test_byte_flips_in_strings(gguf_with_tokenizer, tmp_path):
    """Random bit flips inside header strings (the tokenizer JSON above all): whatever still parses must
    run; everything else is a FormatError, on the engine's path and on the converter's."""
    raw = gguf_with_tokenizer.read_bytes()
    strings = _gguf_strings(raw)
    weights = np.array([n for _, _, n in strings], dtype=np.float64)
    rng = np.random.default_rng(11)
    raised = {"load": 0, "convert": 0}
    for k in range(200):
        what, start, n = strings[int(rng.choice(len(strings), p=weights / weights.sum()))]
        b = bytearray(raw)
        b[start + int(rng.integers(0, n))] ^= 1 << int(rng.integers(0, 8))
        p = tmp_path / "flip.gguf"
        p.write_bytes(bytes(b))
        raised["load"] += _load_or_raise(p) is None
        try:
            _convert_reads(p)
        except bitmamba.FormatError as e:
            assert str(p) in str(e)
            raised["convert"] += 1
    assert raised["load"] > 0 and raised["convert"] > 0
