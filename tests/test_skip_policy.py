"""BITMAMBA_REQUIRE_ALL=1 turns skips for something missing into failures (conftest.py), and the C++ test
builder neither errors without GoogleTest nor leaves a broken build folder behind."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cpp_build

TESTS = Path(__file__).resolve().parent


def _probe(require_all: bool, *files):
    env = dict(os.environ)
    env.pop("BITMAMBA_REQUIRE_ALL", None)
    if require_all:
        env["BITMAMBA_REQUIRE_ALL"] = "1"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                        *[str(TESTS / f) for f in files]],
                       env=env, capture_output=True, text=True, cwd=TESTS.parent, timeout=120)
    return r.returncode, r.stdout + r.stderr


def test_skips_are_skips_by_default():
    rc, out = _probe(False, "skip_probe.py", "skip_probe_module.py")
    assert rc == 0, out
    assert "1 passed, 3 skipped" in out, out


def test_require_all_fails_missing_but_keeps_not_applicable():
    rc, out = _probe(True, "skip_probe.py")
    assert rc != 0, out
    assert "skipped under BITMAMBA_REQUIRE_ALL=1" in out
    assert "1 failed, 1 passed, 1 skipped" in out, out  # the CPU one stays a skip
    rc, out = _probe(True, "skip_probe_module.py")  # a module-level skip is a collection error
    assert rc != 0 and "skipped under BITMAMBA_REQUIRE_ALL=1" in out, out


def test_missing_gtest_is_reported_not_an_error(monkeypatch):
    monkeypatch.setattr(cpp_build, "GTEST_SOURCES", Path("/nonexistent/googletest/CMakeLists.txt"))
    monkeypatch.setattr(cpp_build, "_system_gtest", lambda: False)
    assert "GoogleTest not found" in cpp_build.missing_tools("native")


@pytest.mark.skipif(cpp_build.missing_tools("native") is not None, reason="cmake or GoogleTest missing")
def test_failed_configure_leaves_no_build_folder(monkeypatch):
    folder = "cpp-tests-broken-probe"
    monkeypatch.setitem(cpp_build.VARIANTS, "broken", (folder, ["-DCMAKE_TOOLCHAIN_FILE=/nonexistent.cmake"],
                                                       "bitmamba_tests", None))
    with pytest.raises(RuntimeError, match="configure failed"):
        cpp_build.build("broken")
    assert not (cpp_build.ROOT / "build" / folder).exists()
