"""Models by Hugging Face Hub repo id (`owner/name`, `@revision`, `hf://...`), with no network: a hub cache
built here in the hub's own layout read with HF_HUB_OFFLINE=1 (hub_fixtures.add_repo), and for the online
paths (downloads, gated repos, an unreachable hub) a stand-in hub endpoint on 127.0.0.1 (hub_fixtures.FakeHub).

huggingface_hub reads HF_HUB_CACHE / HF_HUB_OFFLINE / HF_ENDPOINT once, at import: in-process tests patch
the values it holds too; the command-line tests run in subprocesses with their own environment."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("bitmamba._C", reason="bitmamba's C++ extension is not built")

import bitmamba  # noqa: E402
from bitmamba.hub import HubError, HubRef, choose, parse  # noqa: E402
from cli_helpers import assert_one_line_error, cli, tiny  # noqa: E402,F401
from hub_fixtures import (TOKEN, FakeHub, add_repo, bit2_bytes, flax_bytes, pytorch_files,  # noqa: E402
                          small_tokenizer, vocab_size_of)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty hub cache, offline, and an empty cache of ours."""
    import huggingface_hub.constants as c

    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))  # no token file of this machine's user
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("BITMAMBA_CACHE", str(tmp_path / "bm"))
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    return cache


def converted_files(tmp_path):
    d = tmp_path / "bm"
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()) if d.is_dir() else []


