"""Training checkpoints: one torch.save file per step, written to a temporary name and renamed, so a
crash mid-write never leaves a truncated checkpoint under a real name."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from ..formats.atomic import atomic_write

_NAME = re.compile(r"^step-(\d{8})\.pt$")


def checkpoint_path(directory, step: int) -> Path:
    return Path(directory) / f"step-{step:08d}.pt"


def list_checkpoints(directory) -> list:
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), d / n) for n in os.listdir(d) if (m := _NAME.match(n))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory) -> Optional[Path]:
    c = list_checkpoints(directory)
    return c[-1] if c else None


def save_checkpoint(state: dict, directory, step: int, keep: int) -> Path:
    import torch

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(d, step)
    with atomic_write(path) as f:  # an interrupted save never leaves a partial checkpoint
        torch.save(state, f)
    for old in list_checkpoints(d)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path):
    import torch

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        # weights_only=False: the file holds RNG states and plain Python values besides tensors; it is
        # our own checkpoint, not a file from the internet.
        return torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # a foreign or damaged file: say which
        raise ValueError(f"{p}: cannot read training checkpoint ({e})") from None
