"""Hand-worked metric values, the harness's context/continuation split and rolling-window arithmetic."""
import math
import random

import pytest

from bitmamba.eval import metrics as M
from bitmamba.eval.requests import encode_pair, rolling_windows, truncate_left


def test_acc_and_acc_norm_by_hand():
    # Raw sums pick choice 1 (-4 > -6); per character: -6/6 = -1 beats -4/2 = -2, so acc_norm picks 0.
    assert M.multiple_choice_scores([-6.0, -4.0], ["abcdef", "ab"], gold=1) == {"acc": 1.0, "acc_norm": 0.0}
    assert M.multiple_choice_scores([-6.0, -4.0], ["abcdef", "ab"], gold=0) == {"acc": 0.0, "acc_norm": 1.0}
    # Lengths are of the choice text without the " " delimiter: -9/10 > -10/5 > -12/2.
    assert M.multiple_choice_scores([-10.0, -12.0, -9.0], ["aaaaa", "bb", "c" * 10], gold=2) == \
        {"acc": 1.0, "acc_norm": 1.0}
    # Ties go to the first index (np.argmax).
    assert M.multiple_choice_scores([-1.0, -1.0], ["x", "y"], gold=0) == {"acc": 1.0, "acc_norm": 1.0}
    with pytest.raises(ValueError):
        M.multiple_choice_scores([-1.0], ["x", "y"], gold=0)
    with pytest.raises(ValueError):
        M.multiple_choice_scores([-1.0, -2.0], ["x", "y"], gold=2)


def test_mean_and_stderr_by_hand():
    assert M.mean([1, 0, 1, 1]) == 0.75
    # sample variance ((3 * 0.25^2) + 0.75^2) / 3 = 0.25 -> std 0.5 -> / sqrt(4) = 0.25
    assert M.mean_stderr([1, 0, 1, 1]) == pytest.approx(0.25, abs=1e-15)
    assert M.mean_stderr([1.0]) is None
    assert M.mean_stderr([0, 0, 0]) == 0.0


def test_perplexity_aggregation_by_hand():
    pairs = [(-2.0, 1), (-4.0, 3)]  # (log-likelihood, words or bytes)
    assert M.weighted_perplexity(pairs) == pytest.approx(math.exp(1.5), rel=1e-15)
    assert M.bits_per_byte(pairs) == pytest.approx(1.5 / math.log(2), rel=1e-15)
    # Not the mean of per-document perplexities:
    assert M.weighted_perplexity(pairs) != pytest.approx((math.exp(2) + math.exp(4 / 3)) / 2)


def _toy_encode(text):
    """Characters as tokens, except that "ab" is one token: enough to show boundary effects."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("ab", i):
            out.append("ab")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return out


def test_encode_pair_like_the_harness():
    assert encode_pair(_toy_encode, "Q:", " yes") == (["Q", ":"], [" ", "y", "e", "s"])
    # Trailing whitespace of the context moves to the continuation.
    assert encode_pair(_toy_encode, "Q: ", "yes") == (["Q", ":"], [" ", "y", "e", "s"])
    # A merge across the boundary: whole "xabc" = [x, ab, c]; the context keeps its own [x, a] and the
    # continuation is the whole encoding past 2 tokens, [c] (what the harness feeds and scores).
    assert encode_pair(_toy_encode, "xa", "bc") == (["x", "a"], ["c"])


def test_truncate_left():
    assert truncate_left([1, 2, 3, 4], [5, 6], 10) == [1, 2, 3, 4]
    # 4 + 2 - 1 = 5 inputs, max 3: drop the 2 oldest context tokens.
    assert truncate_left([1, 2, 3, 4], [5, 6], 3) == [3, 4]
    with pytest.raises(ValueError):
        truncate_left([1], [2, 3, 4], 2)


def test_rolling_windows_by_hand():
    EOS = -1
    toks = list(range(10))
    assert rolling_windows(toks, EOS, 4) == [
        ([EOS], [0, 1, 2, 3]),
        ([3], [4, 5, 6, 7]),
        ([5, 6, 7], [8, 9]),  # the short last window is filled up with context to 4 inputs
    ]
    assert rolling_windows(toks[:3], EOS, 4) == [([EOS], [0, 1, 2])]
    assert rolling_windows([], EOS, 4) == []
    assert rolling_windows([7, 8, 9], EOS, 1) == [([EOS], [7]), ([7], [8]), ([8], [9])]
    assert rolling_windows(list(range(8)), EOS, 4) == [([EOS], [0, 1, 2, 3]), ([3], [4, 5, 6, 7])]
    with pytest.raises(ValueError):
        rolling_windows(toks, EOS, 0)


def _harness_windows(tokens, prefix, max_seq_len):
    """The harness's formulation, written out independently: overlapping (input, prediction) windows
    from get_rolling_token_windows(context_len=1), then make_disjoint_window on each."""
    out = []
    if not tokens:
        return out
    first = min(max_seq_len, len(tokens))
    pairs = [([prefix] + tokens[:first - 1], tokens[:first])]
    done = first
    while done < len(tokens):
        k = min(len(tokens) - done, max_seq_len)
        end = done + k
        pairs.append((tokens[end - max_seq_len - 1:end - 1], tokens[end - k:end]))
        done += k
    for a, b in pairs:
        out.append((a[:len(a) - (len(b) - 1)], b))
    return out


def test_rolling_windows_match_harness_formulation_random():
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(0, 60)
        L = rng.randint(1, 20)
        toks = [rng.randint(0, 99) for _ in range(n)]
        w = rolling_windows(toks, 100, L)
        assert w == _harness_windows(toks, 100, L)
        assert [t for _, p in w for t in p] == toks  # every token predicted exactly once
        for i, (ctx, pred) in enumerate(w):
            assert 1 <= len(ctx) and len(ctx) + len(pred) - 1 <= L
            if i:  # later windows are conditioned on exactly the tokens before them
                start = sum(len(p) for _, p in w[:i])
                assert ctx == toks[start - len(ctx):start]
