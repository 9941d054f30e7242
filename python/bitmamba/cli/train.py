"""`bitmamba train CONFIG`: quantization-aware training of a BitMamba-2 model (single process or torchrun),
optionally distilled from a teacher."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train or resume a BitMamba-2 model on prepared data (QAT)",
        description="Train a BitMamba-2 model from a training config (configs/train/*.yaml) on data made by "
        "`bitmamba prepare-data`. Data-parallel: torchrun --nproc_per_node=N -m bitmamba train CONFIG "
        "(or scripts/train.py). Writes log.jsonl, loss.png and checkpoints/ under the run directory. With a "
        "teacher (--teacher or `teacher:`) the loss is distillation from it (docs/training.md, \"Binary models "
        "and distillation\"); a model config with `weights: float` trains without quantization (a teacher).",
    )
    p.add_argument("config", help="training config YAML")
    p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT|auto",
                   help="resume from CHECKPOINT; with no value, from the latest readable checkpoint in the run "
                   "directory (an error if there is none); 'auto': resume if there is one, else start fresh")
    p.add_argument("--out-dir", help="run directory (overrides out_dir)")
    p.add_argument("--data", help="prepared data directory (overrides data)")
    p.add_argument("--steps", type=int, help="total optimizer steps (overrides steps; sets the schedule length)")
    p.add_argument("--stop-at", type=int, help="stop after this step (schedule still spans --steps); resume later")
    p.add_argument("--export", help="save_pretrained directory written at the end (overrides export)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides device")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="overrides precision")
    p.add_argument("--teacher", metavar="DIR",
                   help="distill from this frozen teacher (overrides teacher): a save_pretrained directory "
                   "(e.g. a `weights: float` model's export) or a local Hugging Face causal-LM directory "
                   "(needs transformers); it must have the student's vocabulary")
    p.add_argument("--distill-temperature", type=float, metavar="T",
                   help="softmax temperature of the distillation KL (overrides distill_temperature; default 1)")
    p.add_argument("--distill-alpha", type=float, metavar="A",
                   help="weight of the KL term: loss = A * T^2 * KL(teacher || student) + (1 - A) * CE "
                   "(overrides distill_alpha; default 1, pure distillation); only used with a teacher")
    p.add_argument("--quiet", action="store_true", help="no per-step console output")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from ..train import TrainConfig, train
    from ..yamlfile import read_mapping

    d = read_mapping(args.config, "train config")
    for key in ("out_dir", "data", "steps", "export", "device", "precision", "teacher", "distill_temperature",
                "distill_alpha"):
        v = getattr(args, key)
        if v is not None:
            d[key] = v
    cfg = TrainConfig.from_dict(d)
    summary = train(cfg, resume=args.resume, stop_at=args.stop_at, quiet=args.quiet)
    if summary["world_size"] == 1 or __import__("os").environ.get("RANK", "0") == "0":
        if not args.quiet:
            print(json.dumps({k: v for k, v in summary.items() if k != "validation"}, default=str))
    return 0
