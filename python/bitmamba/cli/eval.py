"""`bitmamba eval`: zero-shot evaluation with lm-evaluation-harness prompts and metrics."""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from ._common import MODEL_MAGICS

TASK_HELP = "wikitext2, arc_easy, arc_challenge, piqa, hellaswag, boolq, or all"


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="zero-shot evaluation (WikiText-2, ARC, PIQA, HellaSwag, BoolQ)",
        description="Evaluate a model zero-shot with the prompts and metrics of EleutherAI "
        "lm-evaluation-harness: acc / acc_norm with standard errors for the multiple-choice tasks, "
        "word/byte perplexity and bits per byte (plus token perplexity) for WikiText-2. Data is read "
        "from local files (default: $BITMAMBA_DATA_DIR or ../shared/data/eval).",
    )
    p.add_argument("model", nargs="?", default=None,
                   help="model file (.gguf or BIT2 .bin), a directory holding exactly one, a PyTorch "
                   "checkpoint directory (config.json + model.safetensors, converted to a temporary GGUF), or "
                   "a Hugging Face repo id (owner/name[@revision], hf://...); default: the bundled model")
    p.add_argument("--tasks", default="all", help=f"comma-separated tasks: {TASK_HELP} (default: all)")
    p.add_argument("--limit", type=int, default=None, help="only the first N documents of each task")
    p.add_argument("--data-dir", default=None,
                   help="folder holding arc/, piqa/, hellaswag/, boolq/, wikitext2/ "
                   "(default: $BITMAMBA_DATA_DIR, else ../shared/data/eval)")
    p.add_argument("--source", choices=["local", "hub"], default="local",
                   help="read local files (default) or the Hugging Face hub via `datasets`")
    p.add_argument("--max-length", type=int, default=None,
                   help="rolling window for perplexity and context truncation limit, in tokens (default: the "
                   "model's context_length, 2048 if it has none; the published numbers used 2048)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer.json, a directory holding one, or a GGUF whose embedded tokenizer to use "
                   "(default: the model's own, else a tokenizer.json beside it, else the bundled GPT-2 one)")
    p.add_argument("--threads", type=int, default=None, help="C++ thread pool size (default: all cores)")
    p.add_argument("--output", default=None, help="write the results as JSON to this file")
    p.add_argument("--no-state-sharing", action="store_true",
                   help="re-run the context for every choice (slower; for checking the shared-state path)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _is_model_file(p: Path) -> bool:
    # By content, not suffix: a PyTorch directory may hold a pytorch_model.bin that is no BIT2 file.
    try:
        with open(p, "rb") as f:
            return f.read(4) in MODEL_MAGICS
    except OSError:
        return False


def model_in_directory(d: Path):
    """What a directory given as MODEL means: ("file", the one GGUF / BIT2 file in it) or ("pytorch", d)
    for a save_pretrained checkpoint. Anything else is an error that says what is expected."""
    files = sorted(p for p in d.iterdir() if p.is_file() and _is_model_file(p))
    if len(files) == 1:
        return "file", files[0]
    if len(files) > 1:
        raise ValueError(f"{d} holds {len(files)} model files ({', '.join(p.name for p in files)}): name the "
                         "one to evaluate")
    if (d / "config.json").is_file() and (d / "model.safetensors").is_file():
        return "pytorch", d
    raise FileNotFoundError(f"{d} holds no model file (.gguf or BIT2 .bin) and is not a PyTorch checkpoint "
                            "directory (config.json + model.safetensors): give a model file or such a directory")


def load_model(path: str, tokenizer=None):
    """bitmamba.load(path) for a model file; for a directory, the one model file in it or, for a PyTorch
    checkpoint directory, a GGUF converted from it into a temporary directory."""
    import bitmamba

    load = getattr(bitmamba, "load", None)
    if load is None:
        raise ValueError("this bitmamba build has no model loader (bitmamba.load); it comes with the engine")
    from ..hub import HubModel
    from ._common import resolve_model_path

    resolved = resolve_model_path(path)
    if isinstance(resolved, HubModel):  # a repo id: the file (and tokenizer folder) bitmamba.load takes
        return load(resolved, tokenizer=tokenizer) if tokenizer is not None else load(resolved)
    p = Path(resolved)
    if not p.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if p.is_dir():
        kind, found = model_in_directory(p)
        if kind == "pytorch":
            from ..convert import ConversionError, convert

            # The engine maps the file, so the GGUF may be deleted as soon as it is loaded.
            with tempfile.TemporaryDirectory(prefix="bitmamba-eval-") as tmp:
                out = Path(tmp) / "model.gguf"
                try:
                    res = convert(p, out, tokenizer=tokenizer)
                except ConversionError as e:
                    raise ValueError(f"cannot evaluate {p}: {e}") from None
                for w in res.warnings:
                    print(f"warning: {w}", file=sys.stderr)
                print(f"{p}: PyTorch checkpoint converted to a temporary GGUF (TQ2_0, F32 embedding)",
                      file=sys.stderr)
                return load(out, tokenizer=tokenizer) if tokenizer is not None else load(out)
        print(f"{p}: evaluating {found.name}", file=sys.stderr)
        p = found
    return load(p, tokenizer=tokenizer) if tokenizer is not None else load(p)


def run(args) -> int:
    from ..eval.runner import evaluate, format_table, load_tasks

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.max_length is not None and args.max_length < 1:
        raise ValueError(f"--max-length must be >= 1, got {args.max_length}")
    if args.threads is not None:
        from ..system import set_num_threads

        set_num_threads(args.threads)
    # Task names and data files are checked before the model loads (which can take a while).
    loaded = load_tasks(args.tasks, args.data_dir, args.limit, args.source)
    if args.model is None:
        import bitmamba

        args.model = bitmamba.default_model_path()
    model = load_model(args.model, args.tokenizer)
    results = evaluate(
        model, args.tasks, data_dir=args.data_dir, limit=args.limit, max_length=args.max_length,
        source=args.source, progress=not args.no_progress and sys.stderr.isatty(),
        share_state=not args.no_state_sharing, model_name=str(args.model),
        log=lambda msg: print(msg, file=sys.stderr), loaded=loaded,
    )
    if args.output:
        out = Path(args.output)
        if out.parent and not out.parent.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    print(f"\n{args.model}: zero-shot, limit={args.limit}, max_length={results['config']['max_length']}, "
          f"{results['wall_time_s']:.1f} s\n")
    print(format_table(results))
    if "wikitext2" in results["results"]:
        print("\nwikitext2: word/byte perplexity and bits_per_byte are the lm-evaluation-harness metrics; "
              "token_perplexity is token-level (the kind of figure BitMamba-2 publishes).")
    return 0
