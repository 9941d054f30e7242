"""The HTTP layer of `bitmamba serve`: a FastAPI application speaking the OpenAI API (docs/serve.md).

create_app() returns the application; the model loads in the background once it starts (GET /health
answers 503 until then). Every generation goes through the one Scheduler (scheduler.py). Errors use
the OpenAI error body, {"error": {"message", "type", "param", "code"}}: 400 for a bad request, 429
(with Retry-After) when the queue is full, 503 while loading or shutting down.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

try:
    from fastapi import FastAPI, Request as HTTPRequest
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, ValidationError
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(f"bitmamba serve needs the serve extra: pip install 'bitmamba[serve]' ({e})") from None

from ..model import check_sampling, generation_defaults, stop_strings
from .scheduler import TTFT_BUCKETS, QueueFull, Request, Scheduler, ShuttingDown

log = logging.getLogger("bitmamba.serve")

# The chat template of a model whose GGUF has no `tokenizer.chat_template`: a plain transcript, the
# form a base (not instruction-tuned) model continues best. System messages come first as plain text.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% else %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

MAX_LOGPROBS = 20
# Choices per request (`n`): each is its own sequence in the batch, so n is bounded like a batch is.
MAX_CHOICES = 16


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: Optional[str] = None, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.headers = status, message, type_, param, headers


def error_response(status: int, message: str, type_: str = "invalid_request_error", param: Optional[str] = None,
                   headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": None}},
                        status_code=status, headers=headers)


# -- request schemas (OpenAI's; unknown fields are ignored, known ones must have the right type) ------
class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    model: Optional[str] = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    n: Optional[int] = None
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    stop: Union[str, List[str], None] = None
    seed: Optional[int] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    user: Optional[str] = None
    # Extras (the openai client sends them with extra_body=...).
    top_k: Optional[int] = None
    min_p: Optional[float] = None
    repeat_penalty: Optional[float] = None
    repeat_window: Optional[int] = None
    ignore_eos: bool = False


class CompletionRequest(_Sampling):
    prompt: Union[str, List[int], List[str], List[List[int]]]
    logprobs: Optional[int] = None
    echo: bool = False
    best_of: Optional[int] = None
    suffix: Optional[str] = None


class ContentPart(_Body):
    type: str
    text: Optional[str] = None


class ChatMessage(_Body):
    role: str
    content: Union[str, List[ContentPart], None] = None


class ChatRequest(_Sampling):
    messages: List[ChatMessage]
    max_completion_tokens: Optional[int] = None
    logprobs: bool = False
    top_logprobs: Optional[int] = None


class TokenizeRequest(_Body):
    prompt: Optional[str] = None
    messages: Optional[List[ChatMessage]] = None
    add_generation_prompt: bool = True


class DetokenizeRequest(_Body):
    tokens: List[int]


# -- the server's state --------------------------------------------------------------------------
class _Mailbox:
    """Carries the scheduler thread's events to the event loop's queues, waking the loop once per
    batch of events: a step of 16 streams posts 16 events, and one call_soon_threadsafe each (a write
    to the loop's wake-up pipe, and a wake-up) took about 7% of the scheduler thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list = []

    def post(self, queue: asyncio.Queue, item) -> None:  # scheduler thread
        with self._lock:
            self._items.append((queue, item))
            if len(self._items) > 1:  # a wake-up is already on its way and will take this too
                return
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the event loop has closed (shutdown)
            pass

    def _deliver(self) -> None:  # event loop
        with self._lock:
            items, self._items = self._items, []
        for queue, item in items:
            queue.put_nowait(item)


class _CountResponses:
    """ASGI middleware counting responses by (path, status) for /metrics. Plain ASGI rather than
    Starlette's BaseHTTPMiddleware, which passes every chunk of a streamed response through an extra
    task and memory stream."""

    def __init__(self, app, counts: Dict[tuple, int]):
        self.app = app
        self.counts = counts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def counting_send(message):
            if message["type"] == "http.response.start":
                key = (scope["path"], message["status"])
                self.counts[key] = self.counts.get(key, 0) + 1
            await send(message)

        await self.app(scope, receive, counting_send)


class ServerState:
    """What the endpoints share: the model and its scheduler once loaded (None while loading)."""

    def __init__(self, load: Callable[[], Any], model_name: Optional[str], scheduler_kwargs: dict,
                 max_context: Optional[int], chat_template: Optional[str]):
        self._load = load
        self.model_name = model_name
        self.scheduler_kwargs = scheduler_kwargs
        self.max_context_arg = max_context
        self.chat_template_arg = chat_template
        self.model = None
        self.kernel_choices: List[Tuple[str, str, str]] = []
        self.scheduler: Optional[Scheduler] = None
        self.load_error: Optional[str] = None
        self.on_load_error: Optional[Callable[[str], None]] = None
        self.created = int(time.time())
        self.http_counts: Dict[tuple, int] = {}
        self.mailbox: Optional[_Mailbox] = None  # set when the event loop starts (lifespan)
        self._template = None

    def load(self) -> None:
        try:
            model = self._load()
            if not model.has_tokenizer:
                raise ValueError(f"this model (vocabulary of {model.vocab_size}) carries no tokenizer: pass --tokenizer")
            self.max_context = self.max_context_arg or int(model.config["context_length"])
            src = self.chat_template_arg or model.native.metadata("tokenizer.chat_template") or DEFAULT_CHAT_TEMPLATE
            self._template = _compile_template(src)
            self.chat_template = src
            if not self.model_name:
                hub = getattr(model, "hub", None)  # a model loaded by repo id is named by it, not by its cache file
                self.model_name = (hub.repo if hub is not None else model.path.stem if model.path is not None
                                   else model.config.get("name") or "bitmamba")
            self.kernel_choices = model.kernel_choices()  # fixed once loaded; /metrics reports it
            self.model = model
            self.scheduler = Scheduler(model, **self.scheduler_kwargs).start()
            log.info("model %s loaded: serving", self.model_name)
        except Exception as e:
            self.load_error = f"{type(e).__name__}: {e}" if not isinstance(e, (ValueError, OSError)) else str(e)
            log.error("loading the model failed: %s", self.load_error)
            if self.on_load_error:
                self.on_load_error(self.load_error)

    def ready(self):
        if self.scheduler is None:
            if self.load_error:
                raise APIError(503, f"the model failed to load: {self.load_error}", "service_unavailable")
            raise APIError(503, "the model is loading", "service_unavailable", headers={"Retry-After": "1"})
        return self.model, self.scheduler

    def render_chat(self, messages: List[ChatMessage], add_generation_prompt: bool = True) -> str:
        msgs = []
        for i, m in enumerate(messages):
            c = m.content
            if isinstance(c, list):
                if any(p.type != "text" or p.text is None for p in c):
                    raise APIError(400, f"messages[{i}].content: only text parts are supported", param="messages")
                c = "".join(p.text for p in c)
            msgs.append({"role": m.role, "content": c or ""})
        tok = self.model.tokenizer
        eos = self.model.eos_token_id
        bos = self.model.config.get("bos_token_id", -1)
        try:
            return self._template.render(messages=msgs, add_generation_prompt=add_generation_prompt,
                                         eos_token=tok.decode([eos]) if eos is not None else "",
                                         bos_token=tok.decode([bos]) if bos is not None and bos >= 0 else "")
        except Exception as e:
            raise APIError(400, f"the chat template failed on these messages: {e}", param="messages") from None


def _compile_template(src: str):
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as e:  # pragma: no cover
        raise ImportError(f"chat templates need jinja2: pip install 'bitmamba[serve]' ({e})") from None

    def raise_exception(message):
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(src)


# -- turning a request into scheduler options ------------------------------------------------------
def _parse(cls, body: Any):
    try:
        return cls.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(x) for x in err.get("loc") or ()]
        raise APIError(400, f"{'.'.join(loc)}: {err['msg']}" if loc else err["msg"], param=loc[0] if loc else None) from None


