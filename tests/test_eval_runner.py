"""Scoring through the model interface on a deterministic numpy mock (tests/eval_mock.py): shared-state
scoring equals full re-scoring exactly, rolling perplexity equals a direct computation, and every task
runs end to end through the runner and the CLI."""
import json
import math

import numpy as np
import pytest

from bitmamba.eval import TASKS, Scorer, evaluate, format_table
from bitmamba.eval.harness import HarnessAdapter
from bitmamba.eval.requests import rolling_windows
from eval_mock import make_mock

ALL = ["arc_easy", "arc_challenge", "piqa", "hellaswag", "boolq", "wikitext2"]


@pytest.fixture(scope="module")
def mock(shared_dir):
    return make_mock(shared_dir)


@pytest.fixture(scope="module")
def eval_dir(data_dir):
    return data_dir / "eval"


def full_rescore(model, ctx, cont):
    """Reference: one pass over context + continuation from a fresh state (after its first token, since
    logprobs needs a non-empty history), keeping the continuation's log-probs."""
    st = model.new_state()
    model.feed(ctx[:1], st)
    lp, greedy = model.logprobs(list(ctx[1:]) + list(cont), st)
    return math.fsum(lp[len(lp) - len(cont):].tolist()), bool(np.all(greedy[len(lp) - len(cont):]))


def test_mock_logprobs_are_a_distribution(mock):
    st = mock.new_state()
    with pytest.raises(ValueError):
        mock.logprobs([1], st)
    mock.feed([464, 3290], st)
    full = mock.next_logprobs(st)
    assert np.exp(full).sum() == pytest.approx(1.0, abs=1e-12)
    best = int(np.argmax(full))
    lp, greedy = mock.logprobs([best, 5], st.copy())
    assert lp[0] == pytest.approx(full[best], abs=1e-12) and greedy[0]


@pytest.mark.parametrize("task", ["arc_easy", "arc_challenge", "piqa", "hellaswag", "boolq"])
def test_state_sharing_equals_full_rescoring(mock, eval_dir, task):
    docs, _ = TASKS[task].load(eval_dir, limit=4)
    shared = Scorer(mock)
    plain = Scorer(mock, share_state=False)
    once = per_choice = 0
    for doc in docs:
        conts = [" " + c for c in doc.choices]
        reqs = shared.requests_for(doc.context, conts)
        ref = [full_rescore(mock, ctx, cont) for ctx, cont in reqs]
        assert shared.loglikelihood(doc.context, conts) == ref  # bit-exact
        assert plain.loglikelihood(doc.context, conts) == ref
        once += len(reqs[0][0])
        per_choice += sum(len(ctx) for ctx, _ in reqs)
    # The context ran once per document instead of once per choice.
    assert shared.tokens_fed == once and plain.tokens_fed == per_choice > once


def test_state_sharing_copies_the_state(mock):
    # Two different continuations scored from one context must not see each other.
    s = Scorer(mock)
    a = s.loglikelihood("Question: why?\nAnswer:", [" because", " because"])
    assert a[0] == a[1]


def test_empty_context_uses_eos(mock):
    s = Scorer(mock)
    ((ctx, cont),) = s.requests_for("", [" hello"])
    assert ctx == [mock.eos_token_id] and cont == mock.tokenizer.encode(" hello")
    ((ctx, cont),) = s.requests_for("", ["<|endoftext|> hi"])
    assert ctx == [mock.eos_token_id] and cont == mock.tokenizer.encode(" hi")


def test_rolling_equals_direct_computation(mock):
    text = "The quick brown fox jumps over the lazy dog. " * 6
    toks = mock.tokenizer.encode(text)
    # max_length beyond the text: one window, the whole text after EOS.
    st = mock.new_state()
    mock.feed([mock.eos_token_id], st)
    direct = math.fsum(mock.logprobs(toks, st)[0].tolist())
    ll, n = Scorer(mock, max_length=4096).loglikelihood_rolling(text)
    assert n == len(toks) and ll == direct
    # Small windows: each window from a fresh state, conditioned on what rolling_windows gives it.
    L = 7
    ref = []
    for ctx, pred in rolling_windows(toks, mock.eos_token_id, L):
        st = mock.new_state()
        mock.feed(ctx, st)
        ref.append(math.fsum(mock.logprobs(pred, st)[0].tolist()))
    ll7, _ = Scorer(mock, max_length=L).loglikelihood_rolling(text)
    assert ll7 == math.fsum(ref) and ll7 != ll  # shorter memory, different number


