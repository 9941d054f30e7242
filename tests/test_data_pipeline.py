"""bitmamba.data: sources, tokenization, shards, manifest, exact mixing, resumable rank-split sampling."""
from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest

from bitmamba.data import (DataConfig, MixSchedule, MixedDataset, ShardError, TokenStream, ValidationSet,
                           integer_weights, load_manifest, open_shard, permute, prepare_data, rank_indices,
                           read_header, verify_shard)
from bitmamba.data.config import InputSpec, expand
from bitmamba.data.prepare import _is_val
from bitmamba.data.shards import HEADER_SIZE, ShardWriter
from bitmamba.data.sources import iter_documents, list_files

import datagen

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return datagen.prepare(tmp_path_factory.mktemp("prep"))


def _encode(tok_path, docs):
    from tokenizers import Tokenizer

    t = Tokenizer.from_file(str(tok_path))
    out = []
    for d in docs:
        out += t.encode(d.strip(), add_special_tokens=False).ids + [0]
    return out


# ---------------------------------------------------------------- prepare + shards
def test_prepare_round_trip(prepared):
    """Every document comes back, in order, tokenized, EOS-terminated, split train/val by the rule."""
    out, m, docs, tok = prepared
    assert m["tokenizer"]["eos_id"] == 0 and m["dtype"] == "uint16"
    for name, ds in docs.items():
        src = m["sources"][name]
        f = {"prose": 0.1, "stories": 0.1, "code": 0.2}[name]
        val_docs = [d for i, d in enumerate(ds) if _is_val(i, f)]
        train_docs = [d for i, d in enumerate(ds) if not _is_val(i, f)]
        assert val_docs and src["val"]["docs"] == len(val_docs)
        assert src["train"]["docs"] == len(train_docs) and src["documents_read"] == len(ds)
        for split, dl in (("train", train_docs), ("val", val_docs)):
            st = TokenStream(out / name, src[split]["shards"])
            got = st.read(0, len(st)).tolist()
            assert got == _encode(tok, dl)
            assert src[split]["tokens"] == len(got)
            assert sum(s["docs"] for s in src[split]["shards"]) == len(dl)
    # shard_tokens=500 forces several train shards; each is a valid file.
    assert len(m["sources"]["prose"]["train"]["shards"]) > 1
    for name in docs:
        for sh in m["sources"][name]["train"]["shards"]:
            h = verify_shard(out / name / sh["path"])
            assert h["tokens"] <= 500 and h["crc32"] == sh["crc32"]
    assert m["totals"]["documents"] == sum(len(d) for d in docs.values())
    assert load_manifest(out)["sources"].keys() == docs.keys()
    assert not list(out.rglob("*.tmp*"))  # no temporary left (bitmamba.atomic names them .NAME.tmp-PID-XXXX)


def test_prepare_multiprocess_identical(prepared, tmp_path):
    out, m, docs, tok = prepared
    cfg = DataConfig.from_dict(datagen.data_config(out.parent / "corpus", tok, tmp_path / "p2", num_proc=2))
    m2 = prepare_data(cfg, progress=False)
    for name in docs:
        for split in ("train", "val"):
            a = [s["crc32"] for s in m["sources"][name][split]["shards"]]
            b = [s["crc32"] for s in m2["sources"][name][split]["shards"]]
            assert a == b


def test_prepare_limits_and_overwrite(prepared, tmp_path):
    out, _, docs, tok = prepared
    cfg = datagen.data_config(out.parent / "corpus", tok, tmp_path / "p3", total_tokens=300)
    m = prepare_data(DataConfig.from_dict(cfg), progress=False)
    # each source stops at the first document that reaches weight * total_tokens train tokens
    for s in m["sources"].values():
        assert s["train"]["tokens"] >= round(300 * s["weight"])
        assert s["train"]["tokens"] < round(300 * s["weight"]) + 200
    with pytest.raises(FileExistsError):
        prepare_data(DataConfig.from_dict(cfg), progress=False)
    prepare_data(DataConfig.from_dict(cfg), progress=False, overwrite=True)


