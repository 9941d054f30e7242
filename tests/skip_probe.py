"""Not collected on its own (no test_ prefix): tests/test_skip_policy.py runs it in a subprocess to check
how skips are reported with and without BITMAMBA_REQUIRE_ALL=1."""
import pytest

from skips import not_applicable


def test_missing_dependency():
    pytest.importorskip("bitmamba_no_such_module_for_the_probe")


def test_cpu_lacks_it():
    not_applicable("this CPU cannot run the probe kernels")


def test_passes():
    pass
