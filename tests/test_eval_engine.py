"""Every task end to end on the real engine (bitmamba.Model.random: random ternary weights, the GPT-2
vocabulary, a small custom shape), through the CLI with --limit. Skipped when the C++ extension is not
built. Random weights: the scores are noise; this checks the plumbing, not quality."""
import json
import math

import numpy as np
import pytest

ALL = "wikitext2,arc_easy,arc_challenge,piqa,hellaswag,boolq"


@pytest.fixture(scope="module")
def engine_model():
    import bitmamba

    pytest.importorskip("bitmamba._C", reason="bitmamba's C++ extension is not built")
    return bitmamba.Model.random("custom", seed=1, vocab_size=50257, d_model=64, n_layers=2, d_inner=128,
                                 n_heads=2, d_state=1, n_groups=2)


def test_engine_state_sharing_matches_rescoring(engine_model, data_dir):
    from bitmamba.eval import TASKS, Scorer

    m = engine_model
    docs, _ = TASKS["arc_easy"].load(data_dir / "eval", limit=3)
    s = Scorer(m)
    for d in docs:
        conts = [" " + c for c in d.choices]
        got = [ll for ll, _ in s.loglikelihood(d.context, conts)]
        ref = []
        for ctx, cont in s.requests_for(d.context, conts):
            st = m.new_state()
            m.feed(ctx[:1], st)
            lp, _ = m.logprobs(ctx[1:] + cont, st)
            ref.append(math.fsum(lp[len(lp) - len(cont):].tolist()))
        # The engine's batched prefill (feed) and its scoring pass may sum in a different order: float
        # tolerance, not bit equality, here.
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


def test_engine_every_task_cli(engine_model, data_dir, tmp_path, monkeypatch, capsys):
    import bitmamba.cli.eval as cli_eval
    from bitmamba.cli import main

    monkeypatch.setattr(cli_eval, "load_model", lambda path, tok=None: engine_model)
    out = tmp_path / "r.json"
    assert main(["eval", "random-model", "--tasks", ALL, "--limit", "1", "--max-length", "256",
                 "--data-dir", str(data_dir / "eval"), "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["results"]) == set(ALL.split(","))
    w = res["results"]["wikitext2"]
    # A random model over 50257 tokens: token perplexity in the thousands or more, finite.
    assert math.isfinite(w["word_perplexity"]) and w["token_perplexity"] > 100
    assert "| hellaswag (n=1) |" in capsys.readouterr().out
