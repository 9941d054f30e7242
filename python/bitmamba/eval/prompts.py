"""Prompt templates and text preprocessing of the zero-shot tasks, as lm-evaluation-harness defines them.

Each function here is a plain string transform so it can be checked by hand in tests. The templates follow
the harness task configs (arc_easy / arc_challenge, piqa, hellaswag, boolq, wikitext); the harness puts the
target delimiter " " between the prompt and every answer choice, which is `TARGET_DELIMITER` below.
"""
from __future__ import annotations

import re

# The harness joins context and continuation with this (its `target_delimiter` default).
TARGET_DELIMITER = " "


# ----------------------------------------------------------------------------------------------- ARC
def arc_prompt(doc: dict) -> str:
    return f"Question: {doc['question']}\nAnswer:"


def arc_choices(doc: dict) -> list:
    return list(doc["choices"]["text"])


def arc_gold(doc: dict) -> int:
    labels = list(doc["choices"]["label"])
    key = doc["answerKey"]
    if key not in labels:
        raise ValueError(f"ARC item {doc.get('id', '?')}: answerKey {key!r} is not one of its labels {labels}")
    return labels.index(key)


# ---------------------------------------------------------------------------------------------- PIQA
def piqa_prompt(doc: dict) -> str:
    return f"Question: {doc['goal']}\nAnswer:"


def piqa_choices(doc: dict) -> list:
    return [doc["sol1"], doc["sol2"]]


def piqa_gold(doc: dict) -> int:
    return int(doc["label"])


# ----------------------------------------------------------------------------------------- HellaSwag
_BRACKET_TAG = re.compile(r"\[.*?\]")


def hellaswag_preprocess(text: str) -> str:
    """The harness's HellaSwag cleanup: strip, " [title]" -> ". ", drop any "[...]" tag (WikiHow
    artifacts such as [header], [step]), then collapse one level of double spaces."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = _BRACKET_TAG.sub("", text)
    return text.replace("  ", " ")


def hellaswag_query(doc: dict) -> str:
    """Context from the original/HF schema: activity_label + ": " + ctx_a + " " + ctx_b.capitalize().

    Note str.capitalize() also lower-cases the rest of ctx_b; the harness does exactly that."""
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return hellaswag_preprocess(doc["activity_label"] + ": " + ctx)


_SENTENCE_END = re.compile(r"[.!?]\s+")


def capitalize_trailing_fragment(ctx: str) -> str:
    """Best reconstruction of the harness query from a context whose ctx_a / ctx_b split was lost (the
    llama.cpp text format keeps "activity_label: ctx_a ctx_b" with ctx_b not capitalised).

    In HellaSwag, ctx_b is the unfinished sentence after the last complete one (ActivityNet items: "he",
    "the lady"), and is empty for most WikiHow items, whose context then ends with a full sentence. So:
    take the text after the last sentence end; if it starts with a lower-case letter it is ctx_b and gets
    the harness's .capitalize(); otherwise nothing changes. It is exact whenever ctx_a ends a sentence."""
    ends = list(_SENTENCE_END.finditer(ctx))
    start = ends[-1].end() if ends else 0
    if start == 0:
        # No sentence end: the fragment would be the activity label itself, which never starts lower-case in
        # the data; find the fragment after "label: " instead.
        colon = ctx.find(": ")
        start = colon + 2 if colon >= 0 else 0
    frag = ctx[start:]
    if frag and frag[0].islower():
        return ctx[:start] + frag.capitalize()
    return ctx


def hellaswag_choices(doc: dict) -> list:
    return [hellaswag_preprocess(e) for e in doc["endings"]]


def hellaswag_gold(doc: dict) -> int:
    return int(doc["label"])


# --------------------------------------------------------------------------------------------- BoolQ
def boolq_prompt(doc: dict) -> str:
    return f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:"


BOOLQ_CHOICES = ["no", "yes"]


def boolq_gold(doc: dict) -> int:
    label = doc["label"]
    if isinstance(label, str):
        low = label.strip().lower()
        if low in ("true", "yes", "1"):
            return 1
        if low in ("false", "no", "0"):
            return 0
        raise ValueError(f"BoolQ label {label!r} is not a boolean")
    return int(bool(label))


# ------------------------------------------------------------------------------------------ WikiText
def wikitext_detokenize(page: str) -> str:
    """Undo WikiText's tokenisation (" @-@ " number joiners, spaces before punctuation, spaced brackets
    and quotes, "= =" heading markers), rule for rule as the harness's wikitext task does it. The order of
    the replacements matters and is kept."""
    s = page
    # contractions
    s = s.replace("s '", "s'")
    s = re.sub(r"/' [0-9]/", r"/'[0-9]/", s)  # (matches nothing in practice; kept for fidelity)
    # number separators
    for old, new in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", ".")):
        s = s.replace(old, new)
    # punctuation
    for p in (":", ";", ".", "!", "?", ","):
        s = s.replace(f" {p} ", f"{p} ")
    # spaces inside brackets and quotes
    s = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", s)
    s = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", s)
    s = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", s)
    s = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', s)
    s = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", s)
    # headings and the rest
    s = s.replace("= = = =", "====").replace("= = =", "===").replace("= =", "==")
    s = s.replace(" \u00b0 ", "\u00b0")
    s = s.replace(" \n", "\n").replace("\n ", "\n")
    s = s.replace(" N ", " 1 ")
    s = s.replace(" 's", "'s")
    return s


def wikitext_word_count(page: str) -> int:
    """Words of the *original* (not detokenized) page, as the harness counts them: len(re.split(r"\\s+"))."""
    return len(re.split(r"\s+", page))


def _is_level1_heading(line: str) -> bool:
    flat = line.replace("= = =", "===").replace("= =", "==").strip()
    return flat.startswith("= ") and flat.endswith(" =")


def wikitext_pages(raw: str) -> list:
    """Split a raw WikiText file (wiki.test.raw) into the document-level pages of the HF dataset
    EleutherAI/wikitext_document_level that the harness reads: a page starts at each level-1 heading
    " = Title = " and is its lines joined by "\\n"; whitespace-only stretches before a heading are dropped,
    the last page is kept as is (it ends with the file's final empty line)."""
    pages, cur = [], []
    for line in raw.split("\n"):
        if _is_level1_heading(line):
            text = "\n".join(cur)
            if text.strip():
                pages.append(text)
            cur = []
        cur.append(line)
    pages.append("\n".join(cur))
    return pages


def wikitext_raw_from_rows(rows) -> str:
    """Rebuild wiki.test.raw from the HF `wikitext` rows: each row is one line of the file with its "\\n",
    and the blank lines (" \\n" in the file) are the empty rows."""
    return "".join(r if r else " \n" for r in rows)