def test_every_task_end_to_end(mock, eval_dir):
    res = evaluate(mock, ",".join(ALL), data_dir=eval_dir, limit=3, model_name="mock")
    assert list(res["results"]) == ALL
    for name in ALL[:-1]:
        r = res["results"][name]
        for m in TASKS[name].metrics:
            assert 0.0 <= r[m] <= 1.0 and r[m] * 3 == pytest.approx(round(r[m] * 3))
            assert r[m + "_stderr"] is not None
        assert "acc_norm" not in r or name != "boolq"
        assert res["tasks"][name]["n_docs"] == 3 and res["tasks"][name]["examples_per_s"] > 0
    assert "acc_norm" not in res["results"]["boolq"]
    w = res["results"]["wikitext2"]
    assert w["word_perplexity"] > w["token_perplexity"] > w["byte_perplexity"] > 1.0
    assert w["bits_per_byte"] == pytest.approx(math.log2(w["byte_perplexity"]), rel=1e-12)
    json.dumps(res)  # serialisable as is
    table = format_table(res)
    for name in ALL:
        assert f"| {name} (n=3) |" in table


def test_limit_must_be_positive(mock, eval_dir):
    with pytest.raises(ValueError, match="limit"):
        evaluate(mock, "piqa", data_dir=eval_dir, limit=0)


def test_cli_end_to_end(mock, eval_dir, tmp_path, monkeypatch, capsys):
    import bitmamba.cli.eval as cli_eval
    from bitmamba.cli import main

    monkeypatch.setattr(cli_eval, "load_model", lambda path, tok=None: mock)
    out = tmp_path / "res" / "results.json"
    rc = main(["eval", "mock-model", "--tasks", "piqa,boolq,wikitext", "--limit", "2",
               "--data-dir", str(eval_dir), "--output", str(out), "--max-length", "512"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["config"]["max_length"] == 512 and res["config"]["limit"] == 2
    assert set(res["results"]) == {"piqa", "boolq", "wikitext2"}
    printed = capsys.readouterr().out
    assert "| piqa (n=2) | acc (%) |" in printed and "token_perplexity" in printed


def test_cli_errors(tmp_path, capsys):
    from bitmamba.cli import main

    assert main(["eval", "m", "--tasks", "arc_easy,nope"]) == 1
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert main(["eval", "m", "--tasks", "piqa", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no data for task 'piqa'" in err and "--data-dir" in err


def test_harness_adapter(mock):
    ad = HarnessAdapter(mock)
    pairs = [("Question: x?\nAnswer:", " yes"), ("Question: x?\nAnswer:", " no"), ("Other:", " thing")]
    s = Scorer(mock)
    assert ad.loglikelihood(pairs) == [s.loglikelihood(c, [t])[0] for c, t in pairs]
    assert ad.loglikelihood_rolling(["a b c", "d e"]) == [
        s.loglikelihood_rolling("a b c")[0], s.loglikelihood_rolling("d e")[0]]


def test_tokenizer_vocab_mismatch_is_reported(shared_dir):
    small = make_mock(shared_dir, vocab_size=2048, eos_token_id=2047)
    with pytest.raises(ValueError, match="vocabulary has 2048 entries"):
        Scorer(small).loglikelihood("Question: What is photosynthesis?\nAnswer:", [" light"])


def test_model_without_eos(shared_dir):
    m = make_mock(shared_dir)
    m.eos_token_id = None
    with pytest.raises(ValueError, match="no EOS"):
        Scorer(m).loglikelihood_rolling("some text")