# ---- names ---------------------------------------------------------------------------------------------
def test_parse(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse("Zhayr1/BitMamba-2-1B") == HubRef("Zhayr1/BitMamba-2-1B")
    assert parse("Zhayr1/BitMamba-2-1B@v1.0") == HubRef("Zhayr1/BitMamba-2-1B", "v1.0")
    assert parse("o/n@refs/pr/1") == HubRef("o/n", "refs/pr/1")
    assert parse("hf://a/b@main") == HubRef("a/b", "main", explicit=True)
    assert parse("hf://a/b/jax_weights/x.msgpack") == HubRef("a/b", None, "jax_weights/x.msgpack", True)
    assert parse("hf://a/b@refs%2Fpr%2F2/m.gguf") == HubRef("a/b", "refs/pr/2", "m.gguf", True)
    assert str(parse("hf://a/b@refs%2Fpr%2F2/m.gguf")) == "hf://a/b@refs%2Fpr%2F2/m.gguf"
    assert str(parse("a/b@v2")) == "a/b@v2" and str(parse("hf://a/b")) == "hf://a/b"
    # Local paths: missing files keep their "not found", odd names are no repo ids.
    for local in ("models/x.gguf", "model.gguf", "runs/ckpt.bin", "a/b/c", "./a/b", "/a/b", "a--b/c", "a/b c"):
        assert parse(local) is None, local
    assert parse(Path("owner/other")) is None  # a Path object is always a path
    (tmp_path / "owner" / "name").mkdir(parents=True)
    assert parse("owner/name") is None  # an existing local path wins
    assert parse("hf://owner/name") == HubRef("owner/name", explicit=True)  # unless hf:// says otherwise
    for bad, why in (("hf://justname", "not a Hugging Face model reference"), ("hf://a/b/../c", "not a path"),
                     ("hf://datasets/x/y", "only model repos")):
        with pytest.raises(HubError, match=why):
            parse(bad)


def test_choose():
    r = HubRef("o/n")
    c = lambda files, ref=r: choose(files, ref)  # noqa: E731
    # The order: GGUF, BIT2, Flax, PyTorch directory.
    assert c(["a.msgpack", "m.bin", "x.gguf", "config.json", "model.safetensors"]).main == "x.gguf"
    assert c(["pytorch_model.bin", "m.bin", "a.msgpack"]).main == "m.bin"
    got = c(["pytorch_model.bin", "tokenizer.bin", "training_args.bin", "jax_weights/a.msgpack"])
    assert (got.kind, got.main) == ("flax", "jax_weights/a.msgpack")
    got = c(["config.json", "model.safetensors", "tokenizer.json", "README.md"])
    assert (got.kind, got.main, got.files) == ("pytorch", "", ["config.json", "model.safetensors", "tokenizer.json"])
    # The nearest tokenizer.json: beside the model, else in a folder above it.
    got = c(["tokenizer.json", "bitmamba_cpp/m.bin", "jax_weights/m.msgpack"])
    assert (got.main, got.tokenizer, got.files) == ("bitmamba_cpp/m.bin", "tokenizer.json",
                                                     ["bitmamba_cpp/m.bin", "tokenizer.json"])
    assert c(["tokenizer.json", "w/tokenizer.json", "w/m.msgpack"]).tokenizer == "w/tokenizer.json"
    assert c(["m.gguf"]).tokenizer is None
    # Several of a kind: a TQ2_0 GGUF, else the one nearest the root, else the user names one.
    assert c(["b-tq1_0.gguf", "a-tq2_0.gguf", "c-f16.gguf"]).main == "a-tq2_0.gguf"
    assert c(["sub/x.bin", "top.bin"]).main == "top.bin"
    assert c(["config.json", "model.safetensors", "ck/config.json", "ck/model.safetensors"]).main == ""
    with pytest.raises(HubError, match=r"o/n has 2 Flax \.msgpack files \(a\.msgpack, b\.msgpack\): name the one "
                                       r"to use, e\.g\. hf://o/n/a\.msgpack"):
        c(["a.msgpack", "b.msgpack"])
    # hf://owner/name/path picks a file or a checkpoint directory.
    assert c(["a.gguf", "w/b.msgpack"], HubRef("o/n", None, "w/b.msgpack")).kind == "flax"
    got = c(["x.gguf", "ck/config.json", "ck/model.safetensors"], HubRef("o/n", None, "ck"))
    assert (got.kind, got.files) == ("pytorch", ["ck/config.json", "ck/model.safetensors"])
    with pytest.raises(HubError, match="no model file or directory w/none.gguf"):
        c(["a.gguf"], HubRef("o/n", None, "w/none.gguf"))
    with pytest.raises(HubError, match="cannot load README.md"):
        c(["a.gguf", "README.md"], HubRef("o/n", None, "README.md"))
    with pytest.raises(HubError, match=r"o/n has no model bitmamba can use .*; it holds README.md, pytorch_model.bin"):
        c(["README.md", "pytorch_model.bin"])


# ---- loading from the cache, offline -----------------------------------------------------------------------
def test_load_gguf_by_id_revision_file_and_hf_prefix(hf_cache, tiny, tmp_path):
    data = Path(tiny).read_bytes()
    c1 = add_repo(hf_cache, "owner/tiny", {"tiny.gguf": data, "README.md": b"hi"})
    m = bitmamba.load("owner/tiny")
    assert m.vocab_size == 50257 and m.has_tokenizer and m.hub == HubRef("owner/tiny")
    # Loaded straight from the hub's cache: no copy, no conversion, nothing in our cache.
    assert os.path.realpath(m.path).startswith(str(hf_cache)) and converted_files(tmp_path) == []
    assert bitmamba.load("hf://owner/tiny").vocab_size == 50257
    assert bitmamba.load(f"owner/tiny@{c1}").vocab_size == 50257
    assert bitmamba.load("hf://owner/tiny/tiny.gguf").vocab_size == 50257
    # A second revision under a tag: @tag picks it, main still gives the first.
    add_repo(hf_cache, "owner/tiny", {"other.bin": bit2_bytes(tmp_path)}, ref="v2")
    assert bitmamba.load("owner/tiny@v2").vocab_size == 300
    assert bitmamba.load("owner/tiny").vocab_size == 50257


def test_local_path_wins_over_repo_id(hf_cache, tiny, tmp_path, monkeypatch):
    add_repo(hf_cache, "owner/tiny", {"m.bin": bit2_bytes(tmp_path)})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "tiny").write_bytes(Path(tiny).read_bytes())
    m = bitmamba.load("owner/tiny")
    assert m.vocab_size == 50257 and m.hub is None  # the local GGUF, not the repo's BIT2
    assert bitmamba.load("hf://owner/tiny").vocab_size == 300


