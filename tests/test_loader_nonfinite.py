"""NaN / Inf in a model file never load silently: every float tensor is checked at load, and the embedding
(never read at load: its rows are read from the file per token) row by row when a token reads it, with a
FormatError (a ValueError) naming the tensor and the row. Before, a NaN in an F16 embedding gave finite,
wrong logits (the BitLinear's absmax turned it into garbage codes without any error)."""
import numpy as np
import pytest

import bitmamba
from engine_fixtures import random_weights, write_bit2, write_gguf

pytest.importorskip("bitmamba._C")

BAD = [np.nan, np.inf]
ROW = 17


def _weights(seed=6):
    rng = np.random.default_rng(seed)
    return random_weights(rng, vocab=64, d_model=64, n_layers=2, n_heads=2)


def _poison_embedding_row(w, value):
    w["embed"] = w["embed"].copy()
    w["embed"][ROW, 5] = value


def _expect_row_error(path, name):
    m = bitmamba.load(path)  # the embedding is not read at load
    good = m.logits([0, 1, 2])
    assert np.isfinite(good).all()
    with pytest.raises(bitmamba.FormatError, match=f"{name} row {ROW} holds a NaN/Inf value"):
        m.logits([3, ROW, 4])
    st = m.new_state()
    with pytest.raises(ValueError, match=f"row {ROW}"):
        m.feed([ROW], st)
    # The other rows still work, and the failed call changed nothing, also where the bad token comes
    # after the first 256-token chunk of a long prompt.
    assert st.n_tokens == 0
    np.testing.assert_array_equal(m.logits([0, 1, 2]), good)
    st = m.new_state()
    m.feed([1, 2], st)
    same = st.copy()
    with pytest.raises(bitmamba.FormatError, match=f"row {ROW}"):
        m.feed([3] * 280 + [ROW], st)
    assert st.n_tokens == 2
    m.feed([5], st)
    m.feed([5], same)
    np.testing.assert_array_equal(st.logits, same.logits)


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("embed", ["F16", "F32"])
def test_gguf_embedding_row_with_nan_or_inf(tmp_path, embed, value):
    w, cfg = _weights()
    _poison_embedding_row(w, value)
    write_gguf(tmp_path / "m.gguf", w, cfg, embed=embed)
    _expect_row_error(tmp_path / "m.gguf", "'token_embd.weight'")


@pytest.mark.parametrize("value", BAD)
def test_gguf_q8_0_embedding_scale_nan_or_inf(tmp_path, value):
    import gguf

    w, cfg = _weights()
    path = tmp_path / "m.gguf"
    write_gguf(path, w, cfg, embed="Q8_0")
    t = next(t for t in gguf.GGUFReader(str(path)).tensors if t.name == "token_embd.weight")
    row_bytes = int(t.n_bytes) // cfg["vocab_size"]
    raw = bytearray(path.read_bytes())
    at = int(t.data_offset) + ROW * row_bytes + 34  # the fp16 scale of the row's second block
    raw[at:at + 2] = np.float16(value).tobytes()
    path.write_bytes(bytes(raw))
    _expect_row_error(path, "'token_embd.weight'")


@pytest.mark.parametrize("value", BAD)
def test_bit2_embedding_row_with_nan_or_inf(tmp_path, value):
    w, cfg = _weights()
    _poison_embedding_row(w, value)
    write_bit2(tmp_path / "m.bin", w, cfg)
    _expect_row_error(tmp_path / "m.bin", "embedding")


# (weights key, layer or None, GGUF tensor name, BIT2 record name or None when BIT2 lacks the tensor)
TENSORS = [
    ("in_norm", 0, "blk.0.ssm_in_norm.weight", "layer 0 in_proj.norm"),
    ("conv_w", 1, "blk.1.ssm_conv1d.weight", "layer 1 conv1d.weight"),
    ("conv_b", 0, "blk.0.ssm_conv1d.bias", "layer 0 conv1d.bias"),
    ("A", 1, "blk.1.ssm_a", "layer 1 A_log"),
    ("D", 0, "blk.0.ssm_d", "layer 0 D"),
    ("dt_bias", 1, "blk.1.ssm_dt.bias", "layer 1 dt_bias"),
    ("out_norm", 0, "blk.0.ssm_out_norm.weight", "layer 0 out_proj.norm"),
    ("norm_f", None, "output_norm.weight", "norm_f"),
    ("lm_norm", None, "output_in_norm.weight", "lm_head.norm"),
    ("ssm_norm", 0, "blk.0.ssm_norm.weight", None),  # mamba2 layout only
]


def _poison(w, key, layer, value):
    d = w if layer is None else w["layers"][layer]
    a = np.array(d[key], dtype=np.float64)
    # BIT2 stores A_log = log(-A): A = -inf gives A_log = inf, A = nan gives nan.
    a.flat[3] = -np.inf if (key == "A" and value == np.inf) else value
    d[key] = a


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("key,layer,gguf_name,bit2_name", TENSORS)
def test_float_tensor_with_nan_or_inf_is_rejected_at_load(tmp_path, key, layer, gguf_name, bit2_name, value):
    layout = "mamba2" if key == "ssm_norm" else "bitmamba2"
    rng = np.random.default_rng(8)
    w, cfg = random_weights(rng, vocab=64, d_model=64, n_layers=2, n_heads=4, layout=layout)
    _poison(w, key, layer, value)
    write_gguf(tmp_path / "m.gguf", w, cfg)
    with pytest.raises(bitmamba.FormatError, match=f"'{gguf_name}' holds a NaN/Inf value at element 3"):
        bitmamba.load(tmp_path / "m.gguf")
    if bit2_name is not None:
        with np.errstate(invalid="ignore"):
            write_bit2(tmp_path / "m.bin", w, cfg)
        with pytest.raises(bitmamba.FormatError, match=f"{bit2_name} holds a NaN/Inf value at element 3"):
            bitmamba.load(tmp_path / "m.bin")

