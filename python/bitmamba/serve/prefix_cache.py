"""SSM states keyed by the token prefix they have seen, bounded in bytes, least recently used out.

A Mamba state is a fixed-size summary of everything a sequence has read (a few hundred KiB to a few
MiB, whatever the length), so caching the state after a prompt, or after a whole completion, lets a
request that extends it (the next turn of a chat) restore it and prefill only the new tokens. The
engine's prefill is exact under any split of the tokens (tests/test_serve_engine.py), so a request
served from the cache gets bit for bit the output it would get from scratch.

Used by the scheduler thread only; the counters may be read from any thread.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple


class PrefixCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max(0, int(max_bytes))
        self._entries: "OrderedDict[tuple, object]" = OrderedDict()  # key -> State, oldest first
        self._by_len: Dict[int, set] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.hit_tokens = 0
        self.insertions = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, ids: Sequence[int]) -> Tuple[int, Optional[object]]:
        """(n, a copy of the state that has seen ids[:n]) for the longest cached prefix of ids, or
        (0, None). The entry becomes the most recently used."""
        n = len(ids)
        for length in sorted((L for L in self._by_len if L <= n), reverse=True):
            key = tuple(ids[:length])
            if key in self._by_len[length]:
                self._entries.move_to_end(key)
                self.hits += 1
                self.hit_tokens += length
                return length, self._entries[key].copy()
        self.misses += 1
        return 0, None

    def insert(self, ids: Sequence[int], state) -> bool:
        """Keep a copy of `state`, which has seen exactly ids (and holds the logits after the last).
        False when the cache is off or the state alone is larger than the whole cache."""
        key = tuple(ids)
        if not key or state.nbytes > self.max_bytes:
            return False
        if key in self._entries:
            self._entries.move_to_end(key)
            return True
        self._entries[key] = state.copy()
        self._by_len.setdefault(len(key), set()).add(key)
        self.bytes += state.nbytes
        self.insertions += 1
        while self.bytes > self.max_bytes:
            self._evict_oldest()
        return True

    def clear(self) -> None:
        while self._entries:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        key, st = self._entries.popitem(last=False)
        s = self._by_len[len(key)]
        s.discard(key)
        if not s:
            del self._by_len[len(key)]
        self.bytes -= st.nbytes
        self.evictions += 1
