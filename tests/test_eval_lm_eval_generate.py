"""Generative tasks through lm-evaluation-harness itself (skipped unless lm_eval is installed; CI installs
it): the local task tests/harness_tasks/bitmamba_gen_local.yaml (4 documents, `until` stop strings,
greedy) runs through lm_eval.simple_evaluate on the bundled model, and every response must be exactly
what Model.generate gives on the left-truncated context. Sampling with a seed is repeatable, and the
documented command, `bitmamba harness ...`, runs the task end to end in a subprocess."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("datasets")

import bitmamba  # noqa: E402
from bitmamba.eval import harness  # noqa: E402

TASKS = Path(__file__).resolve().parent / "harness_tasks"
TASK = "bitmamba_gen_local"
UNTIL = ["\n", "."]  # the task's generation_kwargs
MAX_GEN = 16
NEUTRAL = dict(top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)  # plain greedy / temperature sampling


@pytest.fixture(scope="module")
def model():
    return bitmamba.load(bitmamba.default_model_path())


@pytest.fixture(scope="module")
def task_manager():
    from lm_eval.tasks import TaskManager

    # Only our folder: indexing the harness's own thousands of task files takes longer than the runs.
    return TaskManager(include_path=str(TASKS), include_defaults=False)


@pytest.fixture
def in_task_dir(monkeypatch, task_manager):
    # The task's data_files path is relative, as the harness resolves it: from the current directory.
    monkeypatch.chdir(TASKS)
    return task_manager


def _evaluate(task_manager, model_args: str, **kwargs):
    """(the harness's LM object, [(context, response)] in document order) of one run of the task."""
    harness.register()
    lm = lm_eval.api.registry.get_model("bitmamba").create_from_arg_string(model_args)
    out = lm_eval.simple_evaluate(model=lm, tasks=[TASK], task_manager=task_manager,
                                  log_samples=True, bootstrap_iters=0, **kwargs)
    assert 0.0 <= out["results"][TASK]["exact_match,none"] <= 1.0
    samples = sorted(out["samples"][TASK], key=lambda s: s["doc_id"])
    assert len(samples) == 4
    return lm, [(s["arguments"][0][0], s["resps"][0][0]) for s in samples]


def _reference(model, context, room, **kw):
    ids = model.tokenizer.encode(context)
    return model.generate(ids[-room:], max_new_tokens=MAX_GEN, stop=UNTIL, **dict(NEUTRAL, **kw))


@pytest.mark.parametrize("max_length", [None, 24])
def test_greedy_responses_equal_model_generate(model, in_task_dir, max_length):
    lm, pairs = _evaluate(in_task_dir, "" if max_length is None else f"max_length={max_length}")
    # No max_length given: the model's context_length, as the harness's own models do.
    assert lm.max_length == (max_length or model.config["context_length"])
    room = lm.max_length - MAX_GEN
    cut = 0
    for context, response in pairs:
        cut += len(model.tokenizer.encode(context)) > room
        assert response == _reference(model, context, room, temperature=0), context
        assert not any(s in response for s in UNTIL)
    assert any(response for _, response in pairs)  # there is text to compare
    assert cut == (0 if max_length is None else 4)  # with 24, every context (9 to 33 tokens) is cut to 8


def test_sampling_with_a_seed_is_repeatable(model, in_task_dir):
    sample = {"do_sample": True, "temperature": 1.0}
    _, first = _evaluate(in_task_dir, "seed=7", gen_kwargs=sample)
    _, again = _evaluate(in_task_dir, "seed=7", gen_kwargs=sample)
    _, other = _evaluate(in_task_dir, "seed=8", gen_kwargs=sample)
    assert first == again
    assert [r for _, r in first] != [r for _, r in other]
    # The requests reach the model in document order, one seed each from request_seeds(7, ...).
    room = model.config["context_length"] - MAX_GEN
    for (context, response), seed in zip(first, harness.request_seeds(7, len(first))):
        assert response == _reference(model, context, room, temperature=1.0, seed=seed)
    # Without a seed in model_args, the harness's own --seed (Python's random) decides.
    _, a = _evaluate(in_task_dir, "", gen_kwargs=sample, random_seed=3)
    _, b = _evaluate(in_task_dir, "", gen_kwargs=sample, random_seed=3)
    assert a == b


def test_bitmamba_harness_command_end_to_end(model, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, BITMAMBA_NUM_THREADS="1", HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(Path(bitmamba.__file__).resolve().parents[1]),
                                           os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(
        [sys.executable, "-m", "bitmamba", "harness", "--tasks", TASK, "--include_path", ".",
         "--log_samples", "--output_path", str(out)],
        cwd=TASKS, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert TASK in r.stdout and "exact_match" in r.stdout  # the harness's results table
    [results] = out.rglob("results_*.json")
    assert json.loads(results.read_text())["config"]["model"] == "bitmamba"
    [samples] = out.rglob(f"samples_{TASK}_*.jsonl")
    rows = sorted((json.loads(line) for line in samples.read_text().splitlines()), key=lambda s: s["doc_id"])
    room = model.config["context_length"] - MAX_GEN
    assert len(rows) == 4
    for row in rows:
        context = row["arguments"]["gen_args_0"]["arg_0"]
        assert row["resps"][0][0] == _reference(model, context, room, temperature=0)