def test_shard_header_validation(tmp_path):
    w = ShardWriter(tmp_path / "s.bin", vocab_size=1000, eos_id=999)
    w.write(np.arange(10), n_docs=1)
    w.write(np.array([999]), n_docs=1)
    info = w.close()
    assert info["tokens"] == 11 and info["docs"] == 2
    h = read_header(tmp_path / "s.bin")
    assert h["tokens"] == 11 and h["eos_id"] == 999 and h["vocab_size"] == 1000
    assert open_shard(tmp_path / "s.bin").tolist() == list(range(10)) + [999]
    assert (tmp_path / "s.bin").stat().st_size == HEADER_SIZE + 22
    raw = (tmp_path / "s.bin").read_bytes()
    (tmp_path / "trunc.bin").write_bytes(raw[:-2])
    with pytest.raises(ShardError, match="truncated"):
        open_shard(tmp_path / "trunc.bin")
    (tmp_path / "magic.bin").write_bytes(b"XXXXXXXX" + raw[8:])
    with pytest.raises(ShardError, match="magic"):
        open_shard(tmp_path / "magic.bin")
    (tmp_path / "flip.bin").write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    open_shard(tmp_path / "flip.bin")  # header still consistent...
    with pytest.raises(ShardError, match="CRC"):
        verify_shard(tmp_path / "flip.bin")  # ...but the payload check catches it
    with pytest.raises(ShardError, match="too small"):
        (tmp_path / "tiny.bin").write_bytes(b"BM")
        read_header(tmp_path / "tiny.bin")
    w = ShardWriter(tmp_path / "bad.bin", vocab_size=10, eos_id=9)
    with pytest.raises(ValueError, match="outside"):
        w.write(np.array([10]))
    w.abort()
    assert not (tmp_path / "bad.bin").exists() and not list(tmp_path.glob("*.tmp*"))
    # vocabularies over 65536 get 32-bit tokens
    w = ShardWriter(tmp_path / "big.bin", vocab_size=100_000, eos_id=0)
    w.write(np.array([99_999, 0]))
    w.close()
    assert open_shard(tmp_path / "big.bin").dtype == np.dtype("<u4")
    assert open_shard(tmp_path / "big.bin").tolist() == [99_999, 0]


def test_token_stream_reads_across_shards(tmp_path):
    rng = np.random.default_rng(0)
    full = rng.integers(0, 50, 1000)
    shards, pos = [], 0
    for i, n in enumerate([1, 300, 0, 299, 400]):
        w = ShardWriter(tmp_path / f"t-{i}.bin", 50, 0)
        w.write(full[pos:pos + n])
        shards.append(w.close())
        pos += n
    st = TokenStream(tmp_path, shards)
    assert len(st) == 1000
    for _ in range(50):
        a = int(rng.integers(0, 1000))
        n = int(rng.integers(0, 1000 - a + 1))
        assert st.read(a, n).tolist() == full[a:a + n].tolist()
    with pytest.raises(IndexError):
        st.read(990, 11)


