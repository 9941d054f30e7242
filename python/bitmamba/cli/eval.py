"""`bitmamba eval`: zero-shot evaluation with lm-evaluation-harness prompts and metrics."""
from __future__ import annotations

import json
import sys
from pathlib import Path

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
                   help="model file or directory (anything bitmamba.load accepts; default: the bundled model)")
    p.add_argument("--tasks", default="all", help=f"comma-separated tasks: {TASK_HELP} (default: all)")
    p.add_argument("--limit", type=int, default=None, help="only the first N documents of each task")
    p.add_argument("--data-dir", default=None,
                   help="folder holding arc/, piqa/, hellaswag/, boolq/, wikitext2/ "
                   "(default: $BITMAMBA_DATA_DIR, else ../shared/data/eval)")
    p.add_argument("--source", choices=["local", "hub"], default="local",
                   help="read local files (default) or the Hugging Face hub via `datasets`")
    p.add_argument("--max-length", type=int, default=2048,
                   help="rolling window for perplexity and context truncation limit, in tokens (default 2048)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer.json (or its folder) for a model file that has none embedded (BIT2 .bin)")
    p.add_argument("--threads", type=int, default=None, help="C++ thread pool size (default: all cores)")
    p.add_argument("--output", default=None, help="write the results as JSON to this file")
    p.add_argument("--no-state-sharing", action="store_true",
                   help="re-run the context for every choice (slower; for checking the shared-state path)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def load_model(path: str, tokenizer=None):
    """bitmamba.load(path), with a clear error where this build has no model loader."""
    import bitmamba

    load = getattr(bitmamba, "load", None)
    if load is None:
        raise ValueError("this bitmamba build has no model loader (bitmamba.load); it comes with the engine")
    if not Path(path).exists():
        raise FileNotFoundError(f"model not found: {path}")
    return load(path, tokenizer=tokenizer) if tokenizer is not None else load(path)


def run(args) -> int:
    from ..eval.runner import evaluate, format_table, load_tasks

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.max_length < 1:
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
    print(f"\n{args.model}: zero-shot, limit={args.limit}, max_length={args.max_length}, "
          f"{results['wall_time_s']:.1f} s\n")
    print(format_table(results))
    if "wikitext2" in results["results"]:
        print("\nwikitext2: word/byte perplexity and bits_per_byte are the lm-evaluation-harness metrics; "
              "token_perplexity is token-level (the kind of figure BitMamba-2 publishes).")
    return 0
