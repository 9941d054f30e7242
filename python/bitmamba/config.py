"""BitMambaConfig: the shape of a BitMamba-2 / Mamba-2 model. Plain Python (no torch), so the converter
and the numpy reference can use it without PyTorch installed."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

LAYOUTS = ("bitmamba2", "mamba2")
# What the in_proj / out_proj projections are (docs/binary.md): "ternary" BitLinear (BitMamba-2),
# "binary" FBI-Linear (Bi-Mamba: signs with a learned scale and shift per output row), or "float":
# no quantization at all (weights and activations full precision; a distillation teacher, not a file
# the engine runs). The lm_head is a ternary BitLinear in the first two and a float one in the last.
WEIGHTS = ("ternary", "binary", "float")


@dataclass
class BitMambaConfig:
    """Model hyperparameters (docs/model.md, "Shapes" and "Layouts").

    layout "bitmamba2": conv over x only, y * silu(z), no gated norm, D per channel (the released models;
    needs d_state == 1 and n_groups == n_heads). layout "mamba2": canonical Mamba-2: conv over x||B||C,
    gated RMSNorm (group-wise, eps `ssm_norm_eps`) after y * silu(z), D per head.
    """

    vocab_size: int = 50257
    d_model: int = 1024
    n_layers: int = 24
    n_heads: int = 16
    d_state: int = 1
    n_groups: Optional[int] = None  # None -> n_heads
    expand: int = 2
    d_conv: int = 4
    layout: str = "bitmamba2"
    norm_eps: float = 1e-6  # RMSNorm inside every BitLinear and norm_f
    ssm_norm_eps: float = 1e-5  # gated RMSNorm (mamba2 layout only)
    eos_token_id: int = 50256  # -1: none (a model file that names none, of a vocabulary other than GPT-2's)
    bos_token_id: Optional[int] = None  # None -> eos_token_id (GPT-2 convention)
    context_length: int = 2048  # nominal evaluation window; the SSM itself has no limit
    weights: str = "ternary"  # one of WEIGHTS

    def __post_init__(self) -> None:
        if self.n_groups is None:
            self.n_groups = self.n_heads
        self.validate()

    # ---- derived shapes -------------------------------------------------------------------------
    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def head_dim(self) -> int:
        return self.d_inner // self.n_heads

    @property
    def conv_dim(self) -> int:
        """Channels the causal conv runs over: x only (bitmamba2) or x||B||C (mamba2)."""
        if self.layout == "bitmamba2":
            return self.d_inner
        return self.d_inner + 2 * self.n_groups * self.d_state

    @property
    def in_proj_dim(self) -> int:
        """in_proj output: z [d_inner], x [d_inner], B [G*N], C [G*N], dt [H]."""
        return 2 * self.d_inner + 2 * self.n_groups * self.d_state + self.n_heads

    @property
    def d_size(self) -> int:
        """Length of D: per channel for bitmamba2, per head for mamba2."""
        return self.d_inner if self.layout == "bitmamba2" else self.n_heads

    def num_parameters(self) -> int:
        """Exact parameter count of this shape (embedding and lm_head untied), equal to the PyTorch
        model's for every `weights` (float models have the same tensors as ternary ones)."""
        D, V = self.d_model, self.vocab_size
        per_layer = (
            D + self.in_proj_dim * D  # in_proj norm + weight
            + self.conv_dim * self.d_conv + self.conv_dim  # conv weight + bias
            + 2 * self.n_heads  # dt_bias, A_log
            + self.d_size
            + (self.d_inner if self.layout == "mamba2" else 0)  # gated norm
            + self.d_inner + D * self.d_inner  # out_proj norm + weight
            # binary projections add alpha and beta per output row (docs/binary.md)
            + (2 * (self.in_proj_dim + D) if self.weights == "binary" else 0)
        )
        return V * D + self.n_layers * per_layer + D + D + V * D

    # ---- checks ---------------------------------------------------------------------------------
    def validate(self) -> None:
        def pos(name):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"BitMambaConfig.{name} must be a positive integer, got {v!r}")

        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_state", "n_groups", "expand",
                     "d_conv", "context_length"):
            pos(name)
        if self.weights not in WEIGHTS:
            raise ValueError(f"BitMambaConfig.weights must be one of {WEIGHTS}, got {self.weights!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"BitMambaConfig.layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.d_inner % self.n_heads:
            raise ValueError(f"d_inner = {self.d_inner} is not divisible by n_heads = {self.n_heads}")
        if self.n_heads % self.n_groups:
            raise ValueError(f"n_heads = {self.n_heads} is not divisible by n_groups = {self.n_groups}")
        if self.layout == "bitmamba2" and (self.d_state != 1 or self.n_groups != self.n_heads):
            raise ValueError("layout 'bitmamba2' needs d_state = 1 and n_groups = n_heads "
                             f"(got d_state={self.d_state}, n_groups={self.n_groups}); use layout 'mamba2'")
        if not (0 <= self.eos_token_id < self.vocab_size or self.eos_token_id == -1):
            raise ValueError(f"eos_token_id {self.eos_token_id} outside the vocabulary ({self.vocab_size})")
        for name in ("norm_eps", "ssm_norm_eps"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"BitMambaConfig.{name} must be > 0")

    # ---- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "BitMambaConfig":
        d = dict(d)
        d.pop("model_type", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown BitMambaConfig keys: {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path) -> "BitMambaConfig":
        from .yamlfile import read_mapping

        d = read_mapping(path, "model config")
        if "model" in d and isinstance(d["model"], dict):  # allow a `model:` section
            d = d["model"]
        return cls.from_dict(d)

    @classmethod
    def from_json(cls, path) -> "BitMambaConfig":
        with open(path, "r", encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_json(self, path) -> None:
        Path(path).write_text(json.dumps({"model_type": "bitmamba2", **self.to_dict()}, indent=2) + "\n")
