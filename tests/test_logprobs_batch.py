"""Model.logprobs_batch: the choices of a question scored in one batched pass give exactly the numbers
(and states) of one logprobs call each, whatever the grouping (short sequences grouped up to the chunk
size, long ones alone), on every kernel set; the evaluator's scores do not change with it."""
import numpy as np
import pytest

import bitmamba
from bitmamba.eval.runner import Scorer

CHUNK = 256  # Model::kChunk: the group size in tokens


@pytest.fixture(scope="module")
def model():
    return bitmamba.Model.random("custom", embed="f32", seed=5, vocab_size=300, d_model=64, n_layers=2,
                                 d_inner=128, n_heads=2, n_groups=2)


def _context_state(m, ctx):
    st = m.new_state()
    m.feed(ctx, st)
    return st


@pytest.mark.parametrize("lengths", [[1], [3, 1, 7, 2], [1] * 20, [200, 100, 60], [300, 2, 257], [256, 1]])
def test_equals_one_call_per_sequence(model, isa, lengths):
    rng = np.random.default_rng(sum(lengths))
    ctx = rng.integers(0, 300, size=11).tolist()
    seqs = [rng.integers(0, 300, size=n).tolist() for n in lengths]
    base = _context_state(model, ctx)
    one = []
    for s in seqs:
        st = base.copy()
        lp, g = model.logprobs(s, st)
        one.append((lp, g, st))
    states = [base.copy() for _ in seqs]
    got = model.logprobs_batch(seqs, states)
    assert len(got) == len(seqs)
    for (lp, g), (lp1, g1, st1), st in zip(got, one, states):
        assert lp.dtype == np.float64 and g.dtype == bool
        np.testing.assert_array_equal(lp, lp1)  # bit for bit
        np.testing.assert_array_equal(g, g1)
        # The states continue identically too.
        assert st.n_tokens == st1.n_tokens
        probe = [7, 8]
        np.testing.assert_array_equal(model.logprobs(probe, st)[0], model.logprobs(probe, st1)[0])


def test_empty_batch_and_bad_input(model):
    assert model.logprobs_batch([], []) == []
    base = _context_state(model, [1, 2, 3])
    with pytest.raises(ValueError, match="has no tokens"):
        model.logprobs_batch([[1], []], [base.copy(), base.copy()])
    st = base.copy()
    with pytest.raises(ValueError, match="share a state"):
        model.logprobs_batch([[1], [2]], [st, st])
    with pytest.raises(ValueError, match="seen no token"):
        model.logprobs_batch([[1]], [model.new_state()])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.logprobs_batch([[1], [300]], [base.copy(), base.copy()])
    with pytest.raises(ValueError, match="2 states for 1 id lists"):
        model.logprobs_batch([[1]], [base.copy(), base.copy()])
    # A failed call leaves the states as they were: the checks run before anything is fed.
    a = base.copy()
    with pytest.raises(ValueError):
        model.logprobs_batch([[4, 5], [300]], [a, base.copy()])
    assert a.n_tokens == base.n_tokens


class _Unbatched:
    """The model without logprobs_batch: the Scorer's one-call-per-choice path."""

    def __init__(self, m):
        self._m = m

    def __getattr__(self, name):
        if name == "logprobs_batch":
            raise AttributeError(name)
        return getattr(self._m, name)


def test_scorer_results_do_not_change(model):
    rng = np.random.default_rng(0)
    reqs = []
    for q in range(6):
        ctx = rng.integers(0, 300, size=int(rng.integers(1, 40))).tolist()
        for c in range(4):
            n = [0, 1, 5, int(rng.integers(2, 300))][c] if q == 0 else int(rng.integers(1, 30))
            reqs.append((ctx, rng.integers(0, 300, size=n).tolist()))
    batched = Scorer(model, max_length=2048)
    plain = Scorer(_Unbatched(model), max_length=2048)
    assert batched.score_requests(reqs) == plain.score_requests(reqs)
    assert (batched.tokens_fed, batched.tokens_scored) == (plain.tokens_fed, plain.tokens_scored)
