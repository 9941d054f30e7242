#!/usr/bin/env python
"""Sampler benchmark: microseconds per sampled token of the engine's Sampler (csrc/model/sampler.cpp),
one thread, for a few option sets, with the logits in cache (one vector sampled again and again) and
from memory (a rotation over vectors larger than the last-level cache).

Run from the repository root with the package installed, or after scripts/dev_build.sh
(PYTHONPATH=python). Each figure is the median over --repeats timings of --tokens calls; a call
includes the Python binding (the `accept` row shows its floor).

    python scripts/bench_sampler.py [--vocab 50257] [--tokens 2000] [--repeats 7]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import numpy as np  # noqa: E402

from bitmamba import _C  # noqa: E402
from bitmamba.benchmarks import cpu_model  # noqa: E402

# name -> Sampler keyword arguments (anything left out is the engine's default).
OPTION_SETS = {
    "defaults (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat penalty 1.1 over 64)": {},
    "greedy": {"temperature": 0.0},
    "greedy, repeat penalty off": {"temperature": 0.0, "repeat_penalty": 1.0},
    "top_k 0 (whole vocabulary through the softmax)": {"top_k": 0},
}


def _time_per_call(fn, vectors, tokens: int, repeats: int) -> float:
    """Median over repeats of the mean time of one call, in microseconds."""
    n = len(vectors)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(tokens):
            fn(vectors[i % n])
        times.append((time.perf_counter() - t0) / tokens * 1e6)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", type=int, default=50257, help="logits per token (default: GPT-2's 50257)")
    ap.add_argument("--tokens", type=int, default=2000, help="sampled tokens per timing (default 2000)")
    ap.add_argument("--repeats", type=int, default=7, help="timings per figure; the median is printed")
    ap.add_argument("--memory-mb", type=int, default=256,
                    help="size of the logit rotation for the 'from memory' column (default 256 MiB)")
    args = ap.parse_args(argv)
    if args.vocab < 1 or args.tokens < 1 or args.repeats < 1 or args.memory_mb < 1:
        ap.error("--vocab, --tokens, --repeats and --memory-mb must be positive")

    rng = np.random.default_rng(0)
    # Logits of the spread a language model gives (a few tokens well above the rest).
    count = max(1, args.memory_mb * 2**20 // (4 * args.vocab))
    rotation = [(rng.standard_normal(args.vocab) * 3).astype(np.float32) for _ in range(count)]
    hot = rotation[:1]
    history = rng.integers(0, args.vocab, 64)

    print(f"cpu: {cpu_model()}; vocab {args.vocab}; {args.tokens} tokens x {args.repeats} repeats; "
          f"'from memory' rotates over {count} vectors ({count * args.vocab * 4 / 2**20:.0f} MiB)")
    print("| options | in cache, us per token | from memory, us per token |")
    print("|---|---|---|")
    floor = _C.Sampler()
    t = [_time_per_call(lambda v: floor.accept(1), vs, args.tokens, args.repeats) for vs in (hot, rotation)]
    print(f"| accept (the binding's floor) | {t[0]:.2f} | {t[1]:.2f} |")
    for name, kwargs in OPTION_SETS.items():
        row = []
        for vectors in (hot, rotation):
            s = _C.Sampler(seed=1, **kwargs)
            for tok in history:
                s.accept(int(tok))
            row.append(_time_per_call(s.sample, vectors, args.tokens, args.repeats))
        print(f"| {name} | {row[0]:.2f} | {row[1]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
