"""Exact GPT-2 byte-level BPE tokenization through the Hugging Face `tokenizers` package.

Where a model's tokenizer comes from, first that applies (`tokenizer_source`; loading a model and
converting one both follow it, so a converted GGUF embeds the tokenizer its source loads with):
  1. the one given: `tokenizer=` of `bitmamba.load` (a path to a tokenizer.json, a directory holding one
     or a GGUF model, a JSON string, a `tokenizers.Tokenizer`, a `bitmamba.Tokenizer`), `--tokenizer`;
  2. the model's own: a GGUF's `tokenizer.huggingface.json` metadata, a PyTorch checkpoint directory's
     tokenizer.json;
  3. a `tokenizer.json` beside the model file;
  4. the GPT-2 tokenizer bundled with the package, for a vocabulary of its 50257 tokens (BIT2 files
     carry no tokenizer).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, List, Optional, Tuple, Union

BUNDLED_GPT2 = Path(__file__).resolve().parent / "assets" / "gpt2" / "tokenizer.json"
BUNDLED_GPT2_VOCAB = 50257  # tokens in BUNDLED_GPT2 (see assets/gpt2/README.md)

_EXPECTED = "expected a tokenizer.json, a directory holding one, or a GGUF model with an embedded tokenizer"


def read_tokenizer_json(path: Union[str, os.PathLike]) -> Tuple[str, str]:
    """(tokenizer.json text, where it came from) for a tokenizer path as users give it (--tokenizer of
    generate, chat, eval and convert): a tokenizer.json, a directory holding one, or a GGUF model file,
    whose embedded tokenizer (metadata tokenizer.huggingface.json) is taken. Anything else is a
    ValueError that says what is expected; a corrupt GGUF is a FormatError naming the file and key."""
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise FileNotFoundError(f"tokenizer not found: {p} ({_EXPECTED})")
    data = p.read_bytes()
    if data[:4] == b"GGUF":
        from .formats.gguf_reader import GGUFFile

        text = GGUFFile(p).fields.get("tokenizer.huggingface.json")
        if not isinstance(text, str):
            raise ValueError(f"{p} is a GGUF model without an embedded tokenizer (no tokenizer.huggingface.json "
                             "metadata): give the model's tokenizer.json instead")
        return text, f"{p} (embedded tokenizer.huggingface.json)"
    from .formats.bit2 import MAGIC_BYTES as BIT2_MAGIC

    if data[:4] == BIT2_MAGIC:
        raise ValueError(f"{p} is a BIT2 model file, which carries no tokenizer: {_EXPECTED}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{p} is not a tokenizer.json (not UTF-8 text): {_EXPECTED}") from None
    if not text.lstrip().startswith("{"):
        raise ValueError(f"{p} is not a tokenizer.json (not a JSON object): {_EXPECTED}")
    return text, str(p)


def tokenizer_source(given=None, embedded: Optional[str] = None, directory=None,
                     vocab_size: Optional[int] = None) -> Tuple[Optional[str], Any]:
    """Which tokenizer a model uses, as (step, value), by the order in this module's docstring:
    ("given", given) when given is not None; ("embedded", embedded) when the model carries tokenizer.json
    text; ("beside", path) for a tokenizer.json in `directory` (the model file's folder); ("bundled",
    BUNDLED_GPT2) when vocab_size is BUNDLED_GPT2_VOCAB (or unknown); (None, None) otherwise: the model
    then works with token ids only. Nothing is read or parsed here: each caller builds what it needs
    (a Tokenizer to load with, the JSON text to embed) and reports errors in its own terms."""
    if given is not None:
        return "given", given
    if embedded:
        return "embedded", embedded
    if directory is not None and (Path(directory) / "tokenizer.json").is_file():
        return "beside", Path(directory) / "tokenizer.json"
    if vocab_size is None or vocab_size == BUNDLED_GPT2_VOCAB:
        return "bundled", BUNDLED_GPT2
    return None, None


def _repair(spec: dict) -> dict:
    """Fix two known defects of circulating GPT-2 tokenizer.json copies (see assets/gpt2/README.md)."""
    model = spec.get("model")
    if isinstance(model, dict) and "type" not in model and "vocab" in model and "merges" in model:
        spec["model"] = {"type": "BPE", **model}
        model = spec["model"]
    if isinstance(model, dict):
        vocab = model.get("vocab")
        if isinstance(vocab, dict) and vocab.get("ĠLLMProvider") == 40559 and "ĠClaude" not in vocab:
            vocab["ĠClaude"] = vocab.pop("ĠLLMProvider")
    return spec


def check_unicode(text: str, what: str = "the text") -> None:
    """ValueError naming the first lone surrogate in text (text that cannot be written as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} is not valid Unicode: character {e.start} is the lone surrogate "
                         f"U+{ord(text[e.start]):04X} (undecodable bytes?); decode bytes as UTF-8, "
                         "with errors='replace' if need be") from None


