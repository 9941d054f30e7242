"""lm-evaluation-harness integration: a `bitmamba` model type, so any loglikelihood task of the harness
runs on a bitmamba model with the shared-state scoring of bitmamba.eval.

    pip install lm_eval            # optional dependency, imported only here
    python -m bitmamba.eval.harness --model_args path=model.gguf --tasks arc_easy,lambada_openai

`python -m bitmamba.eval.harness` registers the model and hands its arguments to the harness's own command
line (adding `--model bitmamba`). From Python: `import bitmamba.eval.harness as h; h.register()`, then
`lm_eval.simple_evaluate(model="bitmamba", model_args="path=...", tasks=[...])`.
model_args: path (required), max_length (default 2048), threads, share_state (default true).
Generation tasks (generate_until) are not supported: the scoring interface exposes log-probabilities only.
"""
from __future__ import annotations

import sys

from .runner import DEFAULT_MAX_LENGTH, Scorer


class HarnessAdapter:
    """The three LM request types of the harness over plain argument tuples; no lm_eval import here, so
    it is testable without the harness installed."""

    def __init__(self, model, max_length: int = DEFAULT_MAX_LENGTH, share_state: bool = True):
        self.model = model
        self.scorer = Scorer(model, max_length=max_length, share_state=share_state)

    def loglikelihood(self, pairs) -> list:
        """[(context, continuation)] -> [(loglikelihood, is_greedy)]; requests with the same context
        (the choices of one document) share one context pass."""
        reqs = []
        for context, continuation in pairs:
            reqs.extend(self.scorer.requests_for(context, [continuation]))
        return self.scorer.score_requests(reqs)

    def loglikelihood_rolling(self, texts) -> list:
        return [self.scorer.loglikelihood_rolling(t)[0] for t in texts]


_REGISTERED = None


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
        def __init__(self, path=None, max_length=DEFAULT_MAX_LENGTH, threads=None, share_state=True,
                     model=None, **_ignored):
            # _ignored: harness-wide options (batch_size, device, ...) that do not apply to this CPU backend.
            super().__init__()
            if model is None:
                if path is None:
                    raise ValueError("bitmamba model needs model_args path=MODEL_FILE")
                if threads is not None:
                    from ..system import set_num_threads
                    set_num_threads(int(threads))
                from ..cli.eval import load_model
                model = load_model(str(path))
            share = share_state if isinstance(share_state, bool) else str(share_state).lower() != "false"
            self.adapter = HarnessAdapter(model, int(max_length), share)
            self._path = path

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return self.adapter.loglikelihood([r.args for r in requests])

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return self.adapter.loglikelihood_rolling([r.args[0] for r in requests])

        def generate_until(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError("bitmamba's harness model scores log-likelihoods only; generation "
                                      "tasks (generate_until) are not supported")

        @property
        def tokenizer_name(self) -> str:
            return "bitmamba"

    _REGISTERED = BitMambaLM
    return BitMambaLM


def main(argv=None) -> int:
    register()
    from lm_eval.__main__ import cli_evaluate

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--model" not in argv:
        argv = ["--model", "bitmamba", *argv]
    sys.argv = ["lm_eval", *argv]
    result = cli_evaluate()
    return int(result or 0) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
