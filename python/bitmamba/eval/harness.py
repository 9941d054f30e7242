"""lm-evaluation-harness integration: a `bitmamba` model type, so the harness's tasks run on a bitmamba
model: log-likelihood tasks with the shared-state scoring of bitmamba.eval, perplexity tasks
(loglikelihood_rolling) over the same rolling windows, and generative tasks (generate_until) on the
engine's decode loop (Model.stream).

    pip install lm_eval            # optional dependency, imported only here
    python -m bitmamba.eval.harness --model_args path=model.gguf --tasks arc_easy,lambada_openai,gsm8k
    bitmamba harness --model_args path=model.gguf --tasks arc_easy   # the same

lm_eval does not look for model types in installed packages, so `lm_eval --model bitmamba` cannot find
this one: the commands above register it and then hand every argument to the harness's own command line
(`lm_eval run`, adding `--model bitmamba`). From Python: `bitmamba.eval.harness.register()`, then
`lm_eval.simple_evaluate(model="bitmamba", model_args="path=...", tasks=[...])`.

model_args: path (default: the bundled model), max_length (default: the model's context_length, 2048
if it has none), max_gen_toks (default 256), seed (sampling; default: drawn from Python's `random`, which
the harness's --seed sets), threads, share_state (default true).
"""
from __future__ import annotations

import random
import sys
from typing import Callable, Optional

from ..model import stop_strings
from .runner import Scorer, model_max_length

DEFAULT_MAX_GEN_TOKS = 256  # the harness's default for a request that names no max_gen_toks

# The harness's names for the generation length, highest priority first (its normalize_gen_kwargs order).
_LENGTH_KEYS = ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens")
# Sampling filters a task may set, by their names here (and the transformers spelling of the penalty).
_FILTER_KEYS = {"top_k": "top_k", "top_p": "top_p", "min_p": "min_p", "repeat_penalty": "repeat_penalty",
                "repetition_penalty": "repeat_penalty"}
_KNOWN_KEYS = {"until", "do_sample", "temperature", *_LENGTH_KEYS, *_FILTER_KEYS}
# Plain sampling from the model's distribution unless a task asks for more. The engine's interactive
# defaults (top-k, top-p, min-p, a repeat penalty) would change what a benchmark measures, and the
# penalty would change greedy answers too.
_NEUTRAL = dict(top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)


