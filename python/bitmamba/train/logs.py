"""Run log (JSON lines) and the loss-curve plot."""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_write


class JsonlLog:
    def __init__(self, path, resume_step=None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            # Resuming: drop what was logged after the checkpoint, it will be logged again.
            lines = self.path.read_text().splitlines()
            last = max((n for n, ln in enumerate(lines, 1) if ln.strip()), default=0)
            keep = []
            for n, ln in enumerate(lines, 1):
                if not ln.strip():
                    continue
                try:
                    rec = json.loads(ln)
                except json.JSONDecodeError as e:
                    if n == last:
                        break  # a line cut short when the previous run was killed: logged again below
                    raise ValueError(f"{self.path}: line {n} is not valid JSON ({e.msg}, column {e.colno}); "
                                     "repair or remove the line to resume") from None
                if rec.get("step", 0) <= resume_step:
                    keep.append(ln)
            self.path.write_text("".join(k + "\n" for k in keep))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_log(path) -> list:
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def plot_losses(log_path, png_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = read_log(log_path)
    tr = [(r["step"], r["loss"]) for r in recs if r.get("kind") == "train"]
    va = [(r["step"], r["val_loss"]) for r in recs if r.get("kind") == "val"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if tr:
        ax.plot(*zip(*tr), label="train loss", lw=1)
    if va:
        ax.plot(*zip(*va), "o-", label="validation loss (mix-weighted)", lw=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_write(png_path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)