def test_bit2_uses_the_repos_tokenizer_from_a_folder_above(hf_cache, tmp_path):
    tok = small_tokenizer(tmp_path)
    V = vocab_size_of(tok)
    add_repo(hf_cache, "owner/cpp", {"bitmamba_cpp/m.bin": bit2_bytes(tmp_path, vocab=V), "tokenizer.json": tok})
    m = bitmamba.load("owner/cpp")
    assert m.config["format"] == "bit2" and converted_files(tmp_path) == []
    assert m.has_tokenizer and m.tokenizer.decode(m.tokenizer.encode("the cat sat")) == "the cat sat"
    # A tokenizer given by the caller still wins.
    gpt2 = bitmamba.load("owner/cpp", tokenizer=str(ROOT / "python/bitmamba/assets/gpt2"))
    assert gpt2.tokenizer.encode(" river boat") != m.tokenizer.encode(" river boat")


def test_flax_converted_once_then_again_for_a_new_blob(hf_cache, tmp_path, monkeypatch):
    pytest.importorskip("msgpack")
    pytest.importorskip("gguf")
    import hashlib

    import bitmamba.convert as conv

    calls = []
    real = conv.convert
    monkeypatch.setattr(conv, "convert", lambda *a, **k: calls.append(a) or real(*a, **k))
    data = flax_bytes(0)
    add_repo(hf_cache, "owner/flax", {"jax_weights/model.msgpack": data})
    m1 = bitmamba.load("owner/flax")
    assert len(calls) == 1
    # Named by the source's blob hash and the converter version, in a folder of the repo's own.
    want = f"hub/models--owner--flax/{hashlib.sha256(data).hexdigest()}-v{conv.CONVERTER_VERSION}.gguf"
    assert converted_files(tmp_path) == [want]  # and no temporaries left
    assert m1.path == tmp_path / "bm" / want and m1.hub == HubRef("owner/flax")
    assert m1.native.metadata("general.name") == "owner/flax"
    mtime = m1.path.stat().st_mtime_ns
    m2 = bitmamba.load("owner/flax")
    assert len(calls) == 1 and m2.path == m1.path and m1.path.stat().st_mtime_ns == mtime  # from our cache
    np.testing.assert_array_equal(m1.logits([1, 2, 3]), m2.logits([1, 2, 3]))
    assert not m2.has_tokenizer  # a vocabulary of 300, no tokenizer in the repo: ids only
    # A new upload (another blob) converts again, to another cache entry.
    add_repo(hf_cache, "owner/flax", {"jax_weights/model.msgpack": flax_bytes(1)})
    m3 = bitmamba.load("owner/flax")
    assert len(calls) == 2 and m3.path != m1.path and len(converted_files(tmp_path)) == 2
    assert not np.array_equal(m3.logits([1, 2, 3]), m1.logits([1, 2, 3]))
    # A tokenizer.json at the repo's root (the weights in a subfolder) is embedded by a new conversion.
    tok = small_tokenizer(tmp_path)
    V = vocab_size_of(tok)
    add_repo(hf_cache, "owner/flax", {"jax_weights/model.msgpack": flax_bytes(1, V=V), "tokenizer.json": tok})
    m4 = bitmamba.load("owner/flax")
    assert len(calls) == 3 and m4.path not in (m1.path, m3.path)
    assert m4.has_tokenizer and m4.native.metadata("tokenizer.huggingface.json")
    assert bitmamba.load("owner/flax").path == m4.path and len(calls) == 3


def test_a_failed_conversion_leaves_nothing_in_the_cache(hf_cache, tmp_path, monkeypatch):
    pytest.importorskip("msgpack")
    gguf = pytest.importorskip("gguf")
    add_repo(hf_cache, "owner/flax", {"m.msgpack": flax_bytes(0)})
    real = gguf.GGUFWriter.write_tensors_to_file

    def fail(self, *a, **k):  # the header and metadata are in the temporary file by now
        raise OSError("disk went away")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", fail)
    with pytest.raises(OSError, match="disk went away"):
        bitmamba.load("owner/flax")
    assert converted_files(tmp_path) == []
    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", real)
    assert bitmamba.load("owner/flax").vocab_size == 300 and len(converted_files(tmp_path)) == 1


