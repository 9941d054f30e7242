"""`bitmamba serve`: an OpenAI-compatible HTTP server (docs/serve.md).

The pieces: scheduler.py (one thread owns the model and advances every active request with one
batched forward pass per step), prefix_cache.py (SSM states keyed by token prefix, LRU-bounded),
app.py (the FastAPI application: endpoints, schemas, errors, streaming). Only app.py needs the
`serve` extra (fastapi, uvicorn, jinja2); `import bitmamba` imports none of this.
"""
from .prefix_cache import PrefixCache
from .scheduler import QueueFull, Request, Scheduler

__all__ = ["PrefixCache", "QueueFull", "Request", "Scheduler"]