def _flag(value, name: str) -> bool:
    """A boolean gen_kwarg as YAML or the command line may give it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"gen_kwargs {name} must be true or false, got {value!r}")


def generation_options(gen_kwargs: dict, default_max_gen_toks: int = DEFAULT_MAX_GEN_TOKS) -> dict:
    """The harness's gen_kwargs of one generate_until request as Model.stream options: stop (the
    `until` strings), max_new_tokens, temperature (0 = greedy), top_k, top_p, min_p, repeat_penalty.

    The harness's rules: greedy unless do_sample is true, or do_sample is not given and temperature > 0;
    do_sample false is greedy whatever the temperature. do_sample true without a temperature samples at
    temperature 1 (transformers' default); with temperature <= 0 it is an error, since it cannot sample.
    A key this model type does not implement (num_beams, ...) is an error rather than silently ignored."""
    if gen_kwargs is None:
        gen_kwargs = {}
    if not isinstance(gen_kwargs, dict):
        raise ValueError(f"gen_kwargs must be a dict, got {type(gen_kwargs).__name__}")
    unknown = sorted(set(gen_kwargs) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"gen_kwargs {', '.join(unknown)} not supported by the bitmamba model type "
                         f"(it takes {', '.join(sorted(_KNOWN_KEYS))})")
    until = gen_kwargs.get("until")
    if until is not None and not isinstance(until, (str, list, tuple)):
        raise ValueError(f"gen_kwargs until must be a string or a list of strings, got {until!r}")
    try:
        stop = stop_strings(until)
    except TypeError as e:
        raise ValueError(f"gen_kwargs until: {e}") from None

    length = next((gen_kwargs[k] for k in _LENGTH_KEYS if gen_kwargs.get(k) is not None), default_max_gen_toks)
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"gen_kwargs max_gen_toks must be an integer >= 0, got {length!r}")

    temperature = gen_kwargs.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ValueError(f"gen_kwargs temperature must be a number, got {temperature!r}")
        temperature = float(temperature)
    do_sample = gen_kwargs.get("do_sample")
    do_sample = None if do_sample is None else _flag(do_sample, "do_sample")
    if do_sample is None:
        do_sample = temperature is not None and temperature > 0
    if not do_sample:
        temperature = 0.0
    elif temperature is None:
        temperature = 1.0
    elif temperature <= 0:
        raise ValueError(f"gen_kwargs do_sample=true needs a temperature > 0, got {temperature:g} "
                         "(set do_sample=false for greedy decoding)")

    opts = dict(_NEUTRAL, stop=stop, max_new_tokens=length, temperature=temperature)
    for key, name in _FILTER_KEYS.items():
        if gen_kwargs.get(key) is not None:
            opts[name] = gen_kwargs[key]
    return opts


def request_seeds(base_seed: int, n: int) -> list:
    """The sampling seed of each of n generate_until requests: a fixed sequence from base_seed, so a run
    with the same seed samples the same text, and repeats of one prompt still get different samples."""
    rng = random.Random(base_seed)
    return [rng.getrandbits(64) for _ in range(n)]


class HarnessAdapter:
    """The four LM request types of the harness over plain argument tuples; no lm_eval import here, so
    it is testable without the harness installed."""

    def __init__(self, model, max_length: Optional[int] = None, share_state: bool = True,
                 max_gen_toks: int = DEFAULT_MAX_GEN_TOKS, seed: Optional[int] = None):
        self.model = model
        # As the harness's own models do: the model's length unless one is given.
        self.max_length = model_max_length(model) if max_length is None else int(max_length)
        self.scorer = Scorer(model, max_length=self.max_length, share_state=share_state)
        if isinstance(max_gen_toks, bool) or not isinstance(max_gen_toks, int) or max_gen_toks < 0:
            raise ValueError(f"max_gen_toks must be an integer >= 0, got {max_gen_toks!r}")
        self.max_gen_toks = max_gen_toks
        self.seed = seed

    def loglikelihood(self, pairs) -> list:
        """[(context, continuation)] -> [(loglikelihood, is_greedy)]; requests with the same context
        (the choices of one document) share one context pass."""
        reqs = []
        for context, continuation in pairs:
            reqs.extend(self.scorer.requests_for(context, [continuation]))
        return self.scorer.score_requests(reqs)

    def loglikelihood_rolling(self, texts) -> list:
        return [self.scorer.loglikelihood_rolling(t)[0] for t in texts]

    def context_ids(self, context: str, max_gen_toks: int) -> list:
        """The prompt of a generate_until request: the context's tokens, the oldest dropped so that
        context + max_gen_toks fits max_length (the harness's left truncation); an empty context is
        the EOS token, as for scoring."""
        room = self.max_length - max_gen_toks
        if room < 1:
            raise ValueError(f"max_gen_toks={max_gen_toks} leaves no room for the context within "
                             f"max_length={self.max_length}: raise max_length (model_args) or lower max_gen_toks")
        ids = self.scorer.encode(context) or [self.scorer.prefix_token]
        return ids[-room:]

    def generate_until(self, requests, progress: Optional[Callable[[], None]] = None) -> list:
        """[(context, gen_kwargs)] -> [generated text], each cut at its first `until` string (or EOS, or
        after max_gen_toks tokens), by Model.stream. Consecutive requests with the same prompt (a task's
        repeats) continue copies of one prompt state instead of feeding the prompt again."""
        model = self.model
        eos = getattr(model, "eos_token_id", None)
        # The harness also stops at the EOS token's text, should the model spell it out in pieces.
        eos_text = model.tokenizer.decode([eos]) if eos is not None else ""
        plans = []
        for context, gen_kwargs in requests:
            opts = generation_options(gen_kwargs, self.max_gen_toks)
            if eos_text and eos_text not in opts["stop"]:
                opts["stop"] = opts["stop"] + [eos_text]
            plans.append((self.context_ids(context, opts["max_new_tokens"]), opts))
        base = self.seed if self.seed is not None else random.getrandbits(64)
        seeds = request_seeds(base, len(plans))
        out = []
        shared = None  # (prompt ids, state after them) for the next request, when it has the same prompt
        for i, (ids, opts) in enumerate(plans):
            # Greedy decoding never draws from the sampler; a fixed seed keeps that obvious.
            seed = seeds[i] if opts["temperature"] > 0 else 0
            keep = i + 1 < len(plans) and plans[i + 1][0] == ids
            if shared is not None and shared[0] == ids:
                gen = model.stream([], state=shared[1].copy() if keep else shared[1], seed=seed, **opts)
            else:
                gen = model.stream(ids, seed=seed, keep_prompt_state=keep, **opts)
                shared = (ids, gen.prompt_state) if keep else None
            out.append("".join(gen))
            if not keep:
                shared = None
            if progress is not None:
                progress()
        return out


_REGISTERED = None


def _as_bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError(f"model_args {name} must be true or false, got {value!r}")


def _as_int(value, name: str, lo: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"model_args {name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or n < lo or (isinstance(value, float) and value != n):
        raise ValueError(f"model_args {name} must be an integer >= {lo}, got {value!r}")
    return n


def register():
    """Register the `bitmamba` model type with lm_eval (idempotent); returns the LM class."""
    global _REGISTERED
    if _REGISTERED is not None:
        return _REGISTERED
    try:
        from lm_eval.api.model import LM
        from lm_eval.api.registry import register_model
    except ImportError:
        raise ImportError("the lm-evaluation-harness integration needs lm_eval: pip install lm_eval") from None

    @register_model("bitmamba")
    class BitMambaLM(LM):
        def __init__(self, path=None, max_length=None, max_gen_toks=DEFAULT_MAX_GEN_TOKS, seed=None,
                     threads=None, share_state=True, model=None, **_ignored):
            # _ignored: harness-wide options (batch_size, device, ...) that do not apply to this CPU backend.
            super().__init__()
            if model is None:
                if threads is not None:
                    from ..system import set_num_threads
                    set_num_threads(_as_int(threads, "threads", 1))
                if path is None:
                    from ..defaults import default_model_path
                    path = default_model_path()
                from ..cli.eval import load_model
                model = load_model(str(path))
            self.adapter = HarnessAdapter(
                model, None if max_length is None else _as_int(max_length, "max_length", 1),
                _as_bool(share_state, "share_state"), _as_int(max_gen_toks, "max_gen_toks", 0),
                None if seed is None else _as_int(seed, "seed", 0))
            self._path = path

        @property
        def max_length(self) -> int:
            return self.adapter.max_length

        @property
        def max_gen_toks(self) -> int:
            return self.adapter.max_gen_toks

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return self.adapter.loglikelihood([r.args for r in requests])

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return self.adapter.loglikelihood_rolling([r.args[0] for r in requests])

        def generate_until(self, requests, disable_tqdm: bool = False):
            bar = None
            if not disable_tqdm:
                from tqdm.auto import tqdm  # a dependency of lm_eval
                bar = tqdm(total=len(requests), desc="Running generate_until requests", file=sys.stderr)
            try:
                return self.adapter.generate_until([r.args[:2] for r in requests],
                                                   progress=None if bar is None else (lambda: bar.update(1)))
            finally:
                if bar is not None:
                    bar.close()

        @property
        def tokenizer_name(self) -> str:
            return "bitmamba"

    _REGISTERED = BitMambaLM
    return BitMambaLM


# lm_eval's subcommands that take no model (listing tasks, checking task configs).
_MODEL_FREE = ("ls", "validate")


def lm_eval_argv(argv) -> list:
    """Our command's arguments as lm_eval's: `run` (its evaluation subcommand) with `--model bitmamba`
    unless another model is named; `ls` and `validate` pass through unchanged."""
    argv = list(argv)
    if argv[:1] and argv[0] in _MODEL_FREE:
        return argv
    if argv[:1] == ["run"]:
        argv = argv[1:]
    named = any(a in ("--model", "-M") or a.startswith("--model=") for a in argv)
    return ["run", *argv] if named else ["run", "--model", "bitmamba", *argv]


def main(argv=None) -> int:
    """Run lm_eval's command line with the `bitmamba` model type registered."""
    register()
    from lm_eval.__main__ import cli_evaluate

    saved = sys.argv
    sys.argv = ["lm_eval", *lm_eval_argv(sys.argv[1:] if argv is None else argv)]
    try:
        cli_evaluate()
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
