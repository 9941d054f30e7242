"""scripts/binary_evidence.py end to end on a tiny shape: a float teacher, ternary and binary students
(distilled and not) trained on the same prepared data, converted, evaluated, timed; the table and
summary come from those runs, and a second invocation reuses every finished step."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
import datagen  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_evidence_script_trains_converts_evaluates(tmp_path, data_dir):
    (tmp_path / "data").mkdir()
    data, manifest, _, _ = datagen.prepare(tmp_path / "data")
    vocab = manifest["tokenizer"]["vocab_size"]
    base = {"model": {"vocab_size": vocab, "d_model": 32, "n_layers": 1, "n_heads": 2, "eos_token_id": 0,
                      "context_length": 512},
            "data": "unused", "out_dir": "unused", "seq_len": 16, "batch_size": 4, "micro_batch": 4, "steps": 1,
            "lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 1, "log_every": 1, "eval_every": 0, "eval_samples": 2,
            "checkpoint_every": 0, "plot": False}
    (tmp_path / "base.json").write_text(json.dumps(base))
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "binary_evidence.py"), "--data", str(data), "--out", str(out),
           "--base", str(tmp_path / "base.json"), "--steps", "3", "--limit", "3", "--eval-data-dir", str(data_dir / "eval")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"teacher", "ternary", "ternary-kd", "binary-kd"}
    assert summary["teacher"]["weights"] == "float" and "eval" not in summary["teacher"]
    for name in ("ternary", "ternary-kd", "binary-kd"):
        s = summary[name]
        assert set(s["eval"]) == {"wikitext2", "arc_easy", "arc_challenge", "piqa", "hellaswag", "boolq"}
        assert s["decode_tok_s"] > 0 and s["validation"]["per_source"]
    # the distilled runs really were distilled (their logs carry the KL term), the others not
    for name, kd in (("ternary", False), ("ternary-kd", True), ("binary-kd", True)):
        recs = [json.loads(x) for x in (out / name / "log.jsonl").read_text().splitlines()]
        assert any("kl" in r for r in recs if r.get("kind") == "train") == kd, name
    # d_model 32 rows are stored as I8 codes for ternary and 1 bit for binary: the binary file is smaller
    assert summary["binary-kd"]["file_bytes"] < summary["ternary-kd"]["file_bytes"]
    table = (out / "table.md").read_text()
    assert table.count("\n| ") == 4 and "binary-kd | binary | float teacher" in table
    # every step is finished: a second run redoes nothing and writes the same table
    p2 = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p2.returncode == 0 and "done in" not in p2.stdout, p2.stdout + p2.stderr
    assert (out / "table.md").read_text() == table
