"""generate_until of the harness model type, without lm_eval: the harness's gen_kwargs rules, left
truncation of the context, and the responses against the engine's own Model.generate on the bundled
model (tests/test_eval_lm_eval.py runs the same through the harness itself). Also the evaluation
window's default (the model's context_length) and the `bitmamba harness` argument hand-over."""
import pytest

import bitmamba
from bitmamba.eval import Scorer, evaluate, model_max_length
from bitmamba.eval.harness import (DEFAULT_MAX_GEN_TOKS, HarnessAdapter, generation_options, lm_eval_argv,
                                   request_seeds)
from eval_mock import make_mock

# Pure greedy / pure temperature sampling, as the harness model type decodes (no engine filters).
NEUTRAL = dict(top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
PROMPTS = [
    "Once upon a time, there was a little girl named",
    "Tom and his dog went to the park. They saw a big",
    "Lily had a red ball. She liked to play with it every day. One day, her friend Ben came over and "
    "asked if he could play too. Lily said",
]


@pytest.fixture(scope="module")
def model():
    return bitmamba.load(bitmamba.default_model_path())


def test_gen_kwargs_follow_the_harness_rules():
    g = generation_options({"until": ["\n", ""], "max_gen_toks": 7, "do_sample": False, "temperature": 0.9})
    assert g == dict(NEUTRAL, stop=["\n"], max_new_tokens=7, temperature=0.0)  # do_sample false wins
    assert generation_options({})["max_new_tokens"] == DEFAULT_MAX_GEN_TOKS
    assert generation_options({}, 9) == dict(NEUTRAL, stop=[], max_new_tokens=9, temperature=0.0)
    assert generation_options({"until": "Q:"})["stop"] == ["Q:"]
    # No do_sample: sampling exactly when temperature > 0.
    assert generation_options({"temperature": 0.7})["temperature"] == 0.7
    assert generation_options({"temperature": 0})["temperature"] == 0.0
    assert generation_options({"do_sample": True})["temperature"] == 1.0
    assert generation_options({"do_sample": "true", "temperature": 0.5, "top_p": 0.9,
                               "repetition_penalty": 1.2}) == \
        dict(NEUTRAL, stop=[], max_new_tokens=DEFAULT_MAX_GEN_TOKS, temperature=0.5, top_p=0.9, repeat_penalty=1.2)
    # The harness's length aliases, in its priority order.
    assert generation_options({"max_new_tokens": 5, "max_tokens": 6})["max_new_tokens"] == 5
    assert generation_options({"max_tokens": 6, "max_gen_toks": 4})["max_new_tokens"] == 4


@pytest.mark.parametrize("kwargs, words", [
    ({"num_beams": 4}, ["num_beams", "not supported"]),
    ({"do_sample": True, "temperature": 0.0}, ["temperature > 0"]),
    ({"do_sample": "maybe"}, ["do_sample"]),
    ({"until": 3}, ["until"]),
    ({"until": ["a", 3]}, ["until"]),
    ({"max_gen_toks": -1}, ["max_gen_toks"]),
    ({"temperature": "hot"}, ["temperature"]),
])
def test_bad_gen_kwargs_are_one_line_errors(kwargs, words):
    with pytest.raises(ValueError) as e:
        generation_options(kwargs)
    assert "\n" not in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_greedy_responses_equal_model_generate(model):
    adapter = HarnessAdapter(model)
    assert adapter.max_length == model.config["context_length"] == 512
    reqs = [(p, {"until": ["\n", "."], "max_gen_toks": 16, "do_sample": False}) for p in PROMPTS]
    got = adapter.generate_until(reqs)
    want = [model.generate(p, max_new_tokens=16, temperature=0, stop=["\n", "."], **NEUTRAL) for p in PROMPTS]
    assert got == want
    assert all(got), got  # the prompts were chosen to give something before the first stop


def test_context_is_cut_from_the_left(model):
    # room for the prompt = max_length - max_gen_toks = 12 tokens; the last prompt has more than 30.
    adapter = HarnessAdapter(model, max_length=20)
    kw = {"until": ["\n"], "max_gen_toks": 8}
    got = adapter.generate_until([(p, kw) for p in PROMPTS])
    for p, text in zip(PROMPTS, got):
        ids = model.tokenizer.encode(p)[-12:]
        assert adapter.context_ids(p, 8) == ids
        assert text == model.generate(ids, max_new_tokens=8, temperature=0, stop=["\n"], **NEUTRAL)
    assert len(model.tokenizer.encode(PROMPTS[2])) > 12  # so one prompt was cut
    with pytest.raises(ValueError, match="max_gen_toks=20 leaves no room"):
        adapter.generate_until([(PROMPTS[0], {"max_gen_toks": 20})])


def test_empty_context_is_conditioned_on_eos(model):
    got = HarnessAdapter(model).generate_until([("", {"max_gen_toks": 10, "until": ["\n"]})])
    assert got == [model.generate([model.eos_token_id], max_new_tokens=10, temperature=0, stop=["\n"], **NEUTRAL)]


def test_sampling_uses_the_request_seeds(model):
    kw = {"do_sample": True, "temperature": 1.0, "max_gen_toks": 12, "until": ["\n"]}
    # Repeats of one prompt (consecutive, as the harness sends them) share its prompt state.
    reqs = [(PROMPTS[0], kw)] * 3 + [(PROMPTS[1], kw)]
    got = HarnessAdapter(model, seed=7).generate_until(reqs)
    seeds = request_seeds(7, len(reqs))
    want = [model.generate(p, max_new_tokens=12, temperature=1.0, seed=s, stop=["\n"], **NEUTRAL)
            for (p, _), s in zip(reqs, seeds)]
    assert got == want
    assert len(set(got[:3])) > 1, got  # repeats are separate samples
    assert HarnessAdapter(model, seed=7).generate_until(reqs) == got
    assert HarnessAdapter(model, seed=8).generate_until(reqs) != got


def test_repeats_of_a_greedy_request_are_identical(model):
    kw = {"until": ["."], "max_gen_toks": 12}
    got = HarnessAdapter(model).generate_until([(PROMPTS[1], kw)] * 3)
    assert got == [model.generate(PROMPTS[1], max_new_tokens=12, temperature=0, stop=["."], **NEUTRAL)] * 3


def test_window_defaults_to_the_models_context_length(model, shared_dir, data_dir):
    assert model_max_length(model) == 512
    assert Scorer(model).max_length == 512 and Scorer(model, max_length=2048).max_length == 2048
    mock = make_mock(shared_dir)  # states no context_length
    assert model_max_length(mock) == 2048 == Scorer(mock).max_length
    res = evaluate(model, "boolq", data_dir=data_dir / "eval", limit=1)
    assert res["config"]["max_length"] == 512
    assert evaluate(model, "boolq", data_dir=data_dir / "eval", limit=1, max_length=2048)["config"]["max_length"] == 2048


def test_harness_arguments_become_lm_eval_run():
    assert lm_eval_argv(["--tasks", "gsm8k"]) == ["run", "--model", "bitmamba", "--tasks", "gsm8k"]
    assert lm_eval_argv(["run", "--tasks", "x"]) == ["run", "--model", "bitmamba", "--tasks", "x"]
    assert lm_eval_argv(["--model", "hf", "--tasks", "x"]) == ["run", "--model", "hf", "--tasks", "x"]
    assert lm_eval_argv(["ls", "tasks"]) == ["ls", "tasks"]
    assert lm_eval_argv([]) == ["run", "--model", "bitmamba"]


def test_harness_without_lm_eval_is_one_line(monkeypatch, capsys):
    import sys

    from bitmamba.cli import main

    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval now raises ImportError
    assert main(["harness", "--tasks", "gsm8k"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bitmamba harness: error:") and "pip install lm_eval" in err[0]