class Tokenizer:
    """Text <-> token ids. `encode` adds no special tokens; `decode` keeps them (exact round trip)."""

    def __init__(self, backend, source: str = ""):
        self._tok = backend
        self.source = source

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_json_string(cls, text: str, source: str = "json") -> "Tokenizer":
        from tokenizers import Tokenizer as HFTokenizer

        try:
            spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"tokenizer ({source}) is not valid JSON: {e}") from None
        try:
            return cls(HFTokenizer.from_str(json.dumps(_repair(spec))), source)
        except Exception as e:  # tokenizers raises plain Exception
            raise ValueError(f"cannot build a tokenizer from {source}: {e}") from None

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike]) -> "Tokenizer":
        """From a tokenizer.json, a directory holding one, or a GGUF model with an embedded tokenizer."""
        text, source = read_tokenizer_json(path)
        return cls.from_json_string(text, source=source)

    @classmethod
    def gpt2(cls) -> "Tokenizer":
        """The bundled GPT-2 tokenizer (MIT)."""
        return cls.from_file(BUNDLED_GPT2)

    @classmethod
    def coerce(cls, obj) -> "Tokenizer":
        """A Tokenizer from whatever `tokenizer=` was given."""
        if isinstance(obj, Tokenizer):
            return obj
        if isinstance(obj, (str, os.PathLike)):
            s = str(obj)
            if s.lstrip().startswith("{"):
                return cls.from_json_string(s)
            return cls.from_file(s)
        if hasattr(obj, "encode") and hasattr(obj, "decode") and hasattr(obj, "get_vocab_size"):
            return cls(obj, source=type(obj).__name__)
        raise TypeError(f"tokenizer must be a path, a JSON string or a tokenizers.Tokenizer, got {type(obj).__name__}")

    # -- use ----------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> List[int]:
        """Token ids of text. ValueError if it holds lone surrogates (undecodable bytes that Python
        kept as U+DC80..U+DCFF, e.g. from a command line that was not UTF-8), which no tokenizer can
        encode."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}")
        try:
            return list(self._tok.encode(text, add_special_tokens=False).ids)
        except TypeError:
            check_unicode(text)  # the backend says only "TextInputSequence must be str"
            raise

    def encode_batch(self, texts: Iterable[str]) -> List[List[int]]:
        texts = list(texts)
        try:
            return [list(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False)]
        except TypeError:
            for i, t in enumerate(texts):
                if not isinstance(t, str):
                    raise TypeError(f"encode_batch expects str items, got {type(t).__name__} at index {i}") from None
                check_unicode(t, f"text {i}")
            raise

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_to_id(self, token: str) -> Optional[int]:
        return self._tok.token_to_id(token)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, source={self.source!r})"


class StreamDecoder:
    """Turns a stream of token ids into text pieces. Byte-level BPE tokens can end inside a UTF-8
    character; such bytes are held back until the character is complete (at most 4 tokens, after
    which the replacement character is emitted, as a full decode would)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tok = tokenizer
        self.pending: List[int] = []

    def push(self, token_id: int) -> str:
        self.pending.append(int(token_id))
        text = self.tok.decode(self.pending)
        if text.endswith("\ufffd") and len(self.pending) < 4:
            return ""
        self.pending = []
        return text

    def flush(self) -> str:
        text = self.tok.decode(self.pending) if self.pending else ""
        self.pending = []
        return text
