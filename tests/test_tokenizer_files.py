"""--tokenizer as users give it, for convert and for generate (one function, bitmamba.tokenizer.
read_tokenizer_json): a tokenizer.json, its directory, or a GGUF model whose embedded tokenizer is taken;
anything else is one line saying what is expected."""
import json

import numpy as np
import pytest

import datagen
from bitmamba.cli import main as cli_main
from bitmamba.convert import convert
from bitmamba.formats.gguf_reader import GGUFFile
from bitmamba.formats.gguf_tokenizer import tokenizer_metadata
from bitmamba.tokenizer import Tokenizer, read_tokenizer_json
from engine_fixtures import random_weights, write_gguf

pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tokfiles")
    tok = datagen.make_tokenizer(d / "tokenizer.json", 120)
    text = tok.read_text(encoding="utf-8")
    vocab = len(tokenizer_metadata(text)["tokens"])
    w, cfg = random_weights(np.random.default_rng(3), vocab=vocab, d_model=256, n_layers=1, n_heads=2)
    write_gguf(d / "plain.gguf", w, cfg)                          # no tokenizer
    write_gguf(d / "with-tok.gguf", w, cfg, tokenizer_json=text)  # tokenizer.huggingface.json embedded
    return d, text


def test_read_tokenizer_json_accepts_a_gguf(files):
    d, text = files
    assert read_tokenizer_json(d / "tokenizer.json") == (text, str(d / "tokenizer.json"))
    assert read_tokenizer_json(d)[0] == text
    got, source = read_tokenizer_json(d / "with-tok.gguf")
    assert got == text and "with-tok.gguf" in source and "tokenizer.huggingface.json" in source
    ids = Tokenizer.from_file(d / "with-tok.gguf").encode("the cat sat on a mat")
    assert ids == Tokenizer.from_file(d / "tokenizer.json").encode("the cat sat on a mat") and ids


def test_convert_tokenizer_from_a_gguf(files, tmp_path):
    d, text = files
    out = tmp_path / "o.gguf"
    res = convert(d / "plain.gguf", out, tokenizer=str(d / "with-tok.gguf"))
    assert res.tokenizer_embedded
    assert json.loads(GGUFFile(out).fields["tokenizer.huggingface.json"]) == json.loads(text)


@pytest.mark.parametrize("kind,expect", [
    ("plain.gguf", "GGUF model without an embedded tokenizer"),
    ("model.bin", "BIT2 model file, which carries no tokenizer"),
    ("junk.dat", "not a tokenizer.json (not UTF-8 text)"),
    ("text.txt", "not a tokenizer.json (not a JSON object)"),
])
def test_neither_tokenizer_nor_gguf_is_one_line(files, tmp_path, capsys, kind, expect):
    d, _ = files
    p = d / kind
    if kind == "model.bin":
        p = tmp_path / kind
        p.write_bytes((0x42495432).to_bytes(4, "little") + b"\0" * 64)
    elif kind == "junk.dat":
        p = tmp_path / kind
        p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" * 10)
    elif kind == "text.txt":
        p = tmp_path / kind
        p.write_text("vocab: a b c\n")
    out = tmp_path / "o.gguf"
    commands = [["convert", str(d / "plain.gguf"), str(out), "--tokenizer", str(p)]]
    try:
        import bitmamba._C  # noqa: F401

        commands.append(["generate", str(d / "plain.gguf"), "hello", "-n", "1", "--tokenizer", str(p)])
    except ImportError:
        pass
    for argv in commands:
        assert cli_main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expect in err and str(p) in err and "Traceback" not in err, err
        assert "a GGUF model with an embedded tokenizer" in err or kind == "plain.gguf"
    assert not out.exists()


def test_generate_tokenizer_from_a_gguf(files, capsys):
    pytest.importorskip("bitmamba._C")
    import bitmamba

    d, _ = files
    m = bitmamba.load(d / "plain.gguf", tokenizer=str(d / "with-tok.gguf"))
    assert m.tokenizer.encode("the dog") == Tokenizer.from_file(d / "tokenizer.json").encode("the dog")
    assert cli_main(["generate", str(d / "plain.gguf"), "the cat", "-n", "3", "--temperature", "0",
                     "--tokenizer", str(d / "with-tok.gguf")]) == 0
    assert capsys.readouterr().out.startswith("the cat")


def test_convert_embeds_the_tokenizer_load_uses(files, tmp_path):
    """No --tokenizer: convert takes the tokenizer.json beside the source, as bitmamba.load does for it
    (one lookup order, bitmamba.tokenizer.tokenizer_source)."""
    d, text = files
    out = tmp_path / "o.gguf"
    res = convert(d / "plain.gguf", out)
    assert res.tokenizer_embedded and str(d / "tokenizer.json") in res.report
    assert json.loads(GGUFFile(out).fields["tokenizer.huggingface.json"]) == json.loads(text)
    try:
        import bitmamba._C  # noqa: F401
    except ImportError:
        return
    import bitmamba

    assert bitmamba.load(d / "plain.gguf").tokenizer.source == str(d / "tokenizer.json")