# ---------------------------------------------------------------- sources and config
def test_sources_formats(tmp_path):
    (tmp_path / "a.md").write_text("---\ntitle: x\nlayout: page\n---\n\nBody text.\n")
    (tmp_path / "b.txt").write_text("p1 line\n\n  \np2\n\n\np3")
    (tmp_path / "c.json").write_text(json.dumps({"texts": ["one", "two"]}))
    (tmp_path / "d.json").write_text(json.dumps([{"body": "x"}, {"body": "y"}]))
    (tmp_path / "e.jsonl").write_text('{"t": "a"}\n\n{"t": "b"}\n')
    docs = lambda **k: list(iter_documents(InputSpec.from_dict(k, "t")))  # noqa: E731
    assert docs(files=str(tmp_path / "a.md"), strip_front_matter=True) == ["Body text."]
    assert docs(files=str(tmp_path / "a.md"))[0].startswith("---")
    assert docs(files=str(tmp_path / "b.txt"), split="blank_line") == ["p1 line", "p2", "p3"]
    assert docs(files=str(tmp_path / "b.txt"), split="line") == ["p1 line", "", "", "p2", "", "", "p3"]
    assert docs(files=str(tmp_path / "c.json"), field="texts") == ["one", "two"]
    assert docs(files=str(tmp_path / "d.json"), field="body") == ["x", "y"]
    assert docs(files=str(tmp_path / "e.jsonl"), field="t") == ["a", "b"]
    with pytest.raises(ValueError, match="no field 'text'"):
        docs(files=str(tmp_path / "e.jsonl"))
    with pytest.raises(FileNotFoundError, match="matched no files"):
        docs(files=str(tmp_path / "*.nothing"))
    with pytest.raises(ValueError, match="format"):
        (tmp_path / "f.xyz").write_text("x")
        docs(files=str(tmp_path / "f.xyz"))
    assert docs(files=str(tmp_path / "f.xyz"), format="txt") == ["x"]


def test_parquet_source(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["def f(): pass", None, "x = 1"], "n": [1, 2, 3]}), tmp_path / "p.parquet")
    spec = InputSpec.from_dict({"files": str(tmp_path / "*.parquet"), "field": "content"}, "t")
    assert list(iter_documents(spec)) == ["def f(): pass", "", "x = 1"]
    with pytest.raises(ValueError, match="no column"):
        list(iter_documents(InputSpec.from_dict({"files": str(tmp_path / "p.parquet")}, "t")))


def test_hf_source_needs_datasets():
    spec = InputSpec.from_dict({"hf": "HuggingFaceFW/fineweb-edu", "config": "sample-10BT"}, "t")
    import sys

    # Where datasets is installed, hide it: a None entry in sys.modules makes `import datasets` fail.
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "datasets", None)
        with pytest.raises(ImportError, match="datasets"):
            next(iter_documents(spec))


def test_hf_source_streams_with_datasets(monkeypatch):
    """The Hub path with a stand-in `datasets` module: streaming=True, the gated token from the
    environment, config/data_dir/split passed through, the field read from each row."""
    import sys
    import types

    calls = []

    def load_dataset(path, **kw):  # datasets.load_dataset(path, name=None, data_dir=None, ...)
        calls.append((path, kw))
        return iter([{"content": " a = 1 ", "x": 0}, {"content": "b = 2"}])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    spec = InputSpec.from_dict({"hf": "bigcode/the-stack-dedup", "data_dir": "data/python", "field": "content"}, "t")
    assert list(iter_documents(spec)) == ["a = 1", "b = 2"]
    assert calls == [("bigcode/the-stack-dedup", {"name": None, "data_dir": "data/python", "split": "train",
                                                  "streaming": True, "token": "hf_test"})]
    bad = InputSpec.from_dict({"hf": "x/y", "field": "text"}, "t")
    with pytest.raises(ValueError, match="no field 'text'"):
        list(iter_documents(bad))


def test_config_errors_and_expansion(tmp_path, monkeypatch):
    import sysconfig

    assert expand("${stdlib}/x") == sysconfig.get_paths()["stdlib"] + "/x"
    monkeypatch.setenv("BM_TEST_DIR", "/abc")
    assert expand("${BM_TEST_DIR}/y ${BM_UNSET_X:-def}") == "/abc/y def"
    with pytest.raises(ValueError, match="BM_UNSET_X"):
        expand("${BM_UNSET_X}")
    base = {"sources": [{"name": "a", "weight": 1, "inputs": [{"files": "x.txt"}]}]}
    DataConfig.from_dict(base)
    for bad, msg in [({**base, "bogus": 1}, "unknown key"),
                     ({"sources": [{"name": "a", "weight": 1, "inputs": [{"files": "x", "hf": "y"}]}]}, "exactly one"),
                     ({"sources": [{"name": "a/b", "weight": 1, "inputs": [{"files": "x"}]}]}, "source name"),
                     ({"sources": [{"name": "a", "weight": -1, "inputs": [{"files": "x"}]}]}, "weight"),
                     ({"sources": [{"name": "a", "weight": 1, "inputs": [{"files": "x", "split": "para"}]}]}, "split"),
                     ({"sources": base["sources"] * 2}, "duplicate")]:
        with pytest.raises(ValueError, match=msg):
            DataConfig.from_dict(bad)


