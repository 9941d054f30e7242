"""Running the `bitmamba` command line as a user would (a subprocess) on a tiny GGUF model with the
GPT-2 tokenizer embedded. Test modules import `cli`, `assert_one_line_error` and the `tiny` fixture."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bitmamba.tokenizer import BUNDLED_GPT2
from engine_fixtures import random_weights, write_gguf

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, stdin=None, env=None):
    """`python -m bitmamba ARGS` with a clean environment; stdin as str, or bytes for undecodable input
    (stdout and stderr are then decoded with replacement). Arguments may be bytes too."""
    e = {"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin", "BITMAMBA_NUM_THREADS": "1"}
    e.update(env or {})
    binary = isinstance(stdin, bytes)
    r = subprocess.run([sys.executable, "-m", "bitmamba", *args], input=stdin, capture_output=True,
                       text=not binary, env=e, timeout=300)
    if binary:
        r.stdout = r.stdout.decode("utf-8", "replace")
        r.stderr = r.stderr.decode("utf-8", "replace")
    return r


def assert_one_line_error(r, *words):
    """A failed run that said what is wrong on one line of stderr (no traceback, no usage block)."""
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("bitmamba ") and ": error: " in lines[0], lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A 1-layer random BitMamba-2 GGUF with the 50257-token GPT-2 vocabulary and tokenizer."""
    rng = np.random.default_rng(0)
    w, cfg = random_weights(rng, vocab=50257, d_model=64, d_inner=128, n_layers=1, n_heads=2)
    p = tmp_path_factory.mktemp("cli") / "tiny.gguf"
    write_gguf(p, w, cfg, ternary="I8", tokenizer_json=BUNDLED_GPT2.read_text(encoding="utf-8"))
    return p
