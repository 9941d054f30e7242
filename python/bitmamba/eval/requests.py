"""Turning prompts into token requests exactly as lm-evaluation-harness does.

encode_pair: the context/continuation split of a multiple-choice request. Trailing whitespace of the
context moves to the continuation; context and context+continuation are tokenized separately and the
continuation tokens are the whole encoding's tokens past len(encode(context)). The model is then fed
encode(context) followed by those tokens, even where BPE would merge across the boundary differently:
that is what the harness scores.

rolling_windows: the disjoint windows of a loglikelihood_rolling request (perplexity): every token of the
text is predicted exactly once, in windows of at most max_length model inputs. The first window is
conditioned on the prefix token (EOS) alone; each later full window on the one token before it; the last,
shorter window gets as much preceding context as fills max_length.
"""
from __future__ import annotations


def encode_pair(encode, context: str, continuation: str) -> tuple:
    """(context_ids, continuation_ids) for a non-empty context. `encode` maps text to a list of ids."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = list(encode(context + continuation))
    ctx = list(encode(context))
    return ctx, whole[len(ctx):]


def truncate_left(context_ids: list, continuation_ids: list, max_length: int) -> list:
    """The harness gives the model at most max_length inputs (context + continuation minus its last
    token) and drops the oldest context tokens beyond that. Returns the kept context."""
    if len(continuation_ids) > max_length:
        raise ValueError(f"a continuation of {len(continuation_ids)} tokens does not fit max_length={max_length}")
    excess = len(context_ids) + len(continuation_ids) - 1 - max_length
    return context_ids[excess:] if excess > 0 else context_ids


def rolling_windows(tokens: list, prefix_token: int, max_length: int) -> list:
    """[(context_ids, predicted_ids), ...] covering `tokens` disjointly (the harness's rolling windows with
    context_len=1, made disjoint). Each window's model input is context + predicted[:-1], at most
    max_length tokens long."""
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    tokens = list(tokens)
    n = len(tokens)
    if n == 0:
        return []
    first = min(max_length, n)
    windows = [([prefix_token], tokens[:first])]
    done = first
    while done < n:
        k = min(n - done, max_length)  # tokens predicted by this window
        end = done + k
        # The input is the max_length tokens ending just before tokens[end-1]; the first of them is
        # context only when k == max_length, more of them when the last window is short.
        windows.append((tokens[end - max_length - 1:done], tokens[done:end]))
        done = end
    return windows
