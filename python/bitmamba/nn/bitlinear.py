"""BitLinear: a linear layer with its own RMSNorm, int8 absmax activations and absmean ternary weights.

Training (`exact=False`, the default) fake-quantizes both operands in floating point with straight-through
estimators: the forward sees the quantized values, the backward treats rounding and clamping as the identity
(BitNet b1.58 / BitMamba-2). Exact inference (`exact=True`, or `BitMambaLM.set_exact(True)`) does what the
engine does: int8 codes, ternary codes, an integer accumulator, one division by s * scale_w.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACT_EPS = 1e-5  # in s = 127 / (max|x| + ACT_EPS)
WEIGHT_EPS = 1e-5  # scale_w = 1 / max(mean|W|, WEIGHT_EPS)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """scale_w = 1 / max(mean|W|, 1e-5), mean taken in float64 and rounded once to float32 so the value is
    the same as bitmamba.formats.quantize_ternary computes for the converted file."""
    mean = w.detach().double().abs().mean().clamp_min(WEIGHT_EPS)
    return (1.0 / mean).float()


def ternary_codes(w: torch.Tensor):
    """(codes float32 in {-1,0,1}, scale_w float32 scalar), identical to the converter's."""
    s = weight_scale(w)
    codes = torch.round(w.detach().double() * s.double()).clamp_(-1, 1).float()
    return codes, s


def activation_quant(xn: torch.Tensor):
    """(q in [-128, 127] as float, s [..., 1]): s = 127 / (max|xn| + 1e-5), q = round_half_even(xn * s)."""
    s = 127.0 / (xn.detach().abs().amax(-1, keepdim=True) + ACT_EPS)
    return torch.round(xn * s).clamp_(-128, 127), s


class BitLinear(nn.Module):
    """y = BitLinear(x) for weight [out_features, in_features] (no bias) and its own RMSNorm weight `norm`."""

    def __init__(self, in_features: int, out_features: int, eps: float = 1e-6):
        super().__init__()
        self.in_features, self.out_features, self.eps = in_features, out_features, eps
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.norm = _NormWeight(in_features)
        self.exact = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Small normal init like GPT-2 / Mamba (std 0.02); the absmean scale makes the ternary forward
        # independent of the overall magnitude, so only the relative pattern matters.
        nn.init.normal_(self.weight, std=0.02)
        nn.init.ones_(self.norm.weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, exact={self.exact}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = rms_norm(x, self.norm.weight, self.eps)
        if self.exact:
            return self._forward_exact(xn)
        # Activations: absmax int8 fake-quant with STE.
        q, s = activation_quant(xn)
        xq = xn + (q / s - xn).detach()
        # Weights: absmean ternary fake-quant with STE.
        w = self.weight
        sw = 1.0 / w.abs().mean().clamp_min(WEIGHT_EPS)
        wq = w + ((torch.round(w * sw).clamp(-1, 1) / sw) - w).detach()
        return F.linear(xq, wq)

    @torch.no_grad()
    def _forward_exact(self, xn: torch.Tensor) -> torch.Tensor:
        q, s = activation_quant(xn)
        codes, sw = ternary_codes(self.weight)
        # |acc| <= 128 * in_features: every partial sum is an integer exactly representable in float64.
        acc = F.linear(q.double(), codes.double()).to(xn.dtype)
        return acc / (s * sw.to(xn.dtype))


class _NormWeight(nn.Module):
    """Holds BitLinear's RMSNorm weight so the state-dict key is `<layer>.norm.weight`."""

    def __init__(self, n: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
