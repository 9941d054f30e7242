"""`bitmamba info`: what the CPU has and which kernels bitmamba will use."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser(
        "info",
        help="show CPU features, the kernel set in use, threads and version",
        description="Show the detected CPU features, the kernel sets (set BITMAMBA_ISA to the name "
        "of a supported one to force it), the one bitmamba will use, the thread count "
        "(BITMAMBA_NUM_THREADS) and the version.",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..system import cpu_info

    info = cpu_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    feats = info["features"]
    present = [k for k, v in feats.items() if k != "arch" and v]
    print(f"bitmamba {info['version']}")
    print(f"machine:        {info['machine']} ({feats['arch']})")
    print(f"cpu features:   {' '.join(present) if present else '(none of interest)'}")
    print(f"kernel sets:    {', '.join(info['supported_isas'])} (compiled: {', '.join(info['compiled_isas'])})")
    width = max(len(k["name"]) for k in info["kernel_sets"])
    for k in info["kernel_sets"]:
        if k["supported"]:
            state = "supported"
        elif k["compiled"]:
            state = "compiled; this CPU lacks " + " ".join(k["missing"])
        else:
            state = "not in this build"
        needs = " ".join(k["needs"]) or "-"
        print(f"  {k['name']:<{width}} {k['arch']:<8} needs: {needs} ({state})")
    print(f"amx tile data:  {info['amx_permission']['status']}")
    forced = " (forced by BITMAMBA_ISA)" if info["isa_forced_by_env"] else ""
    print(f"kernel set:     {info['isa']}{forced}")
    print(f"threads:        {info['threads']} (physical cores: {info['default_threads']})")
    return 0
