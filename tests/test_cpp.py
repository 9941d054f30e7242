"""Runs the C++ GoogleTest suite from pytest: once per x86 kernel set, and cross-compiled for aarch64
under qemu once per ARM kernel set (so NEON code is executed, not just compiled).

The aarch64 leg needs g++-aarch64-linux-gnu and qemu-user (Debian). Without them it skips, unless
BITMAMBA_REQUIRE_AARCH64=1 (set by .ci/run), in which case their absence is a failure.
"""
from __future__ import annotations

import os
import platform
import shutil

import pytest

import cpp_build

NATIVE_ISAS = ["scalar", "avx2", "avx512"] if platform.machine() in ("x86_64", "AMD64") else ["scalar", "neon", "neondot"]


@pytest.fixture(scope="module")
def native_build():
    if not shutil.which("cmake"):
        pytest.skip("cmake not found")
    return cpp_build.build(aarch64=False)


@pytest.fixture(scope="module")
def aarch64_build():
    missing = [t for t in ("aarch64-linux-gnu-g++", "qemu-aarch64") if not shutil.which(t)]
    if missing or platform.machine() != "x86_64":
        msg = f"aarch64 cross leg needs {', '.join(missing) or 'an x86-64 host'}"
        if os.environ.get("BITMAMBA_REQUIRE_AARCH64") == "1":
            pytest.fail(msg + " (BITMAMBA_REQUIRE_AARCH64=1)")
        pytest.skip(msg)
    return cpp_build.build(aarch64=True)


@pytest.mark.parametrize("isa", NATIVE_ISAS)
def test_cpp_suite_native(native_build, isa):
    rc, out = cpp_build.run_suite(native_build, isa)
    if rc == 77:
        pytest.skip(f"this CPU cannot run the {isa} kernels")
    assert rc == 0, out[-20000:]


@pytest.mark.parametrize("isa", ["scalar", "neon", "neondot"])
def test_cpp_suite_aarch64_qemu(aarch64_build, isa):
    rc, out = cpp_build.run_suite(aarch64_build, isa, aarch64=True)
    assert rc != 77, f"qemu-aarch64 should emulate {isa}:\n{out}"
    assert rc == 0, out[-20000:]
