"""Metrics and their aggregation, defined as lm-evaluation-harness defines them.

Multiple choice: per document, `acc` = 1 if argmax of the summed continuation log-likelihoods is the gold
choice, `acc_norm` = the same after dividing each log-likelihood by the choice's length in characters
(the choice text without the leading " " delimiter). Both aggregate as a mean; their standard error is
the sample standard deviation (n - 1 denominator) divided by sqrt(n).

Perplexities (wikitext): per document a pair (log-likelihood, weight) with weight = words, bytes or tokens;
aggregated as exp(-sum ll / sum weight) (a weighted perplexity, not a mean of per-document perplexities);
bits_per_byte = -sum ll / sum bytes / ln 2. The harness gives no standard error for these (None here).
"""
from __future__ import annotations

import math

import numpy as np


def argmax_first(values) -> int:
    """np.argmax semantics: the first index of the maximum (ties go to the earlier choice)."""
    return int(np.argmax(np.asarray(values, dtype=np.float64)))


def multiple_choice_scores(lls, choices, gold: int) -> dict:
    """acc and acc_norm of one document from the log-likelihood of each choice."""
    if len(lls) != len(choices):
        raise ValueError(f"{len(lls)} log-likelihoods for {len(choices)} choices")
    if not 0 <= gold < len(choices):
        raise ValueError(f"gold index {gold} out of range for {len(choices)} choices")
    lls = np.asarray(lls, dtype=np.float64)
    lengths = np.array([float(len(c)) for c in choices])
    return {
        "acc": 1.0 if argmax_first(lls) == gold else 0.0,
        "acc_norm": 1.0 if argmax_first(lls / lengths) == gold else 0.0,
    }


def mean(values) -> float:
    values = list(values)
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def sample_stddev(values) -> float:
    values = list(values)
    mu = mean(values)
    return math.sqrt(math.fsum((v - mu) ** 2 for v in values) / (len(values) - 1))


def mean_stderr(values):
    """Standard error of the mean; None for fewer than 2 values (undefined)."""
    values = list(values)
    if len(values) < 2:
        return None
    return sample_stddev(values) / math.sqrt(len(values))


def weighted_perplexity(pairs) -> float:
    """exp(-sum(ll) / sum(weight)) over (ll, weight) pairs."""
    lls, weights = zip(*pairs)
    return math.exp(-math.fsum(lls) / math.fsum(weights))


def bits_per_byte(pairs) -> float:
    """-sum(ll) / sum(bytes) / ln(2) over (ll, bytes) pairs."""
    lls, nbytes = zip(*pairs)
    return -math.fsum(lls) / math.fsum(nbytes) / math.log(2)
