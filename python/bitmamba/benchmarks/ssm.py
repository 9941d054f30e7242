"""Prefill throughput of the selective scan alone (tokens/s), sequential vs chunked.

Shapes (docs/model.md, "Shapes"): the BitMamba-2 1B layer (H=32, P=128, N=1, G=32) and a canonical
Mamba-2 layer (d_model 2048 -> d_inner 4096, headdim 64 -> H=64, N=128, G=1). Random inputs (speed does
not depend on the values). Each repeat times one call per method, the methods interleaved so machine
noise hits them alike; the table gives the median over repeats and the chunked/sequential ratio.

    python scripts/bench_ssm.py [--tokens 1024] [--repeats 7] [--threads 2] [--isa avx2]
    python scripts/bench_ssm.py --crossover      # the grid behind method='auto' (1 thread, CPU time)
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from . import cpu_model

SHAPES = {
    "1b": dict(H=32, P=128, N=1, G=32),
    "canonical": dict(H=64, P=64, N=128, G=1),
}


def _inputs(T, H, P, N, G, seed=0):
    rng = np.random.default_rng(seed)
    f = np.float32
    return dict(
        x=rng.standard_normal((T, H, P), dtype=f),
        dt=rng.standard_normal((T, H), dtype=f),
        A=-np.exp(rng.uniform(-1, 1, H)).astype(f),
        B=rng.standard_normal((T, G, N), dtype=f),
        C=rng.standard_normal((T, G, N), dtype=f),
        D=rng.standard_normal((H, P), dtype=f),
        dt_bias=rng.uniform(-3, 0, H).astype(f),
    )


def bench_shape(name, T, repeats, chunk_size=0, shape=None, clock=time.perf_counter):
    """Median tokens/s of each method for one shape: {'sequential': tps, 'chunked': tps, 'auto': str}."""
    from bitmamba._native import native

    S = native().ssm
    sh = shape or SHAPES[name]
    a = _inputs(T, **sh)
    h = np.zeros((sh["H"], sh["P"], sh["N"]), np.float32)
    times = {"sequential": [], "chunked": []}

    def call(method):
        h[...] = 0.0
        t0 = clock()
        S.selective_scan(a["x"], a["dt"], a["A"], a["B"], a["C"], a["D"], a["dt_bias"], h, method, chunk_size)
        return clock() - t0

    for m in times:  # warm-up (page faults, thread pool start)
        call(m)
    for _ in range(repeats):
        for m in times:
            times[m].append(call(m))
    out = {m: T / statistics.median(v) for m, v in times.items()}
    out["auto"] = S.choose_scan_method(sh["H"], sh["P"], sh["N"], sh["G"], T)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1024, help="prefill length T (default 1024)")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per method (median; default 7)")
    ap.add_argument("--threads", type=int, default=2, help="thread pool size (default 2)")
    ap.add_argument("--isa", default=None, help="kernel set (default: the best supported)")
    ap.add_argument("--chunk-size", type=int, default=0, help="chunk length of the chunked method (0 = default)")
    ap.add_argument("--shapes", default="1b,canonical", help="comma-separated: " + ",".join(SHAPES))
    ap.add_argument("--crossover", action="store_true",
                    help="chunked/sequential ratio over d_state x T at H=16, P=64, G=1 on one thread, "
                         "timed by thread CPU time (robust to other load): the data behind method='auto'")
    args = ap.parse_args(argv)
    if args.tokens < 1 or args.repeats < 1 or args.threads < 1:
        ap.error("--tokens, --repeats and --threads must be positive")

    import bitmamba

    if args.isa:
        bitmamba.set_isa(args.isa)
    bitmamba.set_num_threads(args.threads)
    if args.crossover:
        return _crossover(args)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in shapes:
        if s not in SHAPES:
            ap.error(f"unknown shape {s!r} (choose from {', '.join(SHAPES)})")

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, kernel set {bitmamba.get_isa()}, "
          f"{args.threads} threads, load average before {os.getloadavg()[0]:.1f}")
    print(f"T = {args.tokens} tokens, median of {args.repeats} repeats, methods interleaved\n")
    print("| shape | H | P | N | G | sequential tok/s | chunked tok/s | chunked / sequential | auto picks |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in shapes:
        r = bench_shape(s, args.tokens, args.repeats, args.chunk_size)
        sh = SHAPES[s]
        print(f"| {s} | {sh['H']} | {sh['P']} | {sh['N']} | {sh['G']} | {r['sequential']:,.0f} | "
              f"{r['chunked']:,.0f} | {r['chunked'] / r['sequential']:.2f} | {r['auto']} |")
    print(f"\nload average after {os.getloadavg()[0]:.1f}")
    return 0


def _crossover(args) -> int:
    import bitmamba

    bitmamba.set_num_threads(1)  # the scan then runs on this thread, so thread_time() measures it
    Ts = [64, 128, 256, 512, 1024]
    print(f"machine: {cpu_model()}, kernel set {bitmamba.get_isa()}, 1 thread, thread CPU time, "
          f"median of {args.repeats}; H=16, P=64, G=1")
    print("chunked / sequential throughput ratio (> 1: chunked faster); [auto's pick]\n")
    print("| d_state | " + " | ".join(f"T={T}" for T in Ts) + " |")
    print("|---|" + "---|" * len(Ts))
    for N in (4, 16, 32, 64, 128):
        cells = []
        for T in Ts:
            r = bench_shape("", T, args.repeats, args.chunk_size, dict(H=16, P=64, N=N, G=1), time.thread_time)
            cells.append(f"{r['chunked'] / r['sequential']:.2f} [{r['auto'][0]}]")
        print(f"| {N} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
