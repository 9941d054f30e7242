"""bitmamba.nn: shapes and parameter counts, chunked SSD vs the sequential recurrence, BitLinear semantics,
STE training, exact inference vs the numpy reference, checkpoints."""
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from bitmamba.nn import BitMambaConfig, BitMambaLM, BitLinear, ssd_chunked, ssm_scan_sequential  # noqa: E402
from nn_parity import assert_logits_match  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def small_cfg(layout="bitmamba2", **kw):
    base = dict(vocab_size=300, d_model=32, n_layers=2, n_heads=4, eos_token_id=0, layout=layout)
    if layout == "mamba2":
        base.update(d_state=4, n_groups=2)
    base.update(kw)
    return BitMambaConfig(**base)


def released_count(d_model, n_layers, n_heads, vocab=50257):
    """Parameter count from the BIT2 record list (docs/model.md, "BIT2"), independently of the config code."""
    d_inner = 2 * d_model
    per_layer = (d_model  # in_proj.norm
                 + (2 * d_inner + 3 * n_heads) * d_model  # in_proj
                 + d_inner * 4 + d_inner  # conv1d weight [d_inner,1,4] + bias
                 + n_heads + n_heads  # dt_bias, A_log
                 + d_inner  # D per channel
                 + d_inner  # out_proj.norm
                 + d_model * d_inner)  # out_proj
    return vocab * d_model + n_layers * per_layer + d_model + d_model + vocab * d_model


@pytest.mark.parametrize("name,shape", [("255m", (1024, 24, 16)), ("1b", (2048, 32, 32))])
def test_released_parameter_counts(name, shape):
    cfg = BitMambaConfig.from_yaml(ROOT / "configs" / "model" / f"{name}.yaml")
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads) == shape
    assert cfg.head_dim == 128 and cfg.vocab_size == 50257 and cfg.eos_token_id == 50256
    assert cfg.num_parameters() == released_count(*shape)
    # The torch model itself, built on the meta device (no memory), has exactly these parameters.
    with torch.device("meta"):
        model = BitMambaLM(cfg)
    assert model.num_parameters() == released_count(*shape)


def test_tiny_config_and_model_counts_agree():
    cfg = BitMambaConfig.from_yaml(ROOT / "configs" / "model" / "tiny.yaml")
    assert BitMambaLM(cfg).num_parameters() == cfg.num_parameters()
    cfg2 = small_cfg("mamba2")
    assert BitMambaLM(cfg2).num_parameters() == cfg2.num_parameters()


def test_config_validation_and_roundtrip(tmp_path):
    cfg = small_cfg("mamba2")
    assert BitMambaConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="d_state = 1"):
        BitMambaConfig(d_model=32, n_heads=4, d_state=2, vocab_size=10, eos_token_id=0)
    with pytest.raises(ValueError, match="divisible"):
        BitMambaConfig(d_model=30, n_heads=7, vocab_size=10, eos_token_id=0)
    with pytest.raises(ValueError, match="unknown"):
        BitMambaConfig.from_dict({"d_model": 32, "bogus": 1})
    assert BitMambaConfig().n_groups == BitMambaConfig().n_heads


# ---- the scan --------------------------------------------------------------------------------------
def _scan_inputs(rng, Bsz, T, H, P, G, N, dtype=torch.float64):
    g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    x = torch.randn(Bsz, T, H, P, generator=g, dtype=dtype)
    dt = torch.rand(Bsz, T, H, generator=g, dtype=dtype) * 0.5
    A = -torch.rand(H, generator=g, dtype=dtype) * 8 - 0.1
    Bm = torch.randn(Bsz, T, G, N, generator=g, dtype=dtype)
    Cm = torch.randn(Bsz, T, G, N, generator=g, dtype=dtype)
    return x, dt, A, Bm, Cm


@pytest.mark.parametrize("T,chunk", [(1, 8), (7, 8), (8, 8), (37, 8), (100, 16), (64, 64)])
@pytest.mark.parametrize("H,G,N", [(4, 4, 1), (4, 2, 3), (6, 1, 5)])
def test_chunked_ssd_matches_sequential(T, chunk, H, G, N):
    rng = np.random.default_rng(T * 100 + H * 10 + N)
    x, dt, A, Bm, Cm = _scan_inputs(rng, 2, T, H, 5, G, N)
    h0 = torch.randn(2, H, 5, N, dtype=torch.float64)
    y1, s1 = ssm_scan_sequential(x, dt, A, Bm, Cm, state=h0)
    y2, s2 = ssd_chunked(x, dt, A, Bm, Cm, chunk_size=chunk, state=h0)
    torch.testing.assert_close(y2, y1, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s2, s1, rtol=1e-10, atol=1e-10)


def test_scan_empty_sequence():
    x, dt, A, Bm, Cm = _scan_inputs(np.random.default_rng(0), 1, 0, 2, 3, 2, 1)
    y, s = ssd_chunked(x, dt, A, Bm, Cm)
    assert y.shape == (1, 0, 2, 3) and s.shape == (1, 2, 3, 1) and not s.any()


