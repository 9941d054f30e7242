"""`prepare_data`: read every source, tokenize, write train/validation shards and a manifest.

Output layout (``output`` in the config)::

    manifest.json                      written last: its presence means the directory is complete
    <source>/train-00000.bin ...       token shards (see shards.py)
    <source>/val-00000.bin             the held-out documents of that source

Validation documents are chosen by position: with fraction f, document i is held out when
ceil((i+1) f) > ceil(i f) (so document 0 always is, and exactly ceil(n f) of the first n are),
until the source's val_max_tokens is reached. Every document ends with the EOS token.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .config import DataConfig, SourceSpec
from ..atomic import atomic_write
from .shards import ShardWriter
from .sources import describe, iter_documents
from .tokenizing import encode_batches, tokenizer_info, train_bpe

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def _is_val(i: int, f: float) -> bool:
    return f > 0 and math.ceil((i + 1) * f) > math.ceil(i * f)


def _round_robin(iters: list) -> Iterator[str]:
    iters = list(iters)
    while iters:
        alive = []
        for it in iters:
            try:
                yield next(it)
                alive.append(it)
            except StopIteration:
                pass
        iters = alive


def _source_docs(src: SourceSpec) -> Iterator[str]:
    if src.interleave:
        docs = _round_robin([iter_documents(s) for s in src.inputs])
    else:
        docs = (d for s in src.inputs for d in iter_documents(s))
    n = 0
    for doc in docs:
        if len(doc) < src.min_chars:
            continue
        yield doc
        n += 1
        if src.max_docs is not None and n >= src.max_docs:
            return


def _batched(it, n: int, max_chars: int):
    """Batches of up to n documents or max_chars characters (at least one document each), so a few
    book-length documents do not make one huge batch that overshoots max_tokens."""
    batch, chars = [], 0
    for doc in it:
        batch.append(doc)
        chars += len(doc)
        if len(batch) >= n or chars >= max_chars:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


class _SplitWriter:
    """Rolls shards of at most shard_tokens tokens for one split of one source."""

    def __init__(self, dir: Path, split: str, shard_tokens: int, vocab: int, eos: int):
        self.dir, self.split, self.cap = dir, split, shard_tokens
        self.vocab, self.eos = vocab, eos
        self.shards: list = []
        self.tokens = self.docs = 0
        self._w: Optional[ShardWriter] = None

    def _roll(self):
        if self._w is not None:
            self.shards.append(self._w.close())
        self._w = ShardWriter(self.dir / f"{self.split}-{len(self.shards):05d}.bin", self.vocab, self.eos)

    def write_doc(self, tokens: np.ndarray) -> None:
        if self._w is None:
            self._roll()
        # A document may straddle two shards: readers see each split as one concatenated stream.
        pos = 0
        while pos < tokens.size:
            room = self.cap - self._w.n_tokens
            if room == 0:
                self._roll()
                continue
            part = tokens[pos:pos + room]
            pos += part.size
            self._w.write(part, n_docs=1 if pos == tokens.size else 0)
        self.tokens += tokens.size
        self.docs += 1

    def close(self) -> dict:
        if self._w is None:
            self._roll()  # an empty shard still marks the split as present
        self.shards.append(self._w.close())
        self._w = None
        return {"tokens": self.tokens, "docs": self.docs, "shards": self.shards}

    def abort(self):
        if self._w is not None:
            self._w.abort()


def _tokenizer_sample(cfg: DataConfig, budget: int) -> Iterator[str]:
    """Training documents (never held-out ones) from each source, budget * weight characters each."""
    tot = sum(s.weight for s in cfg.sources)
    for src in cfg.sources:
        want = int(budget * src.weight / tot)
        got = 0
        for i, doc in enumerate(_source_docs(src)):
            if got >= want:
                break
            if _is_val(i, src.val_fraction):
                continue
            doc = doc[: want - got]
            got += len(doc)
            yield doc


def _train_tokenizer(cfg: DataConfig, path: str, progress: bool) -> None:
    tt = cfg.train_tokenizer
    budget = int(tt.get("sample_chars", 20_000_000))
    if progress:
        print(f"training a byte-level BPE tokenizer (vocab {tt['vocab_size']}) on {budget:,} characters of the mix")
    train_bpe(_tokenizer_sample(cfg, budget), int(tt["vocab_size"]), cfg.eos_token, path,
              int(tt.get("min_frequency", 2)))


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def prepare_data(cfg: DataConfig, output: Optional[str] = None, overwrite: bool = False,
                 progress: bool = True, num_proc: Optional[int] = None) -> dict:
    """Tokenize every source of `cfg` into shards under `output` (default cfg.output); returns the manifest."""
    out = Path(output or cfg.output)
    if (out / MANIFEST).exists() and not overwrite:
        raise FileExistsError(f"{out} already holds prepared data ({MANIFEST}); pass overwrite=True / --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    tokenizer_path = cfg.tokenizer
    if cfg.train_tokenizer is not None:
        tokenizer_path = str(out / "tokenizer.json")
        _train_tokenizer(cfg, tokenizer_path, progress)
    info = tokenizer_info(tokenizer_path, cfg.eos_token)
    vocab, eos = info["vocab_size"], info["eos_id"]
    nproc = int(num_proc or cfg.num_proc)
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a convenience, never a requirement
        tqdm = None

    t0 = time.time()
    sources = {}
    for src in cfg.sources:
        sdir = out / src.name
        if sdir.exists():
            shutil.rmtree(sdir)
        sdir.mkdir(parents=True)
        train = _SplitWriter(sdir, "train", int(cfg.shard_tokens), vocab, eos)
        val = _SplitWriter(sdir, "val", int(cfg.shard_tokens), vocab, eos)
        bar = None
        if progress and tqdm is not None:
            bar = tqdm(total=src.max_tokens, unit="tok", unit_scale=True, desc=f"{src.name:>10s}", dynamic_ncols=True)
        n_doc = 0
        try:
            docs = _source_docs(src)
            batches = _batched(docs, int(cfg.batch_docs), int(cfg.batch_chars))
            done = False
            for tokens, lens in encode_batches(batches, tokenizer_path, eos, nproc):
                pos = 0
                for n in lens:
                    d = tokens[pos:pos + n]
                    pos += n
                    if _is_val(n_doc, src.val_fraction) and val.tokens < src.val_max_tokens:
                        val.write_doc(d)
                    else:
                        train.write_doc(d)
                        if bar is not None:
                            bar.update(int(n))
                    n_doc += 1
                    if src.max_tokens is not None and train.tokens >= src.max_tokens:
                        done = True
                        break
                if done:
                    break
        except BaseException:
            train.abort()
            val.abort()
            raise
        finally:
            if bar is not None:
                bar.close()
        if train.tokens == 0:
            train.abort()
            val.abort()
            raise ValueError(f"source {src.name!r} produced no training tokens (all documents empty or held out)")
        sources[src.name] = {
            "weight": src.weight,
            "inputs": [describe(s) for s in src.inputs],
            "documents_read": n_doc,
            "train": train.close(),
            "val": val.close(),
        }

    manifest = {
        "format": "bitmamba-token-shards",
        "version": MANIFEST_VERSION,
        "name": cfg.name,
        "tokenizer": {"path": os.path.abspath(tokenizer_path), "sha256": _sha256(tokenizer_path),
                      "vocab_size": vocab, "eos_id": eos, "eos_token": cfg.eos_token,
                      "trained": cfg.train_tokenizer},
        "dtype": "uint16" if vocab <= 1 << 16 else "uint32",
        "sources": sources,
        "totals": {
            "train_tokens": sum(s["train"]["tokens"] for s in sources.values()),
            "val_tokens": sum(s["val"]["tokens"] for s in sources.values()),
            "documents": sum(s["documents_read"] for s in sources.values()),
        },
        "seconds": round(time.time() - t0, 2),
        "config": cfg.to_dict(),
    }
    with atomic_write(out / MANIFEST) as f:
        f.write((json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return manifest


def load_manifest(data_dir) -> dict:
    p = Path(data_dir) / MANIFEST
    if not p.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {data_dir}: run `bitmamba prepare-data CONFIG` first "
                                f"(or the preparation did not finish)")
    m = json.loads(p.read_text(encoding="utf-8"))
    if m.get("format") != "bitmamba-token-shards" or m.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{p}: not a bitmamba token-shard manifest of version {MANIFEST_VERSION}")
    return m
