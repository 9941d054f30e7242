"""The converter's neutral in-memory model: a config plus named numpy arrays, ternary projections kept as
their {-1,0,+1} codes and exact fp32 scale_w, binary projections (config weights: binary, docs/binary.md)
as their {-1,+1} signs with the fp32 alpha and beta per output row. Every reader produces one, every writer
consumes one, and bitmamba.reference runs it.

Tensor names are those of the PyTorch state dict (bitmamba.nn):
  embed.weight [V, D]
  layers.{i}.in_proj.norm.weight [D]           layers.{i}.in_proj.weight   Ternary [in_proj_dim, D]
  layers.{i}.conv1d.weight [conv_dim, 1, K]    layers.{i}.conv1d.bias [conv_dim]
  layers.{i}.dt_bias [H]   layers.{i}.A_log [H]   layers.{i}.D [d_inner] (bitmamba2) or [H] (mamba2)
  layers.{i}.norm.weight [d_inner]             (mamba2 layout only: gated RMSNorm)
  layers.{i}.out_proj.norm.weight [d_inner]    layers.{i}.out_proj.weight  Ternary [D, d_inner]
  norm_f.weight [D]   lm_head.norm.weight [D]   lm_head.weight Ternary [V, D]
In a binary model the two projection weights of every layer are Binary (same names and shapes; the PyTorch
state dict's separate `.alpha` / `.beta` live inside the Binary); lm_head.weight stays Ternary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple, Union

import numpy as np

from ..config import BitMambaConfig


@dataclass
class Ternary:
    """A ternary weight: codes int8 [out, in] in {-1, 0, +1} and the per-tensor scale_w (float32):
    the real-valued weight is codes / scale_w."""

    codes: np.ndarray
    scale: np.float32

    def __post_init__(self) -> None:
        self.codes = np.ascontiguousarray(self.codes, dtype=np.int8)
        self.scale = np.float32(self.scale)
        if self.codes.ndim != 2:
            raise ValueError(f"ternary codes must be 2-D [out, in], got shape {self.codes.shape}")

    @property
    def shape(self) -> Tuple[int, int]:
        return tuple(self.codes.shape)

    def sparsity(self) -> float:
        """Fraction of zero codes."""
        return float(np.count_nonzero(self.codes == 0)) / max(1, self.codes.size)


@dataclass
class Binary:
    """A binary projection (FBI-Linear, docs/binary.md): signs int8 [out, in] in {-1, +1}, alpha and beta
    float32 [out]: the real-valued weight is alpha[r] * signs[r, c] + beta[r]."""

    signs: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray

    def __post_init__(self) -> None:
        self.signs = np.ascontiguousarray(self.signs, dtype=np.int8)
        self.alpha = np.ascontiguousarray(self.alpha, dtype=np.float32).reshape(-1)
        self.beta = np.ascontiguousarray(self.beta, dtype=np.float32).reshape(-1)
        if self.signs.ndim != 2:
            raise ValueError(f"binary signs must be 2-D [out, in], got shape {self.signs.shape}")
        if self.signs.size and not np.all((self.signs == 1) | (self.signs == -1)):
            raise ValueError("binary signs must all be -1 or +1")
        rows = self.signs.shape[0]
        if self.alpha.shape != (rows,) or self.beta.shape != (rows,):
            raise ValueError(f"binary alpha / beta must have shape ({rows},) (one per output row), got "
                             f"{self.alpha.shape} / {self.beta.shape}")

    @property
    def shape(self) -> Tuple[int, int]:
        return tuple(self.signs.shape)

    @property
    def n_params(self) -> int:
        """Signs plus the two per-row vectors."""
        return int(self.signs.size + self.alpha.size + self.beta.size)

    def balance(self) -> float:
        """Fraction of +1 signs."""
        return float(np.count_nonzero(self.signs > 0)) / max(1, self.signs.size)


class NonFiniteError(ValueError):
    """A tensor holds NaN or Inf: the converter refuses to write such a model."""


class UnsupportedModelError(ValueError):
    """A checkpoint that is no engine model (a float teacher): the converter refuses it."""


def binarize(w: np.ndarray, alpha: np.ndarray, beta: np.ndarray, name: str = "weight") -> Binary:
    """The binary projection of a latent fp weight [out, in] with its learned alpha, beta [out]
    (docs/binary.md): signs = +1 where w >= 0 (zero counts as +1), else -1."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D weight, got shape {w.shape}")
    for what, a in (("weight", w), ("alpha", alpha), ("beta", beta)):
        a = np.asarray(a, dtype=np.float32)
        if not np.isfinite(a).all():
            bad = int(np.count_nonzero(~np.isfinite(a)))
            raise NonFiniteError(f"{name}: {bad} NaN/Inf values in the {what}")
    alpha = np.asarray(alpha, dtype=np.float32).reshape(-1)
    beta = np.asarray(beta, dtype=np.float32).reshape(-1)
    if alpha.shape != (w.shape[0],) or beta.shape != (w.shape[0],):
        raise ValueError(f"{name}: alpha and beta need shape ({w.shape[0]},), got {alpha.shape} and {beta.shape}")
    return Binary(np.where(w >= 0, 1, -1).astype(np.int8), alpha, beta)


