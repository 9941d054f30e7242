"""generate_until of our lm_eval model type on the bundled model (skipped unless lm_eval is installed):
a local generative task through lm_eval.simple_evaluate must give exactly what Model.generate gives on the
left-truncated context; sampling with a seed is repeatable; `python -m bitmamba.eval.harness` runs."""
import json
import os
import subprocess
import sys

import pytest

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("datasets")

import bitmamba  # noqa: E402
from bitmamba.eval import harness  # noqa: E402

DOCS = [
    {"question": "Once upon a time, in a small village by the sea, there lived an old fisherman and his "
                 "little dog, whose name was", "answer": "Rex"},
    {"question": "The capital of France is", "answer": "Paris"},
    {"question": "She opened the door and saw", "answer": "a cat"},
    {"question": "1, 2, 3, 4,", "answer": "5"},
]
MAX_GEN = 6
MAX_LENGTH = 16  # small, so that the longer contexts are cut from the left


def _task(tmp_path, do_sample=False):
    data = tmp_path / "gen.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    kwargs = {"until": ["\n"], "max_gen_toks": MAX_GEN, "do_sample": do_sample}
    if do_sample:
        kwargs["temperature"] = 0.9
    return {
        "task": "bitmamba_gen_local", "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}}, "test_split": "test",
        "output_type": "generate_until", "doc_to_text": "{{question}}", "doc_to_target": "{{answer}}",
        "generation_kwargs": kwargs, "metric_list": [{"metric": "exact_match"}],
    }


@pytest.fixture(scope="module")
def model():
    return bitmamba.load(bitmamba.default_model_path())


def _responses(model, cfg, **args):
    LM = harness.register()
    lm = LM(model=model, **args)
    out = lm_eval.simple_evaluate(model=lm, tasks=[cfg], log_samples=True, bootstrap_iters=0)
    samples = sorted(out["samples"][cfg["task"]], key=lambda s: s["doc_id"])
    return lm, [s["resps"][0][0] for s in samples], [s["arguments"][0][0] for s in samples]


def test_generate_until_equals_model_generate(model, tmp_path):
    lm, resps, contexts = _responses(model, _task(tmp_path), max_length=MAX_LENGTH)
    assert lm.max_length == MAX_LENGTH
    tok = model.tokenizer
    cut = 0
    for ctx, resp in zip(contexts, resps):
        ids = tok.encode(ctx)
        room = MAX_LENGTH - MAX_GEN
        cut += len(ids) > room
        want = model.generate(ids[-room:], max_new_tokens=MAX_GEN, temperature=0, stop=["\n"],
                              repeat_penalty=1.0)
        assert resp == want, ctx
        assert "\n" not in resp
    assert cut >= 1  # the truncation was exercised
    assert any(resps)  # something was generated, so the comparison compares text


def test_context_length_is_the_default_window(model):
    LM = harness.register()
    assert LM(model=model).max_length == int(model.config["context_length"]) == 512
    assert LM(model=model, max_length=2048).max_length == 2048


def test_left_truncation(model):
    a = harness.HarnessAdapter(model, max_length=10)
    ids = model.tokenizer.encode("one two three four five six seven eight nine ten eleven twelve")
    assert len(ids) > 7
    assert a.context_ids("one two three four five six seven eight nine ten eleven twelve", 3) == ids[-7:]
    assert a.context_ids("", 3) == [model.eos_token_id]
    with pytest.raises(ValueError, match="no room"):
        a.context_ids("x", 10)


def test_sampling_with_seed_is_deterministic(model, tmp_path):
    cfg = _task(tmp_path, do_sample=True)
    _, first, _ = _responses(model, cfg, seed=7)
    _, again, _ = _responses(model, cfg, seed=7)
    assert first == again
    opts = harness.generation_options(cfg["generation_kwargs"])
    assert opts["temperature"] == pytest.approx(0.9) and opts["max_new_tokens"] == MAX_GEN


def test_generation_options_rules():
    assert harness.generation_options({"until": ["\n"]})["temperature"] == 0.0
    assert harness.generation_options({"do_sample": False, "temperature": 0.8})["temperature"] == 0.0
    assert harness.generation_options({"do_sample": True})["temperature"] == 1.0
    with pytest.raises(ValueError, match="num_beams"):
        harness.generation_options({"num_beams": 4})


def test_lm_eval_argv():
    assert harness.lm_eval_argv(["--tasks", "x"]) == ["run", "--model", "bitmamba", "--tasks", "x"]
    assert harness.lm_eval_argv(["run", "--model", "hf"]) == ["run", "--model", "hf"]
    assert harness.lm_eval_argv(["ls", "tasks"]) == ["ls", "tasks"]


def test_module_command_end_to_end(model, tmp_path):
    cfg = _task(tmp_path)
    import yaml
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "gen.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run(
        [sys.executable, "-m", "bitmamba.eval.harness", "--model_args",
         f"path={bitmamba.default_model_path()},max_length={MAX_LENGTH}", "--tasks", cfg["task"],
         "--include_path", str(tasks), "--limit", "2", "--log_samples", "--output_path", str(out)],
        capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert cfg["task"] in r.stdout
    samples = list(out.rglob("samples_*.jsonl"))
    assert samples, list(out.rglob("*"))
    rows = [json.loads(line) for line in samples[0].read_text().splitlines()]
    assert len(rows) == 2
    _, direct, _ = _responses(model, cfg, max_length=MAX_LENGTH)
    assert [r["resps"][0][0] for r in sorted(rows, key=lambda r: r["doc_id"])] == direct[:2]
