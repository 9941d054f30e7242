"""Repo ids (`owner/name`, `@revision`, `hf://`) resolved through a Hugging Face cache built here in the hub's
own layout (models--owner--name/{blobs,refs,snapshots}) with HF_HUB_OFFLINE=1: no network is used."""
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("bitmamba._C", reason="bitmamba's C++ extension is not built")

import bitmamba  # noqa: E402
from bitmamba import hub  # noqa: E402
from cli_helpers import tiny  # noqa: E402,F401
from engine_fixtures import random_weights, write_bit2  # noqa: E402


def add_repo(cache: Path, repo: str, files: dict, commit=None, ref="main") -> str:
    """Put `files` ({path: bytes}) in the hub cache as one commit of `repo`; returns the commit hash."""
    base = cache / ("models--" + repo.replace("/", "--"))
    commit = commit or hashlib.sha1(repr(sorted(files)).encode() + os.urandom(8)).hexdigest()
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / ref).write_text(commit)
    for rel, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        (base / "blobs" / blob).write_bytes(data)
        link = base / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(base / "blobs" / blob, link.parent))
    return commit


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BITMAMBA_CACHE", str(tmp_path / "bm"))
    # huggingface_hub reads these once at import: the values it already holds are patched too.
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    return cache


def _ext(a):
    import msgpack

    a = np.ascontiguousarray(a, np.float32)
    return msgpack.ExtType(1, msgpack.packb((list(a.shape), "float32", a.tobytes()), use_bin_type=True))


def flax_bytes(seed=0, V=300, D=256, L=1, H=4):
    """A random BitMamba-2 checkpoint as a Flax msgpack (the layout formats/flax_msgpack.py reads)."""
    import msgpack

    r = np.random.default_rng(seed)
    E = 2 * D
    n_in = 2 * E + 2 * H + H
    norm = lambda n: r.uniform(0.5, 1.5, n)  # noqa: E731
    p = {"Embed_0": {"embedding": _ext(r.uniform(-1, 1, (V, D)))}, "RMSNorm_0": {"scale": _ext(norm(D))},
         "BitLinear_0": {"kernel": _ext(r.uniform(-1, 1, (D, V))), "RMSNorm_0": {"scale": _ext(norm(D))}}}
    for i in range(L):
        p[f"BitMambaBlock_{i}"] = {
            "BitLinear_0": {"kernel": _ext(r.uniform(-1, 1, (D, n_in))), "RMSNorm_0": {"scale": _ext(norm(D))}},
            "Conv_0": {"kernel": _ext(r.uniform(-.5, .5, (4, 1, E))), "bias": _ext(r.uniform(-.1, .1, E))},
            "BitLinear_1": {"kernel": _ext(r.uniform(-1, 1, (E, D))), "RMSNorm_0": {"scale": _ext(norm(E))}},
            "dt_bias": _ext(r.uniform(-3, 0, H)), "A_log": _ext(r.uniform(0, 2, H)), "D": _ext(norm(E))}
    return msgpack.packb({"params": p}, use_bin_type=True)


def bit2_bytes(tmp_path, seed=0):
    w, cfg = random_weights(np.random.default_rng(seed), vocab=300, d_model=64, d_inner=128, n_layers=1, n_heads=2)
    p = tmp_path / f"src{seed}.bin"
    write_bit2(p, w, cfg)
    return p.read_bytes()


def test_parse_repo_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hub.parse_repo_id("Zhayr1/BitMamba-2-1B") == ("Zhayr1/BitMamba-2-1B", None)
    assert hub.parse_repo_id("Zhayr1/BitMamba-2-1B@v1.0") == ("Zhayr1/BitMamba-2-1B", "v1.0")
    assert hub.parse_repo_id("hf://a/b@main") == ("a/b", "main")
    assert hub.parse_repo_id("models/x.gguf") is None  # a missing file stays a file
    assert hub.parse_repo_id("model.gguf") is None
    assert hub.parse_repo_id(Path("owner/other")) is None  # a Path object is always a path
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "name").mkdir()
    assert hub.parse_repo_id("owner/name") is None  # an existing local path wins
    assert hub.parse_repo_id("hf://owner/name") == ("owner/name", None)  # unless hf:// says otherwise
    with pytest.raises(hub.HubError, match="not a Hugging Face repo id"):
        hub.parse_repo_id("hf://justname")