def test_pytorch_dir_is_converted_like_a_local_one(hf_cache, tmp_path):
    pytest.importorskip("gguf")
    pytest.importorskip("safetensors")
    files = pytorch_files(tmp_path)
    add_repo(hf_cache, "owner/pt", {**files, "README.md": b"x", "ckpt/config.json": files["config.json"],
                                    "ckpt/model.safetensors": pytorch_files(tmp_path, seed=1)["model.safetensors"]})
    m = bitmamba.load("owner/pt")  # the root directory: nearest the root
    assert m.vocab_size == 300 and m.path.parent == tmp_path / "bm" / "hub" / "models--owner--pt"
    from bitmamba.convert import convert

    direct = bitmamba.load(convert(tmp_path / "pt0-300", tmp_path / "direct.gguf").out_path)
    np.testing.assert_array_equal(m.logits([5, 6]), direct.logits([5, 6]))
    sub = bitmamba.load("hf://owner/pt/ckpt")
    assert sub.path != m.path and not np.array_equal(sub.logits([5, 6]), m.logits([5, 6]))


def test_partial_snapshot_still_loads(hf_cache, tiny):
    """The hub's tree listing says the commit has more files than the cache holds (a partial download):
    offline, the cached ones are used."""
    add_repo(hf_cache, "owner/part", {"tiny.gguf": Path(tiny).read_bytes()},
             tree_extra={"other/big.msgpack": b"never downloaded"})
    assert bitmamba.load("owner/part").vocab_size == 50257


def test_offline_errors(hf_cache, tiny, tmp_path):
    cache = str(hf_cache)
    with pytest.raises(HubError) as e:
        bitmamba.load("owner/absent")
    msg = str(e.value)
    assert "owner/absent is not in the Hugging Face cache" in msg and "HF_HUB_OFFLINE is set" in msg
    assert cache in msg and "no local file or directory owner/absent" in msg and "\n" not in msg
    with pytest.raises(HubError, match="^hf://owner/absent is not in the Hugging Face cache"):
        bitmamba.load("hf://owner/absent")
    add_repo(hf_cache, "owner/docs", {"README.md": b"x", "pytorch_model.bin": b"pickle"})
    with pytest.raises(HubError, match=r"owner/docs has no model bitmamba can use in the cached snapshot .*"
                                       r"it holds README.md, pytorch_model.bin"):
        bitmamba.load("owner/docs")
    add_repo(hf_cache, "owner/tiny", {"tiny.gguf": Path(tiny).read_bytes()})
    with pytest.raises(HubError, match=r"owner/tiny@nosuchtag \(revision nosuchtag\) is not in the Hugging Face cache"):
        bitmamba.load("owner/tiny@nosuchtag")
    with pytest.raises(HubError, match="no model file or directory nope.gguf in the cached snapshot"):
        bitmamba.load("hf://owner/tiny/nope.gguf")


