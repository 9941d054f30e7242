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

import math
import numbers
import os
import secrets
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._native import native
from .scoring import condition_empty_context, score_continuation
from .tokenizer import BUNDLED_GPT2_VOCAB, StreamDecoder, Tokenizer, tokenizer_source

PathLike = Union[str, os.PathLike]

class _Default:
    """The value of an option left out: the engine's default (generation_defaults())."""

    def __repr__(self) -> str:
        return "<default>"


DEFAULT = _Default()
_defaults: Optional[dict] = None


def generation_defaults() -> dict:
    """The default generation options (max_new_tokens, temperature, top_k, top_p, min_p,
    repeat_penalty, repeat_window). They are defined once, in the C++ engine
    (csrc/model/generator.h), and read from there by this API and the command line."""
    global _defaults
    if _defaults is None:
        # The engine keeps float32 values: print them as the decimals they were written as.
        _defaults = {k: float(f"{v:.7g}") if isinstance(v, float) else v
                     for k, v in native().generation_defaults().items()}
    return dict(_defaults)


SEED_MAX = 2**64 - 1  # the C++ sampler's seed is a uint64 (its Mersenne Twister is mt19937_64)
_INT64_MAX = 2**63 - 1


def random_seed() -> int:
    """The seed of a generation that was given none."""
    return secrets.randbits(63)


def check_sampling(max_new_tokens=DEFAULT, temperature=DEFAULT, top_k=DEFAULT, top_p=DEFAULT, min_p=DEFAULT,
                   repeat_penalty=DEFAULT, repeat_window=DEFAULT, seed=None, flags: bool = False) -> dict:
    """The sampling options checked and converted to the types the C++ sampler takes.

    Raises TypeError for a value of the wrong type and ValueError for one out of range, naming the
    option (as a command-line flag, `--top-p`, when flags=True). Used by Model.stream and by the
    command line before it prints anything. An option left out takes its generation_defaults() value.
    temperature <= 0 is greedy; top_k 0 and top_p 1 are off.
    """
    given = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                 min_p=min_p, repeat_penalty=repeat_penalty, repeat_window=repeat_window)
    if any(v is DEFAULT for v in given.values()):
        d = generation_defaults()
        given = {k: d[k] if v is DEFAULT else v for k, v in given.items()}
    max_new_tokens, temperature, top_k, top_p, min_p, repeat_penalty, repeat_window = given.values()
    name = (lambda n: "--" + n.replace("_", "-")) if flags else (lambda n: n)

    def integer(key, value, lo, hi=None, hi_text=None):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name(key)} must be an integer, got {type(value).__name__} {value!r}")
        value = int(value)
        if value < lo or (hi is not None and value > hi):
            bounds = f"from {lo} to {hi_text or hi}" if hi is not None else f">= {lo}"
            raise ValueError(f"{name(key)} must be an integer {bounds}, got {value}")
        return value

    def real(key, value, ok, what):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name(key)} must be a number, got {type(value).__name__} {value!r}")
        value = float(value)
        if not ok(value):  # NaN fails every comparison, so it is rejected here too
            raise ValueError(f"{name(key)} must be {what}, got {value:g}")
        return value

    # Windows and k beyond int64 mean the same as the largest one (everything), so they are capped
    # rather than refused; the C++ side takes int64.
    return dict(
        max_new_tokens=integer("max_new_tokens", max_new_tokens, 0),
        temperature=real("temperature", temperature, math.isfinite, "a finite number"),
        top_k=min(integer("top_k", 0 if top_k is None else top_k, 0), _INT64_MAX),
        top_p=real("top_p", top_p, lambda v: 0 < v <= 1, "in (0, 1]"),
        min_p=real("min_p", min_p, lambda v: 0 <= v <= 1, "in [0, 1]"),
        repeat_penalty=real("repeat_penalty", repeat_penalty, lambda v: 0 < v < math.inf, "a finite number > 0"),
        repeat_window=min(integer("repeat_window", repeat_window, 0), _INT64_MAX),
        seed=None if seed is None else integer("seed", seed, 0, SEED_MAX, "2**64 - 1"),
    )


def stop_strings(stop) -> List[str]:
    """stop= as a list of non-empty strings: None, one string or a sequence of strings; empty strings
    are ignored (an empty stop string would match at once and end every generation empty)."""
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    elif isinstance(stop, (bytes, bytearray)) or not isinstance(stop, Iterable):
        raise TypeError(f"stop must be a string or a list of strings, got {type(stop).__name__}")
    stop = list(stop)
    for s in stop:
        if not isinstance(s, str):
            raise TypeError(f"stop strings must be str, got {type(s).__name__} {s!r}")
    return [s for s in stop if s]


