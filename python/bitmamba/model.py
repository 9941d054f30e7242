"""The Python face of the inference engine: `bitmamba.load(path)` -> `Model`.

A Model is immutable and can serve any number of States. A State (`model.new_state()`) is one
sequence: it holds each layer's conv window and SSM state plus the logits after the last token it
consumed; `state.copy()` is cheap, `state.save(path)` / `model.load_state(path)` persist it. Every
call into C++ releases the GIL.

    import bitmamba
    m = bitmamba.load("model.gguf")
    print(m.generate("The capital of France is", max_new_tokens=20, temperature=0))
    for piece in m.stream("Once upon a time", seed=1):
        print(piece, end="", flush=True)
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._native import native
from .tokenizer import StreamDecoder, Tokenizer

PathLike = Union[str, os.PathLike]

# Sampling defaults shared by generate/stream and the CLI.
DEFAULTS = dict(max_new_tokens=128, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
                repeat_penalty=1.1, repeat_window=64)


def _ids_array(ids) -> np.ndarray:
    a = np.asarray(ids)
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError("token ids must be a 1-D sequence of integers")
    return a.astype(np.int64, copy=False)


def _resolve_tokenizer(native_model, path: Optional[Path], tokenizer) -> Optional[Tokenizer]:
    if tokenizer is not None:
        return Tokenizer.coerce(tokenizer)
    embedded = native_model.metadata("tokenizer.huggingface.json")
    if embedded:
        try:
            return Tokenizer.from_json_string(embedded, source="GGUF tokenizer.huggingface.json")
        except ValueError as e:  # valid UTF-8 (checked by the loader) but not a usable tokenizer.json
            from .formats.errors import FormatError

            raise FormatError(f"{path}: {e}; the file is corrupt: convert it again, or pass --tokenizer") from None
    if path is not None and (path.parent / "tokenizer.json").is_file():
        return Tokenizer.from_file(path.parent / "tokenizer.json")
    if native_model.config["vocab_size"] == 50257:
        return Tokenizer.gpt2()
    return None  # a model of another vocabulary with no tokenizer: ids-only use still works


def load(path: PathLike, tokenizer=None, threads: Optional[int] = None) -> "Model":
    """Load a GGUF (`general.architecture = bitmamba2`) or BIT2 `.bin` model.

    tokenizer: override (path to tokenizer.json or its directory, JSON string, tokenizers.Tokenizer).
    threads: size of the process-wide C++ thread pool (default: physical cores / BITMAMBA_NUM_THREADS).
    Raises FileNotFoundError for a missing file and bitmamba.FormatError (a ValueError) naming the
    problem for a corrupt, truncated or inconsistent one.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model file not found: {p}")
    C = native()
    if threads is not None:
        from .system import set_num_threads

        set_num_threads(threads)
    nm = C.Model.load(str(p))
    return Model(nm, _resolve_tokenizer(nm, p, tokenizer), path=p)