def _options(req: _Sampling, prompt_len: int, max_context: int, max_tokens: Optional[int]) -> dict:
    if req.n is not None and not 1 <= req.n <= MAX_CHOICES:
        raise APIError(400, f"n must be from 1 to {MAX_CHOICES}, got {req.n}", param="n")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(req, name) not in (None, 0):
            raise APIError(400, f"{name} is not supported: use repeat_penalty (an extra body field)", param=name)
    if prompt_len == 0:
        raise APIError(400, "the prompt is empty", param="prompt")
    room = max_context - prompt_len
    if room <= 0:
        raise APIError(400, f"this model's maximum context length is {max_context} tokens, but the prompt has "
                       f"{prompt_len}", param="prompt")
    if max_tokens is None:
        max_tokens = min(generation_defaults()["max_new_tokens"], room)
    elif isinstance(max_tokens, bool) or max_tokens <= 0:
        raise APIError(400, f"max_tokens must be >= 1, got {max_tokens}", param="max_tokens")
    elif max_tokens > room:
        raise APIError(400, f"this model's maximum context length is {max_context} tokens, but {prompt_len + max_tokens} "
                       f"were requested ({prompt_len} in the prompt, {max_tokens} for the completion)",
                       param="max_tokens")
    given = {k: getattr(req, k) for k in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "repeat_window")
             if getattr(req, k) is not None}
    try:
        opt = check_sampling(max_new_tokens=max_tokens, seed=req.seed, **given)
        stops = stop_strings(req.stop)
    except (TypeError, ValueError) as e:
        msg = str(e)
        raise APIError(400, msg, param=msg.split(" ", 1)[0]) from None
    return {"options": opt, "stops": stops}


