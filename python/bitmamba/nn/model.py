"""BitMambaLM: embedding, Mamba-2 mixers with residuals, norm_f, ternary lm_head (docs/model.md, "Forward pass").
`weights: binary` makes in_proj/out_proj BinaryLinear (docs/binary.md); `weights: float` makes every
projection, the head included, a FloatLinear (no quantization: a distillation teacher).

State-dict names are the converter's tensor names (bitmamba.formats.checkpoint), so a checkpoint directory
converts without PyTorch.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from .binarylinear import BinaryLinear, FloatLinear
from .bitlinear import BitLinear
from ..atomic import atomic_dir, atomic_path
from ..config import BitMambaConfig
from .ssd import ssd_chunked, ssm_scan_sequential


_PROJECTIONS = {"ternary": BitLinear, "binary": BinaryLinear, "float": FloatLinear}


def projection_class(cfg: BitMambaConfig):
    """The module of a mixer's in_proj / out_proj for cfg.weights."""
    return _PROJECTIONS[cfg.weights]


def head_class(cfg: BitMambaConfig):
    """The lm_head's module: ternary in ternary and binary models (docs/binary.md), float in float ones."""
    return FloatLinear if cfg.weights == "float" else BitLinear


class RMSNorm(nn.Module):
    def __init__(self, n: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class GatedRMSNorm(nn.Module):
    """Mamba-2's gated norm for the `mamba2` layout: RMSNorm(y * silu(z)) computed per group of
    d_inner / n_groups channels (as mamba_ssm's RMSNormGated with group_size = d_inner / ngroups)."""

    def __init__(self, n: int, n_groups: int, eps: float):
        super().__init__()
        self.n_groups, self.eps = n_groups, eps
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, y):  # y already multiplied by silu(z)
        shp = y.shape
        g = y.reshape(*shp[:-1], self.n_groups, shp[-1] // self.n_groups)
        g = g / torch.sqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)
        return g.reshape(shp) * self.weight