def test_stdlib_glob_excludes_site_packages():
    spec = InputSpec.from_dict({"files": "${stdlib}/**/*.py", "exclude": ["site-packages/**", "**/test/**"]}, "t")
    files = list_files(spec)
    assert files and not any("site-packages" in f for f in files)
    assert not any("/test/" in f for f in files)
    assert any(f.endswith("/os.py") for f in files)


def test_shipped_data_configs_resolve(data_dir, monkeypatch):
    """The shipped configs parse; every local glob of offline-demo matches files; the GPT-2 tokenizer
    (bundled, and the shared copy with its defects) encodes exactly as bitmamba.Tokenizer does."""
    import warnings

    from bitmamba.data.tokenizing import load_tokenizer, tokenizer_info
    from bitmamba.tokenizer import Tokenizer

    monkeypatch.setenv("BITMAMBA_SHARED", str(data_dir.parent))
    cur = DataConfig.from_yaml(ROOT / "configs/data/curriculum.yaml")
    assert [s.weight for s in cur.sources] == [0.6, 0.2, 0.2]
    assert [s.inputs[0].hf for s in cur.sources] == ["HuggingFaceFW/fineweb-edu", "HuggingFaceTB/cosmopedia",
                                                      "bigcode/the-stack-dedup"]
    demo = DataConfig.from_yaml(ROOT / "configs/data/offline-demo.yaml")
    assert [s.weight for s in demo.sources] == [0.6, 0.2, 0.2]
    for s in demo.sources:
        for spec in s.inputs:
            assert list_files(spec)
        assert s.val_fraction > 0
    text = "Hello world, Claude said:\n\tdef f(x):  return x  # ünïcode"
    ref = Tokenizer.gpt2().encode(text)
    for path in (demo.tokenizer, str(data_dir / "tokenizers/gpt2/tokenizer.json")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the known defects are repaired, not warned about
            assert tokenizer_info(path, demo.eos_token) == {"vocab_size": 50257, "eos_id": 50256}
            assert load_tokenizer(path).encode(text, add_special_tokens=False).ids == list(ref)
    assert load_tokenizer(demo.tokenizer).encode(" Claude").ids == [40559]


# ---------------------------------------------------------------- mixing
def test_integer_weights():
    assert integer_weights([0.6, 0.2, 0.2]) == [3, 1, 1]
    assert integer_weights([60, 20, 20]) == [3, 1, 1]
    assert integer_weights([1, 0, 1]) == [1, 0, 1]
    assert integer_weights([1 / 3, 2 / 3]) == [3333, 6667]
    for bad in ([], [0, 0], [-1, 2], [float("nan")], [1e-9, 1]):
        with pytest.raises(ValueError):
            integer_weights(bad)


@pytest.mark.parametrize("weights", [[0.6, 0.2, 0.2], [1], [0.5, 0.5], [0.07, 0.3, 0.63], [5, 1, 0, 3, 2]])
def test_mix_exact_prefix_proportions(weights):
    """Every prefix of the stream is within one sample of its exact share, and each source's local
    indices are 0, 1, 2, ... in order (no gaps, no repeats)."""
    ms = MixSchedule(weights)
    n = 3 * ms.period + 17
    src, local = ms.locate(np.arange(n))
    counts = np.zeros(len(weights), dtype=np.int64)
    for i in range(n):
        s = src[i]
        assert local[i] == counts[s]
        counts[s] += 1
        target = (i + 1) * np.asarray(ms.counts) / ms.period
        assert np.all(np.abs(counts - target) < 1.0 + 1e-9)
        if (i + 1) % ms.period == 0:
            assert counts.tolist() == [c * (i + 1) // ms.period for c in ms.counts]
    assert ms.count_before(n) == counts.tolist()
    # random access agrees with the sequential walk
    idx = np.array([0, n - 1, 5, ms.period, 10**12 + 3])
    s2, l2 = ms.locate(idx)
    assert s2[:4].tolist() == src[idx[:4]].tolist() and l2[:4].tolist() == local[idx[:4]].tolist()
    k, r = divmod(10**12 + 3, ms.period)
    assert l2[4] == k * ms.counts[s2[4]] + int(np.sum(ms.pattern[:r] == s2[4]))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_permute_is_bijection(n):
    a = permute(np.arange(n), n, key=12345)
    assert sorted(a.tolist()) == list(range(n))
    if n >= 64:
        b = permute(np.arange(n), n, key=54321)
        assert not np.array_equal(a, b) and not np.array_equal(a, np.arange(n))
    assert permute(n - 1, n, key=12345).tolist() == [a[n - 1]]


# ---------------------------------------------------------------- dataset
def test_mixed_dataset_windows(prepared):
    out, m, _, _ = prepared
    T = 8
    ds = MixedDataset(out, seq_len=T, seed=7)
    assert ds.names == ["prose", "stories", "code"] and ds.schedule.counts == [3, 1, 1]
    n = 5 * max(ds.n_samples) + 3  # several epochs of the small sources
    idx = np.arange(n)
    src, starts = ds.window_starts(idx)
    x = ds.samples(idx)
    assert x.shape == (n, T + 1) and x.dtype == np.int64
    for s in range(3):
        ns = ds.n_samples[s]
        st = starts[src == s]
        # each epoch visits every window exactly once, in a different order per epoch
        for e in range(len(st) // ns):
            ep = st[e * ns:(e + 1) * ns]
            assert sorted(ep.tolist()) == [j * T for j in range(ns)]
        if len(st) >= 2 * ns and ns > 3:
            assert not np.array_equal(st[:ns], st[ns:2 * ns])
    # window contents are the stream slices
    for i in (0, 1, 17, n - 1):
        assert x[i].tolist() == ds.streams[src[i]].read(int(starts[i]), T + 1).tolist()
    # determinism, resumability and seeds
    assert np.array_equal(MixedDataset(out, seq_len=T, seed=7).samples(idx[40:60]), x[40:60])
    assert not np.array_equal(MixedDataset(out, seq_len=T, seed=8).samples(idx[:60]), x[:60])
    seq = MixedDataset(out, seq_len=T, seed=7, shuffle=False)
    s0, st0 = seq.window_starts(np.arange(10))
    assert st0[s0 == 0].tolist() == [0, T, 2 * T, 3 * T, 4 * T, 5 * T]
    # a mix override and its errors
    only = MixedDataset(out, seq_len=T, weights={"code": 1.0})
    assert only.names == ["code"]
    with pytest.raises(ValueError, match="unknown source"):
        MixedDataset(out, seq_len=T, weights={"web": 1.0})
    with pytest.raises(ValueError, match="not even one window"):
        MixedDataset(out, seq_len=10**6)
    ep = ds.epochs(n)
    assert math.isclose(ep["stories"], ds.schedule.count_before(n)[1] / ds.n_samples[1])


def test_rank_indices_partition():
    """Ranks x micro-steps tile each optimizer step's global batch exactly, as 1 process would."""
    mb, accum, world, consumed = 3, 2, 4, 1000
    got = np.concatenate([rank_indices(consumed, mb, a, r, world) for a in range(accum) for r in range(world)])
    assert sorted(got.tolist()) == list(range(consumed, consumed + mb * accum * world))
    single = np.concatenate([rank_indices(consumed, mb, a) for a in range(accum * world)])
    assert sorted(single.tolist()) == sorted(got.tolist())
    with pytest.raises(ValueError):
        rank_indices(0, 2, 0, rank=2, world_size=2)


def test_validation_set(prepared):
    out, m, _, _ = prepared
    v = ValidationSet(out, seq_len=4, max_samples=3)
    for name, w in v.windows.items():
        st = TokenStream(out / name, m["sources"][name]["val"]["shards"])
        assert w.shape[1] == 5 and 1 <= len(w) <= 3
        assert w[1].tolist() == st.read(4, 5).tolist()
    big = ValidationSet(out, seq_len=10**5)
    assert big.windows == {}  # too little held out: absent, not padded


def test_cli_prepare_data(prepared, tmp_path, capsys):
    import yaml

    from bitmamba.cli import main

    out, _, _, tok = prepared
    cfg = datagen.data_config(out.parent / "corpus", tok, tmp_path / "cli")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["prepare-data", str(tmp_path / "c.yaml"), "--no-progress", "--verify"]) == 0
    text = capsys.readouterr().out
    assert "all shards verified" in text and "prose" in text
    assert load_manifest(tmp_path / "cli")["totals"]["train_tokens"] > 0
    assert main(["prepare-data", str(tmp_path / "c.yaml"), "--no-progress"]) == 1  # exists: clear error
    assert "overwrite" in capsys.readouterr().err


def test_prepare_trains_a_bpe_tokenizer(tmp_path):
    from tokenizers import Tokenizer

    datagen.write_corpus(tmp_path / "corpus")
    base = datagen.data_config(tmp_path / "corpus", tmp_path / "unused.json", tmp_path / "out",
                               train_tokenizer={"vocab_size": 300, "sample_chars": 20000})
    m = prepare_data(DataConfig.from_dict(base), progress=False)
    tok_path = tmp_path / "out" / "tokenizer.json"
    assert m["tokenizer"]["path"] == str(tok_path) and m["tokenizer"]["eos_id"] == 0
    assert 257 < m["tokenizer"]["vocab_size"] <= 300
    tok = Tokenizer.from_file(str(tok_path))
    st = TokenStream(tmp_path / "out" / "stories", m["sources"]["stories"]["train"]["shards"])
    ids = st.read(0, len(st)).tolist()
    first = ids[: ids.index(0)]
    text = tok.decode(first)
    assert text and text in (tmp_path / "corpus" / "stories.txt").read_text()
    assert tok.encode("zebra ünïcode ✓").ids  # byte fallback: any text encodes
    with pytest.raises(ValueError, match="vocab_size"):
        DataConfig.from_dict({**base, "train_tokenizer": {"vocab_size": 100}})


def test_multiprocess_tokenizing_reads_lazily(tmp_path):
    """With worker processes, only a bounded number of batches is read ahead of what the caller
    consumed: a streamed source must not be drained past max_tokens."""
    from bitmamba.data.tokenizing import encode_batches

    tok = datagen.make_tokenizer(tmp_path / "tok.json")
    pulled = []

    def batches():
        for i in range(1000):
            pulled.append(i)
            yield ["the cat sat"] * 2

    got = []
    for toks, lens in encode_batches(batches(), str(tok), 0, num_proc=2):
        got.append(lens.tolist())
        if len(got) == 3:
            break
    assert got == [[lens[0], lens[1]]] * 3 and len(pulled) <= 3 + 2 * 2 + 1


def test_batches_bounded_by_docs_and_chars():
    from bitmamba.data.prepare import _batched

    docs = ["a" * 5, "b" * 50, "c", "d", "e" * 200, "f"]
    assert [len(b) for b in _batched(iter(docs), 3, 40)] == [2, 3, 1]
    assert [len(b) for b in _batched(iter(docs), 2, 10**9)] == [2, 2, 2]
    assert list(_batched(iter([]), 2, 10)) == []
