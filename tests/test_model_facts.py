"""Each model fact has one source, in the engine (csrc/model/config.h, weights.h); the Python code that
needs one reads it from bitmamba._C or, where a Python module must not need the extension at import,
keeps a mirror that these tests hold equal to it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bitmamba
from bitmamba._native import native
from bitmamba.benchmarks.kernels import model_shapes
from bitmamba.convert import convert
from bitmamba.formats import bit2
from bitmamba.formats.gguf_io import read_gguf
from bitmamba.config import BitMambaConfig
from engine_fixtures import random_weights, write_bit2

ROOT = Path(__file__).resolve().parents[1]
C = native()


def test_default_eos_rule():
    assert C.default_eos_token_id(50257) == 50256
    for v in (1, 512, 50256, 50258):
        assert C.default_eos_token_id(v) == -1
    # The Python training config's default is the rule applied to its default vocabulary.
    d = BitMambaConfig()
    assert d.eos_token_id == C.default_eos_token_id(d.vocab_size)


@pytest.mark.parametrize("vocab", [512, 50257])
def test_bit2_eos_is_the_same_in_engine_converter_and_converted_gguf(tmp_path, vocab):
    """A BIT2 file names no EOS: the engine, the Python reader and the GGUF converted from it agree."""
    w, cfg = random_weights(np.random.default_rng(0), vocab=vocab, d_model=64, n_layers=1, n_heads=2)
    src = tmp_path / "m.bin"
    write_bit2(src, w, cfg)
    want = C.default_eos_token_id(vocab)
    assert C.Model.load(str(src)).config["eos_token_id"] == want
    assert bit2.read_bit2(src).config.eos_token_id == want
    out = convert(src, tmp_path / "m.gguf", embed_tokenizer=False).out_path
    assert C.Model.load(str(out)).config["eos_token_id"] == want
    assert read_gguf(out).config.eos_token_id == want
    assert bitmamba.load(out, tokenizer=None).eos_token_id == (None if want < 0 else want)


def test_bit2_magic_and_context_length_mirrors():
    assert bit2.MAGIC == C.BIT2_MAGIC
    assert bit2.MAGIC_BYTES == b"2TIB"
    assert BitMambaConfig().context_length == C.DEFAULT_CONTEXT_LENGTH


def test_presets_are_the_engine_shapes():
    assert C.preset_names() == ["255m", "1b"]
    for name in C.preset_names():
        c = C.preset_config(name)
        # The random model of a preset shape is built from the same config.
        m = C.Model.random(name, "q8_0", 0, {"n_layers": 1}).config
        assert {k: v for k, v in m.items() if k not in ("n_layers",)} == {k: v for k, v in c.items() if k != "n_layers"}
        # The released-shape training configs repeat these numbers (BitMambaConfig.from_yaml reads plain
        # values): they must not drift from the engine's presets.
        t = BitMambaConfig.from_yaml(ROOT / "configs" / "model" / f"{name}.yaml")
        assert (t.vocab_size, t.d_model, t.n_layers, t.n_heads, t.d_inner, t.d_state, t.n_groups, t.layout,
                t.d_conv, t.eos_token_id, t.context_length) == (
                    c["vocab_size"], c["d_model"], c["n_layers"], c["n_heads"], c["d_inner"], c["d_state"],
                    c["n_groups"], c["layout"], c["conv_kernel"], c["eos_token_id"], c["context_length"])
        assert t.in_proj_dim == c["in_proj_rows"]
    shapes = model_shapes(C)
    assert shapes["255m"] == [("in_proj", 1024, 4144), ("out_proj", 2048, 1024), ("lm_head", 1024, 50257)]
    assert shapes["1b"] == [("in_proj", 2048, 8288), ("out_proj", 4096, 2048), ("lm_head", 2048, 50257)]
    with pytest.raises(ValueError, match="unknown model shape '7b'"):
        C.preset_config("7b")


def test_random_overrides_errors():
    with pytest.raises(ValueError, match="unknown config key 'd_modle'"):
        bitmamba.Model.random("custom", d_modle=64)
    with pytest.raises(ValueError, match="unknown layout 'mamba3'"):
        bitmamba.Model.random("custom", layout="mamba3")
    with pytest.raises(ValueError, match="config key 'd_model' takes an integer"):
        bitmamba.Model.random("custom", d_model="64")
