"""bitmamba.nn BinaryLinear (FBI-Linear, docs/binary.md) and FloatLinear: the sign and its clipped STE, the
xnor initialisation, exact mode against an independent numpy evaluation of the docs formula (bit for bit),
the training forward against exact mode, binary and float models (checkpoints, parameter counts, set_exact)."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from bitmamba.nn import BinaryLinear, BitLinear, BitMambaConfig, BitMambaLM, FloatLinear  # noqa: E402
from bitmamba.nn.binarylinear import sign_ste, xnor_init  # noqa: E402
from bitmamba.nn.bitlinear import rms_norm  # noqa: E402


def small_cfg(weights, layout="bitmamba2", **kw):
    base = dict(vocab_size=300, d_model=32, n_layers=2, n_heads=4, eos_token_id=0, layout=layout, weights=weights)
    if layout == "mamba2":
        base.update(d_state=4, n_groups=2)
    base.update(kw)
    return BitMambaConfig(**base)


def test_sign_forward_and_clipped_ste_gradient():
    w = torch.tensor([-2.0, -1.0, -0.5, -0.0, 0.0, 1e-9, 0.5, 1.0, 1.0001, 3.0], requires_grad=True)
    b = sign_ste(w)
    # +1 for W >= 0 (both zeros count as +1), -1 below
    assert b.tolist() == [-1, -1, -1, 1, 1, 1, 1, 1, 1, 1]
    g = torch.arange(1.0, 11.0)
    b.backward(g)
    # the gradient passes straight through where |W| <= 1 (the boundary included) and is 0 beyond
    assert w.grad.tolist() == [0, 2, 3, 4, 5, 6, 7, 8, 0, 0]


def test_xnor_init_values():
    torch.manual_seed(0)
    lin = BinaryLinear(40, 6)
    W = lin.weight.detach().double().numpy()
    beta = W.mean(1)
    alpha = np.abs(W - beta[:, None]).mean(1)
    assert lin.alpha.dtype == lin.beta.dtype == torch.float32
    np.testing.assert_array_equal(lin.beta.detach().numpy(), beta.astype(np.float32))
    np.testing.assert_array_equal(lin.alpha.detach().numpy(), alpha.astype(np.float32))
    assert (lin.alpha > 0).all() and torch.equal(lin.norm.weight, torch.ones(40))
    # The latent weight is drawn exactly as BitLinear's: the same seed gives the same matrix.
    torch.manual_seed(0)
    assert torch.equal(BitLinear(40, 6).weight, lin.weight)
    # reset_parameters draws a new latent weight and fits alpha/beta to that draw, not to the old one
    old = lin.alpha.detach().clone()
    lin.reset_parameters()
    assert not torch.equal(lin.alpha, old)
    a2, b2 = xnor_init(lin.weight)
    assert torch.equal(lin.alpha, a2) and torch.equal(lin.beta, b2)
    # the shift follows the row mean: a matrix with rows offset by 0.5 and 0.25 gets beta ~ those
    shifted = torch.randn(2, 4000) * 0.02 + torch.tensor([[0.5], [-0.25]])
    a3, b3 = xnor_init(shifted)
    torch.testing.assert_close(b3, torch.tensor([0.5, -0.25]), rtol=0, atol=2e-3)
    torch.testing.assert_close(a3, torch.full((2,), 0.02 * (2 / np.pi) ** 0.5), rtol=0.05, atol=0)


def _numpy_exact(xn, W, alpha, beta):
    """docs/binary.md, "Exact evaluation", in numpy: int8 absmax q and s of xn (float32, as BitLinear),
    signs of W, exact int64 acc and S, then (alpha * acc + beta * S) / s in float64, rounded once."""
    xn = xn.astype(np.float32)
    s = np.float32(127) / (np.abs(xn).max(-1, keepdims=True) + np.float32(1e-5))
    q = np.clip(np.rint(xn * s), -128, 127).astype(np.int64)
    b = np.where(W >= 0, 1, -1).astype(np.int64)
    acc = q @ b.T
    S = q.sum(-1, keepdims=True)
    y = (alpha.astype(np.float64) * acc.astype(np.float64) + beta.astype(np.float64) * S.astype(np.float64))
    return (y / s.astype(np.float64)).astype(np.float32)


@pytest.mark.parametrize("n_in,n_out", [(48, 7), (200, 33)])
def test_exact_mode_equals_the_docs_formula_bit_for_bit(n_in, n_out):
    torch.manual_seed(n_in)
    lin = BinaryLinear(n_in, n_out)
    with torch.no_grad():
        lin.norm.weight.uniform_(0.5, 1.5)
        lin.alpha.uniform_(0.001, 0.05)
        lin.beta.uniform_(-0.01, 0.01)
        lin.weight[0, :5] = 0.0  # zeros take the +1 sign
    x = torch.randn(3, 5, n_in) * 3
    lin.exact = True
    y = lin(x)
    assert y.dtype == torch.float32 and y.shape == (3, 5, n_out)
    # The RMSNorm is BitLinear's (tested in test_nn_model.py); the numpy side starts from its output so the
    # comparison pins the binary part exactly.
    xn = rms_norm(x, lin.norm.weight, lin.eps).detach().numpy()
    ref = _numpy_exact(xn, lin.weight.detach().numpy(), lin.alpha.detach().numpy(), lin.beta.detach().numpy())
    np.testing.assert_array_equal(y.numpy(), ref)
    # The float64 evaluation matters: a float32 one differs in the last bits somewhere.
    assert not np.array_equal(y.numpy(), _float32_eval(xn, lin))


def _float32_eval(xn, lin):
    s = np.float32(127) / (np.abs(xn).max(-1, keepdims=True) + np.float32(1e-5))
    q = np.clip(np.rint(xn * s), -128, 127).astype(np.float32)
    b = np.where(lin.weight.detach().numpy() >= 0, 1, -1).astype(np.float32)
    return (lin.alpha.detach().numpy() * (q @ b.T) + lin.beta.detach().numpy() * q.sum(-1, keepdims=True)) / s


def test_training_forward_close_to_exact():
    """The fake-quantized float32 forward computes the same product as exact mode up to float32 rounding:
    max error <= 1e-5 of the output's largest magnitude (observed ~1e-7)."""
    torch.manual_seed(5)
    lin = BinaryLinear(128, 64)
    with torch.no_grad():
        lin.beta.uniform_(-0.01, 0.01)
    x = torch.randn(4, 9, 128)
    with torch.no_grad():
        a = lin(x)
        lin.exact = True
        b = lin(x)
    assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())