def _ids_array(ids) -> np.ndarray:
    a = np.asarray(ids)
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError("token ids must be a 1-D sequence of integers")
    return a.astype(np.int64, copy=False)


def _resolve_tokenizer(native_model, path: Optional[Path], tokenizer, directory: Optional[Path] = None
                       ) -> Optional[Tokenizer]:
    # directory: where a tokenizer.json beside the model would be (default: the model file's folder; for a
    # repo from the hub, the folder of the repo's own tokenizer.json).
    if directory is None and path is not None:
        directory = path.parent
    step, value = tokenizer_source(given=tokenizer, embedded=native_model.metadata("tokenizer.huggingface.json"),
                                   directory=directory, vocab_size=native_model.config["vocab_size"])
    if step == "given":
        return Tokenizer.coerce(value)
    if step == "embedded":
        try:
            return Tokenizer.from_json_string(value, source="GGUF tokenizer.huggingface.json")
        except ValueError as e:  # valid UTF-8 (checked by the loader) but not a usable tokenizer.json
            from .formats.errors import FormatError

            raise FormatError(f"{path}: {e}; the file is corrupt: convert it again, or pass --tokenizer") from None
    if step is not None:
        return Tokenizer.from_file(value)
    return None  # a model of another vocabulary with no tokenizer: ids-only use still works


def load(path: PathLike, tokenizer=None, threads: Optional[int] = None) -> "Model":
    """Load a GGUF (`general.architecture = bitmamba2`) or BIT2 `.bin` model, or a model on the Hugging Face
    Hub: `owner/name`, `owner/name@revision`, `hf://owner/name[@revision][/path/in/repo]` (bitmamba.hub:
    downloaded through huggingface_hub, Flax and PyTorch sources converted once into our cache). A local
    file or directory of the same name wins over a repo id; a Path is always local.

    tokenizer: override (path to tokenizer.json or its directory, JSON string, tokenizers.Tokenizer).
    threads: size of the process-wide C++ thread pool (default: physical cores / BITMAMBA_NUM_THREADS).
    Raises FileNotFoundError for a missing file, bitmamba.FormatError (a ValueError) naming the problem
    for a corrupt, truncated or inconsistent one, and bitmamba.hub.HubError (a ValueError) for a repo that
    cannot be used (not cached while offline, gated, no model file in it, ...).
    """
    from .hub import HubModel, parse

    ref = None if isinstance(path, HubModel) else parse(path)
    if ref is not None:  # hub.py imports huggingface_hub only now
        from .hub import resolve

        path = resolve(ref)
    hub, tok_dir = None, None
    if isinstance(path, HubModel):
        hub, tok_dir, path = path.ref, path.tokenizer_dir, path.path
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model file not found: {p}")
    C = native()
    if threads is not None:
        from .system import set_num_threads

        set_num_threads(threads)
    nm = C.Model.load(str(p))
    return Model(nm, _resolve_tokenizer(nm, p, tokenizer, tok_dir), path=p, hub=hub)