def _finish_reason(r: str) -> str:
    return "length" if r == "length" else "stop"


def _usage(done: dict) -> dict:
    p, c = done["prompt_tokens"], done["completion_tokens"]
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
            "prompt_tokens_details": {"cached_tokens": done["cached_tokens"]}}


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


# -- the application -------------------------------------------------------------------------------
def create_app(model_path=None, *, model=None, model_name: Optional[str] = None, tokenizer=None,
               threads: Optional[int] = None, max_batch: int = 16, max_queue: int = 64, prefill_chunk: int = 256,
               state_cache_mb: float = 256, max_context: Optional[int] = None,
               chat_template: Optional[str] = None, packing: Optional[str] = None) -> FastAPI:
    """The server application. Give a model file (model_path; None: the bundled default model) or a
    loaded bitmamba.Model (model=). The model loads in a background thread when the app starts, in the
    weight packing `packing` (auto, decode, lut, base3; None: the process's current policy); a loaded
    model keeps the packing it was built in."""
    if model is not None:
        if packing is not None:
            raise ValueError("packing applies to a model loaded from a file; a loaded model keeps its own")
        load = lambda: model  # noqa: E731
    else:
        if packing is not None:
            from ..ops.ternary import set_layout_policy

            # Process-wide, and set here rather than in the load thread: a bad name fails now, and the
            # policy is in place before any matrix of the model is built.
            set_layout_policy(packing)

        def load():
            from ..model import load as load_file
            from ..defaults import default_model_path

            return load_file(model_path or default_model_path(), tokenizer=tokenizer, threads=threads)

    sched_kw = dict(max_batch=max_batch, max_queue=max_queue, prefill_chunk=prefill_chunk,
                    state_cache_bytes=int(state_cache_mb * (1 << 20)))
    if max_batch < 1 or max_queue < 0 or prefill_chunk < 1 or state_cache_mb < 0:
        raise ValueError("max_batch and prefill_chunk must be >= 1, max_queue and state_cache_mb >= 0")
    srv = ServerState(load, model_name, sched_kw, max_context, chat_template)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        srv.mailbox = _Mailbox(asyncio.get_running_loop())
        threading.Thread(target=srv.load, name="bitmamba-load", daemon=True).start()
        yield
        if srv.scheduler is not None:
            srv.scheduler.stop()

    app = FastAPI(title="bitmamba", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = srv

    @app.exception_handler(APIError)
    async def _api_error(request, e: APIError):
        return error_response(e.status, e.message, e.type, e.param, e.headers)

    @app.exception_handler(Exception)
    async def _internal(request, e: Exception):  # pragma: no cover - a bug
        log.exception("internal error")
        return error_response(500, f"internal error: {type(e).__name__}: {e}", "server_error")

    app.add_middleware(_CountResponses, counts=srv.http_counts)

    async def body_of(request: HTTPRequest) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise APIError(400, f"the request body is not valid JSON: {e}") from None

    @app.get("/health")
    async def health():
        if srv.scheduler is not None:
            return {"status": "ok"}
        if srv.load_error:
            return JSONResponse({"status": "error", "message": srv.load_error}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "1"})

    @app.get("/v1/models")
    async def models():
        srv.ready()
        return {"object": "list", "data": [{"id": srv.model_name, "object": "model", "created": srv.created,
                                            "owned_by": "bitmamba", "max_model_len": srv.max_context}]}

    @app.post("/tokenize")
    async def tokenize(request: HTTPRequest):
        model, _ = srv.ready()
        req = _parse(TokenizeRequest, await body_of(request))
        if (req.prompt is None) == (req.messages is None):
            raise APIError(400, "give exactly one of prompt and messages", param="prompt")
        text = req.prompt if req.prompt is not None else srv.render_chat(req.messages, req.add_generation_prompt)
        ids = _encode(model, text)
        return {"tokens": ids, "count": len(ids), "max_model_len": srv.max_context}

    @app.post("/detokenize")
    async def detokenize(request: HTTPRequest):
        model, _ = srv.ready()
        req = _parse(DetokenizeRequest, await body_of(request))
        _check_ids(model, req.tokens, "tokens")
        return {"prompt": model.tokenizer.decode(req.tokens)}

    @app.get("/metrics")
    async def metrics():
        return PlainTextResponse(_metrics_text(srv), media_type="text/plain; version=0.0.4")

    @app.post("/v1/completions")
    async def completions(request: HTTPRequest):
        model, sched = srv.ready()
        req = _parse(CompletionRequest, await body_of(request))
        prompt = req.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            if len(prompt) != 1:
                raise APIError(400, "one prompt per request (send several requests: they are batched)", param="prompt")
            prompt = prompt[0]
        if isinstance(prompt, str):
            ids = _encode(model, prompt)
        else:
            ids = list(prompt)
            _check_ids(model, ids, "prompt")
        if req.best_of not in (None, 1):
            raise APIError(400, "best_of: only 1 is supported", param="best_of")
        if req.suffix:
            raise APIError(400, "suffix is not supported", param="suffix")
        if req.logprobs is not None and not 0 <= req.logprobs <= MAX_LOGPROBS:
            raise APIError(400, f"logprobs must be from 0 to {MAX_LOGPROBS}, got {req.logprobs}", param="logprobs")
        opts = _options(req, len(ids), srv.max_context, req.max_tokens)
        echo = (prompt if isinstance(prompt, str) else model.tokenizer.decode(ids)) if req.echo else ""
        return await _generate(request, srv, sched, req, ids, opts, req.logprobs, chat=False, echo=echo)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: HTTPRequest):
        model, sched = srv.ready()
        req = _parse(ChatRequest, await body_of(request))
        if not req.messages:
            raise APIError(400, "messages is empty", param="messages")
        ids = _encode(model, srv.render_chat(req.messages))
        k = None
        if req.logprobs:
            k = req.top_logprobs or 0
            if not 0 <= k <= MAX_LOGPROBS:
                raise APIError(400, f"top_logprobs must be from 0 to {MAX_LOGPROBS}, got {k}", param="top_logprobs")
        max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        opts = _options(req, len(ids), srv.max_context, max_tokens)
        return await _generate(request, srv, sched, req, ids, opts, k, chat=True)

    return app


