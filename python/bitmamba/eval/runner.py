"""Scoring documents with a model and aggregating the results.

The model interface (bitmamba.load returns one; tests use a numpy mock):
    model.tokenizer.encode(text) -> list[int]; model.eos_token_id; model.vocab_size
    model.new_state() -> state;  state.copy();  state.n_tokens
    model.feed(ids, state)                       consume ids
    model.logprobs(ids, state) -> (lp, greedy)   lp[i] = log p(ids[i] | everything before); consumes ids

Why state sharing is exact and fast: the recurrent state after the context is all a Mamba model keeps of
it, so the context of a multiple-choice document is run once and each choice continues from a copy of
that state, instead of re-running context + choice for every choice as a transformer harness does.
"""
from __future__ import annotations

import math
import platform
import sys
import time
from typing import Optional

import numpy as np

from ..scoring import condition_empty_context, continuation_score, score_continuation
from . import metrics as M
from .requests import encode_pair, rolling_windows, truncate_left
from .tasks import TASKS, MCDoc, PerplexityDoc, resolve_tasks

DEFAULT_MAX_LENGTH = 2048  # for a model that states no context_length (the harness's fallback too)


def model_max_length(model) -> int:
    """The model's own window: its config's context_length (what the harness's HF model reads from a
    model's config), DEFAULT_MAX_LENGTH when it has none (a mock, a config without the key)."""
    n = (getattr(model, "config", None) or {}).get("context_length")
    if n is None:
        return DEFAULT_MAX_LENGTH
    if isinstance(n, bool) or int(n) < 1:
        raise ValueError(f"the model's context_length must be >= 1, got {n!r}")
    return int(n)


class Scorer:
    """Log-likelihood requests against one model (harness semantics, SSM state sharing). max_length
    None: the model's own (model_max_length)."""

    def __init__(self, model, max_length: Optional[int] = None, share_state: bool = True):
        if max_length is None:
            max_length = model_max_length(model)
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.model = model
        self.max_length = int(max_length)
        self.share_state = share_state
        self.tokens_fed = 0      # context tokens run through the model
        self.tokens_scored = 0   # continuation tokens scored

    @property
    def prefix_token(self) -> int:
        """The token an empty context / the first perplexity window is conditioned on (EOS, as in the
        harness)."""
        eos = getattr(self.model, "eos_token_id", None)
        if eos is None:
            raise ValueError("the model has no EOS token, which perplexity and empty contexts are "
                             "conditioned on")
        return int(eos)

    def encode(self, text: str) -> list:
        ids = list(self.model.tokenizer.encode(text))
        vocab = getattr(self.model, "vocab_size", None)
        if ids and vocab is not None and max(ids) >= vocab:
            raise ValueError(f"the tokenizer produced token id {max(ids)} but the model's vocabulary has "
                             f"{vocab} entries: the tokenizer does not belong to this model")
        return ids

    def requests_for(self, context: str, continuations) -> list:
        """[(context_ids, continuation_ids)] with the harness's split and left truncation."""
        out = []
        for cont in continuations:
            if context == "":
                ctx, cids = condition_empty_context([], self.encode(cont), self.prefix_token)
            else:
                ctx, cids = encode_pair(self.encode, context, cont)
                if not ctx:  # an all-whitespace context: nothing left to condition on but the prefix
                    ctx = [self.prefix_token]
            out.append((truncate_left(ctx, cids, self.max_length), cids))
        return out

    def score_requests(self, reqs) -> list:
        """[(loglikelihood, is_greedy)] per request. Requests sharing a context share one context pass."""
        model = self.model
        results = [None] * len(reqs)
        if self.share_state:
            groups = {}
            for i, (ctx, _) in enumerate(reqs):
                groups.setdefault(tuple(ctx), []).append(i)
            batched = hasattr(model, "logprobs_batch")
            for ctx, idxs in groups.items():
                base = model.new_state()
                model.feed(list(ctx), base)
                self.tokens_fed += len(ctx)
                if batched:
                    self._continue_batch(base, [(i, reqs[i][1]) for i in idxs], results)
                    continue
                for j, i in enumerate(idxs):
                    # The last choice may consume the base state itself: one copy fewer.
                    st = base if j == len(idxs) - 1 else base.copy()
                    results[i] = self._continue(st, reqs[i][1])
        else:
            for i, (ctx, cont) in enumerate(reqs):
                st = model.new_state()
                model.feed(list(ctx), st)
                self.tokens_fed += len(ctx)
                results[i] = self._continue(st, cont)
        return results

    def _continue(self, state, cont) -> tuple:
        result = score_continuation(self.model, state, cont)
        self.tokens_scored += len(cont)
        return result

    def _continue_batch(self, base, items, results) -> None:
        """Scores every (index, continuation) of one context from copies of `base` in one batched
        call (Model.logprobs_batch: the same numbers as one call each, the weights read once)."""
        todo = []
        for i, cont in items:
            if cont:
                todo.append((i, list(cont)))
            else:
                results[i] = (0.0, True)  # nothing to score (score_continuation's convention)
        if not todo:
            return
        states = [base if j == len(todo) - 1 else base.copy() for j in range(len(todo))]
        for (i, cont), (lp, greedy) in zip(todo, self.model.logprobs_batch([c for _, c in todo], states)):
            results[i] = continuation_score(lp, greedy, len(cont))
            self.tokens_scored += len(cont)

    def loglikelihood(self, context: str, continuations) -> list:
        return self.score_requests(self.requests_for(context, continuations))

    def loglikelihood_rolling(self, text: str) -> tuple:
        """(total log-likelihood, number of tokens) of `text` over disjoint rolling windows, each window
        run from a fresh state (the harness scores every window independently)."""
        tokens = self.encode(text)
        total = []
        for ctx, pred in rolling_windows(tokens, self.prefix_token, self.max_length):
            st = self.model.new_state()
            self.model.feed(ctx, st)
            self.tokens_fed += len(ctx)
            total.append(self._continue(st, pred)[0])
        return math.fsum(total), len(tokens)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="doc", file=sys.stderr, dynamic_ncols=True)