def test_pick_file_preference():
    assert hub.pick_file(["a.msgpack", "m.bin", "x.gguf", "config.json", "model.safetensors"]) == ("gguf", ["x.gguf"])
    assert hub.pick_file(["b-tq1_0.gguf", "a-tq2_0.gguf"]) == ("gguf", ["a-tq2_0.gguf"])
    assert hub.pick_file(["pytorch_model.bin", "m.bin", "a.msgpack"]) == ("bit2", ["m.bin"])
    assert hub.pick_file(["pytorch_model.bin", "a.msgpack"]) == ("flax", ["a.msgpack"])
    assert hub.pick_file(["m.bin", "tokenizer.json"]) == ("bit2", ["m.bin", "tokenizer.json"])
    assert hub.pick_file(["config.json", "model.safetensors", "tokenizer.json"]) == \
        ("pytorch", ["config.json", "model.safetensors", "tokenizer.json"])
    assert hub.pick_file(["README.md", "pytorch_model.bin"]) is None


def test_load_gguf_by_id_revision_and_hf_prefix(hf_cache, tiny):
    data = Path(tiny).read_bytes()
    c1 = add_repo(hf_cache, "owner/tiny", {"tiny.gguf": data, "README.md": b"hi"})
    m = bitmamba.load("owner/tiny")
    assert m.vocab_size == 50257 and m.has_tokenizer
    # Loaded straight from the hub's cache (no copy, no conversion).
    assert os.path.realpath(m.path).startswith(str(hf_cache))
    assert bitmamba.load("hf://owner/tiny").vocab_size == 50257
    assert bitmamba.load(f"owner/tiny@{c1}").vocab_size == 50257
    # A second revision under a tag: @tag picks it, main still gives the first.
    add_repo(hf_cache, "owner/tiny", {"other.bin": bit2_bytes(hf_cache.parent)}, ref="v2")
    assert bitmamba.load("owner/tiny@v2").vocab_size == 300
    assert bitmamba.load("owner/tiny").vocab_size == 50257


def test_local_path_wins_over_repo_id(hf_cache, tiny, tmp_path, monkeypatch):
    add_repo(hf_cache, "owner/tiny", {"m.bin": bit2_bytes(tmp_path)})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "tiny").write_bytes(Path(tiny).read_bytes())
    assert bitmamba.load("owner/tiny").vocab_size == 50257  # the local GGUF, not the repo's BIT2
    assert bitmamba.load("hf://owner/tiny").vocab_size == 300


def test_flax_converted_once_and_again_for_a_new_blob(hf_cache, tmp_path, monkeypatch):
    pytest.importorskip("msgpack")
    pytest.importorskip("gguf")
    import bitmamba.convert as conv

    calls = []
    real = conv.convert
    monkeypatch.setattr(conv, "convert", lambda *a, **k: calls.append(a) or real(*a, **k))
    add_repo(hf_cache, "owner/flax", {"model.msgpack": flax_bytes(0)})
    m1 = bitmamba.load("owner/flax")
    assert len(calls) == 1
    assert m1.path.parent == tmp_path / "bm" / "converted" and m1.path.suffix == ".gguf"
    assert [p.name for p in m1.path.parent.iterdir()] == [m1.path.name]  # no temporaries left
    m2 = bitmamba.load("owner/flax")
    assert len(calls) == 1 and m2.path == m1.path  # from our cache
    np.testing.assert_array_equal(m1.logits([1, 2, 3]), m2.logits([1, 2, 3]))
    # A new upload (another blob) converts again, to another cache entry.
    add_repo(hf_cache, "owner/flax", {"model.msgpack": flax_bytes(1)})
    m3 = bitmamba.load("owner/flax")
    assert len(calls) == 2 and m3.path != m1.path
    assert not m3.has_tokenizer  # a vocabulary of 300: the bundled GPT-2 tokenizer does not fit
    # A tokenizer.json added beside it is embedded by a new conversion.
    from bitmamba.tokenizer import BUNDLED_GPT2

    tok = BUNDLED_GPT2.read_text(encoding="utf-8")
    add_repo(hf_cache, "owner/flax", {"model.msgpack": flax_bytes(1), "tokenizer.json": tok.encode()})
    m4 = bitmamba.load("owner/flax")
    assert len(calls) == 3 and m4.path not in (m1.path, m3.path)


def pytorch_files(tmp_path, seed=0) -> dict:
    """A random PyTorch checkpoint directory (config.json + model.safetensors) as {name: bytes}."""
    from safetensors.numpy import save_file

    from bitmamba.config import BitMambaConfig
    from bitmamba.formats.checkpoint import expected_shapes

    cfg = BitMambaConfig(vocab_size=300, d_model=256, n_layers=1, n_heads=4, eos_token_id=0)
    r = np.random.default_rng(seed)
    state = {}
    for name, shape in expected_shapes(cfg).items():
        lo, hi = (0.5, 1.5) if name.endswith(("norm.weight", ".D")) else (-1, 1)
        state[name] = r.uniform(lo, hi, shape).astype(np.float32)
    d = tmp_path / f"pt{seed}"
    d.mkdir()
    cfg.to_json(d / "config.json")
    save_file(state, str(d / "model.safetensors"))
    return {p.name: p.read_bytes() for p in d.iterdir()}


