"""scripts/simd_throughput.py compiles and runs its probe and prints a clock and one cycles-per-instruction
figure per instruction (figures for the benchmark docs; only their form is checked here)."""
import re
import subprocess
import sys
from pathlib import Path

import bitmamba
from skips import not_applicable

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "simd_throughput.py"


def test_simd_throughput_prints_a_clock_and_a_figure_per_instruction():
    features = bitmamba.cpu_info()["features"]  # the engine's own CPUID detection
    if features["arch"] != "x86_64":
        not_applicable("the probe is x86-64 code")
    if not features["avx2"]:
        not_applicable("this CPU has no AVX2")
    r = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    ghz = float(re.fullmatch(r"clock: ([0-9.]+) GHz \(dependent scalar adds\)", lines[0]).group(1))
    assert ghz > 0
    cycles = {}
    for line in lines[1:]:
        m = re.fullmatch(r"(v[a-z]+ [yz]mm) +([0-9.]+) cycles per instruction", line)
        assert m, line
        cycles[m.group(1)] = float(m.group(2))
    want = {"vpmaddubsw ymm", "vpmaddwd ymm", "vpsadbw ymm", "vpaddw ymm", "vpand ymm", "vpsignb ymm",
            "vpshufb ymm"}
    # The VNNI and 512-bit rows exactly where the CPU has the instructions.
    if features["avxvnni"]:
        want.add("vpdpbusd ymm")
    if features["avx512vnni"] and features["avx512bw"]:
        want |= {"vpdpbusd zmm", "vpandd zmm"}
        if features["avx512vbmi"]:
            want.add("vpermb zmm")
    assert set(cycles) == want
    # Timings on a shared machine vary with its load, so only their form is checked, never their size.
    assert all(c > 0 for c in cycles.values()), cycles
