"""`bitmamba bench [MODEL | --shape 255m|1b]`: decode and prefill speed, peak memory, roofline.

Without MODEL, random weights of the real shape are built in memory (speed does not depend on the
values; the embedding is stored as Q8_0 by default so resident memory is what a converted file
costs); --weights binary makes in_proj / out_proj binary (docs/binary.md), the lm_head staying ternary. Prints one figure a line (`decode: 123.4 tok/s`) or JSON with --json. Timings on shared
machines are noisy: each figure is the median of --repeats runs.

--batch B decodes B sequences together, one `_C.batch_step` per step (the server's continuous-batching
path: the weights are read once per step for all B), and reports the aggregate B * steps / time.
--packing forces the weight packing (as BITMAMBA_PACKING does); the packing and kernel each kind of
matrix ended up with is printed (`kernel_in_proj: base3 avx2-base3`) and in the JSON (`kernels`).

The roofline fraction pairs each decode run with a read-bandwidth test run right after it: on a host
shared with other jobs, the bandwidth a process gets moves by tens of percent within a minute, so one
test taken after all runs divides a run by another moment's bandwidth. The fraction reported is the
median of the per-run fractions (`roofline_runs` in the JSON). Where the peak-memory counter cannot be
restarted (outside Linux), the test's buffer would count as the model's memory, so one test runs after
the last decode run instead.
"""
from __future__ import annotations

import json
import resource
import statistics
import sys
import time

from ._common import add_packing_option, add_threads_option, apply_packing, check_threads


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure decode / prefill speed, peak RSS and roofline fraction",
                       description=__doc__.split("\n\n")[0] + " Roofline fraction = decode steps/s x weight bytes "
                       "read per step (the packing's real bytes) / memory read bandwidth measured right after the run; the "
                       "median over the runs.")
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="model file or Hugging Face repo id (owner/name[@revision], hf://...; default: the bundled "
                   "model; omit with --shape)")
    p.add_argument("--shape", choices=["255m", "1b"], default=None, help="random weights of this shape")
    p.add_argument("--weights", choices=["ternary", "binary"], default="ternary",
                   help="projection weights of the random model (--shape): ternary BitLinear or binary "
                        "FBI-Linear in_proj / out_proj (default %(default)s)")
    p.add_argument("--embed", choices=["q8_0", "f16", "f32"], default="q8_0",
                   help="embedding storage for random weights (default %(default)s)")
    add_threads_option(p)
    p.add_argument("--prompt-tokens", type=int, default=512, help="prefill prompt length (default %(default)s)")
    p.add_argument("--decode-tokens", type=int, default=64, help="tokens per decode run (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure, median reported (default %(default)s)")
    p.add_argument("--batch", type=int, default=1,
                   help="sequences decoded together per step through batch_step (default %(default)s: the "
                        "single-sequence loop users run)")
    add_packing_option(p)
    p.add_argument("--bandwidth-mib", type=int, default=256, help="buffer for the bandwidth test (default %(default)s)")
    p.add_argument("--profile", action="store_true",
                   help="also time the phases of the decode runs (norm+quantize, in_proj, conv/scan/gate, "
                        "out_proj, head, other) and print microseconds per token for each")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def peak_rss_bytes() -> int:
    """Peak resident memory: VmHWM on Linux (restarted by reset_peak_rss), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


def reset_peak_rss() -> bool:
    """Restarts the peak-memory counter at the current resident size (Linux: "5" written to
    /proc/self/clear_refs); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def read_bandwidth(C, n_bytes: int, threads: int) -> float:
    """Measured memory read bandwidth in bytes/s (bitmamba._C.measure_read_bandwidth reports GB/s)."""
    return float(C.measure_read_bandwidth(n_bytes, threads, 3)) * 1e9


