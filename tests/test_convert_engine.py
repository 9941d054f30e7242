"""End to end: a PyTorch model converted to GGUF (TQ2_0, TQ1_0, I8 rows) and BIT2 and loaded by the C++
engine gives the PyTorch exact-inference logits, on every kernel set this CPU runs.

Tolerance 1e-5 absolute on O(1) logits: the ternary codes, scales and int8 activation codes are identical
(integer part exact); only float32 reductions (RMSNorm means, conv, scan) differ in order (observed ~2e-7).
See tests/nn_parity.py for the allowance made for int8 near-tie flips on other CPUs."""
import numpy as np
import pytest

import bitmamba
from bitmamba.convert import convert

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

try:
    from bitmamba._native import native

    native()
except ImportError:  # pragma: no cover - the extension is not built in this environment
    pytest.skip("bitmamba._C is not built (./scripts/dev_build.sh)", allow_module_level=True)

from bitmamba.nn import BitMambaConfig, BitMambaLM  # noqa: E402
from nn_parity import assert_logits_match  # noqa: E402

ATOL = 1e-5


def _isas():
    return bitmamba.cpu_info()["supported_isas"]


def _model(tmp_path, name, **kw):
    torch.manual_seed(0)
    cfg = BitMambaConfig(**kw)
    m = BitMambaLM(cfg)
    with torch.no_grad():
        for layer in m.layers:
            layer.dt_bias.uniform_(-1, 1)  # larger dt: the recurrence matters
            layer.out_proj.norm.weight.uniform_(0.5, 1.5)
    d = tmp_path / name
    m.save_pretrained(d)
    ids = np.random.default_rng(1).integers(0, cfg.vocab_size, 37)
    with torch.no_grad():
        want = m.set_exact(True)(torch.from_numpy(ids)[None])[0].numpy()
    return d, ids, want


@pytest.fixture
def each_isa():
    before = bitmamba.get_isa()
    yield _isas()
    bitmamba.set_isa(before)


@pytest.mark.parametrize("out,opts", [("m.gguf", {}), ("m1.gguf", {"ternary_type": "tq1_0"}), ("m.bin", {})])
def test_engine_reproduces_torch_bitmamba2(tmp_path, out, opts, each_isa):
    d, ids, want = _model(tmp_path, "bm2", vocab_size=512, d_model=256, n_layers=2, n_heads=4, eos_token_id=0)
    path = convert(d, tmp_path / out, embed_tokenizer=False, **opts).out_path
    for isa in each_isa:
        bitmamba.set_isa(isa)
        got = bitmamba.load(path).logits(ids)
        assert_logits_match(got, want, ATOL, what=f"{out} on {isa}")


def test_engine_reproduces_torch_mamba2_layout(tmp_path, each_isa):
    d, ids, want = _model(tmp_path, "m2", vocab_size=300, d_model=256, n_layers=2, n_heads=8, d_state=16,
                          n_groups=2, layout="mamba2", eos_token_id=0)
    path = convert(d, tmp_path / "m2.gguf", embed_tokenizer=False).out_path
    for isa in each_isa:
        bitmamba.set_isa(isa)
        assert_logits_match(bitmamba.load(path).logits(ids), want, ATOL, what=isa)


def test_engine_reproduces_torch_i8_rows(tmp_path, each_isa):
    # d_model 64: rows of 64 / 128 are not TQ-packable, so every projection is stored as I8 codes.
    d, ids, want = _model(tmp_path, "i8", vocab_size=400, d_model=64, n_layers=2, n_heads=2, eos_token_id=0)
    path = convert(d, tmp_path / "i8.gguf", embed_tokenizer=False).out_path
    for isa in each_isa:
        bitmamba.set_isa(isa)
        assert_logits_match(bitmamba.load(path).logits(ids), want, ATOL, what=isa)


@pytest.mark.parametrize("layout", ["bitmamba2", "mamba2"])
def test_engine_reproduces_torch_binary(tmp_path, each_isa, layout):
    # A Bi-Mamba model (binary in_proj / out_proj, docs/binary.md) with trained-looking alpha / beta:
    # save_pretrained -> bitmamba convert -> the engine gives PyTorch's exact-mode logits.
    kw = dict(d_state=16, n_groups=2, n_heads=8) if layout == "mamba2" else dict(n_heads=4)
    torch.manual_seed(0)
    m = BitMambaLM(BitMambaConfig(vocab_size=512, d_model=256, n_layers=2, eos_token_id=0, layout=layout,
                                  weights="binary", **kw))
    with torch.no_grad():
        for layer in m.layers:
            layer.dt_bias.uniform_(-1, 1)
            for proj in (layer.in_proj, layer.out_proj):
                proj.alpha.uniform_(0.005, 0.05)
                proj.beta.uniform_(-0.01, 0.01)
    d = tmp_path / "bin"
    m.save_pretrained(d)
    ids = np.random.default_rng(1).integers(0, 512, 37)
    with torch.no_grad():
        want = m.set_exact(True)(torch.from_numpy(ids)[None])[0].numpy()
    res = convert(d, tmp_path / "bin.gguf", embed_tokenizer=False)
    for isa in each_isa:
        bitmamba.set_isa(isa)
        model = bitmamba.load(res.out_path)
        assert model.config["weights"] == "binary"
        assert_logits_match(model.logits(ids), want, ATOL, what=f"binary {layout} on {isa}")
