"""A small deterministic recurrent LM in numpy with the model interface bitmamba.eval scores through.

State: a vector h updated per token as h <- decay * h + embed[token] (a real recurrence, so scoring that
forgets to copy a shared state gives different numbers). Each token is scored by the same fixed sequence of numpy
operations, so its log-prob is bit-identical however the sequence is split into feed / logprobs calls.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class MockTokenizer:
    def __init__(self, path: Path):
        import json

        from tokenizers import Tokenizer

        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        # This tokenizer.json omits model.type, which some `tokenizers` releases require.
        spec["model"].setdefault("type", "BPE")
        # The shared copy has one merge ("ĠCla ude") whose result is not in its vocab; `tokenizers` refuses
        # to load that, so drop merges that produce unknown tokens (irrelevant for a mock).
        vocab = spec["model"]["vocab"]
        spec["model"]["merges"] = [mg for mg in spec["model"]["merges"]
                                   if (mg.replace(" ", "") if isinstance(mg, str) else "".join(mg)) in vocab]
        self._tok = Tokenizer.from_str(json.dumps(spec))

    def encode(self, text: str) -> list:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self._tok.decode(list(ids))


class MockState:
    def __init__(self, h: np.ndarray, n_tokens: int = 0):
        self.h = h
        self.n_tokens = n_tokens

    def copy(self) -> "MockState":
        return MockState(self.h.copy(), self.n_tokens)


class MockModel:
    """logits[v] = bias[v] + g(h)[v % n_classes] with g(h) = out @ tanh(h): the softmax normaliser over the
    full vocabulary reduces to n_classes terms (precomputed per-class sums of exp(bias)), so scoring a
    token costs O(n_classes * dim), cheap enough to run every task end to end in the tests."""

    def __init__(self, tokenizer, vocab_size: int = 50257, eos_token_id: int = 50256, dim: int = 6,
                 n_classes: int = 97, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_token_id = eos_token_id
        self.decay = 0.7
        self.n_classes = n_classes
        self.embed = rng.standard_normal((vocab_size, dim))
        self.out = rng.standard_normal((n_classes, dim)) * 2.0
        self.bias = rng.standard_normal(vocab_size)
        cls = np.arange(vocab_size) % n_classes
        self.log_class_mass = np.array([np.log(np.exp(self.bias[cls == c]).sum()) for c in range(n_classes)])
        self.class_best = np.array([np.flatnonzero(cls == c)[np.argmax(self.bias[cls == c])]
                                    for c in range(n_classes)])
        self.calls = {"feed": 0, "logprobs": 0, "tokens": 0}

    def new_state(self) -> MockState:
        return MockState(np.zeros(self.embed.shape[1]))

    def _check(self, ids):
        ids = [int(i) for i in ids]
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} out of range for vocab {self.vocab_size}")
        return ids

    def feed(self, ids, state: MockState) -> None:
        ids = self._check(ids)
        self.calls["feed"] += 1
        self.calls["tokens"] += len(ids)
        for t in ids:
            state.h = self.decay * state.h + self.embed[t]
        state.n_tokens += len(ids)

    def next_logprobs(self, state: MockState) -> np.ndarray:
        """The full next-token distribution (for checking logprobs in tests)."""
        g = self.out @ np.tanh(state.h)
        logits = self.bias + g[np.arange(self.vocab_size) % self.n_classes]
        mx = logits.max()
        return logits - (mx + np.log(np.exp(logits - mx).sum()))

    def logprobs(self, ids, state: MockState):
        ids = self._check(ids)
        if state.n_tokens == 0:
            raise ValueError("logprobs needs a state that has seen at least one token")
        self.calls["logprobs"] += 1
        self.calls["tokens"] += len(ids)
        lp = np.empty(len(ids))
        greedy = np.empty(len(ids), dtype=bool)
        for i, t in enumerate(ids):
            g = self.out @ np.tanh(state.h)
            z = g + self.log_class_mass
            mx = z.max()
            lse = mx + np.log(np.exp(z - mx).sum())
            c = t % self.n_classes
            lp[i] = self.bias[t] + g[c] - lse
            greedy[i] = self.class_best[int(np.argmax(g + self.bias[self.class_best]))] == t
            state.h = self.decay * state.h + self.embed[t]
        state.n_tokens += len(ids)
        return lp, greedy


def make_mock(shared_dir: Path, **kw) -> MockModel:
    return MockModel(MockTokenizer(shared_dir / "data" / "tokenizers" / "gpt2" / "tokenizer.json"), **kw)
