"""Reading prepared shards as training samples: fixed-length windows from an exactly proportioned mix.

A source's split (all its shards, concatenated) is cut into windows of seq_len + 1 tokens at stride
seq_len (inputs = window[:-1], targets = window[1:], so every token is a target exactly once per
epoch). `MixedDataset.samples(indices)` returns the windows for global sample indices: the mix decides
the source (mixing.MixSchedule), the source's own epoch/permutation decides the window. Samples are a
pure function of (manifest, seq_len, weights, seed, index), which is what makes resuming from a
consumed-sample count exact and data-parallel splitting trivial (see `rank_indices`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .mixing import MixSchedule, permute, stream_key
from .prepare import load_manifest
from .shards import open_shard


class TokenStream:
    """One split of one source: its shards as a single random-access token sequence."""

    def __init__(self, directory, shards: list):
        self.parts = [open_shard(Path(directory) / s["path"]) for s in shards]
        for s, p in zip(shards, self.parts):
            if p.size != s["tokens"]:
                raise ValueError(f"{Path(directory) / s['path']}: {p.size} tokens, manifest says {s['tokens']}")
        sizes = np.array([p.size for p in self.parts], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.size = int(self.offsets[-1])

    def __len__(self) -> int:
        return self.size

    def read(self, start: int, length: int) -> np.ndarray:
        if start < 0 or start + length > self.size:
            raise IndexError(f"read [{start}, {start + length}) outside a stream of {self.size} tokens")
        out = np.empty(length, dtype=np.int64)
        k = int(np.searchsorted(self.offsets, start, side="right")) - 1
        got = 0
        while got < length:
            lo = start + got - int(self.offsets[k])
            part = self.parts[k][lo:lo + length - got]
            out[got:got + part.size] = part
            got += part.size
            k += 1
        return out


def rank_indices(consumed: int, micro_batch: int, micro_step: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """Global sample indices for one micro-batch of one data-parallel rank.

    An optimizer step consumes micro_batch * grad_accum * world_size samples starting at `consumed`;
    micro-step a of rank r takes the block number a * world_size + r. The union over ranks and
    micro-steps is always [consumed, consumed + global batch), so a 1-process run with grad_accum
    multiplied by world_size sees exactly the same samples.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    base = int(consumed) + (int(micro_step) * int(world_size) + int(rank)) * int(micro_batch)
    return np.arange(base, base + int(micro_batch), dtype=np.int64)


class MixedDataset:
    """Training windows from the prepared sources of `data_dir`, mixed by weight (default: the manifest's)."""

    def __init__(self, data_dir, seq_len: int, weights: Optional[dict] = None, seed: int = 0,
                 shuffle: bool = True, split: str = "train"):
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.data_dir = Path(data_dir)
        self.manifest = load_manifest(self.data_dir)
        self.seq_len, self.seed, self.shuffle, self.split = int(seq_len), int(seed), bool(shuffle), split
        msrc = self.manifest["sources"]
        if weights is None:
            weights = {k: v["weight"] for k, v in msrc.items()}
        unknown = set(weights) - set(msrc)
        if unknown:
            raise ValueError(f"mix weights name unknown source(s) {sorted(unknown)}; prepared: {sorted(msrc)}")
        self.names = [k for k in msrc if float(weights.get(k, 0)) > 0]
        if not self.names:
            raise ValueError("no source has a positive mix weight")
        self.weights = [float(weights[k]) for k in self.names]
        self.schedule = MixSchedule(self.weights)
        self.streams = [TokenStream(self.data_dir / k, msrc[k][split]["shards"]) for k in self.names]
        self.n_samples = [(len(s) - 1) // self.seq_len for s in self.streams]
        for k, n, s in zip(self.names, self.n_samples, self.streams):
            if n < 1:
                raise ValueError(f"source {k!r} has {len(s)} {split} tokens: not even one window of "
                                 f"{self.seq_len + 1}; lower seq_len or prepare more data")
        self.vocab_size = int(self.manifest["tokenizer"]["vocab_size"])
        self.eos_id = int(self.manifest["tokenizer"]["eos_id"])

    def window_starts(self, indices) -> tuple:
        """(source index, token offset of the window) for each global sample index."""
        src, local = self.schedule.locate(indices)
        src = np.atleast_1d(src)
        local = np.atleast_1d(local)
        starts = np.empty_like(local)
        for s in np.unique(src):
            sel = src == s
            n = self.n_samples[s]
            epoch, pos = np.divmod(local[sel], n)
            if self.shuffle:
                out = np.empty_like(pos)
                for e in np.unique(epoch):
                    m = epoch == e
                    out[m] = permute(pos[m], n, int(stream_key(self.seed, s, e)))
                pos = out
            starts[sel] = pos * self.seq_len
        return src, starts

    def samples(self, indices) -> np.ndarray:
        """Windows [len(indices), seq_len + 1] (int64) for the given global sample indices."""
        src, starts = self.window_starts(indices)
        out = np.empty((src.size, self.seq_len + 1), dtype=np.int64)
        for i, (s, st) in enumerate(zip(src, starts)):
            out[i] = self.streams[s].read(int(st), self.seq_len + 1)
        return out

    def epochs(self, consumed: int) -> dict:
        """How many passes over each source the first `consumed` samples make (fractional)."""
        c = self.schedule.count_before(consumed)
        return {k: c[i] / self.n_samples[i] for i, k in enumerate(self.names)}


class ValidationSet:
    """Each source's held-out split as consecutive windows (no shuffling), at most max_samples each."""

    def __init__(self, data_dir, seq_len: int, max_samples: int = 64, sources: Optional[list] = None):
        self.manifest = load_manifest(data_dir)
        self.seq_len = int(seq_len)
        names = sources if sources is not None else list(self.manifest["sources"])
        self.windows = {}
        for k in names:
            info = self.manifest["sources"][k]["val"]
            if info["tokens"] < self.seq_len + 1:
                continue  # too little held out for one window: reported as absent, not faked
            st = TokenStream(Path(data_dir) / k, info["shards"])
            n = min(int(max_samples), (len(st) - 1) // self.seq_len)
            self.windows[k] = np.stack([st.read(i * self.seq_len, self.seq_len + 1) for i in range(n)])
