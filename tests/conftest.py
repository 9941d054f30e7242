"""Shared fixtures, and the rule for skips.

A test may skip for two kinds of reason:
- something this machine cannot have: a kernel set the CPU lacks, a leg for another architecture.
  Such skips call `skips.not_applicable(reason)` (or put skips.NOT_APPLICABLE in the reason);
- something missing that could be installed or provided: a dependency, ../shared, a tool.
With BITMAMBA_REQUIRE_ALL=1 (set by .ci/run) every skip of the second kind is reported as a failure,
so a CI run cannot go green by skipping.
"""
import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED = Path(os.environ.get("BITMAMBA_SHARED", ROOT.parent / "shared"))
sys.path.insert(0, str(TESTS))  # test helpers (cpp_build, fixtures) import as plain modules

from skips import NOT_APPLICABLE  # noqa: E402

REQUIRE_ALL = os.environ.get("BITMAMBA_REQUIRE_ALL") == "1"


def _skip_reason(report) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2])
    return str(lr)


def _enforce(report):
    if not (REQUIRE_ALL and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if NOT_APPLICABLE in reason:
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under BITMAMBA_REQUIRE_ALL=1 (install or provide what is missing): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _enforce(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield  # a module-level importorskip / skip(allow_module_level=True) lands here
    _enforce(outcome.get_result())


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository (data, golden); tests that need it skip, saying so, without it."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED} (place shared/ beside the repository or set "
                    "BITMAMBA_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def golden_dir(shared_dir) -> Path:
    d = shared_dir / "golden"
    if not d.is_dir():
        pytest.skip(f"golden data not found at {d} (BITMAMBA_SHARED/golden)")
    return d


@pytest.fixture(scope="session")
def data_dir(shared_dir) -> Path:
    d = shared_dir / "data"
    if not d.is_dir():
        pytest.skip(f"shared data not found at {d} (BITMAMBA_SHARED/data)")
    return d


def _supported_isas():
    try:
        import bitmamba

        return bitmamba.cpu_info()["supported_isas"]
    except ImportError:  # no compiled extension: the tests that need it skip themselves
        return ["scalar"]


@pytest.fixture(params=_supported_isas())
def isa(request):
    """Run the test once per kernel set this CPU supports, restoring the active one afterwards."""
    import bitmamba

    before = bitmamba.get_isa()
    bitmamba.set_isa(request.param)
    yield request.param
    bitmamba.set_isa(before)
