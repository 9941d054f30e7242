"""The six zero-shot tasks: where their data comes from and how a document becomes a request.

A multiple-choice task yields MCDoc(context, choices, gold); the runner scores context + " " + choice for
every choice. The perplexity task (wikitext2) yields PerplexityDoc(text, words, bytes): the detokenized
page to score and the word / byte counts of the original page that the harness divides by.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import data, prompts


@dataclass
class MCDoc:
    context: str
    choices: list
    gold: int


@dataclass
class PerplexityDoc:
    text: str   # what is scored (detokenized)
    words: int  # of the original page
    bytes: int  # UTF-8 bytes of the original page


@dataclass
class Task:
    name: str
    kind: str                      # "multiple_choice" or "perplexity"
    split: str                     # the split the harness evaluates
    metrics: tuple
    description: str
    _load_local: Callable = field(repr=False)
    _from_rows: Callable = field(repr=False)
    notes: list = field(default_factory=list)

    def load(self, data_dir: Optional[Path] = None, limit: Optional[int] = None, source: str = "local"):
        """(docs, source description). limit: the first N documents, as the harness's --limit."""
        if limit is not None and limit < 1:
            raise ValueError(f"--limit must be >= 1, got {limit}")
        if source == "hub":
            docs, where = self._from_rows(data.load_from_hub(self.name), "hf"), "hub:" + "/".join(
                x for x in data.HUB_SOURCES[self.name] if x)
        elif source == "local":
            data_dir = Path(data_dir) if data_dir is not None else data.default_data_dir()
            docs, where = self._load_local(data_dir)
        else:
            raise ValueError(f"unknown data source {source!r}: use 'local' or 'hub'")
        if limit is not None:
            docs = docs[:limit]
        return docs, where


# ------------------------------------------------------------------------------ doc -> request builders
def _arc_docs(rows, schema=None):
    return [MCDoc(prompts.arc_prompt(r), prompts.arc_choices(r), prompts.arc_gold(r)) for r in rows]


def _piqa_docs(rows, schema=None):
    return [MCDoc(prompts.piqa_prompt(r), prompts.piqa_choices(r), prompts.piqa_gold(r)) for r in rows]


def _hellaswag_docs(rows, schema):
    out = []
    for r in rows:
        if schema == "hf":
            ctx = prompts.hellaswag_query(r)
        else:
            # Flat "activity_label: ctx" (llama.cpp format): cleaned already, ctx_b capitalisation rebuilt.
            ctx = prompts.capitalize_trailing_fragment(prompts.hellaswag_preprocess(r["ctx"]))
        out.append(MCDoc(ctx, prompts.hellaswag_choices(r), prompts.hellaswag_gold(r)))
    return out


def _boolq_docs(rows, schema=None):
    return [MCDoc(prompts.boolq_prompt(r), list(prompts.BOOLQ_CHOICES), prompts.boolq_gold(r)) for r in rows]


def _wikitext_docs(pages, schema=None):
    if pages and isinstance(pages[0], dict):
        pages = [p["page"] for p in pages]
    return [PerplexityDoc(prompts.wikitext_detokenize(p), prompts.wikitext_word_count(p),
                          len(p.encode("utf-8"))) for p in pages]


def _build(builder, rows, schema, path) -> list:
    """builder applied record by record, so a bad record (a missing field, an answer that is not among the
    choices) is reported with its file and line, counted from 1."""
    docs = []
    for i, r in enumerate(rows):
        try:
            docs += builder([r], schema)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            where = rows.where(path, i) if isinstance(rows, data.Rows) else f"{path}: record {i + 1}"
            detail = f"no field {e}" if isinstance(e, KeyError) else str(e)
            raise ValueError(f"{where}: {detail}") from None
    return docs


def _local(loader, builder):
    def load(data_dir):
        rows, path = loader(data_dir)[:2]
        return _build(builder, rows, None, path), str(path)
    return load


def _hellaswag_local(data_dir):
    rows, path, schema = data.load_hellaswag(data_dir)
    return _build(_hellaswag_docs, rows, schema, path), str(path)


_HELLASWAG_NOTE = ("from the llama.cpp text format the ctx_a/ctx_b split is lost; the harness's "
                   "ctx_b.capitalize() is rebuilt on the fragment after the last sentence end (exact for the "
                   "HF/original jsonl schema)")

TASKS = {
    "arc_easy": Task("arc_easy", "multiple_choice", "test", ("acc", "acc_norm"),
                     "ARC-Easy (AI2 Reasoning Challenge), 2376 test questions",
                     _local(lambda d: data.load_arc(d, "easy"), _arc_docs), _arc_docs),
    "arc_challenge": Task("arc_challenge", "multiple_choice", "test", ("acc", "acc_norm"),
                          "ARC-Challenge, 1172 test questions",
                          _local(lambda d: data.load_arc(d, "challenge"), _arc_docs), _arc_docs),
    "piqa": Task("piqa", "multiple_choice", "validation", ("acc", "acc_norm"),
                 "PIQA physical commonsense, 1838 validation goals",
                 _local(data.load_piqa, _piqa_docs), _piqa_docs),
    "hellaswag": Task("hellaswag", "multiple_choice", "validation", ("acc", "acc_norm"),
                      "HellaSwag sentence completion, 10042 validation contexts",
                      _hellaswag_local, _hellaswag_docs, notes=[_HELLASWAG_NOTE]),
    "boolq": Task("boolq", "multiple_choice", "validation", ("acc",),
                  "BoolQ yes/no questions on a passage, 3270 validation items",
                  _local(data.load_boolq, _boolq_docs), _boolq_docs),
    "wikitext2": Task("wikitext2", "perplexity", "test",
                      ("word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity"),
                      "WikiText-2 (raw) test, 62 documents, rolling log-likelihood",
                      _local(data.load_wikitext_pages, _wikitext_docs), _wikitext_docs),
}

ALIASES = {"wikitext": "wikitext2", "wikitext-2": "wikitext2", "arc-easy": "arc_easy",
           "arc-challenge": "arc_challenge", "arc_e": "arc_easy", "arc_c": "arc_challenge"}


def resolve_tasks(spec) -> list:
    """Task names from a comma-separated string or a list; "all" means all six. Unknown names raise a
    ValueError that lists the valid ones."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name == "all":
            out.extend(n for n in TASKS if n not in out)
            continue
        name = ALIASES.get(name, name)
        if name not in TASKS:
            raise ValueError(f"unknown task {raw.strip()!r}: choose from {', '.join(TASKS)} (or 'all')")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"no tasks given: pass --tasks with some of {', '.join(TASKS)}")
    return out