def test_gradients_reach_alpha_beta_and_latent_weight():
    torch.manual_seed(6)
    lin = BinaryLinear(16, 8)
    with torch.no_grad():
        lin.weight[0, 0] = 2.0  # beyond the clip: no gradient there
    x = torch.randn(5, 16)
    lin(x).pow(2).sum().backward()
    assert lin.weight.grad[0, 0] == 0
    assert (lin.weight.grad.abs() > 0).float().mean() > 0.9
    assert (lin.alpha.grad.abs() > 0).all() and (lin.beta.grad.abs() > 0).all()
    assert (lin.norm.weight.grad.abs() > 0).all()
    # alpha's exact gradient: dL/dalpha_r = sum_t dL/dy_tr * (sign(W_r) . xq_t)
    xn = rms_norm(x, lin.norm.weight, lin.eps).detach()
    s = 127.0 / (xn.abs().amax(-1, keepdim=True) + 1e-5)
    xq = torch.round(xn * s).clamp(-128, 127) / s
    y = lin(x).detach()
    b = torch.where(lin.weight >= 0, 1.0, -1.0).detach()
    torch.testing.assert_close(lin.alpha.grad, ((2 * y) * (xq @ b.T)).sum(0), rtol=1e-5, atol=1e-6)


def test_float_linear_has_no_quantization():
    torch.manual_seed(7)
    lin = FloatLinear(24, 5)
    x = torch.randn(2, 24)
    want = rms_norm(x, lin.norm.weight, lin.eps) @ lin.weight.T
    torch.testing.assert_close(lin(x), want, rtol=0, atol=0)