def quantize_ternary(w: np.ndarray, name: str = "weight") -> Ternary:
    """Absmean ternary quantization of a latent fp weight [out, in] (docs/model.md, "BitLinear"):
    scale_w = 1 / max(mean|W|, 1e-5), codes = clamp(round_half_even(W * scale_w), -1, 1).

    The mean is taken in float64 and scale_w rounded once to float32; the codes use that float32 scale_w.
    bitmamba.nn's exact inference mode does the same, so both sides agree bit for bit."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D weight, got shape {w.shape}")
    if not np.isfinite(w).all():
        bad = int(np.count_nonzero(~np.isfinite(w)))
        raise NonFiniteError(f"{name}: {bad} NaN/Inf values in the weight")
    mean = float(np.abs(w).mean(dtype=np.float64)) if w.size else 0.0
    scale = np.float32(1.0 / max(mean, 1e-5))
    # float32 * float32 is exact in float64, so the rounding below sees the true product (as torch's
    # w.double() * scale_w.double() does in bitmamba.nn).
    t = w * np.float64(scale)
    np.rint(t, out=t)
    np.clip(t, -1, 1, out=t)
    return Ternary(t.astype(np.int8), scale)


Tensor = Union[np.ndarray, Ternary, Binary]


def tensor_names(cfg: BitMambaConfig) -> List[str]:
    """All tensor names of a model of this shape, in BIT2 file order."""
    names = ["embed.weight"]
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        names += [p + "in_proj.norm.weight", p + "in_proj.weight", p + "conv1d.weight", p + "conv1d.bias",
                  p + "dt_bias", p + "A_log", p + "D"]
        if cfg.layout == "mamba2":
            names.append(p + "norm.weight")
        names += [p + "out_proj.norm.weight", p + "out_proj.weight"]
    return names + ["norm_f.weight", "lm_head.norm.weight", "lm_head.weight"]


def expected_shapes(cfg: BitMambaConfig) -> Dict[str, Tuple[int, ...]]:
    D, V, H = cfg.d_model, cfg.vocab_size, cfg.n_heads
    out = {"embed.weight": (V, D), "norm_f.weight": (D,), "lm_head.norm.weight": (D,), "lm_head.weight": (V, D)}
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        out.update({
            p + "in_proj.norm.weight": (D,), p + "in_proj.weight": (cfg.in_proj_dim, D),
            p + "conv1d.weight": (cfg.conv_dim, 1, cfg.d_conv), p + "conv1d.bias": (cfg.conv_dim,),
            p + "dt_bias": (H,), p + "A_log": (H,), p + "D": (cfg.d_size,),
            p + "out_proj.norm.weight": (cfg.d_inner,), p + "out_proj.weight": (D, cfg.d_inner),
        })
        if cfg.layout == "mamba2":
            out[p + "norm.weight"] = (cfg.d_inner,)
    return out


def is_ternary_name(name: str) -> bool:
    """A quantized matrix (ternary in ternary models; the mixer projections are binary in binary ones,
    see is_binary_name)."""
    return name.endswith(("in_proj.weight", "out_proj.weight")) or name == "lm_head.weight"


def is_binary_name(name: str, cfg: BitMambaConfig) -> bool:
    """A binary projection of a `weights: binary` model: every layer's in_proj and out_proj."""
    return cfg.weights == "binary" and name.endswith(("in_proj.weight", "out_proj.weight"))


@dataclass
class Checkpoint:
    config: BitMambaConfig
    tensors: Dict[str, Tensor] = field(default_factory=dict)
    tokenizer_json: Union[str, None] = None  # the full tokenizer.json text, when the source carries one
    name: str = "bitmamba2"

    def validate(self) -> None:
        """Every tensor present with the right shape and kind, nothing extra. Raises ValueError."""
        want = expected_shapes(self.config)
        missing = [n for n in want if n not in self.tensors]
        if missing:
            raise ValueError(f"checkpoint is missing {len(missing)} tensors, e.g. {missing[:3]}")
        extra = [n for n in self.tensors if n not in want]
        if extra:
            raise ValueError(f"checkpoint has unexpected tensors: {extra[:5]}")
        if self.config.weights not in ("ternary", "binary"):
            raise ValueError(f"weights: {self.config.weights} is no engine model (ternary or binary)")
        for n, shape in want.items():
            t = self.tensors[n]
            if is_binary_name(n, self.config):
                if not isinstance(t, Binary):
                    raise ValueError(f"{n}: expected a binary tensor (the model's weights are binary)")
                if t.shape != shape:
                    raise ValueError(f"{n}: shape {t.shape}, expected {shape}")
            elif is_ternary_name(n):
                if not isinstance(t, Ternary):
                    raise ValueError(f"{n}: expected a ternary tensor")
                if t.shape != shape:
                    raise ValueError(f"{n}: shape {t.shape}, expected {shape}")
                if t.codes.size and (t.codes.min() < -1 or t.codes.max() > 1):
                    raise ValueError(f"{n}: codes outside {{-1, 0, +1}}")
            else:
                if isinstance(t, (Ternary, Binary)):
                    raise ValueError(f"{n}: expected a float tensor, got a {type(t).__name__.lower()} one")
                if int(np.prod(t.shape)) != int(np.prod(shape)):
                    raise ValueError(f"{n}: shape {tuple(t.shape)}, expected {shape}")

    def float_tensor(self, name: str, shape=None) -> np.ndarray:
        a = np.asarray(self.tensors[name], dtype=np.float32)
        return a.reshape(shape) if shape is not None else a

    def num_parameters(self) -> int:
        """Every weight: ternary codes, binary signs with their alpha and beta, float values."""
        return sum(t.n_params if isinstance(t, Binary) else int(np.prod(t.shape)) for t in self.tensors.values())
