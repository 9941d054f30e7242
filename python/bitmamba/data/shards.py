"""Token shard files: a 64-byte header, then the tokens as little-endian uint16 (uint32 if vocab > 65536).

Header (little-endian):
    0   8s   magic b"BMTOKENS"
    8   u32  version (1)
    12  u32  bytes per token (2 or 4)
    16  u64  number of tokens
    24  u64  number of documents (EOS tokens written by the pipeline)
    32  u32  vocabulary size
    36  u32  EOS token id
    40  u32  CRC-32 of the token bytes
    44  20x  zero
A shard is written to a temporary name and renamed when complete (bitmamba.atomic: fsync, permissions,
stale temporaries of dead writers removed, a full disk reported as such), so a file with the final name
is never half-written. `open_shard` checks magic, version, token width and the file size against the
header; `verify_shard` also checks the CRC and that every token is < vocab size.
"""
from __future__ import annotations

import contextlib
import struct
import zlib
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

MAGIC = b"BMTOKENS"
VERSION = 1
HEADER = struct.Struct("<8sIIQQIII20x")
HEADER_SIZE = HEADER.size  # 64
assert HEADER_SIZE == 64


class ShardError(ValueError):
    """A token shard that is missing, truncated or not a shard."""


def token_dtype(vocab_size: int) -> np.dtype:
    if vocab_size <= 0:
        raise ValueError(f"vocab size must be positive, got {vocab_size}")
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


class ShardWriter:
    """Streams token arrays into one shard file."""

    def __init__(self, path, vocab_size: int, eos_id: int):
        self.path = Path(path)
        self.dtype = token_dtype(vocab_size)
        self.vocab_size, self.eos_id = int(vocab_size), int(eos_id)
        if not 0 <= self.eos_id < self.vocab_size:
            raise ValueError(f"EOS id {eos_id} outside the vocabulary [0, {vocab_size})")
        self.n_tokens = self.n_docs = 0
        self._crc = 0
        # The temporary stays open across write() calls: the atomic_path context is entered here and
        # left by close() (rename into place) or abort() (the temporary removed).
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        self._f = open(self._tmp, "wb")
        self._f.write(b"\0" * HEADER_SIZE)

    def write(self, tokens: np.ndarray, n_docs: int = 0) -> None:
        t = np.asarray(tokens)
        if t.size and (t.min() < 0 or t.max() >= self.vocab_size):
            raise ValueError(f"token ids outside [0, {self.vocab_size}) in {self.path.name}")
        b = t.astype(self.dtype, copy=False).tobytes()
        self._f.write(b)
        self._crc = zlib.crc32(b, self._crc)
        self.n_tokens += t.size
        self.n_docs += int(n_docs)

    def close(self) -> dict:
        self._f.seek(0)
        self._f.write(HEADER.pack(MAGIC, VERSION, self.dtype.itemsize, self.n_tokens, self.n_docs,
                                  self.vocab_size, self.eos_id, self._crc & 0xFFFFFFFF))
        self._f.close()
        self._stack.close()  # fsync + rename
        return {"path": self.path.name, "tokens": self.n_tokens, "docs": self.n_docs,
                "crc32": self._crc & 0xFFFFFFFF}

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        try:  # leave the atomic_path context as a failure: it removes the temporary, and re-raises
            self._stack.__exit__(_Aborted, _Aborted(), None)
        except _Aborted:
            pass


class _Aborted(Exception):
    """ShardWriter.abort's way out of its atomic_path context."""


def read_header(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ShardError(f"token shard not found: {path}")
    size = path.stat().st_size
    if size < HEADER_SIZE:
        raise ShardError(f"{path}: {size} bytes is too small for a token shard header ({HEADER_SIZE})")
    with open(path, "rb") as f:
        magic, version, width, n_tok, n_docs, vocab, eos, crc = HEADER.unpack(f.read(HEADER_SIZE))
    if magic != MAGIC:
        raise ShardError(f"{path}: not a bitmamba token shard (magic {magic!r})")
    if version != VERSION:
        raise ShardError(f"{path}: shard version {version} is not supported (expected {VERSION})")
    if width not in (2, 4) or token_dtype(vocab).itemsize != width:
        raise ShardError(f"{path}: token width {width} does not fit vocab size {vocab}")
    if not eos < vocab:
        raise ShardError(f"{path}: EOS id {eos} >= vocab size {vocab}")
    expect = HEADER_SIZE + n_tok * width
    if size != expect:
        raise ShardError(f"{path}: file is {size} bytes but its header says {n_tok} tokens ({expect} bytes); "
                         f"truncated or corrupt")
    return {"tokens": n_tok, "docs": n_docs, "vocab_size": vocab, "eos_id": eos, "crc32": crc,
            "dtype": np.dtype("<u2") if width == 2 else np.dtype("<u4")}


def open_shard(path) -> np.ndarray:
    """The shard's tokens as a read-only memory map (validated header)."""
    h = read_header(path)
    if h["tokens"] == 0:
        return np.zeros(0, dtype=h["dtype"])
    return np.memmap(path, dtype=h["dtype"], mode="r", offset=HEADER_SIZE, shape=(h["tokens"],))


def verify_shard(path) -> dict:
    """Full check: header, size, CRC-32 of the payload, token range. Returns the header."""
    h = read_header(path)
    tok = open_shard(path)
    crc = 0
    step = 1 << 22
    for i in range(0, tok.size, step):
        chunk = np.asarray(tok[i:i + step])
        crc = zlib.crc32(chunk.tobytes(), crc)
        if chunk.size and int(chunk.max()) >= h["vocab_size"]:
            raise ShardError(f"{path}: token id {int(chunk.max())} >= vocab size {h['vocab_size']}")
    if (crc & 0xFFFFFFFF) != h["crc32"]:
        raise ShardError(f"{path}: CRC-32 mismatch (payload corrupt)")
    return h
