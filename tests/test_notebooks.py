"""The notebooks in notebooks/ run top to bottom headless (nbclient, python3 kernel), from the notebooks
folder, importing bitmamba the way this test process does; and they are committed without outputs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
# Seconds per cell; the four notebooks together take about a minute on 2 cores.
CELL_TIMEOUT = 300


def test_notebooks_present_and_committed_without_outputs():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["01_quickstart.ipynb", "02_convert_benchmark.ipynb", "03_evaluate.ipynb",
                     "04_train_tiny.ipynb"], names
    for p in NOTEBOOKS:
        nb = json.loads(p.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
                    f"{p.name}: clear outputs before committing (jupyter nbconvert --clear-output --inplace)"


def _kernel_env() -> dict:
    env = dict(os.environ)
    # Whatever made bitmamba importable here (an editable install, or PYTHONPATH=python) must reach the kernel.
    import bitmamba

    pkg_parent = str(Path(bitmamba.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("BITMAMBA_NUM_THREADS", "2")
    return env


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    if path.name in ("02_convert_benchmark.ipynb", "04_train_tiny.ipynb"):
        pytest.importorskip("torch")
        pytest.importorskip("safetensors")
    from jupyter_client.kernelspec import NoSuchKernel

    for k, v in _kernel_env().items():
        monkeypatch.setenv(k, v)  # the kernel process inherits this environment
    nb = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(NB_DIR)}})
    try:
        client.execute()
    except NoSuchKernel:
        pytest.skip("no python3 Jupyter kernel installed (pip install ipykernel)")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # Every notebook prints or plots something: no outputs at all would mean nothing ran.
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
