"""Configure, build and run the C++ GoogleTest suites: native, cross-compiled for aarch64 (run under
qemu), the sanitizer legs (ThreadSanitizer on the thread pool, AddressSanitizer + UBSan on the
whole suite) and the thread pool's tests with its job hand-over windows widened (pool-stretch).

Used by tests/test_cpp.py so that `python -m pytest` is the one command that runs every test, and by
hand: `python tests/cpp_build.py [native|aarch64|tsan|asan|pool-stretch]`.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
GTEST_SOURCES = Path("/usr/src/googletest/CMakeLists.txt")  # Debian's libgtest-dev

# name -> (build folder, extra CMake definitions, target, gtest filter)
VARIANTS = {
    "native": ("cpp-tests", [], "bitmamba_tests", None),
    "aarch64": ("cpp-tests-aarch64", [f"-DCMAKE_TOOLCHAIN_FILE={ROOT / 'cmake' / 'toolchain-aarch64.cmake'}"],
                "bitmamba_tests", None),
    "tsan": ("cpp-tests-tsan", ["-DBITMAMBA_SANITIZE=thread"], "bitmamba_pool_tests", None),
    "asan": ("cpp-tests-asan", ["-DBITMAMBA_SANITIZE=address,undefined"], "bitmamba_tests", None),
    # The pool's tests with its hand-over windows widened (csrc/core/thread_pool.cpp, stretch()).
    "pool-stretch": ("cpp-tests-pool-stretch", ["-DBITMAMBA_POOL_STRETCH=ON"], "bitmamba_pool_tests", None),
}


def _run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, **kw)


def missing_tools(variant: str = "native") -> Optional[str]:
    """Why this variant cannot be built here (None when it can)."""
    need = ["cmake"]
    if variant == "aarch64":
        if platform.machine() != "x86_64":
            return "the aarch64 cross leg runs on an x86-64 host"
        need += ["aarch64-linux-gnu-g++", "qemu-aarch64"]
    missing = [t for t in need if not shutil.which(t)]
    if missing:
        return f"{', '.join(missing)} not found"
    if not GTEST_SOURCES.exists() and (variant == "aarch64" or not _system_gtest()):
        return "GoogleTest not found (install Debian's libgtest-dev)"
    return None


def _system_gtest() -> bool:
    """A GoogleTest CMake package installed for the host compiler (non-Debian layouts)."""
    return any(Path(p).exists() for p in ("/usr/lib/cmake/GTest", "/usr/local/lib/cmake/GTest",
                                          f"/usr/lib/{platform.machine()}-linux-gnu/cmake/GTest"))


def build(variant: str = "native") -> Path:
    """Build the variant's test binary; returns the build directory. Raises RuntimeError with the log
    on failure. A failed configure removes its build folder, so fixing the cause (installing
    GoogleTest, say) is enough for the next run to succeed."""
    folder, defs, target, _ = VARIANTS[variant]
    build_dir = ROOT / "build" / folder
    cmd = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DBITMAMBA_BUILD_TESTS=ON",
           "-DBITMAMBA_BUILD_PYTHON=OFF", "-DCMAKE_BUILD_TYPE=Release", "-Wno-dev", *defs]
    if shutil.which("ninja") and not (build_dir / "CMakeCache.txt").exists():
        cmd += ["-G", "Ninja"]
    r = _run(cmd)  # every time: cheap when nothing changed, and never trusts a stale cache
    if r.returncode:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise RuntimeError(f"cmake configure failed:\n{r.stdout}\n{r.stderr}")
    r = _run(["cmake", "--build", str(build_dir), "--target", target, "--parallel", str(os.cpu_count() or 2)])
    if r.returncode:
        raise RuntimeError(f"C++ build failed:\n{r.stdout[-20000:]}\n{r.stderr[-20000:]}")
    return build_dir


def test_command(build_dir: Path, variant: str = "native") -> list:
    _, _, target, gtest_filter = VARIANTS[variant]
    cmd = [str(build_dir / target), "--gtest_brief=1"]
    if gtest_filter:
        cmd.append(f"--gtest_filter={gtest_filter}")
    if variant == "aarch64":
        cmd = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", *cmd]
    if variant == "tsan" and shutil.which("setarch"):
        # gcc's ThreadSanitizer cannot map its shadow memory under the high ASLR entropy of recent
        # kernels ("unexpected memory mapping"); running without address randomization avoids it.
        cmd = ["setarch", platform.machine(), "-R", *cmd]
    return cmd


def kernel_sets_of_table(arch: str) -> list:
    """The kernel table's rows for `arch` ("x86_64" or "aarch64"), most portable first, as the Python
    extension reports them (bitmamba._C.kernel_sets()); just ["scalar"] when the extension is not
    built (the check against the test binary's own list then fails and says so)."""
    try:
        from bitmamba._native import native

        sets = native().kernel_sets()
    except ImportError:
        return ["scalar"]
    return [k["name"] for k in sets if k["arch"] in ("any", arch)]


def listed_kernel_sets(build_dir: Path, variant: str = "native") -> list:
    """The kernel sets the variant's test binary compiles, read from its kernel table."""
    cmd = test_command(build_dir, variant)
    cmd = [c for c in cmd if not c.startswith("--gtest")] + ["--list-kernel-sets"]
    r = subprocess.run(cmd, text=True, capture_output=True, timeout=120)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout.split()


def run_suite(build_dir: Path, isa: str, variant: str = "native", timeout: float = 1500):
    """Run the variant's suite under one kernel set. Returns (returncode, output); 77 = set unsupported."""
    env = dict(os.environ, BITMAMBA_TEST_ISA=isa)
    if variant == "asan":
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:halt_on_error=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    if variant == "tsan":
        env["TSAN_OPTIONS"] = "halt_on_error=1:second_deadlock_stack=1"
    r = subprocess.run(test_command(build_dir, variant), env=env, text=True, capture_output=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


if __name__ == "__main__":
    variant = sys.argv[1].lstrip("-") if len(sys.argv) > 1 else "native"
    why = missing_tools(variant)
    if why:
        sys.exit(f"cannot build the {variant} C++ tests: {why}")
    d = build(variant)
    isas = listed_kernel_sets(d, variant) if VARIANTS[variant][2] == "bitmamba_tests" else ["scalar"]
    worst = 0
    for isa in isas:
        rc, out = run_suite(d, isa, variant)
        print(out.strip().splitlines()[-1] if out.strip() else "", f"[{isa}: rc={rc}]")
        if rc not in (0, 77):
            print(out)
            worst = rc
    sys.exit(worst)
