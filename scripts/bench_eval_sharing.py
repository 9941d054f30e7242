#!/usr/bin/env python3
"""How much shared-state scoring saves: the same multiple-choice documents scored with one context pass per
question (default path) and with the context re-run for every choice, on random weights of a real shape.

    python scripts/bench_eval_sharing.py --shape 255m --tasks hellaswag,boolq --limit 8
Speed does not depend on the weight values; timings on a shared machine are noisy (compare the ratio).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

import bitmamba  # noqa: E402
from bitmamba.eval.runner import evaluate, load_tasks  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="255m", help="random model shape: 255m or 1b")
    ap.add_argument("--tasks", default="hellaswag,boolq")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        bitmamba.set_num_threads(a.threads)
    loaded = load_tasks(a.tasks, a.data_dir, a.limit)
    model = bitmamba.Model.random(a.shape, seed=0)
    print(f"{model}, threads {bitmamba.get_num_threads()}, kernels {bitmamba.get_isa()}")
    walls = {}
    for share in (True, False):
        r = evaluate(model, a.tasks, limit=a.limit, share_state=share, loaded=loaded)
        for name, t in r["tasks"].items():
            walls[(name, share)] = t["wall_s"]
            print(f"{name:10s} {'shared' if share else 'rerun '}: {t['wall_s']:7.2f} s  "
                  f"{t['examples_per_s']:.3f} ex/s  context tokens run {t['tokens_fed']}, scored {t['tokens_scored']}")
    for name in r["tasks"]:
        print(f"{name:10s} speed-up from state sharing: {walls[(name, False)] / walls[(name, True)]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