def test_pytorch_dir_is_converted(hf_cache, tmp_path):
    pytest.importorskip("gguf")
    pytest.importorskip("safetensors")
    files = pytorch_files(tmp_path)
    add_repo(hf_cache, "owner/pt", {**files, "README.md": b"x"})
    m = bitmamba.load("owner/pt")
    assert m.vocab_size == 300 and m.path.parent == tmp_path / "bm" / "converted"
    # The same weights converted directly give the same logits.
    from bitmamba.convert import convert

    d = tmp_path / "pt0"
    direct = bitmamba.load(convert(d, tmp_path / "direct.gguf").out_path)
    np.testing.assert_array_equal(m.logits([5, 6]), direct.logits([5, 6]))


def test_errors(hf_cache, tiny):
    with pytest.raises(hub.HubError, match="not in the Hugging Face cache and HF_HUB_OFFLINE is set"):
        bitmamba.load("owner/absent")
    add_repo(hf_cache, "owner/docs", {"README.md": b"x", "pytorch_model.bin": b"pickle"})
    with pytest.raises(hub.HubError, match="has no model bitmamba can use.*README.md"):
        bitmamba.load("owner/docs")
    add_repo(hf_cache, "owner/tiny", {"tiny.gguf": Path(tiny).read_bytes()})
    with pytest.raises(hub.HubError, match="not in the Hugging Face cache"):
        bitmamba.load("owner/tiny@nosuchtag")


def test_gated_and_missing_repo_messages():
    from huggingface_hub import errors


    msg = str(hub._map_error(_make(errors.GatedRepoError), "o/n", None))
    assert "gated repo" in msg and "HF_TOKEN" in msg
    assert "no such repo" in str(hub._map_error(_make(errors.RepositoryNotFoundError), "o/n", None))
    assert "no revision 'x'" in str(hub._map_error(_make(errors.RevisionNotFoundError), "o/n", "x"))
    assert hub._map_error(KeyError("k"), "o/n", None) is None


def _make(cls):
    e = cls.__new__(cls)
    Exception.__init__(e, "boom")
    return e


def test_cli_generate_and_convert_by_repo_id(hf_cache, tiny, tmp_path, capsys):
    from bitmamba.cli import main

    add_repo(hf_cache, "owner/tiny", {"tiny.gguf": Path(tiny).read_bytes()})
    assert main(["generate", "owner/tiny", "Hello", "-n", "3", "-t", "0", "--threads", "1"]) == 0
    assert capsys.readouterr().out.startswith("Hello")
    out = tmp_path / "out.gguf"
    assert main(["convert", "hf://owner/tiny", str(out), "--quiet"]) == 0
    assert out.read_bytes()[:4] == b"GGUF"
    capsys.readouterr()
    assert main(["generate", "owner/absent", "Hello"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bitmamba generate: error: owner/absent") and "HF_HUB_OFFLINE" in err[0]


LAZY = r"""
import sys
import bitmamba, bitmamba.cli._common
m = bitmamba.load(sys.argv[1])
assert m.vocab_size == 50257
print("huggingface_hub" in sys.modules)
import bitmamba.hub  # this very checkout's package was the one tested
"""


def test_import_and_local_load_do_not_import_huggingface_hub(tiny):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", LAZY, str(tiny)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "BITMAMBA_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "False"


def test_without_huggingface_hub_the_message_says_both(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(hub.HubError, match=r"owner/x: no such local file.*pip install 'bitmamba\[hub\]'"):
        bitmamba.load("owner/x")


def test_save_pretrained_writes_a_model_card_and_loads_by_repo_id(hf_cache, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    pytest.importorskip("gguf")
    from bitmamba.nn import BitMambaConfig, BitMambaLM

    torch.manual_seed(0)
    m = BitMambaLM(BitMambaConfig(vocab_size=300, d_model=256, n_layers=1, n_heads=4, eos_token_id=0))
    d = tmp_path / "my-model"
    m.save_pretrained(d)
    card = (d / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: bitmamba\n") and "# my-model" in card and "vocabulary 300" in card
    (d / "README.md").write_text("my own card")
    m.save_pretrained(d)  # into the existing directory: the user's card stays
    assert (d / "README.md").read_text() == "my own card"
    # The directory as uploaded to the Hub loads by repo id.
    add_repo(hf_cache, "me/my-model", {p.name: p.read_bytes() for p in d.iterdir()})
    assert bitmamba.load("me/my-model").vocab_size == 300
