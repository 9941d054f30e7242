"""Data-mix configuration: which sources, how they are read, how much of each, where shards go.

A data config is a YAML (or dict) like::

    name: offline-demo
    tokenizer: gpt2
    output: data/offline-demo
    sources:
      - name: edu
        weight: 0.6
        inputs:
          - files: ${BITMAMBA_SHARED:-../shared}/data/corpus/openstax/*/contents/*.md
            strip_front_matter: true
      - name: code
        weight: 0.2
        inputs:
          - files: ${stdlib}/**/*.py
            exclude: ["site-packages/**"]
      - name: web
        weight: 0.2
        inputs:
          - hf: HuggingFaceFW/fineweb-edu
            config: sample-10BT
            field: text

Strings may use ``${NAME}`` / ``${NAME:-default}`` (environment variables) and ``${stdlib}`` (this
Python's standard library directory). Relative paths are relative to the current directory.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sysconfig
from typing import Any, Optional

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

DEFAULT_TOKENIZER = "gpt2"  # the GPT-2 tokenizer bundled with the package
FORMATS = ("txt", "jsonl", "json", "parquet")
SPLITS = ("file", "separator", "blank_line", "line")


def expand(value: str) -> str:
    """Expand ${NAME} / ${NAME:-default} from the environment; ${stdlib} is the stdlib directory."""

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name == "stdlib" and "stdlib" not in os.environ:
            return sysconfig.get_paths()["stdlib"]
        v = os.environ.get(name)
        if v is None or v == "":
            if default is None:
                raise ValueError(f"data config: environment variable ${{{name}}} is not set")
            return default
        return v

    return _VAR.sub(sub, value)


def _check_keys(where: str, d: dict, allowed: set) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"data config: {where} must be a mapping, got {type(d).__name__}")
    extra = set(d) - allowed
    if extra:
        raise ValueError(f"data config: unknown key(s) {sorted(extra)} in {where}; allowed: {sorted(allowed)}")


@dataclasses.dataclass
class InputSpec:
    """One way of reading documents: local files (glob) or a Hugging Face dataset (streamed)."""

    files: Optional[str] = None          # glob (recursive ** allowed), or a list joined by the loader
    exclude: list = dataclasses.field(default_factory=list)  # globs matched against the path relative to the glob's root
    format: Optional[str] = None         # txt | jsonl | json | parquet; default from the file extension
    field: str = "text"                  # record field holding the document (jsonl / json / parquet / hf)
    split: str = "file"                  # txt only: file | separator | blank_line | line
    separator: str = "<|endoftext|>"     # txt with split=separator
    strip_front_matter: bool = False     # drop a leading '---\n...\n---' YAML block (Markdown pages)
    encoding: str = "utf-8"
    hf: Optional[str] = None             # Hugging Face dataset name
    config: Optional[str] = None         # its configuration name
    data_dir: Optional[str] = None       # its data_dir (e.g. data/python for the-stack-dedup)
    hf_split: str = "train"

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "InputSpec":
        _check_keys(where, d, {f.name for f in dataclasses.fields(cls)})
        spec = cls(**d)
        if (spec.files is None) == (spec.hf is None):
            raise ValueError(f"data config: {where} needs exactly one of 'files' or 'hf'")
        if spec.files is not None:
            spec.files = expand(str(spec.files))
        if spec.format is not None and spec.format not in FORMATS:
            raise ValueError(f"data config: {where}.format must be one of {FORMATS}, got {spec.format!r}")
        if spec.split not in SPLITS:
            raise ValueError(f"data config: {where}.split must be one of {SPLITS}, got {spec.split!r}")
        if spec.split == "separator" and not spec.separator:
            raise ValueError(f"data config: {where}.separator must be a non-empty string")
        spec.exclude = [str(x) for x in (spec.exclude or [])]
        return spec


@dataclasses.dataclass
class SourceSpec:
    """A named stream of documents with a mixing weight and a held-out validation slice."""

    name: str
    weight: float
    inputs: list
    max_tokens: Optional[int] = None     # stop reading once this many train tokens were written
    max_docs: Optional[int] = None       # ...or this many documents (train + val) were read
    val_fraction: float = 0.01           # share of documents held out (doc 0 is always held out)
    val_max_tokens: int = 1_000_000      # the held-out slice stops growing here
    min_chars: int = 1                   # drop documents shorter than this (after stripping)
    interleave: bool = False             # take documents from the inputs round-robin instead of in turn

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "SourceSpec":
        _check_keys(where, d, {f.name for f in dataclasses.fields(cls)})
        for k in ("name", "weight", "inputs"):
            if k not in d:
                raise ValueError(f"data config: {where} is missing '{k}'")
        d = dict(d)
        name = str(d["name"])
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"data config: source name {name!r} must be letters, digits, '_', '-', '.'")
        inputs = d.pop("inputs")
        if isinstance(inputs, dict):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise ValueError(f"data config: {where}.inputs must be a non-empty list")
        src = cls(inputs=[InputSpec.from_dict(x, f"{where}.inputs[{i}]") for i, x in enumerate(inputs)], **d)
        src.name = name
        src.weight = float(src.weight)
        if not (src.weight >= 0):
            raise ValueError(f"data config: {where}.weight must be >= 0, got {src.weight}")
        if not (0.0 <= src.val_fraction < 1.0):
            raise ValueError(f"data config: {where}.val_fraction must be in [0, 1), got {src.val_fraction}")
        for k in ("max_tokens", "max_docs"):
            v = getattr(src, k)
            if v is not None and int(v) <= 0:
                raise ValueError(f"data config: {where}.{k} must be positive, got {v}")
        return src


@dataclasses.dataclass
class DataConfig:
    sources: list
    name: str = "data"
    tokenizer: str = DEFAULT_TOKENIZER   # "gpt2" (bundled) or a tokenizer.json path
    eos_token: str = "<|endoftext|>"     # appended after every document
    output: str = "data/out"
    shard_tokens: int = 100_000_000      # tokens per shard file (uint16: 200 MB)
    total_tokens: Optional[int] = None   # train-token budget; source max_tokens default to weight * this
    num_proc: int = 1                    # tokenizer worker processes
    batch_docs: int = 128                # documents per tokenizer batch...
    batch_chars: int = 1_000_000         # ...or this many characters, whichever comes first
    # Train a byte-level BPE (GPT-2 pre-tokenizer and byte alphabet) on the mix instead of using
    # `tokenizer`: {vocab_size: 8192, sample_chars: 20000000, min_frequency: 2}. Written to
    # <output>/tokenizer.json and used for the shards. A small vocabulary makes small models much cheaper.
    train_tokenizer: Optional[dict] = None

    @classmethod
    def from_dict(cls, d: dict) -> "DataConfig":
        _check_keys("the top level", d, {f.name for f in dataclasses.fields(cls)})
        if "sources" not in d:
            raise ValueError("data config: missing 'sources'")
        d = dict(d)
        srcs = d.pop("sources")
        if not isinstance(srcs, list) or not srcs:
            raise ValueError("data config: 'sources' must be a non-empty list")
        cfg = cls(sources=[SourceSpec.from_dict(s, f"sources[{i}]") for i, s in enumerate(srcs)], **d)
        names = [s.name for s in cfg.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"data config: duplicate source names in {names}")
        if sum(s.weight for s in cfg.sources) <= 0:
            raise ValueError("data config: at least one source needs a positive weight")
        from .tokenizing import resolve_tokenizer

        cfg.tokenizer = resolve_tokenizer(expand(str(cfg.tokenizer)))
        if cfg.train_tokenizer is not None:
            tt = cfg.train_tokenizer
            _check_keys("train_tokenizer", tt, {"vocab_size", "sample_chars", "min_frequency"})
            if int(tt.get("vocab_size", 0)) < 258:
                raise ValueError("data config: train_tokenizer.vocab_size must be >= 258 (256 bytes + EOS + 1)")
        cfg.output = expand(str(cfg.output))
        if min(int(cfg.shard_tokens), int(cfg.num_proc), int(cfg.batch_docs), int(cfg.batch_chars)) < 1:
            raise ValueError("data config: shard_tokens, num_proc, batch_docs and batch_chars must be >= 1")
        if cfg.total_tokens is not None:
            tot = sum(s.weight for s in cfg.sources)
            for s in cfg.sources:
                if s.max_tokens is None:
                    s.max_tokens = max(1, int(round(int(cfg.total_tokens) * s.weight / tot)))
        return cfg

    @classmethod
    def from_yaml(cls, path) -> "DataConfig":
        from ..yamlfile import read_mapping

        return cls.from_dict(read_mapping(path, "data config"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
