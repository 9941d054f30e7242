"""scripts/bench_sampler.py runs end to end and prints one timed row per option set (a smoke test:
timings are figures for the benchmark docs, never checked here)."""
import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("bitmamba._C")

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_sampler.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_sampler", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_sampler_prints_a_row_per_option_set(capsys):
    mod = _script()
    assert mod.main(["--vocab", "300", "--tokens", "5", "--repeats", "1", "--memory-mb", "1"]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if re.match(r"\| [^-|]", ln)]
    names = [r.split(" | ")[0][2:] for r in rows[1:]]
    assert names == ["accept (the binding's floor)", *mod.OPTION_SETS]
    for r in rows[1:]:
        cells = [float(c) for c in r.strip("| ").split(" | ")[1:]]
        assert len(cells) == 2 and all(c > 0 for c in cells)


def test_bench_sampler_rejects_bad_arguments():
    with pytest.raises(SystemExit) as e:
        _script().main(["--tokens", "0"])
    assert e.value.code == 2
