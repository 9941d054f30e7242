"""The engine guarantees the server relies on, without HTTP: prefill is exact under any split (a
cached prefix + the rest = the whole prompt at once), batch_step gives each sequence exactly the
tokens it gets alone, and the scheduler's output equals Model.generate for the same seed (alone, in a
batch of 16, from a cached prefix). The prefix cache's LRU accounting."""
import threading
import time

import numpy as np
import pytest

import bitmamba
from bitmamba._native import native
from bitmamba.model import check_sampling
from bitmamba.serve import PrefixCache, QueueFull, Request, Scheduler


@pytest.fixture(scope="module")
def model():
    return bitmamba.load(bitmamba.default_model_path())


@pytest.fixture(scope="module")
def model_255m():
    return bitmamba.Model.random("255m")


def _logits_after(m, parts):
    st = m.new_state()
    for p in parts:
        m.feed(p, st)
    return st.logits


@pytest.mark.parametrize("which", ["bundled", "255m"])
def test_prefill_is_exact_under_any_split(which, model, model_255m):
    m = model if which == "bundled" else model_255m
    n = 300 if which == "bundled" else 260
    ids = np.random.default_rng(0).integers(0, m.vocab_size, n).tolist()
    whole = _logits_after(m, [ids])
    for cut in ((1, 7, 255, 256, 257) if which == "bundled" else (7, 257)):
        assert np.array_equal(_logits_after(m, [ids[:cut], ids[cut:]]), whole), cut
    assert np.array_equal(_logits_after(m, [ids[:n - 5]] + [[t] for t in ids[n - 5:]]), whole)


def _gens(m, prompts, seeds, n=12):
    out = []
    for p, s in zip(prompts, seeds):
        st = m.new_state()
        g = m._generator(p, st, check_sampling(max_new_tokens=n, seed=s), False, prime=False)
        out.append((g, st))
    return out


