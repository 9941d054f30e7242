"""Ternary kernel benchmark: GEMV / GEMM on the real BitMamba-2 shapes vs memory bandwidth and numpy.

For each shape (in_features -> out_features of the 255M and 1B models):
  * GEMV (T = 1), "cold": the call cycles over enough copies of the matrix that together far exceed
    the L3 cache (>= 8x), so weights stream from DRAM as they do in a real decode step (a whole model never fits in
    L3); "hot": the same matrix again and again (whatever part of it stays cached).
  * effective weight GB/s = packed bytes / cold GEMV time, next to the machine's streaming read
    bandwidth (bitmamba._C.measure_read_bandwidth, same thread count) measured in alternation with
    the GEMV rounds, and their ratio (the fraction of the memory roofline reached).
  * GEMM with T tokens (default 128): GMAC/s and the per-token speedup over the cold GEMV.
  * the same products with numpy float32 (BLAS) on float32 weights, and our speedup over it.
All times are medians over repeats. The machines we develop on are shared: compare the ratios, which
are measured within one run, rather than absolute numbers across runs.

    python scripts/bench_kernels.py --threads 2 --markdown docs/benchmarks-table.md

With --binary it instead compares the binary (1-bit) product of docs/binary.md with the ternary one in
the decode packing on each model's in_proj and out_proj (the projections a binary model replaces):
cold GEMV of both, interleaved round by round over rotations of the same total size, their weight
GB/s, and the time ratio; and the GEMM with T tokens of both.

    python scripts/bench_kernels.py --binary --models 1b --threads 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

import numpy as np

from . import cpu_model

def model_shapes(C) -> dict:
    """(name, in_features, out_features) of the ternary matrices of each published model shape, from
    the engine's presets (bitmamba._C.preset_config): e.g. 255m: in_proj 1024 -> 4144, out_proj
    2048 -> 1024, lm_head 1024 -> 50257."""
    shapes = {}
    for name in C.preset_names():
        c = C.preset_config(name)
        shapes[name] = [("in_proj", c["d_model"], c["in_proj_rows"]), ("out_proj", c["d_inner"], c["d_model"]),
                        ("lm_head", c["d_model"], c["vocab_size"])]
    return shapes


def _l3_bytes() -> int:
    try:
        for idx in range(8):
            base = f"/sys/devices/system/cpu/cpu0/cache/index{idx}"
            if not os.path.isdir(base):
                break
            with open(f"{base}/level") as f:
                if f.read().strip() != "3":
                    continue
            with open(f"{base}/size") as f:
                s = f.read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1], 1)
            return int(s.rstrip("KMG")) * mult
    except OSError:
        pass
    return 32 << 20


def machine_description() -> dict:
    import bitmamba

    model = cpu_model()
    info = bitmamba.cpu_info()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(__file__)).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "l3_bytes": _l3_bytes(),
        "isa": info["isa"],
        "supported_isas": info["supported_isas"],
        "amx_permission": info["amx_permission"]["status"],
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "version": info["version"],
        "commit": commit,
        "numpy": np.__version__,
    }


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench_shape(name, k, m, args, rng, C):
    from bitmamba.ops import ternary as T

    codes = rng.integers(-1, 2, size=(m, k), dtype=np.int8)
    W = T.TernaryMatrix.from_codes(codes, 1.0, None if args.layout == "auto" else args.layout)
    q1 = rng.integers(-128, 128, size=(1, k), dtype=np.int8)
    qT = rng.integers(-128, 128, size=(args.tokens, k), dtype=np.int8)
    nbytes = W.packed_bytes

    # Cold GEMV: cycle over copies totalling >= max(8x L3, --rotation-mb) (same layout, no re-autotune).
    # 2x L3 is not enough: AMD's victim L3 still served a good part of a 64 MiB rotation here.
    target = max(8 * args.l3_bytes, args.rotation_mb << 20)
    n_copies = max(1, -(-target // nbytes))
    copies = [W] + [T.TernaryMatrix.from_codes(codes, 1.0, W.layout) for _ in range(n_copies - 1)]
    # Bandwidth and cold GEMV interleaved round by round, so both see the same machine load.
    bws, cold = [], []
    for _ in range(args.repeats):
        bws.append(C.measure_read_bandwidth(args.bandwidth_mb << 20, args.threads, 1))
        cold += C.ternary.time_matmul_int32_rotation([Wc._m for Wc in copies], q1, 1)
    bw = statistics.median(bws)
    t_cold, t_cold_best = statistics.median(cold), min(cold)
    t_hot = statistics.median(W.time_matmul_int32(q1, args.repeats * 4))
    gemm = W.time_matmul_int32(qT, args.gemm_repeats)
    t_gemm, t_gemm_best = statistics.median(gemm), min(gemm)
    del copies

    # numpy float32 on the same shape (weights as float32, BLAS threads as configured).
    wf = codes.astype(np.float32)
    x1 = q1.astype(np.float32)
    xT = qT.astype(np.float32)
    t_np_gemv = _median_time(lambda: x1 @ wf.T, args.repeats)
    t_np_gemm = _median_time(lambda: xT @ wf.T, args.gemm_repeats)
    del wf

    macs = m * k
    return {
        "name": name, "k": k, "m": m, "layout": W.layout, "kernel": W.kernel, "bytes": nbytes,
        "gemv_cold_us": t_cold * 1e6, "gemv_cold_best_us": t_cold_best * 1e6, "gemv_hot_us": t_hot * 1e6,
        "gemv_gbs": nbytes / t_cold / 1e9, "bw_gbs": bw, "bw_frac": nbytes / t_cold / 1e9 / bw,
        "bw_frac_best": nbytes / t_cold_best / 1e9 / bw,
        "gemm_ms": t_gemm * 1e3, "gemm_gmacs": macs * args.tokens / t_gemm / 1e9,
        "gemm_gmacs_best": macs * args.tokens / t_gemm_best / 1e9,
        "gemm_speedup_per_token": t_cold * args.tokens / t_gemm,
        "np_gemv_us": t_np_gemv * 1e6, "np_gemm_ms": t_np_gemm * 1e3,
        "vs_np_gemv": t_np_gemv / t_cold, "vs_np_gemm": t_np_gemm / t_gemm,
    }


def bench_binary_shape(name, k, m, args, rng, C):
    """Binary vs ternary (decode packing) on one shape: cold GEMV (rotations of >= the same total
    size, alternating round by round so both see the same machine load), hot GEMV, GEMM T tokens."""
    signs = np.where(rng.random((m, k)) < 0.5, 1, -1).astype(np.int8)
    bits = C.binary.pack_bits(signs)
    alpha = rng.uniform(0.01, 0.1, size=m).astype(np.float32)
    beta = rng.uniform(-0.01, 0.01, size=m).astype(np.float32)
    codes = rng.integers(-1, 2, size=(m, k), dtype=np.int8)
    Wb = C.binary.BinaryMatrix.from_bits(bits, k, alpha, beta)
    Wt = C.ternary.TernaryMatrix.from_codes(codes, 1.0, "decode")
    q1 = rng.integers(-128, 128, size=(1, k), dtype=np.int8)
    qT = rng.integers(-128, 128, size=(args.tokens, k), dtype=np.int8)
    target = max(8 * args.l3_bytes, args.rotation_mb << 20)
    rot_b = [Wb] + [C.binary.BinaryMatrix.from_bits(bits, k, alpha, beta)
                    for _ in range(max(1, -(-target // Wb.packed_bytes)) - 1)]
    rot_t = [Wt] + [C.ternary.TernaryMatrix.from_codes(codes, 1.0, "decode")
                    for _ in range(max(1, -(-target // Wt.packed_bytes)) - 1)]
    bws, cold_b, cold_t = [], [], []
    for _ in range(args.repeats):
        bws.append(C.measure_read_bandwidth(args.bandwidth_mb << 20, args.threads, 1))
        cold_b += C.binary.time_matmul_int32_rotation(rot_b, q1, 1)
        cold_t += C.ternary.time_matmul_int32_rotation(rot_t, q1, 1)
    del rot_b, rot_t
    tb, tt = statistics.median(cold_b), statistics.median(cold_t)
    hot_b = statistics.median(Wb.time_matmul_int32(q1, args.repeats * 4))
    hot_t = statistics.median(Wt.time_matmul_int32(q1, args.repeats * 4))
    gemm_b = statistics.median(Wb.time_matmul_int32(qT, args.gemm_repeats))
    gemm_t = statistics.median(Wt.time_matmul_int32(qT, args.gemm_repeats))
    return {
        "name": name, "k": k, "m": m, "kernel_binary": Wb.kernel, "kernel_ternary": Wt.kernel,
        "bytes_binary": Wb.packed_bytes, "bytes_ternary": Wt.packed_bytes, "bw_gbs": statistics.median(bws),
        "binary_cold_us": tb * 1e6, "ternary_cold_us": tt * 1e6,
        "binary_gbs": Wb.packed_bytes / tb / 1e9, "ternary_gbs": Wt.packed_bytes / tt / 1e9,
        "cold_ratio": tb / tt, "binary_hot_us": hot_b * 1e6, "ternary_hot_us": hot_t * 1e6,
        "hot_ratio": hot_b / hot_t, "binary_gemm_ms": gemm_b * 1e3, "ternary_gemm_ms": gemm_t * 1e3,
        "binary_gemm_gmacs": m * k * args.tokens / gemm_b / 1e9, "gemm_ratio": gemm_b / gemm_t,
    }


def binary_markdown(rows, machine, args, cmd) -> str:
    out = [f"Command: `{cmd}`  ",
           f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, L3 {machine['l3_bytes'] >> 20} MiB; "
           f"kernel set `{machine['isa']}`; {args.threads} threads; bitmamba {machine['version']} ({machine['commit']}).  "]
    if machine.get("loadavg_before"):
        out.append(f"Load average before / after: {machine['loadavg_before'][0]:.1f} / "
                   f"{machine['loadavg_after'][0]:.1f} (other jobs shared the machine).  ")
    out.append(f"Cold GEMV: {args.repeats} rounds, each a {args.bandwidth_mb} MiB read-bandwidth pass, then one pass over "
               f"a rotation of binary copies and one over ternary (decode packing) copies, each rotation >= "
               f"{max(8 * args.l3_bytes, args.rotation_mb << 20) >> 20} MiB; hot GEMV: {4 * args.repeats} calls on "
               f"one copy; GEMM: T={args.tokens}, {args.gemm_repeats} calls. Medians. Ratio = binary time / ternary time.")
    out.append("")
    out.append("| model | matrix | in -> out | binary kernel | binary MiB | ternary MiB | binary cold us | ternary cold us "
               "| binary GB/s | ternary GB/s | read BW GB/s | cold ratio | hot ratio | binary GEMM ms (GMAC/s) "
               "| ternary GEMM ms | GEMM ratio |")
    out.append("|" + "---|" * 16)
    for r in rows:
        out.append(
            f"| {r['model']} | {r['name']} | {r['k']} -> {r['m']} | {r['kernel_binary']} | "
            f"{r['bytes_binary'] / 2**20:.2f} | {r['bytes_ternary'] / 2**20:.2f} | {r['binary_cold_us']:.0f} | "
            f"{r['ternary_cold_us']:.0f} | {r['binary_gbs']:.2f} | {r['ternary_gbs']:.2f} | {r['bw_gbs']:.2f} | "
            f"{r['cold_ratio']:.2f} | {r['hot_ratio']:.2f} | {r['binary_gemm_ms']:.1f} ({r['binary_gemm_gmacs']:.1f}) | "
            f"{r['ternary_gemm_ms']:.1f} | {r['gemm_ratio']:.2f} |")
    return "\n".join(out) + "\n"


def to_markdown(rows, machine, args, cmd) -> str:
    out = []
    out.append(f"Command: `{cmd}`  ")
    out.append(f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, "
               f"L3 {machine['l3_bytes'] >> 20} MiB; kernel set `{machine['isa']}`; {args.threads} threads; "
               f"bitmamba {machine['version']} ({machine['commit']}); numpy {machine['numpy']} (OpenBLAS).  ")
    if machine.get("loadavg_before"):
        out.append(f"Load average before / after: {machine['loadavg_before'][0]:.1f} / "
                   f"{machine['loadavg_after'][0]:.1f} (other jobs shared the machine).  ")
    out.append(f"GEMV: {args.repeats} rounds over a rotation of copies totalling >= "
               f"{max(8 * args.l3_bytes, args.rotation_mb << 20) >> 20} MiB (cold: weights from DRAM), each round "
               f"preceded by one {args.bandwidth_mb} MiB read-bandwidth pass, and "
               f"{4 * args.repeats} calls on one copy (hot); GEMM: T={args.tokens}, {args.gemm_repeats} calls. "
               "Medians unless marked best (minimum).")
    out.append("")
    out.append("| model | matrix | in -> out | kernel | MiB | GEMV cold us (median / best) | GEMV hot us "
               "| weight GB/s | read BW GB/s | % of BW (median / best) |")
    out.append("|" + "---|" * 10)
    for r in rows:
        out.append(
            f"| {r['model']} | {r['name']} | {r['k']} -> {r['m']} | {r['kernel']} | {r['bytes'] / 2**20:.1f} | "
            f"{r['gemv_cold_us']:.0f} / {r['gemv_cold_best_us']:.0f} | {r['gemv_hot_us']:.0f} | "
            f"{r['gemv_gbs']:.2f} | {r['bw_gbs']:.2f} | {100 * r['bw_frac']:.0f}% / {100 * r['bw_frac_best']:.0f}% |")
    out.append("")
    out.append(f"| model | matrix | GEMM T={args.tokens} ms | GEMM GMAC/s (median / best) | GEMM speedup per token "
               "vs cold GEMV | numpy f32 GEMV us | ours vs numpy GEMV | numpy f32 GEMM ms | ours vs numpy GEMM |")
    out.append("|" + "---|" * 9)
    for r in rows:
        out.append(
            f"| {r['model']} | {r['name']} | {r['gemm_ms']:.1f} | {r['gemm_gmacs']:.1f} / {r['gemm_gmacs_best']:.1f} | "
            f"{r['gemm_speedup_per_token']:.1f}x | {r['np_gemv_us']:.0f} | {r['vs_np_gemv']:.1f}x | "
            f"{r['np_gemm_ms']:.1f} | {r['vs_np_gemm']:.1f}x |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_kernels", description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default="255m,1b", help="comma list of: 255m, 1b")
    p.add_argument("--tokens", type=int, default=128, help="T for the GEMM (prefill) measurement")
    p.add_argument("--repeats", type=int, default=10, help="GEMV repeats (each over all copies)")
    p.add_argument("--gemm-repeats", type=int, default=3)
    p.add_argument("--bandwidth-mb", type=int, default=256)
    p.add_argument("--rotation-mb", type=int, default=256,
                   help="total size of the matrix copies the cold GEMV cycles over (at least 8x L3)")
    p.add_argument("--layout", default="auto", choices=["auto", "decode", "lut", "base3"])
    p.add_argument("--isa", default=None, help="force a kernel set (default: best)")
    p.add_argument("--markdown", default=None, help="also write the table to this file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--binary", action="store_true",
                   help="compare the binary product with the ternary decode packing on in_proj and out_proj")
    args = p.parse_args(argv)

    import bitmamba
    from bitmamba._native import native

    # numpy's BLAS gets the same thread count (its threads spin-wait; oversubscribed it is very slow).
    # Only effective when set before numpy loads its BLAS, as scripts/bench_kernels.py does.
    C = native()
    bitmamba.set_num_threads(args.threads)
    if args.isa:
        bitmamba.set_isa(args.isa)
    machine = machine_description()
    machine["loadavg_before"] = machine.pop("loadavg")
    args.l3_bytes = machine["l3_bytes"]
    rng = np.random.default_rng(args.seed)
    rows = []
    shapes = model_shapes(C)
    for model in [s.strip().lower() for s in args.models.split(",") if s.strip()]:
        if model not in shapes:
            p.error(f"unknown model {model!r} (choose from {', '.join(shapes)})")
        for name, k, m in shapes[model]:
            if args.binary:
                if name == "lm_head":  # stays ternary in binary models (docs/binary.md)
                    continue
                r = bench_binary_shape(name, k, m, args, rng, C)
                r["model"] = model
                rows.append(r)
                print(f"{model} {name} {k}->{m} [{r['kernel_binary']} vs {r['kernel_ternary']}]: cold GEMV "
                      f"{r['binary_cold_us']:.0f} vs {r['ternary_cold_us']:.0f} us ({r['binary_gbs']:.2f} vs "
                      f"{r['ternary_gbs']:.2f} GB/s, read BW {r['bw_gbs']:.2f}), ratio {r['cold_ratio']:.2f}; hot "
                      f"ratio {r['hot_ratio']:.2f}; GEMM T={args.tokens} ratio {r['gemm_ratio']:.2f}", flush=True)
                continue
            r = bench_shape(name, k, m, args, rng, C)
            r["model"] = model
            rows.append(r)
            print(f"{model} {name} {k}->{m} [{r['kernel']}]: GEMV cold {r['gemv_cold_us']:.0f} us "
                  f"({r['gemv_gbs']:.2f} GB/s = {100 * r['bw_frac']:.0f}% of {r['bw_gbs']:.2f} GB/s), "
                  f"hot {r['gemv_hot_us']:.0f} us; GEMM T={args.tokens} {r['gemm_gmacs']:.1f} GMAC/s "
                  f"({r['gemm_speedup_per_token']:.1f}x per token); vs numpy f32 GEMV "
                  f"{r['vs_np_gemv']:.1f}x, GEMM {r['vs_np_gemm']:.1f}x", flush=True)
    machine["loadavg_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    cmd = "python scripts/bench_kernels.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    md = (binary_markdown if args.binary else to_markdown)(rows, machine, args, cmd.strip())
    print()
    print(md)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
