"""Batched, optionally multi-process tokenization with the `tokenizers` package.

Workers each load the tokenizer once; batches come back in submission order (Pool.imap), so the token
stream is identical for any number of processes.
"""
from __future__ import annotations

import collections
import json
import multiprocessing as mp
import os
import warnings
from typing import Iterable, Iterator

import numpy as np

from ..atomic import atomic_path

_TOK = None
_EOS = None


def resolve_tokenizer(name: str) -> str:
    """"gpt2" -> the GPT-2 tokenizer bundled with the package; anything else is a tokenizer.json path."""
    if name == "gpt2":
        from ..tokenizer import BUNDLED_GPT2

        return str(BUNDLED_GPT2)
    return name


def load_tokenizer(path: str):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError("tokenizing needs the 'tokenizers' package (pip install tokenizers)") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    # The same repairs bitmamba.tokenizer applies at inference (a missing model.type; the GPT-2 copy
    # whose id 40559 was renamed from "ĠClaude"), so training data and generation tokenize alike.
    from ..tokenizer import _repair

    spec = _repair(spec)
    model = spec.get("model")
    if isinstance(model, dict) and "type" not in model:
        if "max_input_chars_per_word" in model:
            model["type"] = "WordPiece"
        elif isinstance(model.get("vocab"), list):
            model["type"] = "Unigram"
    if isinstance(model, dict) and model.get("type") == "BPE" and isinstance(model.get("vocab"), dict):
        # Any other merge whose result is missing from the vocabulary makes `tokenizers` refuse the
        # whole file; such a merge can never yield a valid id, so it is left out, with a warning.
        vocab = model["vocab"]
        merges = model.get("merges") or []
        keep = [m for m in merges if _merged(m) in vocab]
        if len(keep) != len(merges):
            bad = [m for m in merges if _merged(m) not in vocab]
            warnings.warn(f"{path}: ignoring {len(bad)} BPE merge(s) whose result is not in the vocabulary: "
                          f"{bad[:3]}", stacklevel=2)
            model["merges"] = keep
    return Tokenizer.from_str(json.dumps(spec))


def _merged(m) -> str:
    return "".join(m) if isinstance(m, list) else m.replace(" ", "", 1)


def tokenizer_info(path: str, eos_token: str) -> dict:
    tok = load_tokenizer(path)
    eos = tok.token_to_id(eos_token)
    if eos is None:
        raise ValueError(f"tokenizer {path} has no token {eos_token!r} to use as EOS; set eos_token")
    return {"vocab_size": tok.get_vocab_size(with_added_tokens=True), "eos_id": int(eos)}


def _init(path: str, eos_id: int, threads: bool) -> None:
    global _TOK, _EOS
    if not threads:
        # One process per core already; the Rust thread pool on top would only oversubscribe.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the parent already warned about this file once
        _TOK = load_tokenizer(path)
    _EOS = eos_id


def encode_docs(docs: list) -> tuple:
    """Token ids of each document with EOS appended, concatenated (int64) + per-document lengths."""
    enc = _TOK.encode_batch(docs, add_special_tokens=False)
    lens = np.fromiter((len(e.ids) + 1 for e in enc), dtype=np.int64, count=len(enc))
    out = np.empty(int(lens.sum()), dtype=np.int64)
    pos = 0
    for e, n in zip(enc, lens):
        out[pos:pos + n - 1] = e.ids
        out[pos + n - 1] = _EOS
        pos += n
    return out, lens


def encode_batches(batches: Iterable[list], tokenizer_path: str, eos_id: int, num_proc: int = 1) -> Iterator[tuple]:
    """Tokenize an iterable of document batches; yields (tokens, doc_lengths) per batch, in order."""
    if num_proc <= 1:
        _init(tokenizer_path, eos_id, threads=True)
        for b in batches:
            yield encode_docs(b)
        return
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    # Not Pool.imap: its feeder thread drains the whole input iterator at once, which would read (and
    # tokenize) an entire streamed dataset even when the caller stops after max_tokens. Here at most
    # 2 batches per worker are in flight.
    pending = collections.deque()
    it = iter(batches)
    with ctx.Pool(num_proc, initializer=_init, initargs=(tokenizer_path, eos_id, False)) as pool:
        for b in it:
            pending.append(pool.apply_async(encode_docs, (b,)))
            if len(pending) >= 2 * num_proc:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def train_bpe(docs: Iterable[str], vocab_size: int, eos_token: str, path, min_frequency: int = 2) -> None:
    """Train a byte-level BPE with GPT-2's pre-tokenizer on `docs` and save it as tokenizer.json.
    The EOS token is id 0; every byte has a token, so any text encodes without an unknown token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=int(vocab_size), min_frequency=int(min_frequency),
                                  special_tokens=[eos_token], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer)
    with atomic_path(path) as tmp:
        tok.save(str(tmp))