def run_multiple_choice(scorer: Scorer, task, docs, progress: bool = False) -> dict:
    per_doc = {m: [] for m in ("acc", "acc_norm")}
    bar = _progress(len(docs), task.name, progress)
    for doc in docs:
        assert isinstance(doc, MCDoc)
        conts = [" " + c for c in doc.choices]  # harness target delimiter
        lls = [ll for ll, _ in scorer.loglikelihood(doc.context, conts)]
        for k, v in M.multiple_choice_scores(lls, doc.choices, doc.gold).items():
            per_doc[k].append(v)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    out = {}
    for m in task.metrics:
        out[m] = M.mean(per_doc[m])
        out[m + "_stderr"] = M.mean_stderr(per_doc[m])
    return out


def run_perplexity(scorer: Scorer, task, docs, progress: bool = False) -> dict:
    words, nbytes, ntoks = [], [], []
    bar = _progress(len(docs), task.name, progress)
    for doc in docs:
        assert isinstance(doc, PerplexityDoc)
        ll, n = scorer.loglikelihood_rolling(doc.text)
        words.append((ll, doc.words))
        nbytes.append((ll, doc.bytes))
        ntoks.append((ll, n))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return {
        "word_perplexity": M.weighted_perplexity(words),
        "byte_perplexity": M.weighted_perplexity(nbytes),
        "bits_per_byte": M.bits_per_byte(nbytes),
        # Token-level: exp(mean NLL per token) over the same windows; depends on the tokenizer.
        "token_perplexity": M.weighted_perplexity(ntoks),
        "tokens": sum(n for _, n in ntoks),
        "words": sum(w for _, w in words),
        "bytes": sum(b for _, b in nbytes),
    }


def _versions() -> dict:
    from .._version import __version__

    v = {"bitmamba": __version__, "python": platform.python_version(), "numpy": np.__version__,
         "platform": platform.platform()}
    try:
        import tokenizers
        v["tokenizers"] = tokenizers.__version__
    except ImportError:
        pass
    return v


def _threads():
    try:
        from ..system import get_num_threads
        return get_num_threads()
    except Exception:  # the native extension is optional for the mock model used in tests
        return None


