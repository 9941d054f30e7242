"""Continuous batching: one thread owns the model and advances every active request together.

At every step the scheduler
  1. admits waiting requests (up to max_batch active), restoring the longest cached prefix of each
     prompt from the PrefixCache;
  2. drops the requests whose client went away (Request.cancel), so their slot is free at once;
  3. runs one batch_step: each decoding request samples its next token and each prefilling request
     takes the next chunk of its prompt (at most prefill_chunk prompt tokens per step in all, so a
     long prompt does not stall the others' decoding), all fed through the model in one pass: the
     ternary weights are read once per step for the whole batch;
  4. turns the new tokens into text (TextStream: the same UTF-8 and stop-string rules as
     Model.stream) and hands it to each request's `emit` callback;
  5. caches the state of a prompt once it is fully fed, and that of a completion when it ends.

A request's tokens are exactly those of Model.generate(prompt, seed=..., same options): the same
Generator (its sampling half runs inside batch_step), the same prompt priming (the prompt's last
repeat_window tokens count for the repetition penalty, cached or not), the same EOS and stop-string
rules; the engine's batched and chunked forward passes are bit-identical to one sequence fed at once.
"""
from __future__ import annotations

import collections
import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from .._native import native
from ..model import TextStream, random_seed
from .prefix_cache import PrefixCache


class QueueFull(Exception):
    """The waiting queue is full: the HTTP layer answers 429 with Retry-After."""


class ShuttingDown(Exception):
    """The scheduler is stopping and takes no new requests."""


