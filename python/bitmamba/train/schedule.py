"""Learning-rate and weight-decay schedules, as pure functions of the optimizer step.

cosine:    linear warmup 0 -> lr over warmup_steps, then cosine decay lr -> min_lr at the last step.
two_stage: BitNet b1.58's recipe: a high-LR first stage (warmup, then the cosine above, cut off at
           stage_split of the run, where it has only come down halfway), then at the split an abrupt
           drop to stage2_lr (default 0.4 lr) and a cosine decay to min_lr over the second stage;
           weight decay is switched off in stage 2 (ternary weights should settle, not shrink).
constant:  warmup, then lr.
Because they are functions of the step, restoring the step restores the schedule exactly.
"""
from __future__ import annotations

import math


def _cos(frac: float, hi: float, lo: float) -> float:
    frac = min(max(frac, 0.0), 1.0)
    return lo + 0.5 * (hi - lo) * (1.0 + math.cos(math.pi * frac))


class Schedule:
    def __init__(self, kind: str, lr: float, min_lr: float, warmup_steps: int, total_steps: int,
                 weight_decay: float, stage2_lr=None, stage_split: float = 0.5):
        if kind not in ("cosine", "two_stage", "constant"):
            raise ValueError(f"unknown schedule {kind!r}")
        self.kind, self.lr, self.min_lr = kind, float(lr), float(min_lr)
        self.warmup, self.total = int(warmup_steps), int(total_steps)
        self.wd = float(weight_decay)
        self.stage2_lr = float(stage2_lr) if stage2_lr is not None else 0.4 * self.lr
        self.split = max(1, int(round(stage_split * self.total)))

    @classmethod
    def from_config(cls, c) -> "Schedule":
        return cls(c.schedule, c.lr, c.min_lr, c.warmup_steps, c.steps, c.weight_decay, c.stage2_lr, c.stage_split)

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.kind == "constant":
            return self.lr
        if self.kind == "cosine" or step < self.split:
            span = max(1, self.total - 1 - self.warmup)
            return _cos((step - self.warmup) / span, self.lr, self.min_lr)
        span = max(1, self.total - 1 - self.split)
        return _cos((step - self.split) / span, self.stage2_lr, self.min_lr)

    def weight_decay_at(self, step: int) -> float:
        if self.kind == "two_stage" and step >= self.split:
            return 0.0
        return self.wd

    def state_dict(self) -> dict:
        return dict(vars(self))
