"""Training-run configuration (YAML). Plain Python: no torch needed to read or check it."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Union

SCHEDULES = ("cosine", "two_stage", "constant")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclasses.dataclass
class TrainConfig:
    """One training run. Batch sizes count samples of seq_len tokens.

    batch_size is the GLOBAL batch per optimizer step (all ranks, all accumulation micro-steps);
    grad_accum = batch_size / (micro_batch * world_size) must be a whole number. So the same config gives
    the same optimisation on 1 process or N (torchrun), only the split of the work changes.
    """

    model: Union[str, dict]              # model config: a YAML path (configs/model/*.yaml) or an inline mapping
    data: str                            # a prepared data directory (holds manifest.json)
    out_dir: str = "runs/run"            # log.jsonl, loss.png, checkpoints/, export
    init_from: Optional[str] = None      # start from a save_pretrained directory instead of random weights
    # distillation (docs/training.md, "Binary models and distillation"): with a teacher the loss is
    # distill_alpha * T^2 * KL(teacher || student) + (1 - distill_alpha) * CE at T = distill_temperature
    teacher: Optional[str] = None        # save_pretrained directory or local Hugging Face causal-LM directory
    distill_temperature: float = 1.0
    distill_alpha: float = 1.0           # weight of the KL term (1: pure distillation; 0: CE only)
    seq_len: int = 256
    batch_size: int = 16                 # global samples per optimizer step
    micro_batch: Optional[int] = None    # samples per forward pass per rank (default: batch_size / world)
    steps: int = 1000                    # optimizer steps (the schedule's horizon)
    mix: Optional[dict] = None           # source -> weight; default: the weights in the manifest
    data_seed: int = 1234                # per-source shuffling key
    shuffle: bool = True
    seed: int = 0                        # model initialisation
    # optimiser
    lr: float = 1.5e-3
    min_lr: float = 1.5e-4
    warmup_steps: int = 100
    schedule: str = "cosine"             # cosine | two_stage (BitNet b1.58) | constant (after warmup)
    stage2_lr: Optional[float] = None    # two_stage: LR the second stage restarts from (default 0.4 * lr)
    stage_split: float = 0.5             # two_stage: fraction of steps in stage 1
    weight_decay: float = 0.1            # 2-D weights only (matrices, embedding); 0 in two_stage's stage 2
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0               # max global grad norm; 0 disables
    # runtime
    precision: str = "auto"              # auto: bf16 autocast on CUDA with bf16, fp32 on CPU
    device: str = "auto"                 # auto | cpu | cuda
    threads: Optional[int] = None        # torch.set_num_threads on CPU
    log_every: int = 10
    eval_every: int = 100                # 0: only at the end
    eval_samples: int = 32               # validation windows per source
    checkpoint_every: int = 200          # 0: only at the end
    keep_checkpoints: int = 2
    export: Optional[str] = None         # save_pretrained directory written at the end (relative: under out_dir)
    plot: bool = True                    # loss.png next to log.jsonl

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ValueError("train config: expected a mapping")
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(d) - names
        if extra:
            raise ValueError(f"train config: unknown key(s) {sorted(extra)}; allowed: {sorted(names)}")
        for k in ("model", "data"):
            if k not in d:
                raise ValueError(f"train config: missing '{k}'")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path) -> "TrainConfig":
        from ..yamlfile import read_mapping

        return cls.from_dict(read_mapping(path, "train config"))

    def validate(self) -> None:
        def pos(name, allow_zero=False):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if allow_zero else 1):
                raise ValueError(f"train config: {name} must be an integer >= {0 if allow_zero else 1}, got {v!r}")

        for n in ("seq_len", "batch_size", "steps", "eval_samples", "keep_checkpoints", "log_every"):
            pos(n)
        for n in ("warmup_steps", "eval_every", "checkpoint_every"):
            pos(n, allow_zero=True)
        if self.micro_batch is not None:
            pos("micro_batch")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"train config: schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train config: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train config: device must be auto, cpu or cuda, got {self.device!r}")
        for n in ("lr", "min_lr", "weight_decay", "eps", "grad_clip"):
            v = getattr(self, n)
            if not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"train config: {n} must be a number >= 0, got {v!r}")
        if self.teacher is not None and (not isinstance(self.teacher, str) or not self.teacher):
            raise ValueError(f"train config: teacher must be a directory path, got {self.teacher!r}")
        t = self.distill_temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0 or t == float("inf"):
            raise ValueError(f"train config: distill_temperature must be a number > 0, got {t!r}")
        a = self.distill_alpha
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 <= a <= 1:
            raise ValueError(f"train config: distill_alpha must be a number in [0, 1], got {a!r}")
        if not 0 < self.stage_split < 1:
            raise ValueError(f"train config: stage_split must be in (0, 1), got {self.stage_split}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("train config: beta1 and beta2 must be in [0, 1)")

    def grad_accum(self, world_size: int) -> tuple:
        """(micro_batch, grad_accum) for this world size."""
        mb = self.micro_batch or max(1, self.batch_size // world_size)
        if self.batch_size % (mb * world_size):
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of micro_batch {mb} x world size "
                             f"{world_size}")
        return mb, self.batch_size // (mb * world_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