@pytest.mark.parametrize("weights", ["binary", "float"])
def test_model_modules_and_set_exact(weights):
    torch.manual_seed(8)
    model = BitMambaLM(small_cfg(weights))
    Proj = BinaryLinear if weights == "binary" else FloatLinear
    for layer in model.layers:
        assert type(layer.in_proj) is Proj and type(layer.out_proj) is Proj
    assert type(model.lm_head) is (BitLinear if weights == "binary" else FloatLinear)
    keys = set(model.state_dict())
    extra = {"layers.0.in_proj.alpha", "layers.0.in_proj.beta", "layers.1.out_proj.alpha", "layers.1.out_proj.beta"}
    assert (extra <= keys) == (weights == "binary")
    assert {"layers.0.in_proj.weight", "layers.0.in_proj.norm.weight", "layers.1.out_proj.norm.weight"} <= keys
    ids = torch.randint(0, 300, (2, 70))  # crosses a chunk boundary (64)
    with torch.no_grad():
        a = model(ids)
        model.set_exact(True)
        assert all(getattr(m, "exact", True) for m in model.modules() if isinstance(m, (BinaryLinear, BitLinear)))
        assert all(layer.sequential_scan for layer in model.layers)
        b = model(ids)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_ternary_model_unchanged_by_the_weights_field():
    """weights: ternary (the default) builds the same BitLinear model from the same seed as before the field
    existed: identical state dicts for an explicit and a defaulted config."""
    torch.manual_seed(9)
    a = BitMambaLM(BitMambaConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=4, eos_token_id=0))
    torch.manual_seed(9)
    b = BitMambaLM(small_cfg("ternary"))
    assert all(type(layer.in_proj) is BitLinear for layer in b.layers)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


@pytest.mark.parametrize("weights", ["binary", "float"])
@pytest.mark.parametrize("layout", ["bitmamba2", "mamba2"])
def test_save_load_round_trip(tmp_path, weights, layout):
    torch.manual_seed(10)
    model = BitMambaLM(small_cfg(weights, layout))
    if weights == "binary":
        with torch.no_grad():
            model.layers[0].in_proj.alpha.mul_(1.5)  # trained values, not the ones init would recompute
            model.layers[1].out_proj.beta.add_(0.01)
    d = tmp_path / "ckpt"
    model.save_pretrained(d)
    assert json.loads((d / "config.json").read_text())["weights"] == weights
    loaded = BitMambaLM.from_pretrained(d)
    assert loaded.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    ids = torch.randint(0, 300, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model(ids), rtol=0, atol=0)
    # a checkpoint of one kind does not load as another
    cfg = json.loads((d / "config.json").read_text())
    cfg["weights"] = "ternary" if weights == "binary" else "binary"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not match the config"):
        BitMambaLM.from_pretrained(d)


@pytest.mark.parametrize("weights", ["ternary", "binary", "float"])
@pytest.mark.parametrize("layout", ["bitmamba2", "mamba2"])
def test_num_parameters_matches_the_module(weights, layout):
    cfg = small_cfg(weights, layout)
    assert BitMambaLM(cfg).num_parameters() == cfg.num_parameters()
    # independent count for binary: alpha and beta add 2 x (rows of in_proj + rows of out_proj) per layer
    if weights == "binary":
        tern = small_cfg("ternary", layout).num_parameters()
        assert cfg.num_parameters() == tern + cfg.n_layers * 2 * (cfg.in_proj_dim + cfg.d_model)
    big = BitMambaConfig.from_dict({**small_cfg(weights, layout).to_dict(), "d_model": 1024, "n_layers": 24,
                                    "n_heads": 16, "vocab_size": 50257,
                                    "n_groups": 16 if layout == "bitmamba2" else 2})
    with torch.device("meta"):
        assert BitMambaLM(big).num_parameters() == big.num_parameters()
