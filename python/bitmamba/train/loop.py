"""The training loop: AdamW + schedule, gradient accumulation, clipping, bf16 autocast, validation,
logging, atomic checkpoints with exact resume, and data parallelism under torchrun (DDP).

Everything that decides which samples a step sees is a function of the consumed-sample count (see
bitmamba.data.dataset), so a checkpoint only needs that count besides the model/optimizer/RNG states,
and N ranks with grad_accum A see exactly the samples 1 process with grad_accum N*A sees.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..data import MixedDataset, ValidationSet, rank_indices
from .checkpoint import list_checkpoints, load_checkpoint, load_latest_checkpoint, save_checkpoint
from .config import TrainConfig
from .distill import distill_losses, load_teacher
from .logs import JsonlLog, plot_losses
from .schedule import Schedule


def build_model(cfg: TrainConfig):
    """The BitMamba-2 model a config names (init_from: a save_pretrained directory)."""
    from ..config import BitMambaConfig
    from ..nn import BitMambaLM

    if cfg.init_from:
        return BitMambaLM.from_pretrained(cfg.init_from)
    if isinstance(cfg.model, dict):
        return BitMambaLM(BitMambaConfig.from_dict(cfg.model))
    return BitMambaLM(BitMambaConfig.from_yaml(cfg.model))


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _rng_state() -> dict:
    import torch

    s = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        s["cuda"] = torch.cuda.get_rng_state()
    return s


def _set_rng_state(s: dict) -> None:
    import torch

    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state(s["cuda"])


class _Dist:
    """Rank/world from torchrun's environment; one process otherwise."""

    def __init__(self, device_kind: str):
        import torch
        import torch.distributed as dist

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_group = False
        if device_kind == "cuda":
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
            self.owns_group = True
        self.dist = dist if self.world > 1 else None

    def all_sum(self, values: list) -> list:
        """Sum floats over ranks (float64 on the device)."""
        if self.dist is None:
            return list(values)
        import torch

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        self.dist.all_reduce(t)
        return t.tolist()

    def gather_objects(self, obj) -> list:
        if self.dist is None:
            return [obj]
        out = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def barrier(self):
        if self.dist is not None:
            self.dist.barrier()

    def close(self):
        if self.owns_group:
            self.dist.destroy_process_group()


