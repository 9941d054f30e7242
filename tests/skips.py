"""The one allowed kind of skip under BITMAMBA_REQUIRE_ALL=1 (see conftest.py): a reason no install
can fix, such as a kernel set this CPU lacks or a leg meant for another architecture."""
import pytest

NOT_APPLICABLE = "not applicable on this machine: "


def not_applicable(reason: str):
    pytest.skip(NOT_APPLICABLE + reason)