def _encode(model, text: str) -> List[int]:
    try:
        return model.tokenizer.encode(text)
    except ValueError as e:
        raise APIError(400, str(e), param="prompt") from None


def _check_ids(model, ids: List[int], param: str) -> None:
    V = model.vocab_size
    for i, t in enumerate(ids):
        if not 0 <= t < V:
            raise APIError(400, f"{param}[{i}]: token id {t} is outside the vocabulary [0, {V})", param=param)


def _logprobs_body(entries: List[dict], chat: bool, offset: int = 0) -> Optional[dict]:
    if chat:
        return {"content": [{"token": e["token"], "logprob": e["logprob"], "bytes": list(e["token"].encode()),
                             "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                                              for _, t, lp in e["top"]]} for e in entries]}
    offsets, pos = [], offset
    for e in entries:
        offsets.append(pos)
        pos += len(e["token"])
    return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t: lp for _, t, lp in e["top"]} for e in entries], "text_offset": offsets}


def _choice_options(opts: dict, n: int) -> List[dict]:
    """The sampling options of each of n choices: choice i of a request with seed S samples with seed
    S + i (so it equals Model.generate(prompt, seed=S + i)); without a seed each draws its own."""
    base = opts["options"]
    if n == 1 or base.get("seed") is None:
        return [base] * n
    return [dict(base, seed=base["seed"] + i) for i in range(n)]


