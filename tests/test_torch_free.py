"""Inference needs no torch: loading a model, generating, evaluating and the command line all work in a
process where `import torch` fails, whether or not torch is installed on this machine."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("bitmamba._C", reason="bitmamba's C++ extension is not built")


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory):
    """Environment whose Python finds a `torch` package that refuses to import, ahead of any real one."""
    block = tmp_path_factory.mktemp("no_torch")
    (block / "torch").mkdir()
    (block / "torch" / "__init__.py").write_text('raise ImportError("torch is blocked in this test")\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(block)] + [p for p in [env.get("PYTHONPATH")] if p])
    # The check itself: the blocker really is what `import torch` finds.
    r = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "torch is blocked" in r.stderr
    return env


def test_package_imports_without_torch(no_torch_env):
    code = ("import sys, bitmamba, bitmamba.nn, bitmamba.convert, bitmamba.reference, bitmamba.config, "
            "bitmamba.atomic, bitmamba.yamlfile, bitmamba.scoring; print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], env=no_torch_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-5000:]
    assert r.stdout.strip() == "False"



BELOW_NN = r"""
import sys
import bitmamba.config, bitmamba.atomic, bitmamba.yamlfile, bitmamba.scoring, bitmamba.numerics
import bitmamba.formats.bit2, bitmamba.formats.gguf_io, bitmamba.formats.flax_msgpack, bitmamba.formats.pytorch_dir
import bitmamba.convert, bitmamba.reference
print(sorted(m for m in sys.modules if m.startswith(("bitmamba.nn", "bitmamba.train"))))
"""
NN = r"""
import sys
import bitmamba.nn.model
print(sorted(m for m in sys.modules if m.startswith(("bitmamba.formats", "bitmamba.convert"))))
"""


def test_lower_layers_do_not_import_the_torch_model():
    """The config, atomic writes, file formats, converter and numpy reference sit below bitmamba.nn (the
    torch model) and do not import it; bitmamba.nn uses the config and atomic writes, not the formats."""
    pytest.importorskip("torch")
    for code in (BELOW_NN, NN):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-5000:]
        assert r.stdout.strip() == "[]"

API = r"""
import sys, bitmamba
from bitmamba.eval import evaluate
m = bitmamba.load(bitmamba.default_model_path())
text = m.generate("Once upon a time", max_new_tokens=8, temperature=0)
assert isinstance(text, str) and text, text
pieces = list(m.stream("The sun", max_new_tokens=4, seed=1))
res = evaluate(m, ["arc_easy", "wikitext2"], data_dir=sys.argv[1], limit=2, progress=False)
assert "torch" not in sys.modules
print("ok", sorted(res["results"]))
"""


def test_api_load_generate_eval_without_torch(no_torch_env, data_dir):
    r = subprocess.run([sys.executable, "-c", API, str(data_dir / "eval")], env=no_torch_env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-5000:]
    assert r.stdout.startswith("ok")


@pytest.mark.parametrize("args", [
    ["info"],
    ["generate", "Once upon a time", "-n", "4", "--seed", "1"],
    ["bench", "--threads", "1", "--prompt-tokens", "16", "--decode-tokens", "4", "--repeats", "1",
     "--bandwidth-mib", "8"],
    ["eval", "--tasks", "arc_easy", "--limit", "2", "--no-progress"],
], ids=["info", "generate", "bench", "eval"])
def test_cli_without_torch(no_torch_env, data_dir, args):
    if args[0] == "eval":
        args = args + ["--data-dir", str(data_dir / "eval")]
    r = subprocess.run([sys.executable, "-m", "bitmamba", *args], env=no_torch_env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-5000:]
    assert "Traceback" not in r.stderr