def test_scans_match_golden_npz(golden_dir):
    """The independent float64 recurrence in ../shared/golden/ssm-*.npz (dt before softplus there)."""
    files = sorted(golden_dir.glob("ssm-*.npz"))
    assert files
    for f in files:
        d = {k: torch.from_numpy(v) for k, v in np.load(f).items()}
        dt = torch.nn.functional.softplus(d["dt_raw"] + d["dt_bias"])[None]
        args = (d["x"][None], dt, d["A"], d["B"][None], d["C"][None])
        for fn in (ssm_scan_sequential, lambda *a, **k: ssd_chunked(*a, chunk_size=32, **k)):
            y, h = fn(*args, state=d["h0"][None])
            y = y + d["x"][None] * d["D"][None, None]
            torch.testing.assert_close(y[0], d["y"], rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(h[0], d["h_final"], rtol=1e-9, atol=1e-9)


# ---- BitLinear ---------------------------------------------------------------------------------------
def test_bitlinear_exact_integer_semantics():
    """Exact mode equals the integer formula of docs/model.md ("BitLinear") computed independently in numpy
    (int64)."""
    torch.manual_seed(0)
    lin = BitLinear(48, 7)
    with torch.no_grad():
        lin.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 48)
    lin.exact = True
    y = lin(x).numpy()
    W = lin.weight.detach().double().numpy()
    g = lin.norm.weight.detach().numpy()
    xs = x.numpy()
    xn = xs / np.sqrt((xs * xs).mean(-1, keepdims=True) + np.float32(1e-6)) * g
    s = np.float32(127) / (np.abs(xn).max(-1, keepdims=True) + np.float32(1e-5))
    q = np.clip(np.rint(xn * s), -128, 127).astype(np.int64)
    sw = np.float32(1 / max(np.abs(W).mean(), 1e-5))
    Wq = np.clip(np.rint(W * np.float64(sw)), -1, 1).astype(np.int64)
    ref = (q @ Wq.T).astype(np.float32) / (s * sw)
    np.testing.assert_allclose(y, ref, rtol=2e-6, atol=1e-7)
    # The training forward computes the same thing in floating point.
    lin.exact = False
    np.testing.assert_allclose(lin(x).detach().numpy(), ref, rtol=1e-4, atol=1e-5)


def test_round_half_to_even():
    q = torch.round(torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5]))
    assert q.tolist() == [0.0, 2.0, 2.0, -0.0, -2.0]


def test_ste_gradients_reach_every_parameter_and_training_reduces_loss():
    torch.manual_seed(0)
    cfg = small_cfg(vocab_size=64)
    model = BitMambaLM(cfg)
    ids = torch.randint(0, 64, (4, 33))
    inp, tgt = ids[:, :-1], ids[:, 1:]

    def loss_fn():
        logits = model(inp)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), tgt.reshape(-1))

    loss = loss_fn()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = loss.item()
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss.item() < first - 0.5, (first, loss.item())


@pytest.mark.parametrize("layout", ["bitmamba2", "mamba2"])
def test_exact_mode_close_to_training_mode(layout):
    torch.manual_seed(1)
    model = BitMambaLM(small_cfg(layout))
    ids = torch.randint(0, 300, (2, 70))  # crosses a chunk boundary (64)
    with torch.no_grad():
        a = model(ids)
        b = model.set_exact(True)(ids)
    assert a.shape == (2, 70, 300)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layout", ["bitmamba2", "mamba2"])
def test_exact_mode_matches_numpy_reference(layout):
    """bitmamba.reference on the converted (quantized) weights vs torch exact inference. Tolerance 1e-5 abs
    (logits are O(1); float32 reductions differ in order, the integer parts are identical; near-tie
    allowance as in tests/nn_parity.py)."""
    from bitmamba import reference
    from bitmamba.formats.checkpoint import Checkpoint, is_ternary_name, quantize_ternary

    torch.manual_seed(2)
    model = BitMambaLM(small_cfg(layout))
    with torch.no_grad():
        for layer in model.layers:
            layer.dt_bias.fill_(0.5)  # make the recurrence matter
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    ck = Checkpoint(model.config, {k: quantize_ternary(v) if is_ternary_name(k) else v for k, v in sd.items()})
    ck.validate()
    ids = np.random.default_rng(0).integers(0, 300, 25)
    with torch.no_grad():
        lt = model.set_exact(True)(torch.from_numpy(ids)[None])[0].numpy()
    for dt in (np.float32, np.float64):
        assert_logits_match(reference.forward(ck, ids, dt), lt, 1e-5, what=str(dt))


def test_save_and_load_pretrained(tmp_path):
    torch.manual_seed(3)
    model = BitMambaLM(small_cfg("mamba2"))
    d = tmp_path / "ckpt"
    model.save_pretrained(d)
    assert sorted(p.name for p in d.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((d / "config.json").read_text())["layout"] == "mamba2"
    loaded = BitMambaLM.from_pretrained(d)
    ids = torch.randint(0, 300, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model(ids), rtol=0, atol=0)
    model.save_pretrained(d)  # overwrite in place: still exactly these files, no temporaries left
    assert sorted(p.name for p in d.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    with pytest.raises(FileNotFoundError):
        BitMambaLM.from_pretrained(tmp_path / "nope")


def test_forward_rejects_bad_input():
    model = BitMambaLM(small_cfg())
    with pytest.raises(ValueError, match="batch, time"):
        model(torch.zeros(5, dtype=torch.long))