@pytest.mark.parametrize("which", ["bundled", "255m"])
def test_batch_step_matches_single_generation(which, model, model_255m):
    m = model if which == "bundled" else model_255m
    rng = np.random.default_rng(1)
    K = 16 if which == "bundled" else 4
    n = 12 if which == "bundled" else 4
    prompts = [rng.integers(1, m.vocab_size, 3 + 5 * k).tolist() for k in range(K)]
    seeds = list(range(100, 100 + K))
    gens = _gens(m, prompts, seeds, n)
    C = native()
    # First step: every prompt in one batched prefill, in two chunks for the odd ones.
    fed = [0] * K
    while any(f < len(p) for f, p in zip(fed, prompts)):
        pre, chunks = [], []
        for k, (g, _) in enumerate(gens):
            if fed[k] < len(prompts[k]):
                take = len(prompts[k]) if k % 2 == 0 else max(1, len(prompts[k]) // 2)
                take = min(take, len(prompts[k]) - fed[k])
                pre.append(g)
                chunks.append(np.asarray(prompts[k][fed[k]:fed[k] + take]))
                fed[k] += take
        assert C.batch_step(m.native, [], pre, chunks) == []
    out = [[] for _ in range(K)]
    while True:
        live = [k for k in range(K) if not gens[k][0].finished]
        if not live:
            break
        toks = C.batch_step(m.native, [gens[k][0] for k in live], [], [])
        for k, t in zip(live, toks):
            out[k].append(t)
    for k in range(K):
        ref = m.generate_ids(prompts[k], max_new_tokens=n, seed=seeds[k])
        got = out[k][:-1] if gens[k][0].finish_reason == "stop_token" else out[k]
        assert got == ref, k


def test_batch_step_refuses_bad_input(model):
    C = native()
    (g1, _), = _gens(model, [[5, 6]], [1])
    with pytest.raises(ValueError, match="empty prefill chunk"):
        C.batch_step(model.native, [], [g1], [np.zeros(0, dtype=np.int64)])
    with pytest.raises(ValueError, match="seen no token"):
        C.batch_step(model.native, [g1], [], [])
    with pytest.raises(ValueError, match="share a state"):
        C.batch_step(model.native, [], [g1, g1], [np.asarray([5]), np.asarray([6])])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        C.batch_step(model.native, [], [g1], [np.asarray([model.vocab_size])])


def test_prefix_cache_longest_prefix_and_lru(model):
    st = model.new_state()
    model.feed([1, 2, 3], st)
    cache = PrefixCache(max_bytes=2 * st.nbytes)
    assert cache.lookup([1, 2, 3]) == (0, None)
    assert cache.insert([1, 2], st) and cache.insert([1, 2, 3], st)
    n, got = cache.lookup([1, 2, 3, 4])
    assert n == 3 and np.array_equal(got.logits, st.logits) and got is not st
    assert cache.lookup([1, 2, 9])[0] == 2
    assert cache.insert([7], st)  # evicts the least recently used: [1, 2] was used last, [1, 2, 3] goes
    assert cache.bytes == 2 * st.nbytes and cache.evictions == 1 and len(cache) == 2
    assert cache.lookup([1, 2, 3])[0] == 2 and cache.lookup([7, 8])[0] == 1
    assert not PrefixCache(0).insert([1], st)
    assert (cache.hits, cache.misses, cache.hit_tokens) == (4, 1, 8)


def _run(sched, reqs, timeout=60):
    done = {}
    ev = threading.Event()
    for i, (ids, opt, stops) in enumerate(reqs):
        pieces = []

        def emit(kind, p, i=i, pieces=pieces):
            if kind == "text":
                pieces.append(p["text"])
            else:
                done[i] = ("".join(pieces), kind, p)
                if len(done) == len(reqs):
                    ev.set()
        sched.submit(Request(ids, opt, stops, emit))
    assert ev.wait(timeout), "the scheduler did not finish in time"
    return [done[i] for i in range(len(reqs))]


def test_scheduler_equals_generate_alone_batched_and_cached(model):
    tok = model.tokenizer
    sched = Scheduler(model, max_batch=16, prefill_chunk=5, state_cache_bytes=64 << 20).start()
    try:
        prompts = [f"Once upon a time, child number {i} found a" for i in range(16)]
        kw = [dict(max_new_tokens=25, seed=i, temperature=0.9 if i % 2 else 0.0, top_k=20 + i) for i in range(16)]
        stops = [["."] if i % 4 == 0 else [] for i in range(16)]
        refs = [model.generate(p, stop=s or None, **k) for p, s, k in zip(prompts, stops, kw)]
        alone = _run(sched, [(tok.encode(prompts[3]), check_sampling(**kw[3]), stops[3])])
        assert alone[0][0] == refs[3]
        batch = _run(sched, [(tok.encode(p), check_sampling(**k), s) for p, s, k in zip(prompts, stops, kw)])
        for i, (text, kind, info) in enumerate(batch):
            assert kind == "done" and text == refs[i], i
        # Same prompts again: served from the cache (the prompt states), same text.
        again = _run(sched, [(tok.encode(p), check_sampling(**k), s) for p, s, k in zip(prompts, stops, kw)])
        assert [a[0] for a in again] == refs
        assert all(a[2]["cached_tokens"] == len(tok.encode(p)) for a, p in zip(again, prompts))
        # A continuation of a finished completion restores its end state and prefills only the rest.
        first = batch[1][2]
        cont = tok.encode(prompts[1]) + first["tokens"] + tok.encode(" The end")
        (text, _, info), = _run(sched, [(cont, check_sampling(max_new_tokens=10, seed=7), [])])
        assert info["cached_tokens"] == len(tok.encode(prompts[1])) + len(first["tokens"])
        assert text == model.generate(cont, max_new_tokens=10, seed=7)
    finally:
        sched.stop()


def test_scheduler_queue_limit_and_cancel(model):
    sched = Scheduler(model, max_batch=1, max_queue=1)  # not started: nothing leaves the queue
    opt = check_sampling(max_new_tokens=5, seed=1)
    a = sched.submit(Request([1, 2], opt, [], lambda *a: None))
    sched.submit(Request([1, 2], opt, [], lambda *a: None))
    with pytest.raises(QueueFull):
        sched.submit(Request([1, 2], opt, [], lambda *a: None))
    a.cancel()
    sched.start()
    for _ in range(200):  # bounded: the cancelled request is dropped at admission
        if sched.counters["cancelled"] == 1:
            break
        time.sleep(0.01)
    sched.stop()
    assert sched.counters["rejected"] == 1 and sched.counters["cancelled"] == 1
