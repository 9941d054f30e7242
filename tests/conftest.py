import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED = Path(os.environ.get("BITMAMBA_SHARED", ROOT.parent / "shared"))
sys.path.insert(0, str(TESTS))  # test helpers (cpp_build, fixtures) import as plain modules


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository (DESIGN.md, data, golden); tests skip cleanly without it."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def golden_dir(shared_dir) -> Path:
    d = shared_dir / "golden"
    if not d.is_dir():
        pytest.skip(f"golden data not found at {d}")
    return d


@pytest.fixture(scope="session")
def data_dir(shared_dir) -> Path:
    d = shared_dir / "data"
    if not d.is_dir():
        pytest.skip(f"shared data not found at {d}")
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