async def _generate(request: HTTPRequest, srv: ServerState, sched: Scheduler, body: _Sampling, ids: List[int],
                    opts: dict, logprobs: Optional[int], chat: bool, echo: str = ""):
    queue: asyncio.Queue = asyncio.Queue()  # (choice index, kind, payload)
    mailbox = srv.mailbox

    def emitter(index: int):
        def emit(kind, payload):  # scheduler thread
            mailbox.post(queue, (index, kind, payload))
        return emit

    n = body.n or 1
    reqs = [Request(ids, o, opts["stops"], emitter(i), ignore_eos=body.ignore_eos, logprobs=logprobs)
            for i, o in enumerate(_choice_options(opts, n))]

    def cancel_all():
        for r in reqs:
            r.cancel()  # frees the slot (a no-op once finished or never submitted)

    try:
        for r in reqs:  # all or none: a choice the queue refuses takes the others back with it
            sched.submit(r)
    except QueueFull as e:
        cancel_all()
        raise APIError(429, f"the server is busy: {e}; retry later", "rate_limit_error",
                       headers={"Retry-After": "1"}) from None
    except ShuttingDown as e:
        cancel_all()
        raise APIError(503, str(e), "service_unavailable", headers={"Retry-After": "5"}) from None
    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    created = int(time.time())
    name = srv.model_name
    obj = "chat.completion" if chat else "text_completion"

    def usage(done: List[dict]) -> dict:
        # The prompt counts once (as OpenAI counts it); the completions of all choices add up.
        u = _usage(done[0])
        c = sum(d["completion_tokens"] for d in done)
        u.update(completion_tokens=c, total_tokens=u["prompt_tokens"] + c)
        return u

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def chunk(choice: dict, usage=None) -> str:
            d = {"id": rid, "object": obj + (".chunk" if chat else ""), "created": created, "model": name,
                 "choices": [choice] if choice is not None else []}
            if usage is not None:
                d["usage"] = usage
            return _sse(d)

        async def events():
            try:
                for i in range(n):
                    if chat:
                        yield chunk({"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                     "finish_reason": None})
                    elif echo:
                        yield chunk({"index": i, "text": echo, "logprobs": None, "finish_reason": None})
                offset = [len(echo)] * n
                done: List[Optional[dict]] = [None] * n
                while any(d is None for d in done):
                    i, kind, p = await queue.get()
                    if kind == "text":
                        lp = _logprobs_body(p["logprobs"], chat, offset[i]) if p["logprobs"] else None
                        offset[i] += len(p["text"])
                        if chat:
                            yield chunk({"index": i, "delta": {"content": p["text"]}, "logprobs": lp,
                                         "finish_reason": None})
                        else:
                            yield chunk({"index": i, "text": p["text"], "logprobs": lp, "finish_reason": None})
                    elif kind == "done":
                        done[i] = p
                        fr = _finish_reason(p["finish_reason"])
                        if chat:
                            yield chunk({"index": i, "delta": {}, "logprobs": None, "finish_reason": fr})
                        else:
                            yield chunk({"index": i, "text": "", "logprobs": None, "finish_reason": fr})
                    else:
                        yield _sse({"error": {"message": p, "type": "server_error", "param": None, "code": None}})
                        break
                else:
                    if include_usage:
                        yield chunk(None, usage(done))
                yield "data: [DONE]\n\n"
            finally:
                cancel_all()  # a client that went away frees its slots

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # Not streaming: collect, and drop the requests if the client goes away meanwhile.
    pieces: List[List[str]] = [[] for _ in range(n)]
    lps: List[list] = [[] for _ in range(n)]
    done: List[Optional[dict]] = [None] * n
    try:
        while any(d is None for d in done):
            try:
                i, kind, p = await asyncio.wait_for(queue.get(), 0.5)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    cancel_all()
                    return error_response(499, "the client closed the request")
                continue
            if kind == "text":
                pieces[i].append(p["text"])
                if p["logprobs"]:
                    lps[i].extend(p["logprobs"])
            elif kind == "done":
                done[i] = p
            else:
                cancel_all()
                return error_response(500, p, "server_error")
    except asyncio.CancelledError:
        cancel_all()
        raise
    choices = []
    for i in range(n):
        text = "".join(pieces[i])
        lp = _logprobs_body(lps[i], chat, len(echo)) if logprobs is not None else None
        fr = _finish_reason(done[i]["finish_reason"])
        if chat:
            choices.append({"index": i, "message": {"role": "assistant", "content": text}, "logprobs": lp,
                            "finish_reason": fr})
        else:
            choices.append({"index": i, "text": echo + text, "logprobs": lp, "finish_reason": fr})
    return {"id": rid, "object": obj, "created": created, "model": name, "choices": choices, "usage": usage(done),
            "system_fingerprint": f"seed-{done[0]['seed']}"}


def _metrics_text(srv: ServerState) -> str:
    out: List[str] = []

    def metric(name, kind, help_, samples):
        out.append(f"# HELP bitmamba_{name} {help_}")
        out.append(f"# TYPE bitmamba_{name} {kind}")
        for labels, v in samples:
            out.append(f"bitmamba_{name}{labels} {v:g}" if isinstance(v, float) else f"bitmamba_{name}{labels} {v}")

    metric("up", "gauge", "1 once the model is loaded and serving", [("", int(srv.scheduler is not None))])
    metric("http_requests_total", "counter", "HTTP requests by path and status code",
           [(f'{{path="{p}",code="{c}"}}', n) for (p, c), n in sorted(srv.http_counts.items())])
    s = srv.scheduler
    if s is None:
        return "\n".join(out) + "\n"
    metric("kernel_info", "gauge", "1 per projection kind: the weight packing and kernel this server runs it with",
           [(f'{{matrix="{m}",packing="{p}",kernel="{k}"}}', 1) for m, p, k in srv.kernel_choices])
    c = s.counters
    metric("requests_total", "counter", "generation requests by outcome",
           [(f'{{outcome="{k}"}}', int(c[k])) for k in ("completed", "cancelled", "errors", "rejected")])
    metric("prompt_tokens_total", "counter", "prompt tokens of admitted requests (cached ones included)",
           [("", int(c["prompt_tokens"]))])
    metric("prefill_tokens_total", "counter", "prompt tokens run through the model (not from the cache)",
           [("", int(c["prefill_tokens"]))])
    metric("generated_tokens_total", "counter", "tokens generated", [("", int(c["generated_tokens"]))])
    metric("queue_depth", "gauge", "requests waiting for a batch slot", [("", s.queue_depth)])
    metric("active_sequences", "gauge", "requests in the batch (prefilling or decoding)", [("", s.active)])
    metric("batch_size", "gauge", "sequences in the last step's batched forward pass", [("", s.last_batch)])
    metric("steps_total", "counter", "batched forward passes", [("", int(c["steps"]))])
    metric("step_sequences_total", "counter", "sum of the batch sizes of all steps (/ steps_total = mean batch)",
           [("", int(c["step_sequences"]))])
    pc = s.cache
    metric("prefix_cache_hits_total", "counter", "requests that restored a cached prefix state", [("", pc.hits)])
    metric("prefix_cache_misses_total", "counter", "requests that found no cached prefix", [("", pc.misses)])
    metric("prefix_cache_hit_tokens_total", "counter", "prompt tokens restored from the cache", [("", pc.hit_tokens)])
    metric("prefix_cache_bytes", "gauge", "bytes of cached states", [("", pc.bytes)])
    metric("prefix_cache_capacity_bytes", "gauge", "--state-cache-mb in bytes", [("", pc.max_bytes)])
    metric("prefix_cache_entries", "gauge", "cached states", [("", len(pc))])
    metric("prefix_cache_evictions_total", "counter", "states evicted (least recently used)", [("", pc.evictions)])
    out.append("# HELP bitmamba_time_to_first_token_seconds from submission to the first generated token")
    out.append("# TYPE bitmamba_time_to_first_token_seconds histogram")
    acc = 0
    for b, n in zip(TTFT_BUCKETS, s.ttft_buckets):
        acc += n
        out.append(f'bitmamba_time_to_first_token_seconds_bucket{{le="{b:g}"}} {acc}')
    out.append(f'bitmamba_time_to_first_token_seconds_bucket{{le="+Inf"}} {s.ttft_count}')
    out.append(f"bitmamba_time_to_first_token_seconds_sum {s.ttft_sum:g}")
    out.append(f"bitmamba_time_to_first_token_seconds_count {s.ttft_count}")
    return "\n".join(out) + "\n"
