"""`bitmamba serve` end to end: the real server in a subprocess on 127.0.0.1, the real openai client
(completions and chat, streaming and not), raw HTTP for the error cases. Every loop is bounded and
every call has a timeout."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
openai = pytest.importorskip("openai", reason="the openai client is not installed")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")

import bitmamba  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("BITMAMBA_PACKING", None)  # the servers here run the server's own default packing
    proc = subprocess.Popen([sys.executable, "-m", "bitmamba", "serve", "--port", str(port), "--log-level", "warning",
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not become healthy in 60 s")


def _stop(proc, timeout=20) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise AssertionError("the server did not exit within 20 s of SIGTERM")
    return proc.returncode


@pytest.fixture(scope="module")
def server():
    proc, base = _start("--max-batch", "16", "--state-cache-mb", "64")
    yield base
    assert _stop(proc) == 0


@pytest.fixture(scope="module")
def model():
    return bitmamba.load(bitmamba.default_model_path())


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="none", timeout=60, max_retries=0)


def _metric(base, name) -> float:
    for line in httpx.get(base + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def _chat_ids(base, messages):
    r = httpx.post(base + "/tokenize", json={"messages": messages}, timeout=10)
    assert r.status_code == 200
    return r.json()["tokens"]


def test_health_models_tokenize(server, client, model):
    assert httpx.get(server + "/health", timeout=10).json() == {"status": "ok"}
    ids = [m.id for m in client.models.list().data]
    assert ids == ["default-model"]
    toks = httpx.post(server + "/tokenize", json={"prompt": "hello world"}, timeout=10).json()
    assert toks["tokens"] == model.tokenizer.encode("hello world")
    back = httpx.post(server + "/detokenize", json={"tokens": toks["tokens"]}, timeout=10).json()
    assert back["prompt"] == "hello world"


def test_completion_equals_generate(client, model):
    prompt = "Once upon a time"
    ref = model.generate(prompt, max_new_tokens=30, seed=5, temperature=0.7, top_p=0.9, stop=["."])
    r = client.completions.create(model="default-model", prompt=prompt, max_tokens=30, seed=5, temperature=0.7,
                                  top_p=0.9, stop=["."])
    assert r.choices[0].text == ref
    assert r.usage.prompt_tokens == len(model.tokenizer.encode(prompt)) and r.usage.completion_tokens > 0
    # streaming, token-id prompt, extras as extra body fields
    ids = model.tokenizer.encode(prompt)
    ref2 = model.generate(ids, max_new_tokens=20, seed=9, top_k=5, min_p=0.1, repeat_penalty=1.3)
    stream = client.completions.create(model="m", prompt=ids, max_tokens=20, seed=9, stream=True,
                                       extra_body={"top_k": 5, "min_p": 0.1, "repeat_penalty": 1.3})
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks) == ref2
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    # logprobs of the model's distribution; greedy picks the top one
    r = client.completions.create(model="m", prompt=prompt, max_tokens=5, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 5 and all(v <= 0 for v in lp.token_logprobs)
    assert all(max(top.values()) == v for top, v in zip(lp.top_logprobs, lp.token_logprobs))


def test_chat_equals_generate_and_second_turn_hits_cache(server, client, model):
    msgs = [{"role": "system", "content": "A story."}, {"role": "user", "content": "Tell me about a cat."}]
    ids = _chat_ids(server, msgs)
    ref = model.generate(ids, max_new_tokens=25, seed=3)
    r = client.chat.completions.create(model="m", messages=msgs, max_tokens=25, seed=3)
    reply = r.choices[0].message.content
    assert reply == ref and r.choices[0].message.role == "assistant"
    hits = _metric(server, "bitmamba_prefix_cache_hits_total")
    msgs2 = msgs + [{"role": "assistant", "content": reply}, {"role": "user", "content": "And then?"}]
    ids2 = _chat_ids(server, msgs2)
    ref2 = model.generate(ids2, max_new_tokens=15, seed=4)
    stream = client.chat.completions.create(model="m", messages=msgs2, max_tokens=15, seed=4, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ref2
    usage = chunks[-1].usage
    assert usage.prompt_tokens == len(ids2) and usage.prompt_tokens_details.cached_tokens >= len(ids)
    assert _metric(server, "bitmamba_prefix_cache_hits_total") >= hits + 1


def test_n_choices_each_equal_generate_with_seed_plus_index(server, client, model):
    # n = 3 with seed S: choice i is Model.generate(prompt, seed=S + i), streamed or not.
    prompt = "The weather today"
    refs = [model.generate(prompt, max_new_tokens=12, seed=40 + i, temperature=0.9, ignore_eos=True) for i in range(3)]
    assert len(set(refs)) > 1  # the seeds do make different choices
    r = client.completions.create(model="m", prompt=prompt, max_tokens=12, seed=40, temperature=0.9, n=3,
                                  extra_body={"ignore_eos": True})
    assert [c.index for c in r.choices] == [0, 1, 2] and [c.text for c in r.choices] == refs
    assert r.usage.prompt_tokens == len(model.tokenizer.encode(prompt)) and r.usage.completion_tokens == 36
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}],
                                            max_tokens=12, seed=40, temperature=0.9, n=3, stream=True,
                                            stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    texts, finished = ["", "", ""], set()
    chunks = list(stream)
    for c in chunks:
        for ch in c.choices:
            texts[ch.index] += ch.delta.content or ""
            if ch.finish_reason:
                finished.add(ch.index)
    ids = _chat_ids(server, [{"role": "user", "content": prompt}])
    assert texts == [model.generate(ids, max_new_tokens=12, seed=40 + i, temperature=0.9, ignore_eos=True)
                     for i in range(3)]
    assert finished == {0, 1, 2} and chunks[-1].usage.completion_tokens == 36


def test_16_concurrent_streams_equal_generate(client, model):
    prompts = [f"Story {i}: once there was a" for i in range(16)]
    refs = [model.generate(p, max_new_tokens=40, seed=100 + i, ignore_eos=True) for i, p in enumerate(prompts)]
    out = [None] * 16

    def worker(i):
        s = client.completions.create(model="m", prompt=prompts[i], max_tokens=40, seed=100 + i, stream=True,
                                      extra_body={"ignore_eos": True})
        out[i] = "".join(c.choices[0].text for c in s)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out == refs


def test_client_killed_mid_stream_frees_its_slot(model):
    # A server of its own whose context limit allows a request that would run for minutes, so the
    # request is still generating when the client goes away (a short one could finish first).
    proc, server = _start("--max-batch", "16", "--max-context", "1000000")
    try:
        _client_killed_mid_stream(server, openai.OpenAI(base_url=server + "/v1", api_key="none", timeout=60,
                                                       max_retries=0), model)
    finally:
        assert _stop(proc) == 0


def _client_killed_mid_stream(server, client, model):
    cancelled = _metric(server, 'bitmamba_requests_total{outcome="cancelled"}')
    with httpx.Client(timeout=30) as h:
        with h.stream("POST", server + "/v1/completions",
                      json={"prompt": "Long", "max_tokens": 500000, "stream": True, "ignore_eos": True,
                            "seed": 1}) as r:
            lines = r.iter_lines()
            got = [next(lines) for _ in range(3)]
            assert got[0].startswith("data: ")
        # the connection is closed here, mid-stream
    ref = model.generate("Meanwhile", max_new_tokens=20, seed=2)
    assert client.completions.create(model="m", prompt="Meanwhile", max_tokens=20, seed=2).choices[0].text == ref
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _metric(server, 'bitmamba_requests_total{outcome="cancelled"}') == cancelled:
        time.sleep(0.05)
    assert _metric(server, 'bitmamba_requests_total{outcome="cancelled"}') == cancelled + 1
    assert _metric(server, "bitmamba_active_sequences") == 0


@pytest.mark.parametrize("body, param", [
    (b"{not json", None),
    ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "x", "max_tokens": "10"}, "max_tokens"),
    ({"prompt": "x", "temperature": "hot"}, "temperature"),
    ({"prompt": "x", "top_p": 0}, "top_p"),
    ({"prompt": "x", "top_k": -1}, "top_k"),
    ({"prompt": "x", "repeat_penalty": 0}, "repeat_penalty"),
    ({"prompt": "x", "seed": -1}, "seed"),
    ({"prompt": "x", "stop": 3}, "stop"),
    ({"prompt": "x", "n": 0}, "n"),
    ({"prompt": "x", "n": 17}, "n"),
    ({"prompt": "x " * 600}, "prompt"),
    ({"prompt": "x", "max_tokens": 100000}, "max_tokens"),
    ({"prompt": [10**9]}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"max_tokens": 3}, "prompt"),
])
def test_bad_requests_get_400(server, body, param):
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(server + "/v1/completions", timeout=10, **kw)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"] and err["param"] == param


def test_bad_chat_requests_and_server_keeps_serving(server, client):
    for body in ({"messages": []}, {"messages": [{"role": "user"}], "max_tokens": -1},
                 {"messages": "hi"}, {"messages": [{"role": "user", "content": "x"}], "logprobs": True,
                                      "top_logprobs": 99}):
        r = httpx.post(server + "/v1/chat/completions", json=body, timeout=10)
        assert r.status_code == 400 and "error" in r.json(), body
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="m", prompt="x", max_tokens=0)
    assert client.completions.create(model="m", prompt="still", max_tokens=3).choices[0].text is not None


def _http_count(base, path, code) -> float:
    try:
        return _metric(base, f'bitmamba_http_requests_total{{path="{path}",code="{code}"}}')
    except KeyError:  # no such response yet
        return 0


def test_metrics_count_responses_by_path_and_status(server, client):
    ok, bad = _http_count(server, "/v1/completions", 200), _http_count(server, "/v1/completions", 400)
    list(client.completions.create(model="m", prompt="count", max_tokens=3, stream=True))
    client.completions.create(model="m", prompt="count", max_tokens=3)
    assert httpx.post(server + "/v1/completions", json={"prompt": "x", "max_tokens": 0}, timeout=10).status_code == 400
    assert _http_count(server, "/v1/completions", 200) == ok + 2  # the streamed one counts too
    assert _http_count(server, "/v1/completions", 400) == bad + 1


def test_mailbox_delivers_every_event_in_order_with_fewer_wakeups():
    import asyncio

    from bitmamba.serve.app import _Mailbox

    async def main():
        loop = asyncio.get_running_loop()
        box = _Mailbox(loop)
        wakeups = 0
        deliver = box._deliver

        def counting_deliver():
            nonlocal wakeups
            wakeups += 1
            deliver()
        box._deliver = counting_deliver
        queues = [asyncio.Queue() for _ in range(4)]
        n = 2000

        def producer():  # the scheduler thread's side: bursts of one event per queue
            for i in range(n):
                for q in queues:
                    box.post(q, i)
        t = threading.Thread(target=producer)
        t.start()
        got = [[await q.get() for _ in range(n)] for q in queues]
        t.join()
        return got, wakeups

    got, wakeups = asyncio.run(main())
    assert got == [list(range(2000))] * 4
    assert 1 <= wakeups < 4 * 2000


def test_full_queue_429_then_sigterm_drains():
    proc, base = _start("--max-batch", "1", "--max-queue", "0", "--drain-seconds", "30", "--max-context", "2000")
    try:
        with httpx.Client(timeout=30) as h:
            with h.stream("POST", base + "/v1/completions",
                          json={"prompt": "Busy", "max_tokens": 1500, "stream": True, "ignore_eos": True}) as r:
                lines = r.iter_lines()
                assert next(lines).startswith("data: ")
                busy = httpx.post(base + "/v1/completions", json={"prompt": "x", "max_tokens": 2}, timeout=10)
                assert busy.status_code == 429 and busy.headers["retry-after"]
                assert busy.json()["error"]["type"] == "rate_limit_error"
                proc.send_signal(signal.SIGTERM)  # drains: the running stream still ends with [DONE]
                rest = [line for line in lines if line]
                assert rest[-1] == "data: [DONE]"
                final = json.loads(rest[-2][len("data: "):])
                assert final["choices"][0]["finish_reason"] == "length"
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def _kernel_info(base):
    lines = httpx.get(base + "/metrics", timeout=10).text.splitlines()
    return [line for line in lines if line.startswith("bitmamba_kernel_info{")]


def test_packing_default_and_option_reach_the_model_and_metrics_report_them(server):
    # The default server builds the 2-bit decode packing (a server batches; docs/serve.md), one
    # kernel_info line per projection kind; --packing base3 builds the 1.6-bit one.
    default = _kernel_info(server)
    assert len(default) == 3 and all('packing="decode"' in line for line in default), default
    proc, base = _start("--packing", "base3", "--max-batch", "2")
    try:
        info = _kernel_info(base)
        assert len(info) == 3 and all('packing="base3"' in line for line in info), info
        assert {line.split('matrix="')[1].split('"')[0] for line in info} == {"in_proj", "out_proj", "lm_head"}
        r = httpx.post(base + "/v1/completions", json={"prompt": "Once upon a time", "max_tokens": 4, "seed": 1},
                       timeout=30)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1
    finally:
        assert _stop(proc) == 0


def test_serve_command_passes_its_packing_to_the_server(monkeypatch):
    # `bitmamba serve` loads its model in the server's default packing (decode) unless --packing or
    # BITMAMBA_PACKING says otherwise: the server function receives it for a model file; a --random
    # model is built by the command itself, under that policy.
    import bitmamba.serve as serve_pkg
    from bitmamba.cli import build_parser
    from bitmamba.ops import ternary as T

    seen = []
    monkeypatch.setattr(serve_pkg, "serve",
                        lambda model, **k: seen.append((k["packing"], getattr(model, "native", None) is not None,
                                                        T.get_layout_policy())) or 0)
    before = T.get_layout_policy()
    try:
        for argv, env, want in ((["serve"], None, "decode"), (["serve", "--packing", "auto"], None, "auto"),
                                (["serve"], "base3", "base3"), (["serve", "--packing", "lut"], "base3", "lut")):
            T.set_layout_policy("auto")
            if env is None:
                monkeypatch.delenv("BITMAMBA_PACKING", raising=False)
            else:
                monkeypatch.setenv("BITMAMBA_PACKING", env)
            args = build_parser().parse_args(argv)
            assert args.func(args) == 0
            assert seen[-1] == (want, False, "auto"), (argv, env, seen)
        T.set_layout_policy("auto")
        args = build_parser().parse_args(["serve", "--random", "255m", "--packing", "base3"])
        assert args.func(args) == 0
        assert seen[-1] == (None, True, "base3"), seen
    finally:
        T.set_layout_policy(before)


def test_serve_function_loads_a_file_in_the_server_default_packing(monkeypatch):
    # The Python entry point bitmamba.serve.serve() applies the same default as the command, and
    # create_app sets the policy before its load thread builds any matrix.
    import bitmamba.serve as serve_pkg
    import bitmamba.serve.app as app_mod
    from bitmamba.ops import ternary as T

    class Stop(Exception):
        pass

    seen = []

    def fake_create_app(model_path=None, **k):
        seen.append(k.get("packing"))
        raise Stop

    before = T.get_layout_policy()
    try:
        monkeypatch.setattr(app_mod, "create_app", fake_create_app)
        monkeypatch.delenv("BITMAMBA_PACKING", raising=False)
        for kw, want in (({}, "decode"), ({"packing": "auto"}, "auto")):
            with pytest.raises(Stop):
                serve_pkg.serve("model.gguf", **kw)
            assert seen[-1] == want
        monkeypatch.undo()
        T.set_layout_policy("auto")
        app_mod.create_app("no-such-model.gguf", packing="base3")  # loads only once the app starts
        assert T.get_layout_policy() == "base3"
        with pytest.raises(ValueError):
            app_mod.create_app("no-such-model.gguf", packing="two-bit")
        with pytest.raises(ValueError, match="loaded model keeps"):
            app_mod.create_app(model=object(), packing="decode")
    finally:
        T.set_layout_policy(before)


def test_bench_serve_script_runs_end_to_end():
    # The benchmark's plumbing (server thread, client process, cache hit), not its speed.
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_serve.py"), "--shapes", "255m", "--streams",
                        "1,2", "--tokens", "4", "--repeats", "1", "--history", "64"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT / "python")))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 streams:" in r.stdout and "tok/s" in r.stdout
    restored = int(r.stdout.split("from the cache (")[1].split()[0])
    assert restored > 0, r.stdout
