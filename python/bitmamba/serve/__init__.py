"""`bitmamba serve`: an OpenAI-compatible HTTP server (docs/serve.md).

The pieces: scheduler.py (one thread owns the model and advances every active request with one
batched forward pass per step), prefix_cache.py (SSM states keyed by token prefix, LRU-bounded),
app.py (the FastAPI application: endpoints, schemas, errors, streaming). Only app.py needs the
`serve` extra (fastapi, uvicorn, jinja2); `import bitmamba` imports none of this.
"""
import os
from typing import Optional

from .prefix_cache import PrefixCache
from .scheduler import QueueFull, Request, Scheduler

__all__ = ["PrefixCache", "QueueFull", "Request", "Scheduler", "default_packing"]

# A server batches, and the 2-bit decode packing's batched steps are the fastest: on the CPUs where the
# load-time autotune keeps the 1.6-bit base3 packing for one stream (AVX-512 VBMI without AMX), base3
# served 4 and 16 streams slower (docs/serve.md, "Sixth session"). Elsewhere the autotune keeps decode
# anyway.
DEFAULT_PACKING = "decode"


def default_packing() -> str:
    """The packing `bitmamba serve` builds its model in when --packing is not given: BITMAMBA_PACKING,
    else DEFAULT_PACKING."""
    return os.environ.get("BITMAMBA_PACKING") or DEFAULT_PACKING


def serve(model=None, host: str = "127.0.0.1", port: int = 8000, drain_seconds: float = 10.0,
          log_level: str = "info", packing: Optional[str] = None, **app_kwargs) -> int:
    """Run the server until Ctrl-C / SIGTERM (then in-flight requests get drain_seconds to finish
    before they are cancelled). model: a model file, a loaded bitmamba.Model, or None for the bundled
    default model; a file is loaded in `packing` (None: default_packing(), as `bitmamba serve` does).
    app_kwargs go to app.create_app (max_batch, max_queue, prefill_chunk, state_cache_mb, max_context,
    model_name, chat_template, tokenizer, threads). Returns 0, or 1 when the model failed to load."""
    import uvicorn

    from .app import create_app

    if model is None or isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        app = create_app(model, packing=packing or default_packing(), **app_kwargs)
    else:
        app = create_app(model=model, packing=packing, **app_kwargs)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=drain_seconds, access_log=log_level == "debug")
    server = uvicorn.Server(config)
    failed = []

    def on_load_error(message):
        failed.append(message)
        server.should_exit = True

    app.state.server.on_load_error = on_load_error
    # uvicorn handles SIGINT / SIGTERM while it runs (stop accepting, drain, shut down) and raises the
    # signal again once done; these handlers make that a clean exit (status 0) instead of a kill.
    import signal
    import threading

    saved = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, lambda *_: None)
    try:
        server.run()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    return 1 if failed else 0