class Mamba2Mixer(nn.Module):
    """One Mamba-2 mixer (the residual is added by the LM)."""

    def __init__(self, cfg: BitMambaConfig):
        super().__init__()
        self.cfg = cfg
        H, di = cfg.n_heads, cfg.d_inner
        Proj = projection_class(cfg)
        self.in_proj = Proj(cfg.d_model, cfg.in_proj_dim, eps=cfg.norm_eps)
        self.conv1d = nn.Conv1d(cfg.conv_dim, cfg.conv_dim, cfg.d_conv, groups=cfg.conv_dim, bias=True,
                                padding=cfg.d_conv - 1)
        self.dt_bias = nn.Parameter(torch.empty(H))
        self.A_log = nn.Parameter(torch.empty(H))
        self.D = nn.Parameter(torch.ones(cfg.d_size))
        if cfg.layout == "mamba2":
            self.norm = GatedRMSNorm(di, cfg.n_groups, cfg.ssm_norm_eps)
        self.out_proj = Proj(di, cfg.d_model, eps=cfg.norm_eps)
        self.chunk_size = 64
        self.sequential_scan = False  # exact inference uses the sequential recurrence, like the reference
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """Mamba-2 initialisation: A uniform in [1, 16] (A_log = log A), dt log-uniform in [1e-3, 0.1] with
        dt_bias its inverse softplus, D = 1."""
        H = self.cfg.n_heads
        self.A_log.copy_(torch.log(torch.empty(H).uniform_(1.0, 16.0)))
        dt = torch.exp(torch.empty(H).uniform_(math.log(1e-3), math.log(0.1))).clamp_min(1e-4)
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.D.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        Bsz, T, _ = x.shape
        H, P, N, G, di = cfg.n_heads, cfg.head_dim, cfg.d_state, cfg.n_groups, cfg.d_inner
        gn = G * N
        z, xs, Bm, Cm, dt = torch.split(self.in_proj(x), [di, di, gn, gn, H], dim=-1)
        if cfg.layout == "bitmamba2":
            xc = F.silu(self.conv1d(xs.transpose(1, 2))[..., :T].transpose(1, 2))
        else:
            xbc = torch.cat([xs, Bm, Cm], dim=-1)
            xbc = F.silu(self.conv1d(xbc.transpose(1, 2))[..., :T].transpose(1, 2))
            xc, Bm, Cm = torch.split(xbc, [di, gn, gn], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # threshold 20: v for v > 20 (docs/model.md, "Mixer")
        A = -torch.exp(self.A_log)
        args = (xc.reshape(Bsz, T, H, P), dt, A, Bm.reshape(Bsz, T, G, N), Cm.reshape(Bsz, T, G, N))
        if self.sequential_scan:
            y, _ = ssm_scan_sequential(*args)
        else:
            y, _ = ssd_chunked(*args, chunk_size=self.chunk_size)
        Dc = self.D if self.D.numel() == di else self.D.repeat_interleave(P)
        y = (y.reshape(Bsz, T, di) + xc * Dc) * F.silu(z)
        if cfg.layout == "mamba2":
            y = self.norm(y)
        return self.out_proj(y)


class BitMambaLM(nn.Module):
    def __init__(self, cfg: BitMambaConfig):
        super().__init__()
        if not isinstance(cfg, BitMambaConfig):
            raise TypeError(f"BitMambaLM needs a BitMambaConfig, got {type(cfg).__name__}")
        cfg.validate()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.layers = nn.ModuleList(Mamba2Mixer(cfg) for _ in range(cfg.n_layers))
        self.norm_f = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = head_class(cfg)(cfg.d_model, cfg.vocab_size, eps=cfg.norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids LongTensor [B, T] -> logits [B, T, vocab] (float32 unless under autocast)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, time], got shape {tuple(input_ids.shape)}")
        x = self.embed(input_ids)
        for layer in self.layers:
            x = x + layer(x)
        return self.lm_head(self.norm_f(x))

    def set_exact(self, exact: bool = True) -> "BitMambaLM":
        """Exact inference mode: integer BitLinear / BinaryLinear (as the engine computes them) and the
        sequential scan. Training mode (exact=False) fake-quantizes with straight-through estimators and
        uses chunked SSD. FloatLinear has nothing to make exact; a float model only switches the scan."""
        for m in self.modules():
            if isinstance(m, (BitLinear, BinaryLinear)):
                m.exact = exact
            if isinstance(m, Mamba2Mixer):
                m.sequential_scan = exact
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- checkpoints ----------------------------------------------------------------------------
    def save_pretrained(self, directory: Union[str, os.PathLike], *, model_card: bool = True,
                        license: Optional[str] = None, base_model: Optional[str] = None,
                        datasets: Optional[Iterable[str]] = None, tags: Optional[Iterable[str]] = None,
                        eval_results=None, training: Optional[dict] = None) -> None:
        """Write config.json + model.safetensors (float32) and a README.md model card with the Hub's metadata
        (bitmamba.modelcard: license, base_model, datasets, tags, and the results of a `bitmamba eval
        --output` file as eval_results), so the directory is ready to upload. A README.md bitmamba did not
        write (or one whose marker line was deleted) is kept; model_card=False writes none.
        Atomic: a new directory is built under a temporary name and renamed; into an existing directory
        each file goes through a temporary file + rename."""
        from safetensors.torch import save_file

        from ..modelcard import keeps_user_card, model_card as card_text

        directory = Path(directory)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        config = json.dumps({"model_type": "bitmamba2", **self.config.to_dict()}, indent=2) + "\n"
        # Built (and an eval results file read) before anything is written: a bad file fails the save early.
        card = card_text(self.config.to_dict(), directory.name, license=license, base_model=base_model,
                         datasets=datasets, tags=tags, eval_results=eval_results,
                         training=training) if model_card else None
        if not directory.exists():
            with atomic_dir(directory) as tmp:
                save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
                (tmp / "config.json").write_text(config)
                if card is not None:
                    (tmp / "README.md").write_text(card, encoding="utf-8")
            return
        writers = [("model.safetensors", lambda p: save_file(state, str(p), metadata={"format": "pt"})),
                   ("config.json", lambda p: p.write_text(config))]
        if card is not None and not keeps_user_card(directory / "README.md"):
            writers.append(("README.md", lambda p: p.write_text(card, encoding="utf-8")))
        for name, writer in writers:
            with atomic_path(directory / name) as tmp:
                writer(tmp)

    @classmethod
    def from_pretrained(cls, directory: Union[str, os.PathLike], map_location="cpu") -> "BitMambaLM":
        from safetensors.torch import load_file

        directory = Path(directory)
        for f in ("config.json", "model.safetensors"):
            if not (directory / f).is_file():
                raise FileNotFoundError(f"{directory}: no {f} (expected a directory written by save_pretrained)")
        cfg = BitMambaConfig.from_json(directory / "config.json")
        model = cls(cfg)
        state = load_file(str(directory / "model.safetensors"), device=str(map_location))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{directory}: checkpoint does not match the config: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
        return model
