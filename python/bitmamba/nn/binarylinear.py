"""BinaryLinear (Bi-Mamba's FBI-Linear, docs/binary.md) and FloatLinear (no quantization, for teachers).

BinaryLinear: the weight is the sign of a latent float matrix with a learned scale `alpha` and shift `beta`
per output row, W_hat = alpha * sign(W) + beta; activations take BitLinear's int8 absmax path unchanged, so
the engine can compute sign(W) . q as an exact integer dot product. Training (`exact=False`) fake-quantizes
with straight-through estimators (the sign's gradient is clipped to |W| <= 1); exact inference
(`exact=True`) evaluates the integer formula of docs/binary.md bit for bit as the engine does.

FloatLinear: the same RMSNorm and weight layout as BitLinear with a plain float matmul, the projection of
a `weights: float` model (quantization off everywhere).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .bitlinear import ACT_EPS, _NormWeight, activation_quant, rms_norm


def activation_quant_exact(xn: torch.Tensor):
    """(q, s) as the engine computes them: s = 127 / (max|xn| + 1e-5) as one IEEE float32 division.
    bitlinear.activation_quant writes `127.0 / tensor`, which torch evaluates as 127 * (1 / tensor), one
    ulp off the true quotient for about a quarter of the inputs; that is harmless for training and kept
    there (ternary results stay as they were), but exact mode promises the engine's bits."""
    m = xn.detach().abs().amax(-1, keepdim=True) + ACT_EPS
    s = torch.full_like(m, 127.0) / m
    return torch.round(xn * s).clamp_(-128, 127), s


class _SignSTE(torch.autograd.Function):
    """sign(W) with +1 at 0; backward: the clipped straight-through estimator (gradient passes where
    |W| <= 1, zero elsewhere, so latent weights that drifted far from 0 stop moving on sign gradients)."""

    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(w)
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


def sign_ste(w: torch.Tensor) -> torch.Tensor:
    return _SignSTE.apply(w)


def binary_signs(w: torch.Tensor) -> torch.Tensor:
    """The signs docs/binary.md stores: +1 where W >= 0 (0 counts as +1), -1 elsewhere (float32)."""
    w = w.detach()
    return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w)).float()


@torch.no_grad()
def xnor_init(w: torch.Tensor):
    """(alpha, beta) [out] by FBI-LLM's xnor rule: beta = mean_c W, alpha = mean_c |W - beta|. Means in
    float64, rounded once to float32, so the values do not depend on the reduction order."""
    wd = w.detach().double()
    beta = wd.mean(-1)
    alpha = (wd - beta[:, None]).abs().mean(-1)
    return alpha.float(), beta.float()


class BinaryLinear(nn.Module):
    """y = FBI-Linear(x) for a latent weight [out_features, in_features], per-row `alpha` and `beta` [out]
    and its own RMSNorm weight `norm` (state-dict keys weight, alpha, beta, norm.weight)."""

    def __init__(self, in_features: int, out_features: int, eps: float = 1e-6):
        super().__init__()
        self.in_features, self.out_features, self.eps = in_features, out_features, eps
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.alpha = nn.Parameter(torch.empty(out_features))
        self.beta = nn.Parameter(torch.empty(out_features))
        self.norm = _NormWeight(in_features)
        self.exact = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The latent weight is drawn as BitLinear's (one normal_ call of the same shape, so a binary model
        # consumes the RNG exactly as a ternary one does); alpha and beta then make alpha * sign(W) + beta
        # the best per-row binary fit of that draw (xnor rule). On the meta device there is nothing to fit.
        nn.init.normal_(self.weight, std=0.02)
        nn.init.ones_(self.norm.weight)
        if self.weight.device.type != "meta":
            alpha, beta = xnor_init(self.weight)
            with torch.no_grad():
                self.alpha.copy_(alpha)
                self.beta.copy_(beta)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, exact={self.exact}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = rms_norm(x, self.norm.weight, self.eps)
        if self.exact:
            return self._forward_exact(xn)
        q, s = activation_quant(xn)
        xq = xn + (q / s - xn).detach()
        w_hat = self.alpha[:, None] * sign_ste(self.weight) + self.beta[:, None]
        return F.linear(xq, w_hat)

    @torch.no_grad()
    def _forward_exact(self, xn: torch.Tensor) -> torch.Tensor:
        """docs/binary.md, "Exact evaluation": acc = b . q and S = sum q as exact integers (|acc| <= 128 *
        in_features, exactly representable in float64), then (alpha * acc + beta * S) / s in float64 as
        separate operations (no fused multiply-add), rounded once to float32."""
        q, s = activation_quant_exact(xn.float())
        qd = q.double()
        acc = F.linear(qd, binary_signs(self.weight).double())
        S = qd.sum(-1, keepdim=True)
        y = (self.alpha.detach().double() * acc + self.beta.detach().double() * S) / s.double()
        return y.float()


class FloatLinear(nn.Module):
    """y = W RMSNorm(x): BitLinear's layout (weight [out, in], norm.weight [in]) with no quantization."""

    def __init__(self, in_features: int, out_features: int, eps: float = 1e-6):
        super().__init__()
        self.in_features, self.out_features, self.eps = in_features, out_features, eps
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.norm = _NormWeight(in_features)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.02)  # as BitLinear: the same draw, the same RNG use
        nn.init.ones_(self.norm.weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(rms_norm(x, self.norm.weight, self.eps), self.weight)
