"""Benchmark `bitmamba serve`: aggregate generated tok/s at 1, 4 and 16 concurrent streams, and the
time to first token of a chat turn after a ~2000-token history, with and without the prefix cache.

    python scripts/bench_serve.py                     # 255m and 1b random weights, GPT-2 tokenizer
    python scripts/bench_serve.py --shapes 255m --tokens 32
    python scripts/bench_serve.py --model model.gguf  # a real model file

The server runs in this process (uvicorn in a thread, on 127.0.0.1, a free port), so what is
measured includes the HTTP layer and streaming. The streaming clients run in a child process, one
asyncio loop with aiohttp: on a machine of a few cores every client cycle is taken from the server
(which, deployed, has its clients elsewhere), and 16 threads of a synchronous httpx client spent
about 1 ms of CPU per token here, as much as the 255M model's whole decode step per sequence;
aiohttp spends about 0.06 ms. The clients' CPU per token is printed with each rate. Goals (issue 16):
16 streams >= 4x the aggregate tok/s of one; the cached turn's first token >= 10x sooner.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import queue
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

import bitmamba  # noqa: E402
from bitmamba.benchmarks import cpu_model  # noqa: E402
from bitmamba.ops.ternary import set_layout_policy  # noqa: E402
from bitmamba.serve import default_packing  # noqa: E402
from bitmamba.serve.app import create_app  # noqa: E402



def start(model, max_batch, max_context):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(model=model, max_batch=max_batch, max_queue=256, max_context=max_context, state_cache_mb=512)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return server, t, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def stream(base, path, body, timeout=600):
    """(time to first text, number of text chunks' tokens via usage, end time)."""
    t0 = time.perf_counter()
    first = None
    usage = None
    with httpx.stream("POST", base + path, json=dict(body, stream=True, stream_options={"include_usage": True}),
                      timeout=timeout) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            d = json.loads(line[6:])
            if d.get("usage"):
                usage = d["usage"]
            ch = d.get("choices") or []
            if ch and first is None and ((ch[0].get("delta") or {}).get("content") or ch[0].get("text")):
                first = time.perf_counter() - t0
    return first, usage, time.perf_counter()


async def _streams(base, n_streams, tokens):
    """n_streams concurrent streaming completions: (tokens generated, wall seconds)."""
    import aiohttp

    async def one(session, i):
        body = {"prompt": f"Stream {i} begins:", "max_tokens": tokens, "ignore_eos": True, "seed": i,
                "stream": True, "stream_options": {"include_usage": True}}
        usage = None
        async with session.post(base + "/v1/completions", json=body) as r:
            r.raise_for_status()
            async for line in r.content:  # one SSE line at a time; only the usage chunk is parsed
                if line.startswith(b"data: {") and b'"usage": {' in line:
                    usage = json.loads(line[6:])["usage"]
        return usage["completion_tokens"]

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        t0 = time.perf_counter()
        done = await asyncio.gather(*[one(session, i) for i in range(n_streams)])
        return sum(done), time.perf_counter() - t0


def _client_process(base, n_streams, tokens, out):
    import aiohttp  # noqa: F401  (imported before the CPU clock starts)

    t0 = time.process_time()
    generated, wall = asyncio.run(_streams(base, n_streams, tokens))
    out.put((generated, wall, time.process_time() - t0))


def throughput(base, n_streams, tokens):
    """(aggregate generated tok/s, the clients' CPU seconds per generated token)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=_client_process, args=(base, n_streams, tokens, out), daemon=True)
    p.start()
    try:
        while True:
            try:
                generated, wall, cpu = out.get(timeout=1)
                break
            except queue.Empty:
                if not p.is_alive():  # it printed its traceback
                    raise RuntimeError(f"the client process failed (exit code {p.exitcode})") from None
    finally:
        p.join(30)
    return generated / wall, cpu / generated


def ttft_chat(base, tokenizer, history_tokens):
    words = "the quick brown fox jumps over the lazy dog and runs far away".split()
    text, i = [], 0
    while len(tokenizer.encode(" ".join(text))) < history_tokens:
        text.extend(words[(i % len(words)):] + words[:(i % len(words))])
        i += 1
    history = " ".join(text)
    msgs = [{"role": "user", "content": history}]
    # Turn 1 fills the cache (its prompt state and its end state).
    r = httpx.post(base + "/v1/chat/completions", json={"messages": msgs, "max_tokens": 8, "seed": 1}, timeout=600)
    reply = r.json()["choices"][0]["message"]["content"]
    turn2 = msgs + [{"role": "assistant", "content": reply}, {"role": "user", "content": "Go on."}]
    cached, usage, _ = stream(base, "/v1/chat/completions", {"messages": turn2, "max_tokens": 4, "seed": 2})
    # The same turn with a history the cache has never seen (one different first word): no prefix hit.
    other = [{"role": "user", "content": "A " + history}] + turn2[1:]
    uncached, usage_u, _ = stream(base, "/v1/chat/completions", {"messages": other, "max_tokens": 4, "seed": 2})
    return cached, uncached, usage["prompt_tokens"], usage["prompt_tokens_details"]["cached_tokens"], \
        usage_u["prompt_tokens_details"]["cached_tokens"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="255m,1b", help="random-weight shapes (default %(default)s)")
    ap.add_argument("--model", default=None, help="a model file instead of random shapes")
    ap.add_argument("--streams", default="1,4,16")
    ap.add_argument("--tokens", type=int, default=64, help="tokens generated per stream (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds over the stream counts (default %(default)s)")
    ap.add_argument("--history", type=int, default=2000, help="chat history tokens (default %(default)s)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--packing", choices=["auto", "decode", "lut", "base3"], default=None,
                    help="weight packing (default: what `bitmamba serve` uses, BITMAMBA_PACKING else decode)")
    args = ap.parse_args()
    if args.repeats < 1 or args.tokens < 1:
        ap.error("--repeats and --tokens must be >= 1")
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        sys.exit("bench_serve.py: the streaming clients need aiohttp: pip install aiohttp")
    if args.threads:
        bitmamba.set_num_threads(args.threads)
    packing = args.packing or default_packing()
    set_layout_policy(packing)
    streams = [int(s) for s in args.streams.split(",")]
    print(f"CPU: {cpu_model()}; bitmamba {bitmamba.__version__}; packing {packing}")
    targets = [("file", args.model)] if args.model else [("random", s) for s in args.shapes.split(",")]
    for kind, what in targets:
        model = bitmamba.load(what) if kind == "file" else bitmamba.Model.random(what)
        server, thread, base = start(model, max(streams), args.history + 512)
        try:
            throughput(base, 1, 8)  # warm-up: first touch of the weights and buffers
            # Rounds over the stream counts; the median of each count's rounds (shared, noisy cores).
            runs = {n: [] for n in streams}
            for _ in range(args.repeats):
                for n in streams:
                    runs[n].append(throughput(base, n, args.tokens))
            rates = {n: (statistics.median(r[0] for r in runs[n]), statistics.median(r[1] for r in runs[n]))
                     for n in streams}
            cached, uncached, ptoks, hit, hit_u = ttft_chat(base, model.tokenizer, args.history)
        finally:
            server.should_exit = True
            thread.join(30)
        name = what if kind == "random" else Path(what).name
        print(f"\n{name}: aggregate generated tok/s ({args.tokens} tokens per stream, median of {args.repeats})")
        for n in streams:
            rate, client_cpu = rates[n]
            print(f"  {n:3d} streams: {rate:8.1f} tok/s  ({rate / rates[streams[0]][0]:.2f}x of {streams[0]}; "
                  f"clients' CPU {client_cpu * 1e6:.0f} us/token)")
        print(f"  chat turn after {ptoks} prompt tokens: first token {cached * 1e3:.0f} ms from the cache "
              f"({hit} tokens restored) vs {uncached * 1e3:.0f} ms uncached ({hit_u} restored): "
              f"{uncached / cached:.1f}x sooner")


if __name__ == "__main__":
    main()