def _param_groups(model, weight_decay: float) -> list:
    """Weight decay on matrices (projections' latent weights, embedding) only; not on norms, biases, A_log,
    D, dt_bias, the depthwise conv kernels or a binary projection's alpha and beta."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() == 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, "decays": True},
            {"params": no_decay, "weight_decay": 0.0, "decays": False}]


@contextlib.contextmanager
def _nullctx():
    yield


def evaluate(model, valset: ValidationSet, weights: dict, d: "_Dist", autocast) -> dict:
    """Mean validation cross-entropy per source (each rank takes every world-th window), plus the
    mix-weighted mean over the sources that have held-out data."""
    import torch
    import torch.nn.functional as F

    m = _unwrap(model)
    was_training = m.training
    m.eval()
    names = list(valset.windows)
    sums = []
    with torch.no_grad():
        for k in names:
            w = valset.windows[k][d.rank::d.world]
            tot, n = 0.0, 0
            for i in range(0, len(w), 8):
                x = torch.from_numpy(w[i:i + 8]).to(d.device)
                with autocast():
                    logits = m(x[:, :-1])
                loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                       reduction="sum")
                tot += float(loss)
                n += x[:, 1:].numel()
            sums += [tot, float(n)]
    sums = d.all_sum(sums)
    m.train(was_training)
    per = {k: sums[2 * i] / sums[2 * i + 1] for i, k in enumerate(names) if sums[2 * i + 1] > 0}
    if not per:
        return {}
    wsum = sum(weights.get(k, 0.0) for k in per) or float(len(per))
    mixed = sum(per[k] * (weights.get(k, 0.0) if wsum else 1.0) for k in per) / wsum
    return {"val_loss": mixed, "val_ppl": math.exp(min(mixed, 50.0)), "per_source": per}


def train(cfg: TrainConfig, resume=None, stop_at: Optional[int] = None, model_factory: Optional[Callable] = None,
          quiet: bool = False) -> dict:
    """Run (or resume) training. resume: None (fresh), "latest" (the newest readable checkpoint in out_dir;
    an error when there is none), "auto" (the same, but start fresh when there is none) or a checkpoint
    path. A damaged newest checkpoint falls back to the one before it, with a warning.
    stop_at: stop after this many steps (the schedule still spans cfg.steps).
    model_factory: a zero-argument callable returning the torch module to train (default: build_model).
    Returns a summary (final step, losses, throughput, paths)."""
    import torch
    import torch.nn.functional as F

    cfg.validate()
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("train config asks for device: cuda but CUDA is not available")
    d = _Dist("cuda" if use_cuda else "cpu")
    try:
        return _train(cfg, d, resume, stop_at, model_factory, quiet, torch, F)
    finally:
        d.close()


def _train(cfg, d, resume, stop_at, model_factory, quiet, torch, F) -> dict:
    out = Path(cfg.out_dir)
    ckpt_dir = out / "checkpoints"
    lead = d.rank == 0
    say = (lambda *a: print(*a, flush=True)) if (lead and not quiet) else (lambda *a: None)
    if cfg.threads and d.device.type == "cpu":
        torch.set_num_threads(int(cfg.threads))
    mb, accum = cfg.grad_accum(d.world)

    # Precision: bf16 autocast on GPUs that have it; on CPU only when asked (it is slower there).
    if cfg.precision == "bf16" or (cfg.precision == "auto" and d.device.type == "cuda"
                                   and torch.cuda.is_bf16_supported()):
        if d.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("precision: bf16 requested but this GPU has no bf16")
        autocast = lambda: torch.autocast(device_type=d.device.type, dtype=torch.bfloat16)  # noqa: E731
        precision = "bf16"
    else:
        autocast = _nullctx
        precision = "fp32"

    ds = MixedDataset(cfg.data, cfg.seq_len, weights=cfg.mix, seed=cfg.data_seed, shuffle=cfg.shuffle)
    valset = ValidationSet(cfg.data, cfg.seq_len, max_samples=cfg.eval_samples, sources=ds.names)
    mix = dict(zip(ds.names, ds.weights))

    torch.manual_seed(cfg.seed)
    model = (model_factory or (lambda: build_model(cfg)))()
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is not None and vocab < ds.vocab_size:
        raise ValueError(f"model vocab_size {vocab} is smaller than the data's tokenizer vocab {ds.vocab_size}")
    model.to(d.device)
    # The teacher: loaded from its path on every start (a resumed run too: checkpoints hold only the
    # student), on every rank (each runs its own copy on its own samples; never wrapped in DDP).
    teacher = None
    if cfg.teacher:
        teacher = load_teacher(cfg.teacher, vocab, cfg.seq_len).to(d.device)
    groups = _param_groups(model, cfg.weight_decay)
    fused = {"fused": True} if d.device.type == "cuda" else {}
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, **fused)
    sched = Schedule.from_config(cfg)

    step, consumed, elapsed_before = 0, 0, 0.0
    resumed_interval = {"loss": 0.0, "steps": 0}
    # Which checkpoint (if any) is resumed is said even with quiet: it decides what the run does.
    note = (lambda msg: print(msg, file=sys.stderr, flush=True)) if lead else (lambda msg: None)
    ckpt_path = st = None
    if resume in ("latest", "auto"):
        found = load_latest_checkpoint(ckpt_dir, warn=note)
        if found is not None:
            ckpt_path, st = found
        elif resume == "latest":
            raise ValueError(f"--resume: no checkpoint in {ckpt_dir} to resume from: start without --resume, "
                             "or pass --resume auto to resume when a checkpoint exists and start fresh otherwise")
        else:
            note(f"--resume auto: no checkpoint in {ckpt_dir}, starting from step 0")
    elif resume:
        ckpt_path = Path(resume)
        st = load_checkpoint(ckpt_path)
    elif list_checkpoints(ckpt_dir):
        note(f"warning: starting from step 0 although {ckpt_dir} holds checkpoints of an earlier run (up to "
             f"{list_checkpoints(ckpt_dir)[-1].name}); this run replaces them: use --resume to continue it")
    if ckpt_path is not None:
        for k in ("seq_len", "batch_size", "mix", "data_seed", "shuffle"):
            if st["config"].get(k) != getattr(cfg, k):
                raise ValueError(f"cannot resume {ckpt_path}: its {k} = {st['config'].get(k)!r}, the config says "
                                 f"{getattr(cfg, k)!r} (the data position would mean different samples)")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step, consumed, elapsed_before = st["step"], st["consumed_samples"], st.get("elapsed_s", 0.0)
        resumed_interval = st.get("log_interval", {"loss": 0.0, "steps": 0})
        if st["config"].get("teacher") != cfg.teacher:
            note(f"warning: {ckpt_path} was trained with teacher {st['config'].get('teacher')!r}, this run "
                 f"distills from {cfg.teacher!r}: the loss changes from here on")
        rngs = st["rng"]
        _set_rng_state(rngs[d.rank] if len(rngs) == d.world else rngs[0])
        note(f"resumed from {ckpt_path} at step {step} ({consumed} samples consumed)")

    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]

    log = None
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        log = JsonlLog(out / "log.jsonl", resume_step=step if ckpt_path is not None else None)
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        n_params = sum(p.numel() for p in params)
        say(f"training {n_params:,} parameters on {d.world} x {d.device.type} ({precision}); "
            f"{cfg.batch_size} x {cfg.seq_len} tokens/step (micro_batch {mb}, grad_accum {accum}); "
            f"mix {mix}")
        if teacher is not None:
            say(f"distilling from {teacher.kind} teacher {teacher.path}: loss = {cfg.distill_alpha:g} x "
                f"{cfg.distill_temperature:g}^2 x KL + {1 - cfg.distill_alpha:g} x CE")
    d.barrier()

    def checkpoint():
        rngs = d.gather_objects(_rng_state())
        if lead:
            state = {"step": step, "consumed_samples": consumed, "model": _unwrap(model).state_dict(),
                     "optimizer": opt.state_dict(), "schedule": sched.state_dict(), "rng": rngs,
                     "world_size": d.world, "config": cfg.to_dict(), "elapsed_s": elapsed_before + run_time,
                     # the part of a log interval before the checkpoint, so the resumed log matches
                     "log_interval": {"loss": interval_loss, "steps": interval_steps, "kl": interval_kl,
                                      "ce": interval_ce},
                     "data": {"dir": str(cfg.data), "epochs": ds.epochs(consumed)}}
            save_checkpoint(state, ckpt_dir, step, cfg.keep_checkpoints)
        d.barrier()

    def validate():
        r = evaluate(model, valset, mix, d, autocast)
        if lead and r:
            log.write({"kind": "val", "step": step, **r})
            say(f"step {step:6d} | val loss {r['val_loss']:.4f} (ppl {r['val_ppl']:.1f}) | "
                + " ".join(f"{k} {v:.3f}" for k, v in r["per_source"].items()))
            if cfg.plot:
                plot_losses(out / "log.jsonl", out / "loss.png")
        return r

    end = cfg.steps if stop_at is None else min(cfg.steps, int(stop_at))
    start_step = step
    tok_per_step = cfg.batch_size * cfg.seq_len
    run_time = 0.0
    interval_loss, interval_steps, interval_time = resumed_interval["loss"], resumed_interval["steps"], 0.0
    interval_kl, interval_ce = resumed_interval.get("kl", 0.0), resumed_interval.get("ce", 0.0)
    T, a_kl = float(cfg.distill_temperature), float(cfg.distill_alpha)
    interval_timed = 0  # steps of this interval run in this process (the throughput denominator)
    last = {"loss": None, "val": None, "kl": None, "ce": None}
    saved_at = evaluated_at = None
    while step < end:
        t0 = time.perf_counter()
        lr, wd = sched.lr_at(step), sched.weight_decay_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
            g["weight_decay"] = wd if g["decays"] else 0.0
        step_loss = step_kl = step_ce = 0.0
        for a in range(accum):
            x = torch.from_numpy(ds.samples(rank_indices(consumed, mb, a, d.rank, d.world))).to(d.device)
            sync = model.no_sync() if (d.world > 1 and a < accum - 1) else _nullctx()
            with sync:
                with autocast():
                    logits = model(x[:, :-1])
                if teacher is None:
                    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
                else:
                    with autocast():
                        t_logits = teacher.logits(x[:, :-1])
                    # distill_alpha 1: CE is only logged, so it builds no backward graph
                    kl, ce = distill_losses(logits, t_logits, x[:, 1:], T, ce_grad=a_kl < 1.0)
                    loss = (T * T) * kl if a_kl == 1.0 else (a_kl * T * T) * kl + (1.0 - a_kl) * ce
                    step_kl += float(kl.detach()) / accum
                    step_ce += float(ce.detach()) / accum
                (loss / accum).backward()
            step_loss += float(loss.detach()) / accum
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf")))
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        consumed += cfg.batch_size
        if d.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        run_time += dt
        interval_loss += step_loss
        interval_kl += step_kl
        interval_ce += step_ce
        interval_steps += 1
        interval_timed += 1
        interval_time += dt
        if not math.isfinite(step_loss):
            raise FloatingPointError(f"loss became {step_loss} at step {step}; lower lr or check the data")
        # Lines fall on multiples of log_every (and the last step of the schedule), never on a --stop-at
        # step: a resumed run then writes exactly the lines a straight run would.
        if step % cfg.log_every == 0 or step == cfg.steps:
            sums = [interval_loss / interval_steps] + ([interval_kl / interval_steps, interval_ce / interval_steps]
                                                       if teacher is not None else [])
            avgs = [v / d.world for v in d.all_sum(sums)]
            loss_avg = avgs[0]
            tps = tok_per_step * interval_timed / interval_time
            last["loss"] = loss_avg
            parts = {}
            if teacher is not None:
                parts = {"kl": avgs[1], "ce": avgs[2]}
                last.update(parts)
            if lead:
                log.write({"kind": "train", "step": step, "loss": loss_avg, **parts, "lr": lr, "weight_decay": wd,
                           "grad_norm": gnorm, "tokens": consumed * cfg.seq_len, "tokens_per_s": tps,
                           "elapsed_s": elapsed_before + run_time})
                extra = f" (kl {parts['kl']:.4f}, ce {parts['ce']:.4f})" if parts else ""
                say(f"step {step:6d} | loss {loss_avg:.4f}{extra} | lr {lr:.2e} | gnorm {gnorm:.2f} | "
                    f"{tps:,.0f} tok/s")
            interval_loss, interval_steps, interval_time, interval_timed = 0.0, 0, 0.0, 0
            interval_kl = interval_ce = 0.0
        if cfg.eval_every and step % cfg.eval_every == 0:
            last["val"] = validate()
            evaluated_at = step
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            checkpoint()
            saved_at = step

    if interval_steps and last["loss"] is None:
        sums = [interval_loss / interval_steps] + ([interval_kl / interval_steps, interval_ce / interval_steps]
                                                   if teacher is not None else [])
        avgs = [v / d.world for v in d.all_sum(sums)]
        last["loss"] = avgs[0]
        if teacher is not None:
            last.update(kl=avgs[1], ce=avgs[2])
    if evaluated_at != step and step == cfg.steps:
        last["val"] = validate()
    if saved_at != step and step > 0:
        checkpoint()
    export_dir = None
    if cfg.export and step >= cfg.steps:
        export_dir = Path(cfg.export) if Path(cfg.export).is_absolute() else out / cfg.export
        if lead:
            m = _unwrap(model)
            if not hasattr(m, "save_pretrained"):
                raise TypeError("export needs a model with save_pretrained (bitmamba.nn.BitMambaLM)")
            # The card names the hub datasets the data was prepared from (local files name none).
            hub_sets = [i["hf"] for k in ds.names for i in ds.manifest["sources"][k].get("inputs", [])
                        if isinstance(i, dict) and i.get("hf")]
            m.save_pretrained(export_dir, datasets=hub_sets or None,
                              training={"steps": step, "train_tokens": consumed * cfg.seq_len,
                                        "final_train_loss": last["loss"]})
            tok = Path(cfg.data) / "tokenizer.json"  # a tokenizer trained by prepare-data lives there
            if not tok.is_file():
                tok = Path(ds.manifest["tokenizer"]["path"])
            if tok.is_file():
                shutil.copyfile(tok, export_dir / "tokenizer.json")
            (export_dir / "training.json").write_text(json.dumps(
                {"train_config": cfg.to_dict(), "steps": step, "train_tokens": consumed * cfg.seq_len,
                 "final_train_loss": last["loss"], "validation": last["val"], "data_manifest": ds.manifest["name"],
                 "data_sources": {k: ds.manifest["sources"][k]["train"]["tokens"] for k in ds.names}},
                indent=2) + "\n")
            say(f"exported {export_dir} (convert it with: bitmamba convert {export_dir} OUT.gguf)")
        d.barrier()
    distill = ({"train_kl": last["kl"], "train_ce": last["ce"], "teacher": teacher.path}
               if teacher is not None else {})
    return {"step": step, "consumed_samples": consumed, "train_loss": last["loss"], **distill,
            "validation": last["val"],
            "tokens_per_s": (tok_per_step * (step - start_step) / run_time) if run_time else None,
            "out_dir": str(out), "export": str(export_dir) if export_dir else None,
            "world_size": d.world, "precision": precision}
