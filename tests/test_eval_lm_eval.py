"""Cross-check against lm-evaluation-harness itself (skipped unless lm_eval and datasets are installed).

The harness's own task YAMLs (arc_easy, arc_challenge, piqa, hellaswag with its process_docs, boolq, wikitext
with its detokenizer and process_results) are loaded from the installed lm_eval, pointed at local jsonl
copies of the first documents, and run on the mock model through our `bitmamba` harness model; the metrics
must equal what bitmamba.eval computes on the same documents. Also checks our rolling windows against the
harness's get_rolling_token_windows + make_disjoint_window.
"""
import json
import random
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("datasets")

from bitmamba.eval import data as D  # noqa: E402
from bitmamba.eval import evaluate, harness  # noqa: E402
from bitmamba.eval.requests import rolling_windows  # noqa: E402
from eval_mock import make_mock  # noqa: E402

N = 12
TASK_YAMLS = {  # our name -> (harness yaml path inside lm_eval/tasks, split key)
    "arc_easy": ("arc/arc_easy.yaml", "test"),
    "arc_challenge": ("arc/arc_challenge.yaml", "test"),
    "piqa": ("piqa/piqa.yaml", "validation"),
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation"),
    "boolq": ("super_glue/boolq/default.yaml", "validation"),
    "wikitext2": ("wikitext/wikitext.yaml", "test"),
}


def _harness_config(name, jsonl):
    from lm_eval.tasks._yaml_loader import load_yaml

    rel, split = TASK_YAMLS[name]
    cfg = load_yaml(Path(lm_eval.__file__).parent / "tasks" / rel)
    cfg = {k: v for k, v in cfg.items() if k not in ("tag", "group", "dataset_name", "training_split",
                                                       "validation_split", "test_split", "fewshot_split")}
    cfg.update(task=f"{name}_local", dataset_path="json", dataset_kwargs={"data_files": {split: str(jsonl)}})
    cfg["validation_split" if split == "validation" else "test_split"] = split
    return cfg


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _split_hellaswag(item):
    """An HF-schema row from a llama.cpp-format item (for the cross-check only): label before ': ', ctx_b =
    the lower-case fragment after the last sentence end."""
    label, ctx = item["ctx"].split(": ", 1)
    cut = max(ctx.rfind(". "), ctx.rfind("! "), ctx.rfind("? "))
    a, b = (ctx[:cut + 1], ctx[cut + 2:]) if cut >= 0 and ctx[cut + 2:cut + 3].islower() else (ctx, "")
    return {"activity_label": label, "ctx_a": a, "ctx_b": b, "endings": item["endings"], "label": str(item["label"])}


@pytest.fixture(scope="module")
def local_sets(tmp_path_factory, data_dir):
    """Our data dir (first N docs, HF-style files) + the jsonl each harness task reads."""
    root = tmp_path_factory.mktemp("lm_eval_sets")
    src = data_dir / "eval"
    ours, theirs = root / "ours", root / "theirs"
    arc_e = D.load_arc(src, "easy")[0][:N]
    arc_c = D.load_arc(src, "challenge")[0][:N]
    _write_jsonl(ours / "arc" / "ARC-Easy-test.jsonl", arc_e)
    _write_jsonl(ours / "arc" / "ARC-Challenge-test.jsonl", arc_c)
    piqa = D.load_piqa(src)[0][:N]
    _write_jsonl(ours / "piqa" / "valid.jsonl", [{k: r[k] for k in ("goal", "sol1", "sol2")} for r in piqa])
    (ours / "piqa" / "valid-labels.lst").write_text("".join(f"{r['label']}\n" for r in piqa))
    hs = [_split_hellaswag(r) for r in D.load_hellaswag(src)[0][:N]]
    _write_jsonl(ours / "hellaswag" / "hellaswag_val.jsonl", hs)
    boolq = D.load_boolq(src)[0][:N]
    _write_jsonl(ours / "boolq" / "BoolQ-val.jsonl", boolq)
    pages = D.load_wikitext_pages(src)[0][:3]
    _write_jsonl(ours / "wikitext2" / "pages.jsonl", [{"page": p} for p in pages])
    files = {
        "arc_easy": arc_e, "arc_challenge": arc_c, "piqa": piqa, "hellaswag": hs,
        "boolq": [dict(r, label=int(r["label"])) for r in boolq], "wikitext2": [{"page": p} for p in pages],
    }
    for name, rows in files.items():
        _write_jsonl(theirs / f"{name}.jsonl", rows)
    return ours, theirs


@pytest.mark.slow
def test_metrics_equal_the_harness(shared_dir, local_sets):
    ours_dir, theirs = local_sets
    mock = make_mock(shared_dir)
    LM = harness.register()
    # max_length 512 so the wikitext pages span several rolling windows.
    lm = LM(model=mock, max_length=512)
    cfgs = [_harness_config(n, theirs / f"{n}.jsonl") for n in TASK_YAMLS]
    out = lm_eval.simple_evaluate(model=lm, tasks=cfgs, bootstrap_iters=10)["results"]
    ours = evaluate(mock, list(TASK_YAMLS), data_dir=ours_dir, max_length=512)["results"]
    for name in TASK_YAMLS:
        h = out[f"{name}_local"]
        metrics = ["word_perplexity", "byte_perplexity", "bits_per_byte"] if name == "wikitext2" else \
            (["acc"] if name == "boolq" else ["acc", "acc_norm"])
        for m in metrics:
            assert ours[name][m] == pytest.approx(h[f"{m},none"], rel=1e-12), (name, m)
            if name != "wikitext2":
                assert ours[name][m + "_stderr"] == pytest.approx(h[f"{m}_stderr,none"], rel=1e-12)
        assert h["sample_len"] == (3 if name == "wikitext2" else N)


def test_rolling_windows_equal_harness_utils():
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    rng = random.Random(1)
    for _ in range(200):
        toks = [rng.randint(0, 50) for _ in range(rng.randint(0, 80))]
        L = rng.randint(1, 25)
        theirs = [make_disjoint_window(w) for w in get_rolling_token_windows(toks, 99, L, 1)]
        assert rolling_windows(toks, 99, L) == [(list(a), list(b)) for a, b in theirs]
