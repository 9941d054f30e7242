#!/usr/bin/env python3
"""How long the whole zero-shot suite takes on random weights of a real shape: each task is run on its
first N documents, and its full-set time is projected from the measured seconds per document.

    python scripts/bench_eval_time.py --shape 1b --limit 32

Speed does not depend on the weight values. The projection assumes the first N documents are typical of
the set in length (the sets are not sorted by length); a larger --limit narrows it. Prints one markdown
table: documents measured / in the set, seconds, seconds per document, projected minutes, tokens/s.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

import bitmamba  # noqa: E402
from bitmamba.benchmarks import cpu_model  # noqa: E402
from bitmamba.eval.runner import evaluate, load_tasks, resolve_tasks  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="1b", choices=["255m", "1b"], help="random model shape (default 1b)")
    ap.add_argument("--tasks", default="all", help="comma-separated tasks or all (default all)")
    ap.add_argument("--limit", type=int, default=32, help="documents measured per task (default 32)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.limit < 1:
        ap.error("--limit must be >= 1")
    if a.threads:
        bitmamba.set_num_threads(a.threads)
    names = resolve_tasks(a.tasks)
    everything = load_tasks(names, a.data_dir)
    full = {name: len(docs) for name, (docs, _) in everything.items()}
    loaded = {name: (docs[:a.limit], where) for name, (docs, where) in everything.items()}  # --limit's rule
    model = bitmamba.Model.random(a.shape, seed=0)
    t0 = time.perf_counter()
    r = evaluate(model, names, limit=a.limit, loaded=loaded)
    wall = time.perf_counter() - t0
    print(f"{cpu_model()}; {model}; threads {bitmamba.get_num_threads()}; kernel set {bitmamba.get_isa()}; "
          f"measured in {wall:.0f} s")
    print("\n| task | documents measured / in the set | seconds | s per document | projected full set, min "
          "| tokens/s |")
    print("|---|---|---|---|---|---|")
    total = 0.0
    for name in names:
        t = r["tasks"][name]
        per_doc = t["wall_s"] / t["n_docs"]
        projected = per_doc * full[name] / 60
        total += projected
        print(f"| {name} | {t['n_docs']} / {full[name]} | {t['wall_s']:.1f} | {per_doc:.3f} | {projected:.1f} "
              f"| {t['tokens_per_s']:.0f} |")
    print(f"| **all** | | | | **{total:.1f}** | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