class Model:
    """A loaded model. See the module docstring; construct with `bitmamba.load`."""

    def __init__(self, native_model, tokenizer: Optional[Tokenizer] = None, path: Optional[Path] = None):
        self._m = native_model
        self._tokenizer = tokenizer
        self.path = path
        self.config = dict(native_model.config)
        self.config["format"] = native_model.format
        self.config["embedding_type"] = native_model.embedding_type
        self.vocab_size: int = self.config["vocab_size"]
        eos = self.config["eos_token_id"]
        self.eos_token_id: Optional[int] = eos if eos >= 0 else None

    @classmethod
    def random(cls, shape: str = "255m", embed: str = "q8_0", seed: int = 0, **overrides) -> "Model":
        """Random weights of a real shape ('255m', '1b'), or shape='custom' with config overrides
        (vocab_size, d_model, n_layers, d_inner, n_heads, d_state, n_groups, layout), built in memory.
        For benchmarks and tests: the text it writes is noise."""
        nm = native().Model.random(shape, embed, seed, overrides or None)
        tok = Tokenizer.gpt2() if nm.config["vocab_size"] == 50257 else None
        return cls(nm, tok)

    # -- basics ---------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            raise ValueError(f"this model (vocabulary of {self.vocab_size}) carries no tokenizer: pass "
                             "tokenizer= to bitmamba.load (--tokenizer on the command line)")
        return self._tokenizer

    @property
    def native(self):
        """The underlying bitmamba._C.Model."""
        return self._m

    def __repr__(self) -> str:
        c = self.config
        return (f"Model({c['name']!r}, format={c['format']}, layout={c['layout']}, d_model={c['d_model']}, "
                f"n_layers={c['n_layers']}, vocab={c['vocab_size']})")

    def new_state(self):
        """A fresh State (no tokens seen)."""
        return self._m.new_state()

    def load_state(self, path: PathLike):
        """A State saved with state.save(path); FormatError if corrupt or from another model shape."""
        return self._m.load_state(str(path))

    # -- scoring --------------------------------------------------------------------------------
    def feed(self, ids: Sequence[int], state) -> None:
        """Consume ids into state (batched prefill, no outputs)."""
        self._m.feed(state, _ids_array(ids))

    def logprobs(self, ids: Sequence[int], state) -> Tuple[np.ndarray, np.ndarray]:
        """(lp float64 [n], greedy bool [n]): lp[i] = log p(ids[i] | everything the state has seen
        + ids[:i]); greedy[i] = ids[i] was the argmax. Consumes ids. ValueError if the state has
        seen no token (feed a context, or the EOS token, first)."""
        return self._m.logprobs(state, _ids_array(ids))

    def logprobs_batch(self, ids_list: Sequence[Sequence[int]], states) -> List[Tuple[np.ndarray, np.ndarray]]:
        """logprobs() for several independent sequences at once (one distinct state each): the
        ternary products run over all their tokens together (weights read once per group). Measured
        on the 2-core dev VM (255M, 8 sequences of 10 tokens) it took the same time as 8 calls: there
        the GEMM is compute-bound. Returns [(lp, greedy), ...] in input order."""
        if len(ids_list) != len(states):
            raise ValueError(f"{len(ids_list)} id lists for {len(states)} states")
        return self._m.logprobs_batch(list(states), [_ids_array(i) for i in ids_list])

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """float32 [len(ids), vocab]: the logits after each position, from a fresh state."""
        return self._m.forward_logits(self._m.new_state(), _ids_array(ids))

    def loglikelihood(self, context_ids: Sequence[int], continuation_ids: Sequence[int]) -> Tuple[float, bool]:
        """(sum of log p(continuation | context), whether every continuation token was the argmax).
        An empty context is conditioned on the EOS token (the lm-evaluation-harness convention)."""
        ctx = list(context_ids)
        cont = list(continuation_ids)
        if not cont:
            return 0.0, True
        if not ctx:
            if self.eos_token_id is None:
                raise ValueError("empty context and the model has no EOS token to condition on")
            ctx = [self.eos_token_id]
        st = self.new_state()
        self.feed(ctx, st)
        lp, greedy = self.logprobs(cont, st)
        return float(lp.sum()), bool(greedy.all())

    # -- generation -----------------------------------------------------------------------------
    def stream(self, prompt: Union[str, Sequence[int]] = "", max_new_tokens: int = DEFAULTS["max_new_tokens"],
               temperature: float = DEFAULTS["temperature"], top_k: int = DEFAULTS["top_k"],
               top_p: float = DEFAULTS["top_p"], min_p: float = DEFAULTS["min_p"],
               repeat_penalty: float = DEFAULTS["repeat_penalty"], repeat_window: int = DEFAULTS["repeat_window"],
               seed: Optional[int] = None, stop: Optional[Sequence[str]] = None, state=None) -> Iterator[str]:
        """Yield text pieces as they are generated.

        prompt: text (or token ids). With state=None a fresh state is used; with a state, the prompt
        continues it (and may then be empty) and the state keeps everything fed and generated
        (including a final EOS, and tokens past a stop string). temperature <= 0 is greedy. seed
        None draws a random one; the same seed and settings give the same text. Generation ends at
        EOS, at the first stop string (not included in the output) or after max_new_tokens.
        ValueError for an empty prompt on a fresh state.
        """
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        stops = [s for s in (stop or []) if s]
        if isinstance(stop, str):
            stops = [stop]
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if state is None:
            state = self.new_state()
        if not ids and not state.has_logits:
            raise ValueError("empty prompt: give some text (or a state that has already seen tokens)")
        C = native()
        sampler = C.Sampler(temperature=float(temperature), top_k=int(top_k or 0), top_p=float(top_p),
                            min_p=float(min_p), repeat_penalty=float(repeat_penalty),
                            repeat_window=int(repeat_window),
                            seed=int(seed) if seed is not None else secrets.randbits(63))
        for t in ids[-max(0, int(repeat_window)):] if repeat_window > 0 else []:
            sampler.accept(int(t))
        if ids:
            self.feed(ids, state)
        return self._stream_tokens(state, sampler, max_new_tokens, stops)

    def _stream_tokens(self, state, sampler, max_new_tokens: int, stops: List[str]) -> Iterator[str]:
        dec = StreamDecoder(self.tokenizer)
        buf = ""
        eos = self.eos_token_id
        for _ in range(max_new_tokens):
            tok = self._m.step(state, sampler)
            if eos is not None and tok == eos:
                break
            buf += dec.push(tok)
            if stops:
                cut = min((i for i in (buf.find(s) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    if cut:
                        yield buf[:cut]
                    return
                # Hold back a tail that could still grow into a stop string.
                hold = 0
                for s in stops:
                    for k in range(min(len(s) - 1, len(buf)), 0, -1):
                        if buf.endswith(s[:k]):
                            hold = max(hold, k)
                            break
                out, buf = buf[: len(buf) - hold], buf[len(buf) - hold:]
            else:
                out, buf = buf, ""
            if out:
                yield out
        buf += dec.flush()
        if stops:
            cut = min((i for i in (buf.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                buf = buf[:cut]
        if buf:
            yield buf

    def generate(self, prompt: Union[str, Sequence[int]] = "", **kwargs) -> str:
        """The generated text (prompt excluded) as one string; arguments as for stream()."""
        return "".join(self.stream(prompt, **kwargs))