def load_tasks(tasks, data_dir=None, limit: Optional[int] = None, source: str = "local") -> dict:
    """{task: (docs, source description)}; every task's data is read up front, so a missing file fails
    before any model time is spent."""
    return {name: TASKS[name].load(data_dir, limit=limit, source=source) for name in resolve_tasks(tasks)}


def evaluate(model, tasks="all", data_dir=None, limit: Optional[int] = None,
             max_length: Optional[int] = None, source: str = "local", progress: bool = False,
             share_state: bool = True, model_name: Optional[str] = None, log=None,
             loaded: Optional[dict] = None) -> dict:
    """Run the tasks on `model`; returns the results dict that `bitmamba eval --output` writes.
    max_length None: the model's context_length (model_max_length); the value used is in the results'
    config. `loaded` may hold load_tasks(...) output, read before the (slow) model load."""
    names = resolve_tasks(tasks)
    if max_length is None:
        max_length = model_max_length(model)
    if loaded is None:
        loaded = load_tasks(names, data_dir, limit, source)
    t_all = time.perf_counter()
    results, meta = {}, {}
    for name in names:
        task = TASKS[name]
        docs, where = loaded[name]
        scorer = Scorer(model, max_length=max_length, share_state=share_state)
        t0 = time.perf_counter()
        if task.kind == "multiple_choice":
            res = run_multiple_choice(scorer, task, docs, progress)
        else:
            res = run_perplexity(scorer, task, docs, progress)
        wall = time.perf_counter() - t0
        results[name] = res
        meta[name] = {
            "n_docs": len(docs), "split": task.split, "data": where, "wall_s": wall,
            "examples_per_s": len(docs) / wall if wall > 0 else None,
            "tokens_fed": scorer.tokens_fed, "tokens_scored": scorer.tokens_scored,
            "tokens_per_s": (scorer.tokens_fed + scorer.tokens_scored) / wall if wall > 0 else None,
        }
        if task.kind == "perplexity":
            meta[name]["window"] = (f"disjoint rolling windows of max_length={max_length} tokens, the first "
                                    "conditioned on EOS; each window from a fresh state")
        if task.notes:
            meta[name]["notes"] = list(task.notes)
        if log:
            log(f"{name}: {len(docs)} docs in {wall:.1f} s ({meta[name]['examples_per_s'] or 0:.2f} ex/s)")
    return {
        "results": results,
        "tasks": meta,
        "config": {
            "model": model_name, "tasks": names, "limit": limit, "max_length": max_length,
            "num_fewshot": 0, "source": source, "share_state": share_state,
            "data_dir": str(data_dir) if data_dir is not None else None,
            "vocab_size": getattr(model, "vocab_size", None), "eos_token_id": getattr(model, "eos_token_id", None),
            "threads": _threads(),
        },
        "versions": _versions(),
        "wall_time_s": time.perf_counter() - t_all,
        "notes": {
            "protocol": "lm-evaluation-harness zero-shot: acc / acc_norm (char-length normalised), "
                        "stderr = sample std / sqrt(n); boolq acc only",
            "wikitext2": "word_perplexity, byte_perplexity, bits_per_byte are the harness metrics "
                         "(document level, words/bytes of the original page); token_perplexity is the "
                         "token-level figure of the kind BitMamba-2 publishes (in the model's own "
                         "tokens, same windows; comparable across models only with the same tokenizer)",
        },
    }


def format_table(results: dict) -> str:
    """Markdown table in the harness's layout: Task | Metric | Value | ± | Stderr."""
    lines = ["| Task | Metric | Value | | Stderr |", "|---|---|---:|---|---:|"]
    for name, res in results["results"].items():
        task = TASKS[name]
        n = results["tasks"][name]["n_docs"]
        for i, m in enumerate(task.metrics):
            v = res[m]
            se = res.get(m + "_stderr")
            scale = 100.0 if m in ("acc", "acc_norm") else 1.0
            val = f"{v * scale:.2f}" if scale != 1.0 else f"{v:.4f}"
            err = "N/A" if se is None else (f"{se * scale:.2f}" if scale != 1.0 else f"{se:.4f}")
            label = f"{name} (n={n})" if i == 0 else ""
            lines.append(f"| {label} | {m}{' (%)' if scale != 1.0 else ''} | {val} | ± | {err} |")
    return "\n".join(lines)
