"""Deterministic, exactly proportioned mixing of several sample streams, with O(1) random access.

Weights are turned into small integers c_s (largest remainder at a resolution of 1/10000, then divided
by their gcd: 0.6/0.2/0.2 -> 3/1/1). One period of P = sum(c_s) consecutive samples holds exactly c_s
samples of source s, interleaved by cumulative largest remainder: position n of the period goes to the
source whose quota (n+1)*c_s/P is furthest ahead of what it has had (ties -> lower index). So every
prefix of the stream, of any length, holds within one sample of its exact share from each source, and
global sample i maps to (source, that source's local sample index) in closed form: nothing has to be
replayed to resume from a consumed-sample count.

Within a source, local index j is epoch j // n and position j % n; with shuffling, the position goes
through a keyed pseudo-random permutation of [0, n) (a Feistel network, cycle-walked), different per
source and epoch. It is a bijection, so every sample is seen exactly once per epoch, and it needs no
memory, so it scales to billions of samples.
"""
from __future__ import annotations

import math
from fractions import Fraction
from functools import reduce

import numpy as np

RESOLUTION = 10_000
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def integer_weights(weights, resolution: int = RESOLUTION) -> list:
    """Positive weights -> the smallest integers with the same ratios at 1/resolution precision."""
    w = [float(x) for x in weights]
    if not w or any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
        raise ValueError(f"mix weights must be finite, >= 0 and not all zero, got {w}")
    tot = sum(w)
    exact = [x / tot * resolution for x in w]
    ints = [int(math.floor(e)) for e in exact]
    # Largest remainder: hand the leftover units to the biggest fractional parts (ties: lower index).
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - ints[i]), i))
    for i in order[: resolution - sum(ints)]:
        ints[i] += 1
    for x, n in zip(w, ints):
        if x > 0 and n == 0:
            raise ValueError(f"mix weight {x} is below the 1/{resolution} resolution of the mix")
    g = reduce(math.gcd, [n for n in ints if n > 0])
    return [n // g for n in ints]


class MixSchedule:
    """Maps global sample indices to (source index, local index) with exact proportions."""

    def __init__(self, weights):
        self.counts = integer_weights(weights)
        self.period = sum(self.counts)
        P = self.period
        pattern = np.empty(P, dtype=np.int64)
        rank = np.empty(P, dtype=np.int64)
        had = [0] * len(self.counts)
        for n in range(P):
            # Largest deficit (n+1)*c_s/P - had_s, compared exactly in integers (times P).
            s = max(range(len(self.counts)), key=lambda k: ((n + 1) * self.counts[k] - had[k] * P, -k))
            pattern[n], rank[n] = s, had[s]
            had[s] += 1
        assert had == self.counts
        self.pattern, self.rank = pattern, rank
        self._counts = np.asarray(self.counts, dtype=np.int64)

    @property
    def proportions(self) -> list:
        return [Fraction(c, self.period) for c in self.counts]

    def locate(self, index) -> tuple:
        """Global sample index (int or int array, >= 0) -> (source index, local sample index)."""
        i = np.asarray(index, dtype=np.int64)
        if np.any(i < 0):
            raise ValueError("sample indices must be >= 0")
        k, r = np.divmod(i, self.period)
        src = self.pattern[r]
        return src, k * self._counts[src] + self.rank[r]

    def count_before(self, n: int) -> list:
        """How many of the first n global samples come from each source."""
        k, r = divmod(int(n), self.period)
        part = np.bincount(self.pattern[:r], minlength=len(self.counts))
        return [k * c + int(p) for c, p in zip(self.counts, part)]


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def permute(index, n: int, key: int, rounds: int = 4) -> np.ndarray:
    """A keyed bijection of [0, n) applied to `index` (array or int): a balanced Feistel network on the
    smallest even-bit power-of-two domain >= n, cycle-walked back into range (expected < 4 walks)."""
    if n <= 0:
        raise ValueError("permutation size must be positive")
    x = np.array(index, dtype=np.uint64, copy=True, ndmin=1)
    if x.size and int(x.max()) >= n:
        raise ValueError("index out of range for the permutation")
    if n == 1:
        return x.astype(np.int64)
    half = max(1, (int(n - 1).bit_length() + 1) // 2)
    mask = np.uint64((1 << half) - 1)
    sh = np.uint64(half)
    keys = [np.uint64((key * 0x9E3779B97F4A7C15 + r * 0xD1B54A32D192ED03) & 0xFFFFFFFFFFFFFFFF)
            for r in range(rounds)]

    def once(v):
        left, right = v >> sh, v & mask
        for kr in keys:
            left, right = right, left ^ (_mix64(right ^ kr) & mask)
        return (left << sh) | right

    todo = np.ones(x.shape, dtype=bool)
    nn = np.uint64(n)
    while todo.any():
        x[todo] = once(x[todo])
        todo = x >= nn
    return x.astype(np.int64)


def stream_key(seed: int, source: int, epoch) -> np.ndarray:
    """Per (seed, source, epoch) permutation key."""
    base = _mix64(np.array([(int(seed) * 1_000_003 + int(source)) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    e = np.asarray(epoch, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return _mix64(e * np.uint64(0x9E3779B97F4A7C15) + base)