class Model:
    """A loaded model. See the module docstring; construct with `bitmamba.load`."""

    def __init__(self, native_model, tokenizer: Optional[Tokenizer] = None, path: Optional[Path] = None,
                 hub=None):
        self._m = native_model
        self._tokenizer = tokenizer
        self.path = path
        self.hub = hub  # the bitmamba.hub.HubRef it was loaded by, else None
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
        weights='binary' makes every in_proj / out_proj a binary projection (docs/binary.md; the default
        'ternary'). For benchmarks and tests: the text it writes is noise."""
        nm = native().Model.random(shape, embed, seed, overrides or None)
        tok = Tokenizer.gpt2() if nm.config["vocab_size"] == BUNDLED_GPT2_VOCAB else None
        return cls(nm, tok)

    # -- basics ---------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            raise ValueError(f"this model (vocabulary of {self.vocab_size}) carries no tokenizer: pass "
                             "tokenizer= to bitmamba.load (--tokenizer on the command line)")
        return self._tokenizer

    @property
    def has_tokenizer(self) -> bool:
        return self._tokenizer is not None

    @property
    def native(self):
        """The underlying bitmamba._C.Model."""
        return self._m

    def kernel_choices(self) -> List[Tuple[str, str, str]]:
        """(matrix kind, packing, kernel) for in_proj, out_proj and lm_head as this process runs them,
        e.g. ("in_proj", "decode", "avx2-decode"); a binary model's projections report packing "binary"."""
        return [tuple(c) for c in self._m.kernel_choices()]

    def __repr__(self) -> str:
        c = self.config
        return (f"Model({c['name']!r}, format={c['format']}, layout={c['layout']}, d_model={c['d_model']}, "
                f"n_layers={c['n_layers']}, vocab={c['vocab_size']})")

    def new_state(self):
        """A fresh State (no tokens seen)."""
        return self._m.new_state()

    def load_state(self, path: PathLike):
        """A State saved with state.save(path); FileNotFoundError if missing, FormatError if corrupt,
        truncated or from another model shape."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"state file not found: {p}")
        return self._m.load_state(str(p))

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
        """[logprobs(ids, state) for each pair], the same numbers bit for bit, with the sequences' tokens
        run through the projections together (the weights read once per group instead of once per
        sequence). The states must be distinct; every ids must be non-empty."""
        return self._m.logprobs_batch(list(states), [_ids_array(ids) for ids in ids_list])

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """float32 [len(ids), vocab]: the logits after each position, from a fresh state."""
        return self._m.forward_logits(self._m.new_state(), _ids_array(ids))

    def loglikelihood(self, context_ids: Sequence[int], continuation_ids: Sequence[int]) -> Tuple[float, bool]:
        """(sum of log p(continuation | context), whether every continuation token was the argmax).
        An empty context is conditioned on the EOS token (the lm-evaluation-harness convention). The same
        code scores the evaluator's requests (bitmamba.scoring), so the numbers agree with bitmamba eval."""
        cont = list(continuation_ids)
        if not cont:
            return 0.0, True  # nothing to score: no context (and no EOS token) needed
        ctx, cont = condition_empty_context(context_ids, cont, self.eos_token_id)
        st = self.new_state()
        self.feed(ctx, st)
        return score_continuation(self, st, cont)

    # -- generation -----------------------------------------------------------------------------
    def _generator(self, ids: List[int], state, opt: dict, ignore_eos: bool, prime: bool = True):
        """The engine's decode loop (_C.Generator) over `state`, primed with ids. prime=False counts
        ids as the prompt without feeding them (gen.prime_accounting): the caller feeds them, or the
        state has seen them already (the server's batch steps and prefix cache)."""
        if not ids and not state.has_logits:
            raise ValueError("empty prompt: give some text (or a state that has already seen tokens)")
        stop_ids = [] if ignore_eos or self.eos_token_id is None else [self.eos_token_id]
        gen = native().Generator(self._m, state, max_new_tokens=opt["max_new_tokens"],
                                 temperature=opt["temperature"], top_k=opt["top_k"], top_p=opt["top_p"],
                                 min_p=opt["min_p"], repeat_penalty=opt["repeat_penalty"],
                                 repeat_window=opt["repeat_window"],
                                 seed=opt["seed"] if opt["seed"] is not None else random_seed(),
                                 stop_ids=stop_ids)
        if ids:
            (gen.prime if prime else gen.prime_accounting)(_ids_array(ids))
        return gen

    def stream(self, prompt: Union[str, Sequence[int]] = "", max_new_tokens: int = DEFAULT,
               temperature: float = DEFAULT, top_k: int = DEFAULT, top_p: float = DEFAULT, min_p: float = DEFAULT,
               repeat_penalty: float = DEFAULT, repeat_window: int = DEFAULT, seed: Optional[int] = None,
               stop: Optional[Sequence[str]] = None, state=None, ignore_eos: bool = False,
               keep_prompt_state: bool = False) -> "Generation":
        """Generate text: returns a Generation, an iterator over the text pieces as they come.

        prompt: text (or token ids). With state=None a fresh state is used; with a state, the prompt
        continues it (and may then be empty) and the state keeps everything fed and generated
        (including a final EOS, and tokens past a stop string). Options left out take the engine's
        defaults (generation_defaults()); temperature <= 0 is greedy. seed None draws a random one;
        the same seed and settings give the same text. Generation ends at EOS (unless ignore_eos), at
        the first stop string (not included in the output; empty ones are ignored) or after
        max_new_tokens. keep_prompt_state: keep a copy of the state as it was right after the prompt
        (Generation.prompt_state), for callers that rewind to it. The prompt is fed before this
        returns; every option is checked before anything runs (check_sampling): TypeError or
        ValueError naming it. ValueError for an empty prompt on a fresh state or text that is not
        valid Unicode.
        """
        opt = check_sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                             top_p=top_p, min_p=min_p, repeat_penalty=repeat_penalty,
                             repeat_window=repeat_window, seed=seed)
        stops = stop_strings(stop)
        if isinstance(prompt, (bytes, bytearray)):
            # list(b"hi") would silently become the token ids [104, 105].
            raise TypeError("prompt must be str or a sequence of token ids, got bytes: decode it first")
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        text = TextStream(self.tokenizer, stops)
        if state is None:
            state = self.new_state()
        gen = self._generator(ids, state, opt, ignore_eos)
        return Generation(gen, text, state.copy() if keep_prompt_state else None)

    def generate(self, prompt: Union[str, Sequence[int]] = "", **kwargs) -> str:
        """The generated text (prompt excluded) as one string; arguments as for stream()."""
        return "".join(self.stream(prompt, **kwargs))

    def generate_ids(self, prompt_ids: Sequence[int], max_new_tokens: int = DEFAULT, temperature: float = DEFAULT,
                     top_k: int = DEFAULT, top_p: float = DEFAULT, min_p: float = DEFAULT,
                     repeat_penalty: float = DEFAULT, repeat_window: int = DEFAULT, seed: Optional[int] = None,
                     state=None, ignore_eos: bool = False) -> List[int]:
        """The generated token ids (no tokenizer needed), by the same decode loop as stream(), run in
        C++ without returning to Python between tokens. A final EOS is fed to the state but not
        returned. Options as for stream()."""
        opt = check_sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                             top_p=top_p, min_p=min_p, repeat_penalty=repeat_penalty,
                             repeat_window=repeat_window, seed=seed)
        gen = self._generator(list(prompt_ids), self.new_state() if state is None else state, opt, ignore_eos)
        out = gen.run(opt["max_new_tokens"])
        return out[:-1] if gen.finish_reason == "stop_token" else out


