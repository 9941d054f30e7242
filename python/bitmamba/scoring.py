"""Log-likelihood of a continuation given a context: the one implementation behind `Model.loglikelihood`
and the evaluator's request scoring (`bitmamba.eval.Scorer`, and through it the lm-evaluation-harness
model type), so a score from the API and the same request in an evaluation are the same number.

The model interface (bitmamba.Model has it; the evaluator's tests use a numpy mock):
    model.new_state() -> state;  model.feed(ids, state);  model.logprobs(ids, state) -> (lp, greedy)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np


def condition_empty_context(context_ids: Sequence[int], continuation_ids: Sequence[int],
                            prefix_token: Optional[int]) -> Tuple[list, list]:
    """(context, continuation) ready to score. A model predicts a token only after it has seen one, so an
    empty context is conditioned on the prefix token (EOS), as lm-evaluation-harness does; a continuation
    that already starts with that token gives it up as the context (the harness's rule too). ValueError
    if the context is empty and there is no prefix token."""
    ctx, cont = list(context_ids), list(continuation_ids)
    if ctx:
        return ctx, cont
    if prefix_token is None:
        raise ValueError("empty context and the model has no EOS token to condition on")
    if cont and cont[0] == prefix_token:
        return cont[:1], cont[1:]
    return [prefix_token], cont


def score_continuation(model, state, continuation_ids: Sequence[int]) -> Tuple[float, bool]:
    """(sum of log p(continuation token | all before), whether every token was the argmax), continuing
    `state` (which it consumes). An empty continuation (BPE can merge it into the context) scores 0 and
    counts as greedy, as in the harness; the model is not called then. The sum is math.fsum, exactly
    rounded, so the order the terms come in cannot change the result."""
    cont = list(continuation_ids)
    if not cont:
        return 0.0, True
    lp, greedy = model.logprobs(cont, state)
    return continuation_score(lp, greedy, len(cont))


def continuation_score(lp, greedy, n: int) -> Tuple[float, bool]:
    """(math.fsum of the n per-token log-probabilities, whether every token was the argmax)."""
    lp = np.asarray(lp, dtype=np.float64)
    if lp.shape != (n,):
        raise ValueError(f"model.logprobs returned shape {lp.shape} for {n} tokens")
    return math.fsum(lp.tolist()), bool(np.all(greedy))