# Time-to-first-token histogram buckets, seconds.
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Request:
    """One generation. `emit(kind, payload)` is called from the scheduler thread:
    ("text", {"text": str, "logprobs": [...]})  any number of times, then exactly one of
    ("done", {"finish_reason", "prompt_tokens", "completion_tokens", "cached_tokens", "seed", ...}) or
    ("error", message)."""
    prompt_ids: List[int]
    options: dict                 # check_sampling() output; seed None draws one at submit
    stops: List[str]
    emit: Callable[[str, object], None]
    ignore_eos: bool = False
    logprobs: Optional[int] = None  # None: off; k >= 0: each token's logprob and the top k
    id: int = 0
    # Filled in by the scheduler.
    submitted: float = 0.0
    first_token: Optional[float] = None
    cached_tokens: int = 0
    _cancelled: bool = field(default=False, repr=False)
    _gen: object = field(default=None, repr=False)
    _state: object = field(default=None, repr=False)
    _text: Optional[TextStream] = field(default=None, repr=False)
    _fed: int = 0                 # prompt tokens the state has seen
    _sampled: List[int] = field(default_factory=list, repr=False)
    _prompt_cached: bool = False

    def cancel(self) -> None:
        """The client went away: the scheduler drops the request before its next step (any thread)."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled


class Scheduler:
    """Owns `model`; start() runs the loop in a daemon thread, submit() queues a Request."""

    def __init__(self, model, max_batch: int = 16, max_queue: int = 64, prefill_chunk: int = 256,
                 state_cache_bytes: int = 256 << 20):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {max_queue}")
        if prefill_chunk < 1:
            raise ValueError(f"prefill_chunk must be >= 1, got {prefill_chunk}")
        self.model = model
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.prefill_chunk = prefill_chunk
        self.cache = PrefixCache(state_cache_bytes)
        self._C = native()
        self._waiting: "collections.deque[Request]" = collections.deque()
        self._active: List[Request] = []
        self._cv = threading.Condition()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._ids = itertools.count(1)
        # Metrics (written by the scheduler thread; plain ints and floats read without a lock).
        self.counters: Dict[str, float] = collections.defaultdict(float)
        self.ttft_buckets = [0] * (len(TTFT_BUCKETS) + 1)
        self.ttft_sum = 0.0
        self.ttft_count = 0
        self.last_batch = 0

    # -- public, any thread -------------------------------------------------------------------
    def start(self) -> "Scheduler":
        self._thread = threading.Thread(target=self._loop, name="bitmamba-scheduler", daemon=True)
        self._thread.start()
        return self

    def submit(self, req: Request) -> Request:
        """Queue req: QueueFull when all max_batch slots are taken and max_queue requests already
        wait; ShuttingDown after stop()."""
        if req.options.get("seed") is None:
            req.options = dict(req.options, seed=random_seed())
        with self._cv:
            if self._stopping:
                raise ShuttingDown("the server is shutting down")
            # A request that would have to wait for a slot is refused once max_queue already wait.
            if len(self._waiting) + len(self._active) >= self.max_batch + self.max_queue:
                self.counters["rejected"] += 1
                raise QueueFull(f"{len(self._active)} requests are running and {len(self._waiting)} waiting "
                                f"(--max-batch {self.max_batch}, --max-queue {self.max_queue})")
            req.id = next(self._ids)
            req.submitted = time.perf_counter()
            self._waiting.append(req)
            self._cv.notify()
        return req

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def active(self) -> int:
        return len(self._active)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking requests, end every one still queued or running with an error, join the thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the loop (scheduler thread) -----------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stopping and not self._waiting and not self._active:
                    self._cv.wait()
                if self._stopping:
                    pending = list(self._waiting) + self._active
                    self._waiting.clear()
                    self._active = []
                    break
                while self._waiting and len(self._active) < self.max_batch:
                    req = self._waiting.popleft()
                    if not req.cancelled:
                        self._active.append(req)
                        self._admit(req)
                    else:
                        self.counters["cancelled"] += 1
            self._step()
        for req in pending:
            req.emit("error", "the server is shutting down")

    def _admit(self, req: Request) -> None:
        try:
            n, state = self.cache.lookup(req.prompt_ids)
            if state is None:
                state = self.model.new_state()
            req.cached_tokens = n
            req._state = state
            req._fed = n
            req._gen = self.model._generator(req.prompt_ids, state, req.options, req.ignore_eos, prime=False)
            req._text = TextStream(self.model.tokenizer, req.stops)
            self.counters["prompt_tokens"] += len(req.prompt_ids)
            self.counters["cached_prompt_tokens"] += n
        except Exception as e:  # bad options reach here only through a bug in the HTTP layer
            self._fail(req, f"{type(e).__name__}: {e}")

    def _fail(self, req: Request, message: str) -> None:
        if req in self._active:
            self._active.remove(req)
        self.counters["errors"] += 1
        req.emit("error", message)

    def _step(self) -> None:
        for req in [r for r in self._active if r.cancelled]:
            self._active.remove(req)
            self.counters["cancelled"] += 1
        if not self._active:
            return
        decode, prefill, chunks = [], [], []
        budget = self.prefill_chunk
        for req in self._active:
            left = len(req.prompt_ids) - req._fed
            if left == 0:
                decode.append(req)
            elif budget > 0:
                take = min(left, budget)
                budget -= take
                prefill.append(req)
                chunks.append(np.asarray(req.prompt_ids[req._fed:req._fed + take], dtype=np.int64))
        # Logprobs are of the model's distribution (before penalties and temperature), read from the
        # logits the token is sampled from, before the step replaces them.
        logsm = {id(r): _log_softmax(r._state.logits) for r in decode if r.logprobs is not None}
        try:
            toks = self._C.batch_step(self.model.native, [r._gen for r in decode], [r._gen for r in prefill], chunks)
        except Exception as e:
            for req in decode + prefill:
                self._fail(req, f"{type(e).__name__}: {e}")
            return
        self.counters["steps"] += 1
        self.counters["step_sequences"] += len(decode) + len(prefill)
        self.last_batch = len(decode) + len(prefill)
        self.counters["prefill_tokens"] += sum(len(c) for c in chunks)
        self.counters["generated_tokens"] += len(decode)
        for req, chunk in zip(prefill, chunks):
            req._fed += len(chunk)
            if req._fed == len(req.prompt_ids):
                self.cache.insert(req.prompt_ids, req._state)
        now = time.perf_counter()
        for req, tok in zip(decode, toks):
            req._sampled.append(tok)
            if req.first_token is None:
                req.first_token = now
                self._record_ttft(now - req.submitted)
            gen = req._gen
            if gen.finish_reason != "stop_token":
                text, stopped = req._text.push(tok)
                lp = None
                if req.logprobs is not None:
                    lp = [self._token_logprob(logsm[id(req)], tok, req.logprobs)]
                if text or lp:
                    req.emit("text", {"text": text, "logprobs": lp})
                if stopped:
                    gen.finish()
            if gen.finished:
                self._complete(req)

    def _complete(self, req: Request) -> None:
        self._active.remove(req)
        rest = req._text.flush()
        if rest:
            req.emit("text", {"text": rest, "logprobs": None})
        # The state has seen the prompt and every sampled token (a final EOS too): the next turn of
        # a conversation extends exactly this.
        self.cache.insert(req.prompt_ids + req._sampled, req._state)
        gen = req._gen
        self.counters["completed"] += 1
        req.emit("done", {
            "finish_reason": gen.finish_reason,
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.generated_tokens,
            "cached_tokens": req.cached_tokens,
            "seed": req.options["seed"],
            "tokens": list(req._text.tokens),
            "time_to_first_token": (req.first_token - req.submitted) if req.first_token else None,
        })
        req._state = req._gen = None

    def _token_logprob(self, logsm: np.ndarray, tok: int, k: int) -> dict:
        tokzr = self.model.tokenizer
        top = []
        if k > 0:
            idx = np.argpartition(-logsm, k - 1)[:k]
            idx = idx[np.argsort(-logsm[idx], kind="stable")]
            top = [(int(i), tokzr.decode([int(i)]), float(logsm[i])) for i in idx]
        return {"id": int(tok), "token": tokzr.decode([int(tok)]), "logprob": float(logsm[tok]), "top": top}

    def _record_ttft(self, s: float) -> None:
        self.ttft_sum += s
        self.ttft_count += 1
        for i, b in enumerate(TTFT_BUCKETS):
            if s <= b:
                self.ttft_buckets[i] += 1
                return
        self.ttft_buckets[-1] += 1


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    m = x.max()
    return x - m - math.log(np.exp(x - m).sum())
