"""Runs the C++ GoogleTest suites from pytest:
- native, once per x86 (or ARM) kernel set;
- cross-compiled for aarch64 and run under qemu once per ARM kernel set (NEON code is executed);
- the thread pool's tests under ThreadSanitizer, and with pauses that widen its job hand-over windows;
- the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, once per kernel set the CPU has.

The kernel sets are the kernel table's rows (from the extension, bitmamba._C.kernel_sets()), and
test_matrix_is_the_kernel_table checks that each test binary compiles exactly those, so a kernel set
cannot be added to the table without being tested here, nor tested without being in the table.

Missing tools (cmake, GoogleTest, the aarch64 cross compiler or qemu) skip with the reason, and under
BITMAMBA_REQUIRE_ALL=1 (.ci/run) such a skip is a failure. A kernel set the CPU lacks is not applicable.
"""
from __future__ import annotations

import platform

import pytest

import cpp_build
from skips import not_applicable

X86 = platform.machine() in ("x86_64", "AMD64")
NATIVE_ISAS = cpp_build.kernel_sets_of_table("x86_64" if X86 else "aarch64")
AARCH64_ISAS = cpp_build.kernel_sets_of_table("aarch64")


def _build(variant):
    why = cpp_build.missing_tools(variant)
    if why:
        if variant == "aarch64" and not X86:
            not_applicable(why)
        pytest.skip(f"cannot build the {variant} C++ tests: {why}")
    return cpp_build.build(variant)


@pytest.fixture(scope="module")
def native_build():
    return _build("native")


@pytest.fixture(scope="module")
def aarch64_build():
    return _build("aarch64")


@pytest.fixture(scope="module")
def tsan_build():
    return _build("tsan")


@pytest.fixture(scope="module")
def pool_stretch_build():
    return _build("pool-stretch")


@pytest.fixture(scope="module")
def asan_build():
    return _build("asan")


def _check(rc, out, isa):
    if rc == 77:
        not_applicable(f"this CPU cannot run the {isa} kernels")
    assert rc == 0, out[-20000:]


@pytest.mark.parametrize("isa", NATIVE_ISAS)
def test_cpp_suite_native(native_build, isa):
    _check(*cpp_build.run_suite(native_build, isa), isa)


_WHY = ("the test matrix (from bitmamba._C.kernel_sets(); only 'scalar' when the extension cannot be "
        "imported) differs from the kernel sets the test binary compiles")


def test_matrix_is_the_kernel_table_native(native_build):
    assert cpp_build.listed_kernel_sets(native_build) == NATIVE_ISAS, _WHY


def test_matrix_is_the_kernel_table_aarch64(aarch64_build):
    assert cpp_build.listed_kernel_sets(aarch64_build, "aarch64") == AARCH64_ISAS, _WHY


@pytest.mark.parametrize("isa", AARCH64_ISAS)
def test_cpp_suite_aarch64_qemu(aarch64_build, isa):
    rc, out = cpp_build.run_suite(aarch64_build, isa, variant="aarch64")
    assert rc != 77, f"qemu-aarch64 should emulate {isa}:\n{out}"
    assert rc == 0, out[-20000:]


def test_thread_pool_under_thread_sanitizer(tsan_build):
    rc, out = cpp_build.run_suite(tsan_build, "scalar", variant="tsan")
    assert rc == 0 and "ThreadSanitizer" not in out, out[-20000:]


def test_thread_pool_with_its_hand_over_windows_widened(pool_stretch_build):
    """A race between a finishing job and the next one shows up in a few percent of the jobs here
    (once in millions in a normal build): the pool tests must still pass."""
    rc, out = cpp_build.run_suite(pool_stretch_build, "scalar", variant="pool-stretch")
    assert rc == 0, out[-20000:]


@pytest.mark.parametrize("isa", NATIVE_ISAS)
def test_cpp_suite_under_address_and_ub_sanitizers(asan_build, isa):
    rc, out = cpp_build.run_suite(asan_build, isa, variant="asan")
    assert "runtime error" not in out and "AddressSanitizer" not in out, out[-20000:]
    _check(rc, out, isa)
