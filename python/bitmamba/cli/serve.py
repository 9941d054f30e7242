"""`bitmamba serve [MODEL]`: an OpenAI-compatible HTTP server (docs/serve.md)."""
from __future__ import annotations

import os
import sys

from ._common import PACKING_CHOICES, add_model_options, apply_packing, check_threads


def register(sub) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible HTTP server (batched decoding, prefix-state cache)",
                       description="Serve MODEL over HTTP with the OpenAI API (/v1/completions, "
                       "/v1/chat/completions, /v1/models) plus /health, /metrics, /tokenize, /detokenize. "
                       "Without MODEL the bundled default model is served. Needs the serve extra: "
                       "pip install 'bitmamba[serve]'.")
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="model file (.gguf or BIT2 .bin) or Hugging Face repo id (owner/name[@revision], "
                   "hf://...; default: the bundled model)")
    p.add_argument("--random", metavar="SHAPE", default=None,
                   help="serve random weights of a published shape (255m, 1b) with the GPT-2 tokenizer "
                   "instead of a file: for benchmarks (the text is noise)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    p.add_argument("--model-name", default=None, help="the model id in /v1/models and responses "
                   "(default: the repo id for a Hub model, else the file name without its suffix)")
    p.add_argument("--max-batch", type=int, default=16,
                   help="requests advanced together per step (default %(default)s)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="requests that may wait for a batch slot; more get 429 (default %(default)s)")
    p.add_argument("--prefill-chunk", type=int, default=256,
                   help="prompt tokens prefilled per step, across requests (default %(default)s)")
    p.add_argument("--state-cache-mb", type=float, default=256,
                   help="memory for cached prefix states, LRU; 0 = off (default %(default)s)")
    p.add_argument("--max-context", type=int, default=None,
                   help="prompt + max_tokens limit (default: the model's context_length)")
    p.add_argument("--chat-template", default=None, metavar="FILE",
                   help="Jinja chat template file (default: the GGUF's tokenizer.chat_template, else a "
                   "plain 'User: ... Assistant:' transcript)")
    p.add_argument("--drain-seconds", type=float, default=10.0,
                   help="on Ctrl-C / SIGTERM, time in-flight requests get to finish (default %(default)s)")
    p.add_argument("--packing", choices=PACKING_CHOICES, default=None,
                   help="weight packing to build the model in (default: BITMAMBA_PACKING, else decode: the "
                   "2-bit packing, whose batched steps are the fastest; auto keeps the packing whose "
                   "one-token product is fastest, the 1.6-bit base3 on AVX-512 VBMI CPUs, which serves one "
                   "stream faster and 4-16 streams slower; docs/serve.md)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_model_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    check_threads(args)
    for name, lo in (("max_batch", 1), ("max_queue", 0), ("prefill_chunk", 1)):
        if getattr(args, name) < lo:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {lo}, got {getattr(args, name)}")
    if args.state_cache_mb < 0:
        raise ValueError(f"--state-cache-mb must be >= 0, got {args.state_cache_mb:g}")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be from 0 to 65535, got {args.port}")
    if args.max_context is not None and args.max_context < 2:
        raise ValueError(f"--max-context must be >= 2, got {args.max_context}")
    if args.model and args.random:
        raise ValueError("give MODEL or --random SHAPE, not both")
    try:
        import fastapi  # noqa: F401
        import jinja2  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ValueError(f"the server needs the serve extra: pip install 'bitmamba[serve]' ({e})") from None
    template = None
    if args.chat_template:
        with open(args.chat_template, encoding="utf-8") as f:
            template = f.read()
    from ..serve import default_packing, serve

    if args.packing is None:
        args.packing = default_packing()
    packing = None  # a model built here is already in args.packing; a file is loaded by serve() in it
    if args.random:
        from ..model import Model
        from ..system import set_num_threads

        if args.threads:
            set_num_threads(args.threads)
        apply_packing(args)
        model = Model.random(args.random)
        name = args.model_name or f"random-{args.random}"
    else:
        from ..hub import HubModel
        from ._common import resolve_model_path

        # A repo id is downloaded (and converted) here, before the server starts, so its progress bars and
        # errors reach the terminal; the app then loads the local file.
        model = resolve_model_path(args.model)
        if not os.path.exists(model):
            raise FileNotFoundError(f"model file not found: {model}")
        name = args.model_name or (model.ref.repo if isinstance(model, HubModel) else None)
        packing = args.packing
    return serve(model, host=args.host, port=args.port, drain_seconds=args.drain_seconds, log_level=args.log_level,
                 packing=packing, model_name=name, max_batch=args.max_batch, max_queue=args.max_queue,
                 prefill_chunk=args.prefill_chunk, state_cache_mb=args.state_cache_mb,
                 max_context=args.max_context, chat_template=template, tokenizer=args.tokenizer,
                 threads=args.threads)
