#!/usr/bin/env python3
"""Ternary vs binary on the same data and token budget (docs/binary.md, "Evidence").

Trains, from one base run config (default configs/train/tiny-bpe8k.yaml):
  teacher          weights: float (no quantization), plain cross-entropy
  ternary          weights: ternary, plain cross-entropy
  ternary-kd       weights: ternary, distilled from the teacher
  binary-kd        weights: binary, distilled from the teacher
  binary           weights: binary, plain cross-entropy (--with-binary-ce)
then converts every quantized model to GGUF, evaluates it with `bitmamba eval` and times decode with
`bitmamba bench`, and writes RUN_DIR/summary.json and RUN_DIR/table.md (the table docs/binary.md shows).
Two runs train at a time (one thread each) when --jobs 2; the students wait for the teacher.

  bitmamba prepare-data configs/data/offline-demo.yaml --train-tokenizer 8192 -o data/offline-demo-bpe8k
  python scripts/binary_evidence.py --data data/offline-demo-bpe8k --out runs/binary-evidence

A finished step (its export, GGUF, eval or bench file exists) is not redone, so an interrupted run
continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

from bitmamba.atomic import atomic_write  # noqa: E402
from bitmamba.yamlfile import read_mapping  # noqa: E402

def atomic_write_text(path: Path, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text.encode())


RUNS = {  # name: (weights, distilled)
    "teacher": ("float", False),
    "ternary": ("ternary", False),
    "ternary-kd": ("ternary", True),
    "binary-kd": ("binary", True),
    "binary": ("binary", False),
}
TASKS = ["wikitext2", "arc_easy", "arc_challenge", "piqa", "hellaswag", "boolq"]


def run(cmd, log: Path, threads: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT / "python"))
    t0 = time.monotonic()
    with open(log, "w") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if p.returncode:
        raise SystemExit(f"binary_evidence: {' '.join(map(str, cmd))} failed ({p.returncode}); see {log}")
    print(f"  done in {time.monotonic() - t0:.0f} s: {' '.join(map(str, cmd[2:4]))}", flush=True)


def bitmamba(*args) -> list:
    return [sys.executable, "-m", "bitmamba", *map(str, args)]


def write_config(base: dict, name: str, out: Path, data: Path, steps: int) -> Path:
    weights, kd = RUNS[name]
    cfg = dict(base)
    model = dict(cfg["model"]) if isinstance(cfg["model"], dict) else read_mapping(ROOT / cfg["model"], "model config")
    model["weights"] = weights
    cfg.update(model=model, data=str(data.resolve()), out_dir=str((out / name).resolve()), steps=steps,
               export="final", eval_samples=max(int(cfg.get("eval_samples", 0)), 64))  # steadier val losses
    cfg.pop("teacher", None)
    if kd:
        cfg.update(teacher=str((out / "teacher" / "final").resolve()), distill_temperature=1.0, distill_alpha=1.0)
    path = out / "configs" / f"{name}.json"  # JSON is YAML: the train config reader takes it
    atomic_write_text(path, json.dumps(cfg, indent=2) + "\n")
    return path


def train(name, out, cfg_path, threads):
    if (out / name / "final" / "config.json").exists():
        return
    run(bitmamba("train", cfg_path, "--quiet", "--resume", "auto"), out / "logs" / f"train-{name}.log", threads)


def evaluate(name, out, limit, threads, eval_data=None):
    final = out / name / "final"
    gguf = out / "gguf" / f"{name}.gguf"
    if not gguf.exists():
        run(bitmamba("convert", final, gguf), out / "logs" / f"convert-{name}.log", threads)
    ev = out / "eval" / f"{name}.json"
    if not ev.exists():
        cmd = bitmamba("eval", gguf, "--tasks", ",".join(TASKS), "--output", ev, "--no-progress",
                       "--threads", threads)
        if limit:
            cmd += ["--limit", str(limit)]
        if eval_data:
            cmd += ["--data-dir", str(eval_data)]
        run(cmd, out / "logs" / f"eval-{name}.log", threads)
    bench = out / "bench" / f"{name}.json"
    if not bench.exists():
        log = out / "logs" / f"bench-{name}.log"
        run(bitmamba("bench", gguf, "--json", "--threads", threads, "--repeats", 5), log, threads)
        text = log.read_text()
        obj, _ = json.JSONDecoder().raw_decode(text[text.index("{"):])  # the JSON object bench printed
        atomic_write_text(bench, json.dumps(obj, indent=2) + "\n")


def last_val(log: Path) -> dict:
    recs = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
    vals = [r for r in recs if r.get("kind") == "val"]
    return vals[-1] if vals else {}


def table(out: Path, names, limit, steps, tokens) -> str:
    sources = sorted(last_val(out / "teacher" / "log.jsonl").get("per_source", {}))
    head = (["model", "weights", "teacher"] + [f"val loss {s}" for s in sources] + ["WikiText-2 word ppl"]
            + [t for t in TASKS[1:]] + ["file MiB", "decode tok/s"])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    summary = {}
    for name in names:
        weights, kd = RUNS[name]
        v = last_val(out / name / "log.jsonl")
        row = [name, weights, "float teacher" if kd else "-"]
        row += [f"{v['per_source'][s]:.3f}" if s in v.get("per_source", {}) else "-" for s in sources]
        entry = {"weights": weights, "distilled": kd, "validation": v}
        if name != "teacher":
            ev = json.loads((out / "eval" / f"{name}.json").read_text())["results"]
            bench = json.loads((out / "bench" / f"{name}.json").read_text())
            size = (out / "gguf" / f"{name}.gguf").stat().st_size
            row.append(f"{ev['wikitext2']['word_perplexity']:.0f}")
            row += [f"{ev[t].get('acc_norm', ev[t]['acc']) * 100:.1f}" if t in ("hellaswag", "arc_challenge")
                    else f"{ev[t]['acc'] * 100:.1f}" for t in TASKS[1:]]
            row += [f"{size / 2**20:.2f}", f"{bench['decode_tok_s']:.0f}"]
            entry.update(eval=ev, file_bytes=size, decode_tok_s=bench["decode_tok_s"])
        else:
            row += ["(not an engine model)"] + ["-"] * (len(TASKS) - 1) + ["-", "-"]
        rows.append("| " + " | ".join(row) + " |")
        summary[name] = entry
    note = (f"\n{steps} steps x {tokens} tokens per step per run; eval "
            f"{'on the first ' + str(limit) + ' documents of each task' if limit else 'on the full sets'}; "
            "accuracies in %, acc_norm for hellaswag and arc_challenge, acc elsewhere.\n")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return "\n".join(rows) + "\n" + note


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="prepared data directory (bitmamba prepare-data)")
    ap.add_argument("--out", type=Path, default=Path("runs/binary-evidence"), help="run directory")
    ap.add_argument("--base", type=Path, default=ROOT / "configs/train/tiny-bpe8k.yaml", help="base run config")
    ap.add_argument("--steps", type=int, default=150, help="optimizer steps of every run (default %(default)s)")
    ap.add_argument("--limit", type=int, default=500, help="eval documents per task (0: all; default %(default)s)")
    ap.add_argument("--eval-data-dir", type=Path, default=None,
                    help="bitmamba eval --data-dir (default: eval's own, $BITMAMBA_DATA_DIR or ../shared/data/eval)")
    ap.add_argument("--jobs", type=int, default=2, choices=[1, 2], help="runs at a time (default %(default)s)")
    ap.add_argument("--with-binary-ce", action="store_true", help="also a binary model without distillation")
    a = ap.parse_args(argv)
    base = read_mapping(a.base, "run config")
    for sub in ("configs", "logs", "gguf", "eval", "bench"):
        (a.out / sub).mkdir(parents=True, exist_ok=True)
    names = ["teacher", "ternary", "ternary-kd", "binary-kd"] + (["binary"] if a.with_binary_ce else [])
    cfgs = {n: write_config(base, n, a.out, a.data, a.steps) for n in names}
    threads = 1 if a.jobs == 2 else 2
    # Teacher and the undistilled students first; the distilled ones need the teacher's export.
    first = [n for n in names if not RUNS[n][1]]
    second = [n for n in names if RUNS[n][1]]
    with ThreadPoolExecutor(a.jobs) as pool:
        for batch in (first, second):
            print(f"training {', '.join(batch)}", flush=True)
            list(pool.map(lambda n: train(n, a.out, cfgs[n], threads), batch))
        students = [n for n in names if n != "teacher"]
        print(f"converting, evaluating and timing {', '.join(students)}", flush=True)
        list(pool.map(lambda n: evaluate(n, a.out, a.limit, threads, a.eval_data_dir), students))
    tokens = base["batch_size"] * base["seq_len"]
    md = table(a.out, names, a.limit, a.steps, tokens)
    atomic_write_text(a.out / "table.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