def run(args) -> int:
    import numpy as np

    from .._native import native
    from ..model import Model, load
    from ..system import set_num_threads
    from ._common import resolve_model_path

    if args.repeats < 1 or args.prompt_tokens < 1 or args.decode_tokens < 1 or args.batch < 1:
        raise ValueError("--repeats, --prompt-tokens, --decode-tokens and --batch must be >= 1")
    check_threads(args)
    C = native()
    if args.threads is not None:
        set_num_threads(args.threads)
    apply_packing(args)
    t0 = time.perf_counter()
    if args.shape and args.model:
        raise ValueError("give either MODEL or --shape, not both")
    if args.weights != "ternary" and not args.shape:
        raise ValueError("--weights chooses the weights of a random model: give it with --shape (a model file "
                         "says its own)")
    if args.shape:
        model = Model.random(args.shape, embed=args.embed, seed=1, weights=args.weights)
        source = f"random {args.shape} {args.weights} weights (embedding {args.embed})"
    else:
        path = resolve_model_path(args.model)  # no MODEL: the bundled default model
        model = load(path)
        source = str(path)
    load_s = time.perf_counter() - t0
    m = model.native
    V = model.vocab_size
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, V, size=args.prompt_tokens)

    prefill = []
    for _ in range(args.repeats):
        st = model.new_state()
        t = time.perf_counter()
        m.feed(st, prompt)
        prefill.append(args.prompt_tokens / (time.perf_counter() - t))
    # Decode through the loop users run: Model.stream (text, one engine call a token) when the model
    # has a tokenizer, else Model.generate_ids; greedy, EOS not stopping the run. With --batch B > 1,
    # B sequences (distinct prompts) step together through batch_step, as the server drives them.
    decode = []
    greedy = dict(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, repeat_window=0, seed=0,
                  ignore_eos=True)
    B = args.batch
    loop = "batch_step" if B > 1 else "stream" if model.has_tokenizer else "generate_ids"
    profile = None
    threads = C.get_num_threads()
    # Each decode run is paired with a bandwidth test right after it (see the module doc). The test's
    # buffer must not count as the model's memory: the peak is read before each test and the counter
    # restarted after it.
    rss = peak_rss_bytes()
    paired = reset_peak_rss()
    bws = []
    for _ in range(args.repeats):
        if B > 1:
            gens = []
            for b in range(B):
                st = model.new_state()
                m.feed(st, rng.integers(0, V, size=16))
                opt = dict(greedy, max_new_tokens=args.decode_tokens)
                del opt["ignore_eos"]
                gens.append(model._generator([], st, opt, ignore_eos=True))
        else:
            st = model.new_state()
            m.feed(st, prompt[:16])
        if args.profile:
            m.set_profiling(True)
        t = time.perf_counter()
        if B > 1:
            for _step in range(args.decode_tokens):
                C.batch_step(m, gens, [], [])
        elif loop == "stream":
            for _piece in model.stream([], max_new_tokens=args.decode_tokens, state=st, **greedy):
                pass
        else:
            model.generate_ids([], max_new_tokens=args.decode_tokens, state=st, **greedy)
        decode.append(args.decode_tokens / (time.perf_counter() - t))  # steps per second
        if paired:
            rss = max(rss, peak_rss_bytes())
            bws.append(read_bandwidth(C, args.bandwidth_mib << 20, threads))
            reset_peak_rss()
    if args.profile:
        # Phases of the last decode run, in microseconds per token (the timing itself is ~0.1 us a phase).
        p = m.profile()
        m.set_profiling(False)
        n = max(int(p.pop("tokens")), 1)
        profile = {k: round(v / n * 1e6, 1) for k, v in p.items()}
    if not paired:
        rss = peak_rss_bytes()  # before the bandwidth buffer is allocated
        bws = [read_bandwidth(C, args.bandwidth_mib << 20, threads)] * len(decode)
    dec = statistics.median(decode)
    bw = statistics.median(bws)
    # A step reads the packed weights once and one embedding row per sequence.
    embed_row = int(m.bytes_per_token) - int(m.packed_weight_bytes)
    bytes_per_step = int(m.packed_weight_bytes) + B * embed_row
    roofline_runs = [d * bytes_per_step / b for d, b in zip(decode, bws)]
    kernels = [dict(matrix=k, packing=p, kernel=n) for k, p, n in m.kernel_choices()]
    res = {
        "model": source,
        "isa": C.get_isa(),
        "threads": threads,
        "weights": model.config["weights"],
        "packing_policy": C.ternary.get_layout_policy(),
        "kernels": kernels,
        "batch": B,
        "decode_loop": loop,
        "decode_tok_s": round(dec, 2),
        "decode_tok_s_aggregate": round(dec * B, 2),
        "prefill_tok_s": round(statistics.median(prefill), 2),
        "prompt_tokens": args.prompt_tokens,
        "decode_tokens": args.decode_tokens,
        "peak_rss_mb": round(rss / 1e6, 1),
        "load_s": round(load_s, 2),
        "bytes_per_token": int(m.bytes_per_token),
        "bytes_per_step": bytes_per_step,
        "read_bandwidth_gb_s": round(bw / 1e9, 2),
        "roofline_fraction": round(statistics.median(roofline_runs), 3),
        "bandwidth_paired": paired,
        "decode_runs": [round(x, 2) for x in decode],
        "read_bandwidth_runs": [round(b / 1e9, 2) for b in bws],
        "roofline_runs": [round(f, 3) for f in roofline_runs],
        "prefill_runs": [round(x, 2) for x in prefill],
    }
    if profile is not None:
        res["decode_profile_us_per_token"] = profile
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"model: {res['model']}")
    print(f"isa: {res['isa']}")
    print(f"threads: {threads}")
    print(f"weights: {res['weights']}")
    for k in kernels:
        print(f"kernel_{k['matrix']}: {k['packing']} {k['kernel']}")
    if B > 1:
        print(f"batch: {B}")
        print(f"decode: {res['decode_tok_s']:.1f} tok/s per sequence")
        print(f"decode_aggregate: {res['decode_tok_s_aggregate']:.1f} tok/s")
    else:
        print(f"decode: {res['decode_tok_s']:.1f} tok/s")
    print(f"prefill: {res['prefill_tok_s']:.1f} tok/s")
    print(f"peak_rss: {res['peak_rss_mb']:.1f} MB")
    print(f"weights_per_token: {res['bytes_per_token'] / 1e6:.1f} MB")
    if B > 1:
        print(f"weights_per_step: {res['bytes_per_step'] / 1e6:.1f} MB")
    print(f"bandwidth: {res['read_bandwidth_gb_s']:.2f} GB/s")
    if len(roofline_runs) > 1:
        print(f"roofline: {res['roofline_fraction']:.3f} (runs {min(roofline_runs):.3f} to {max(roofline_runs):.3f}, "
              f"decode {min(decode):.1f} to {max(decode):.1f} steps/s)")
    else:
        print(f"roofline: {res['roofline_fraction']:.3f}")
    if profile is not None:
        for k, v in profile.items():
            print(f"decode_{k}: {v:.1f} us/token")
    return 0
