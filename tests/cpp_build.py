"""Configure, build and run the C++ GoogleTest suite (native, or cross-compiled for aarch64 + qemu).

Used by tests/test_cpp.py so that `python -m pytest` is the one command that runs every test, and by
hand: `python tests/cpp_build.py [--aarch64]`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, **kw)


def build(aarch64: bool = False) -> Path:
    """Build bitmamba_tests; returns the build directory. Raises RuntimeError with the log on failure."""
    build_dir = ROOT / "build" / ("cpp-tests-aarch64" if aarch64 else "cpp-tests")
    cmd = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DBITMAMBA_BUILD_TESTS=ON",
           "-DBITMAMBA_BUILD_PYTHON=OFF", "-DCMAKE_BUILD_TYPE=Release", "-Wno-dev"]
    if shutil.which("ninja"):
        cmd += ["-G", "Ninja"]
    if aarch64:
        cmd += [f"-DCMAKE_TOOLCHAIN_FILE={ROOT / 'cmake' / 'toolchain-aarch64.cmake'}"]
    if not (build_dir / "CMakeCache.txt").exists():
        r = _run(cmd)
        if r.returncode:
            raise RuntimeError(f"cmake configure failed:\n{r.stdout}\n{r.stderr}")
    r = _run(["cmake", "--build", str(build_dir), "--parallel", str(os.cpu_count() or 2)])
    if r.returncode:
        raise RuntimeError(f"C++ build failed:\n{r.stdout[-20000:]}\n{r.stderr[-20000:]}")
    return build_dir


def test_command(build_dir: Path, aarch64: bool = False) -> list:
    exe = str(build_dir / "bitmamba_tests")
    if aarch64:
        return ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", exe, "--gtest_brief=1"]
    return [exe, "--gtest_brief=1"]


def run_suite(build_dir: Path, isa: str, aarch64: bool = False, timeout: float = 1500):
    """Run the whole suite under one kernel set. Returns (returncode, output); 77 = set unsupported."""
    env = dict(os.environ, BITMAMBA_TEST_ISA=isa)
    r = subprocess.run(test_command(build_dir, aarch64), env=env, text=True, capture_output=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


if __name__ == "__main__":
    cross = "--aarch64" in sys.argv
    d = build(cross)
    isas = ["scalar", "neon", "neondot"] if cross else ["scalar", "avx2", "avx512"]
    worst = 0
    for isa in isas:
        rc, out = run_suite(d, isa, cross)
        print(out.strip().splitlines()[-1] if out.strip() else "", f"[{isa}: rc={rc}]")
        if rc not in (0, 77):
            print(out)
            worst = rc
    sys.exit(worst)
