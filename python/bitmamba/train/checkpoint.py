"""Training checkpoints: one torch.save file per step, written to a temporary name and renamed, so a
crash mid-write never leaves a truncated checkpoint under a real name. At least the two newest are kept,
so a latest checkpoint damaged later (a bad disk, a truncated copy) leaves one to fall back to."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Callable, Optional, Tuple

from ..atomic import atomic_write, remove_stale_temporaries

_NAME = re.compile(r"^step-(\d{8})\.pt$")
# What resuming reads from a checkpoint (bitmamba.train.loop writes these and a few more).
CHECKPOINT_KEYS = ("step", "consumed_samples", "model", "optimizer", "rng", "config")


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


MIN_KEEP = 2  # the latest and the one before it, to fall back to


def save_checkpoint(state: dict, directory, step: int, keep: int) -> Path:
    """Write step-XXXXXXXX.pt atomically, then delete all but the newest max(keep, 2) up to `step`.
    keep <= 0 keeps every checkpoint."""
    import torch

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    # Temporaries of any step that a killed run (kill -9, power loss) left behind.
    remove_stale_temporaries(d, "step-*.pt")
    path = checkpoint_path(d, step)
    with atomic_write(path) as f:  # an interrupted save never leaves a partial checkpoint
        torch.save(state, f)
    if keep > 0:
        # Checkpoints beyond `step` exist only after resuming from an older one (the newer ones were
        # damaged); they are overwritten as training reaches their steps, and must not push the
        # checkpoints just written out of the rotation.
        upto = [p for p in list_checkpoints(d) if int(_NAME.match(p.name).group(1)) <= step]
        for old in upto[:-max(keep, MIN_KEEP)]:
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
        state = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # a foreign or damaged file: say which, on one line
        raise ValueError(f"{p}: cannot read training checkpoint ({' '.join(str(e).split())})") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{p}: not a bitmamba training checkpoint (no {', '.join(missing)})")
    return state


def load_latest_checkpoint(directory, warn: Callable[[str], None] = None) -> Optional[Tuple[Path, dict]]:
    """(path, state) of the newest checkpoint in `directory` that reads, or None when there is none.
    Unreadable ones (truncated, garbage) are skipped with a warning naming them; when every checkpoint is
    unreadable this raises ValueError rather than let a run silently start over."""
    warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
    found = list_checkpoints(directory)
    bad = []
    for p in reversed(found):
        try:
            state = load_checkpoint(p)
        except ValueError as e:
            bad.append(p)
            warn(f"warning: {e}; falling back to the checkpoint before it")
            continue
        return p, state
    if bad:
        raise ValueError(f"no readable checkpoint in {directory}: all {len(bad)} are damaged "
                         f"({', '.join(b.name for b in bad)}); resume from another copy with --resume PATH, "
                         "or move them away to start over")
    return None