def test_without_huggingface_hub_the_message_says_both(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # the import fails as if not installed
    with pytest.raises(HubError, match=r"^owner/x: no such local file or directory, and loading it as a repo id "
                                       r"needs huggingface_hub: pip install 'bitmamba\[hub\]'$"):
        bitmamba.load("owner/x")
    with pytest.raises(HubError, match=r"^hf://owner/x: loading from the Hugging Face Hub needs huggingface_hub"):
        bitmamba.load("hf://owner/x")


LAZY = r"""
import sys
import bitmamba, bitmamba.hub, bitmamba.cli._common, bitmamba.convert
m = bitmamba.load(sys.argv[1])
assert m.vocab_size == 50257 and bitmamba.hub.parse(sys.argv[1]) is None
print("huggingface_hub" in sys.modules)
"""


def test_import_and_local_load_do_not_import_huggingface_hub(tiny):
    r = subprocess.run([sys.executable, "-c", LAZY, str(tiny)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "BITMAMBA_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "False"


# ---- convert by repo id --------------------------------------------------------------------------------------
def test_convert_by_repo_id_applies_its_options(hf_cache, tmp_path, capsys):
    pytest.importorskip("msgpack")
    pytest.importorskip("gguf")
    from bitmamba.convert import convert
    from bitmamba.formats.gguf_io import read_gguf

    tok = small_tokenizer(tmp_path)
    add_repo(hf_cache, "owner/flax", {"w/m.msgpack": flax_bytes(0, V=vocab_size_of(tok)), "tokenizer.json": tok})
    capsys.readouterr()
    res = convert("owner/flax", tmp_path / "o.gguf", ternary_type="tq1_0", embed_type="f16", progress=True)
    assert "packing" in capsys.readouterr().err  # the converter's progress bar
    assert res.tokenizer_embedded and "source:     flax (owner/flax at " in res.report
    assert ": w/m.msgpack)" in res.report
    ck = read_gguf(tmp_path / "o.gguf")
    assert ck.name == "owner/flax" and ck.tokenizer_json
    assert converted_files(tmp_path) == []  # an explicit conversion does not fill our cache
    res = convert("owner/flax", tmp_path / "o.bin")
    assert res.target_kind == "bit2" and (tmp_path / "o.bin").read_bytes()[:4] == b"2TIB"


# ---- the command line -------------------------------------------------------------------------------------------
def hub_env(tmp_path, **extra):
    env = {"HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HOME": str(tmp_path / "hfhome"),
           "BITMAMBA_CACHE": str(tmp_path / "bm"), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HOME": str(tmp_path)}
    env.update(extra)
    return env


def test_cli_offline(tmp_path, tiny):
    tok = small_tokenizer(tmp_path)
    add_repo(tmp_path / "hf", "owner/tiny", {"tiny.gguf": Path(tiny).read_bytes()})
    add_repo(tmp_path / "hf", "owner/flax", {"jax_weights/m.msgpack": flax_bytes(0, V=vocab_size_of(tok)),
                                             "tokenizer.json": tok})
    env = hub_env(tmp_path, HF_HUB_OFFLINE="1")
    r = cli("generate", "owner/tiny", "Hello", "-n", "3", "-t", "0", env=env)
    assert r.returncode == 0 and r.stdout.startswith("Hello"), r.stderr
    # A Flax repo: converted on the first run (saying so), loaded from our cache on the second.
    r = cli("generate", "owner/flax", "the cat", "-n", "2", "-t", "0", env=env)
    assert r.returncode == 0 and r.stdout.startswith("the cat"), r.stderr
    assert "bitmamba: converting owner/flax" in r.stderr and "jax_weights/m.msgpack (flax)" in r.stderr
    r = cli("generate", "owner/flax", "the cat", "-n", "2", "-t", "0", env=env)
    assert r.returncode == 0 and "converting" not in r.stderr, r.stderr
    r = cli("chat", "owner/flax", "-n", "2", "-t", "0", stdin="hello\n", env=env)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    r = cli("bench", "owner/tiny", "--prompt-tokens", "4", "--decode-tokens", "2", "--repeats", "1",
            "--bandwidth-mib", "8", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["model"] == "owner/tiny", r.stderr
    out = tmp_path / "o.gguf"
    r = cli("convert", "hf://owner/flax", str(out), "--quiet", env=env)
    assert r.returncode == 0 and out.read_bytes()[:4] == b"GGUF", r.stderr
    # Errors: one line each.
    assert_one_line_error(cli("generate", "owner/absent", "Hello", env=env), "owner/absent is not in the Hugging Face "
                          "cache", "HF_HUB_OFFLINE is set", "no local file or directory owner/absent")
    assert_one_line_error(cli("convert", "owner/absent", str(out), env=env), "bitmamba convert: error: owner/absent")
    assert_one_line_error(cli("generate", "hf://owner/tiny", env=env),
                          "no prompt given (hf://owner/tiny names a model)")
    assert_one_line_error(cli("generate", "hf://owner/tiny/x.gguf", "hi", env=env),
                          "no model file or directory x.gguf in the cached snapshot")


def test_cli_eval_by_repo_id(tmp_path, tiny, data_dir):
    if not (data_dir / "eval").is_dir():
        pytest.skip(f"evaluation data not found at {data_dir / 'eval'}")
    add_repo(tmp_path / "hf", "owner/tiny", {"tiny.gguf": Path(tiny).read_bytes()})
    out = tmp_path / "r.json"
    env = hub_env(tmp_path, HF_HUB_OFFLINE="1")
    r = cli("eval", "owner/tiny", "--tasks", "arc_easy", "--limit", "2", "--data-dir", str(data_dir / "eval"),
            "--output", str(out), env=env)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["config"]["model"] == "owner/tiny" and res["tasks"]["arc_easy"]["n_docs"] == 2
    assert_one_line_error(cli("eval", "owner/absent", "--tasks", "arc_easy", "--data-dir", str(data_dir / "eval"),
                              env=env), "bitmamba eval: error: owner/absent is not in the Hugging Face cache")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_names_the_model_by_its_repo(tmp_path, tiny):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    add_repo(tmp_path / "hf", "owner/tiny", {"tiny.gguf": Path(tiny).read_bytes()})
    env = {"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin", "BITMAMBA_NUM_THREADS": "1",
           **hub_env(tmp_path, HF_HUB_OFFLINE="1")}
    assert_one_line_error(cli("serve", "owner/absent", env=env), "owner/absent is not in the Hugging Face cache")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bitmamba", "serve", "owner/tiny", "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not become healthy in 60 s"
            time.sleep(0.1)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["owner/tiny"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


# ---- online, through a hub endpoint on 127.0.0.1 ------------------------------------------------------------
@pytest.fixture
def fake_hub():
    h = FakeHub()
    yield h
    h.close()


def test_cli_online_download_gated_and_unreachable(tmp_path, tiny, fake_hub):
    data = Path(tiny).read_bytes()
    fake_hub.add("owner/open", {"tiny.gguf": data, "README.md": b"card"})
    fake_hub.add("owner/gated", {"m/tiny.gguf": data}, gated=True)
    env = hub_env(tmp_path, HF_ENDPOINT=fake_hub.url)
    # Downloaded through huggingface_hub into its cache (only the model file), then generating.
    r = cli("generate", "owner/open", "Hello", "-n", "2", "-t", "0", env=env)
    assert r.returncode == 0 and r.stdout.startswith("Hello"), r.stderr
    assert sorted(p.name for p in (tmp_path / "hf" / "models--owner--open" / "snapshots").glob("*/*")) == ["tiny.gguf"]
    assert ("GET", "/owner/open/resolve/main/tiny.gguf", None) in fake_hub.requests
    # A gated repo without a token: what to do; with HF_TOKEN: the download goes through, the token sent.
    line = assert_one_line_error(cli("generate", "owner/gated", "Hello", env=env), "owner/gated is a gated repo")
    assert f"{fake_hub.url}/owner/gated" in line and "HF_TOKEN" in line
    r = cli("generate", "owner/gated", "Hello", "-n", "2", "-t", "0", env={**env, "HF_TOKEN": TOKEN})
    assert r.returncode == 0 and r.stdout.startswith("Hello"), r.stderr
    assert ("GET", "/owner/gated/resolve/main/m/tiny.gguf", f"Bearer {TOKEN}") in fake_hub.requests
    # No such repo online.
    assert_one_line_error(cli("generate", "owner/none", "Hello", env=env), "owner/none: no such model repo",
                          "no local file or directory owner/none")
    # What was downloaded loads offline (the branch name was recorded in the cache)...
    r = cli("generate", "owner/open", "Hello", "-n", "2", "-t", "0", env={**env, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    # ...and with the hub unreachable: the cached copy, saying why; nothing cached: a clear error.
    fake_hub.close()
    r = cli("generate", "owner/open", "Hello", "-n", "2", "-t", "0", env=env)
    assert r.returncode == 0 and "the Hub could not be reached" in r.stderr, r.stderr
    assert_one_line_error(cli("generate", "owner/never", "Hello", env=env),
                          "owner/never is not in the Hugging Face cache", "the Hub could not be reached")


# ---- model cards ------------------------------------------------------------------------------------------------
EVAL = {"results": {"arc_easy": {"acc": 0.25, "acc_stderr": 0.02, "acc_norm": 0.3, "acc_norm_stderr": 0.021},
                    "wikitext2": {"word_perplexity": 9445.1, "byte_perplexity": 5.54, "bits_per_byte": 2.47,
                                  "token_perplexity": 321.0, "tokens": 10}},
        "tasks": {"arc_easy": {"n_docs": 100}, "wikitext2": {"n_docs": 62}}, "config": {"limit": 100}}


def _front_matter(card: str) -> dict:
    yaml = pytest.importorskip("yaml")
    assert card.startswith("---\n")
    return yaml.safe_load(card[4:card.index("\n---\n", 4)])


def test_model_card_metadata():
    from bitmamba.modelcard import MARKER, model_card

    cfg = {"layout": "bitmamba2", "d_model": 256, "n_layers": 2, "n_heads": 4, "d_state": 1, "vocab_size": 300}
    card = model_card(cfg, "my-model", license="mit", base_model="Zhayr1/BitMamba-2-1B",
                      datasets=["HuggingFaceFW/fineweb-edu", "bigcode/the-stack-dedup", "HuggingFaceFW/fineweb-edu"],
                      tags=["yes", "custom"], eval_results=EVAL, training={"steps": 5000, "final_train_loss": 2.5})
    meta = _front_matter(card)
    assert meta["library_name"] == "bitmamba" and meta["pipeline_tag"] == "text-generation"
    assert meta["license"] == "mit" and meta["base_model"] == "Zhayr1/BitMamba-2-1B"
    assert meta["datasets"] == ["HuggingFaceFW/fineweb-edu", "bigcode/the-stack-dedup"]
    assert meta["tags"] == ["bitmamba", "mamba2", "ternary", "text-generation", "yes", "custom"]  # "yes" stays a str
    (idx,) = meta["model-index"]
    assert idx["name"] == "my-model"
    arc, wiki = idx["results"]
    assert arc["dataset"] == {"name": "ARC-Easy", "type": "allenai/ai2_arc", "config": "ARC-Easy", "split": "test"}
    assert [(m["type"], m["value"]) for m in arc["metrics"]] == [("acc", 0.25), ("acc_norm", 0.3)]
    assert wiki["dataset"]["type"] == "EleutherAI/wikitext_document_level"
    assert {m["type"] for m in wiki["metrics"]} == {"word_perplexity", "byte_perplexity", "bits_per_byte",
                                                    "token_perplexity"}
    assert MARKER in card and "| arc_easy | 100 | acc | 0.2500 | ± 0.0200 |" in card
    assert "first 100 documents" in card and "steps 5,000" in card and "License: not stated" not in card
    bare = _front_matter(model_card(cfg))
    assert "license" not in bare and "model-index" not in bare and "datasets" not in bare
    with pytest.raises(ValueError, match="not the output of bitmamba eval"):
        model_card(cfg, eval_results={"acc": 1})


def test_save_pretrained_writes_a_model_card_and_loads_by_repo_id(hf_cache, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    pytest.importorskip("gguf")
    from bitmamba.modelcard import MARKER
    from bitmamba.nn import BitMambaConfig, BitMambaLM

    torch.manual_seed(0)
    m = BitMambaLM(BitMambaConfig(vocab_size=300, d_model=256, n_layers=1, n_heads=4, eos_token_id=0))
    results = tmp_path / "results.json"
    results.write_text(json.dumps(EVAL))
    d = tmp_path / "my-model"
    m.save_pretrained(d, license="apache-2.0", eval_results=results)
    card = (d / "README.md").read_text(encoding="utf-8")
    meta = _front_matter(card)
    assert meta["license"] == "apache-2.0" and meta["model-index"][0]["name"] == "my-model"
    assert "# my-model" in card and "vocabulary 300" in card
    m.save_pretrained(d)  # ours (the marker line is there): rewritten, now without results
    assert "model-index" not in _front_matter((d / "README.md").read_text())
    (d / "README.md").write_text("my own card")
    m.save_pretrained(d, license="mit")  # a card the user wrote stays
    assert (d / "README.md").read_text() == "my own card"
    m.save_pretrained(tmp_path / "nocard", model_card=False)
    assert sorted(p.name for p in (tmp_path / "nocard").iterdir()) == ["config.json", "model.safetensors"]
    with pytest.raises(FileNotFoundError, match="eval results not found"):
        m.save_pretrained(tmp_path / "bad", eval_results=tmp_path / "missing.json")
    assert not (tmp_path / "bad").exists()  # checked before anything was written
    assert MARKER in card
    # The directory as uploaded to the Hub loads by repo id.
    add_repo(hf_cache, "me/my-model", {p.name: p.read_bytes() for p in d.iterdir()})
    assert bitmamba.load("me/my-model").vocab_size == 300
