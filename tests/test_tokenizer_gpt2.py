"""The bundled GPT-2 tokenizer: exact byte-level BPE ids, round trips, sources and overrides."""
import json

import pytest

from bitmamba.tokenizer import BUNDLED_GPT2, Tokenizer

pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.gpt2()


def test_known_ids(tok):
    assert tok.vocab_size == 50257
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode(" Claude") == [40559]  # the id the repaired vocabulary restores
    assert tok.encode("<|endoftext|>") == [50256]
    assert tok.encode("") == []
    assert tok.decode([15496, 995, 50256]) == "Hello world<|endoftext|>"
    # GPT-2 splits contractions and keeps leading spaces on words (not greedy longest match)
    assert tok.encode("don't") == [9099, 470]


@pytest.mark.parametrize("text", ["", " ", "Hello,  world!\n\n\tTabs", "héllo wörld 日本語 🙂",
                                  "def f(x):\n    return x ** 2  # code", "a" * 1000, "\x00\x01 control"])
def test_round_trip(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_matches_shared_vocab_and_merges(data_dir, tok):
    """Every merge result of merges.txt is the vocabulary entry 256 + its rank (the GPT-2 invariant
    the repaired id 40559 restores), and the shared vocab agrees on all other ids."""
    d = data_dir / "tokenizers" / "gpt2"
    vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
    merges = [m for m in (d / "merges.txt").read_text(encoding="utf-8").splitlines()[1:] if m]
    ours = json.loads(BUNDLED_GPT2.read_text(encoding="utf-8"))["model"]["vocab"]
    for rank, m in enumerate(merges):
        assert ours[m.replace(" ", "")] == 256 + rank
    diff = {k for k in vocab if ours.get(k) != vocab[k]}
    assert diff == {"ĠLLMProvider"}


def test_repair_of_defective_copies(data_dir):
    t = Tokenizer.from_file(data_dir / "tokenizers" / "gpt2")
    assert t.encode(" Claude") == [40559] and t.encode("Hello world") == [15496, 995]


def test_coerce_and_errors(tmp_path, tok):
    js = BUNDLED_GPT2.read_text(encoding="utf-8")
    assert Tokenizer.coerce(js).encode("Hello world") == [15496, 995]
    assert Tokenizer.coerce(str(BUNDLED_GPT2)).vocab_size == 50257
    assert Tokenizer.coerce(tok) is tok
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_file(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError):
        Tokenizer.from_file(tmp_path / "bad.json")
    with pytest.raises(TypeError):
        tok.encode(123)


def test_model_tokenizer_sources(tmp_path):
    import numpy as np

    import bitmamba
    from engine_fixtures import random_weights, write_bit2, write_gguf

    rng = np.random.default_rng(0)
    w, cfg = random_weights(rng, vocab=50257, d_model=64, d_inner=128, n_layers=1, n_heads=2)
    # GGUF with the tokenizer embedded
    write_gguf(tmp_path / "m.gguf", w, cfg, ternary="I8", tokenizer_json=BUNDLED_GPT2.read_text(encoding="utf-8"))
    m = bitmamba.load(tmp_path / "m.gguf")
    assert "GGUF" in m.tokenizer.source and m.tokenizer.encode("Hello world") == [15496, 995]
    # BIT2: bundled GPT-2; a tokenizer.json beside the file wins; tokenizer= wins over both
    sub = tmp_path / "b"
    sub.mkdir()
    write_bit2(sub / "m.bin", w, cfg)
    assert bitmamba.load(sub / "m.bin").tokenizer.source == str(BUNDLED_GPT2)
    (sub / "tokenizer.json").write_text(BUNDLED_GPT2.read_text(encoding="utf-8"), encoding="utf-8")
    assert bitmamba.load(sub / "m.bin").tokenizer.source == str(sub / "tokenizer.json")
    assert bitmamba.load(sub / "m.bin", tokenizer=str(BUNDLED_GPT2)).tokenizer.source == str(BUNDLED_GPT2)
