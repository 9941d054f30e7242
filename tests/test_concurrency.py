"""One Model shared by many Python threads: every call gives the same result as the same call made alone.

The C++ thread pool is process-wide, so this also checks that concurrent callers never see each
other's parallel tasks (each call into the engine releases the GIL, so the callers really do overlap
inside the kernels). More callers than pool threads, every public entry point, several rounds.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

import bitmamba

C = pytest.importorskip("bitmamba._C", reason="bitmamba's C++ extension is not built")

N_CALLERS = 8          # more than the pool's threads on any CI machine
ROUNDS = 6
PROMPTS = ["Once upon a time", "The cell membrane", "In 1848 the", "def main():", "A B C D", "Hello",
           "Water boils at", "The quick brown fox"]


@pytest.fixture(scope="module")
def shared_model():
    # Big enough that every kernel splits its rows over the pool (the lm_head alone has 50257 rows),
    # small enough for a quick test.
    m = bitmamba.Model.random("custom", seed=3, vocab_size=50257, d_model=256, n_layers=3, d_inner=512,
                              n_heads=4, n_groups=4)
    before = bitmamba.get_num_threads()
    bitmamba.set_num_threads(2)
    yield m
    bitmamba.set_num_threads(before)


def _job(m, k):
    """Caller k's work: generate, stream, logits, feed + logprobs, each with its own seed/inputs."""
    prompt = PROMPTS[k % len(PROMPTS)]
    ids = m.tokenizer.encode(prompt)
    out = {}
    out["generate"] = m.generate(prompt, max_new_tokens=12, temperature=0.9, seed=100 + k)
    out["stream"] = list(m.stream(prompt + " and", max_new_tokens=8, temperature=0.7, top_k=20, seed=k))
    out["logits"] = m.logits(ids + [k, k + 1])
    st = m.new_state()
    m.feed(ids, st)
    lp, greedy = m.logprobs([11, 12, 13 + k], st)
    out["logprobs"] = (lp, greedy, st.n_tokens)
    return out


def _same(a, b):
    assert a["generate"] == b["generate"]
    assert a["stream"] == b["stream"]
    assert np.array_equal(a["logits"], b["logits"])  # bit for bit
    assert np.array_equal(a["logprobs"][0], b["logprobs"][0])
    assert np.array_equal(a["logprobs"][1], b["logprobs"][1])
    assert a["logprobs"][2] == b["logprobs"][2]


def test_many_threads_share_one_model(shared_model):
    m = shared_model
    alone = [_job(m, k) for k in range(N_CALLERS)]
    for _ in range(ROUNDS):
        results = [None] * N_CALLERS
        errors = []
        start = threading.Barrier(N_CALLERS)

        def caller(k):
            try:
                start.wait(timeout=60)
                results[k] = _job(m, k)
            except BaseException as e:  # reported below with the caller's index
                errors.append((k, e))

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(N_CALLERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads), "a caller did not finish (deadlock?)"
        assert not errors, errors
        for k in range(N_CALLERS):
            _same(results[k], alone[k])


def test_thread_count_changes_while_others_decode(shared_model):
    """set_num_threads from one thread while others run jobs: it waits for the pool to be free
    instead of tearing the workers down under a running job; results are unchanged."""
    m = shared_model
    alone = [_job(m, k) for k in range(3)]
    results = [None] * 3
    errors = []

    def caller(k):
        try:
            results[k] = _job(m, k)
        except BaseException as e:
            errors.append((k, e))

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for n in (1, 2, 1, 2):
        bitmamba.set_num_threads(n)
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    for k in range(3):
        _same(results[k], alone[k])