class StopMatcher:
    """Cuts generated text at the first stop string. Text that could still grow into a stop string is
    held back until the next piece decides it."""

    def __init__(self, stops: List[str]):
        self.stops = stops
        self.buf = ""

    def push(self, text: str) -> Tuple[str, bool]:
        """(text safe to show now, whether a stop string matched)."""
        self.buf += text
        if not self.stops:
            out, self.buf = self.buf, ""
            return out, False
        cut = self._first_stop()
        if cut >= 0:
            out, self.buf = self.buf[:cut], ""
            return out, True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.buf)), 0, -1):
                if self.buf.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        out, self.buf = self.buf[: len(self.buf) - hold], self.buf[len(self.buf) - hold:]
        return out, False

    def flush(self, text: str) -> str:
        """What is left at the end of the generation, cut at a stop string."""
        self.buf += text
        cut = self._first_stop()
        out, self.buf = (self.buf[:cut] if cut >= 0 else self.buf), ""
        return out

    def _first_stop(self) -> int:
        return min((i for i in (self.buf.find(s) for s in self.stops) if i >= 0), default=-1)


class TextStream:
    """Generated token ids -> the text to show, piece by piece: whole UTF-8 characters (StreamDecoder),
    cut at the first stop string (StopMatcher). `tokens` collects the ids pushed. One per generation;
    used by Generation and by the server's scheduler, so both cut text the same way."""

    def __init__(self, tokenizer: Tokenizer, stops: List[str]):
        self._decoder = StreamDecoder(tokenizer)
        self._stops = StopMatcher(stops)
        self.tokens: List[int] = []

    def push(self, token_id: int) -> Tuple[str, bool]:
        """(text safe to show now, whether a stop string matched: the generation should end)."""
        self.tokens.append(token_id)
        return self._stops.push(self._decoder.push(token_id))

    def flush(self) -> str:
        """The text held back, at the end of the generation."""
        return self._stops.flush(self._decoder.flush())


class Generation:
    """One generation, as returned by Model.stream: iterate it for the text pieces (whole UTF-8
    characters, stop strings cut off). Counts and timings, exact once the iteration has ended:
    prompt_tokens, generated_tokens (including a final EOS), tokens (the generated ids, EOS left out),
    prefill_seconds, decode_seconds, finish_reason ('length', 'stop_token' for EOS, 'stop_string'),
    and prompt_state (a copy of the state after the prompt, when asked for with keep_prompt_state)."""

    def __init__(self, gen, text: "TextStream", prompt_state=None):
        self._gen = gen
        self.prompt_state = prompt_state
        self._text = text
        self.tokens: List[int] = text.tokens
        self._pieces = self._run()

    def __iter__(self) -> "Generation":
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def _run(self) -> Iterator[str]:
        gen, text = self._gen, self._text
        while not gen.finished:
            tok = gen.next()
            if gen.finish_reason == "stop_token":
                break
            out, stopped = text.push(tok)
            if out:
                yield out
            if stopped:
                gen.finish()
                return
        out = text.flush()
        if out:
            yield out

    prompt_tokens = property(lambda self: self._gen.prompt_tokens)
    generated_tokens = property(lambda self: self._gen.generated_tokens)
    prefill_seconds = property(lambda self: self._gen.prefill_seconds)
    decode_seconds = property(lambda self: self._gen.decode_seconds)
    finish_reason = property(lambda self: self._gen.finish_reason)
