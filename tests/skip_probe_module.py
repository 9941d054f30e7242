"""Not collected on its own: a module-level skip for tests/test_skip_policy.py."""
import pytest

pytest.importorskip("bitmamba_no_such_module_for_the_probe")


def test_never_runs():
    pass
