"""Reading the evaluation sets from local files (or the Hugging Face hub when `datasets` is installed).

Local layout (what ../shared/data/eval holds; any of the listed alternatives per task is accepted):
    arc/ARC-Easy-test.jsonl, arc/ARC-Challenge-test.jsonl      HF schema: question, choices{text,label}, answerKey
    piqa/valid.jsonl + piqa/valid-labels.lst                   official PIQA release
    hellaswag/hellaswag_val.jsonl(.gz)                         original / HF schema (ctx_a, ctx_b, activity_label)
    hellaswag/hellaswag_val_full.txt(.bz2)                     llama.cpp text format, 6 lines per item
    hellaswag/hellaswag_val_llamacpp_format.jsonl(.gz)         the same as jsonl {ctx, endings, label}
    boolq/BoolQ-val.jsonl (or validation.jsonl)                question, passage, label
    wikitext2/wiki.test.raw                                    the raw test file of wikitext-2-raw-v1
    wikitext2/wikitext2_raw_test_rows.jsonl                    the 4358 HF rows {"text": ...}
    wikitext2/*.parquet, wikitext2/*.jsonl                     HF rows ("text") or document-level ("page")
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import os
from pathlib import Path

DATA_DIR_ENV = "BITMAMBA_DATA_DIR"


class DataNotFoundError(FileNotFoundError):
    """A task's data files are not where we looked; the message lists the paths and what to pass."""


def default_data_dir() -> Path:
    """$BITMAMBA_DATA_DIR if set, else ../shared/data/eval relative to the current directory."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return Path.cwd().parent / "shared" / "data" / "eval"


def open_text(path: Path):
    """Open .gz / .bz2 / plain files as UTF-8 text, keeping line endings as they are."""
    path = Path(path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    if path.suffix == ".bz2":
        return io.TextIOWrapper(bz2.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_jsonl(path: Path) -> list:
    rows = []
    with open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    return rows


def read_parquet(path: Path) -> list:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"{path} is a parquet file: reading it needs pyarrow (pip install pyarrow)") from None
    return pq.read_table(path).to_pylist()


def read_records(path: Path) -> list:
    name = Path(path).name
    if name.endswith(".parquet"):
        return read_parquet(path)
    return read_jsonl(path)


def find_file(task: str, data_dir: Path, candidates) -> Path:
    """The first existing candidate (relative to data_dir, globs allowed), else a DataNotFoundError."""
    data_dir = Path(data_dir)
    for c in candidates:
        if any(ch in c for ch in "*?["):
            hits = sorted(data_dir.glob(c))
            if hits:
                return hits[0]
        elif (data_dir / c).is_file():
            return data_dir / c
    tried = ", ".join(str(data_dir / c) for c in candidates)
    raise DataNotFoundError(
        f"no data for task {task!r}: looked for {tried}. Pass --data-dir DIR (the folder holding "
        f"arc/, piqa/, hellaswag/, boolq/, wikitext2/) or set {DATA_DIR_ENV}"
    )


def _require(rows, keys, path, what):
    for i, r in enumerate(rows[:5]):
        missing = [k for k in keys if k not in r]
        if missing:
            raise ValueError(f"{path}: row {i} lacks {missing}; expected {what}")


# ------------------------------------------------------------------------------------------- loaders
def load_arc(data_dir: Path, subset: str) -> tuple:
    name = {"easy": "ARC-Easy", "challenge": "ARC-Challenge"}[subset]
    path = find_file(f"arc_{subset}", data_dir, [f"arc/{name}-test.jsonl", f"arc/{name}-test.jsonl.gz",
                                                 f"arc/{name}/test-*.parquet", f"arc/{name}-test.parquet"])
    rows = read_records(path)
    _require(rows, ["question", "choices", "answerKey"], path, "the HF ai2_arc schema")
    return rows, path


def load_piqa(data_dir: Path) -> tuple:
    jpath = find_file("piqa", data_dir, ["piqa/valid.jsonl"])
    lpath = find_file("piqa", data_dir, ["piqa/valid-labels.lst"])
    rows = read_jsonl(jpath)
    with open(lpath, encoding="utf-8") as f:
        labels = [ln.strip() for ln in f if ln.strip()]
    if len(labels) != len(rows):
        raise ValueError(f"{lpath} has {len(labels)} labels but {jpath} has {len(rows)} items")
    _require(rows, ["goal", "sol1", "sol2"], jpath, "the official PIQA schema")
    for r, lab in zip(rows, labels):
        r["label"] = int(lab)
    return rows, jpath


def parse_hellaswag_text(lines) -> list:
    """llama.cpp format: per item "activity_label: ctx", the gold index, then the 4 endings."""
    lines = [ln.rstrip("\r\n") for ln in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) % 6:
        raise ValueError(f"HellaSwag text file has {len(lines)} lines, not a multiple of 6 "
                         "(expected: context, label, 4 endings per item)")
    items = []
    for i in range(0, len(lines), 6):
        try:
            label = int(lines[i + 1])
        except ValueError:
            raise ValueError(f"HellaSwag text line {i + 2}: label {lines[i + 1]!r} is not an integer") from None
        items.append({"ctx": lines[i], "label": label, "endings": lines[i + 2:i + 6]})
    return items


def load_hellaswag(data_dir: Path) -> tuple:
    """Returns (rows, path, schema): schema "hf" rows carry activity_label/ctx_a/ctx_b, schema "flat" rows
    carry the already-joined and cleaned "activity_label: ctx" string."""
    path = find_file("hellaswag", data_dir, [
        "hellaswag/hellaswag_val.jsonl", "hellaswag/hellaswag_val.jsonl.gz", "hellaswag/validation-*.parquet",
        "hellaswag/hellaswag_val_full.txt", "hellaswag/hellaswag_val_full.txt.bz2",
        "hellaswag/hellaswag_val_llamacpp_format.jsonl", "hellaswag/hellaswag_val_llamacpp_format.jsonl.gz",
    ])
    if ".txt" in path.name:
        with open_text(path) as f:
            return parse_hellaswag_text(f.read().split("\n")), path, "flat"
    rows = read_records(path)
    if rows and "ctx_a" in rows[0]:
        _require(rows, ["activity_label", "ctx_a", "ctx_b", "endings", "label"], path, "the HellaSwag schema")
        return rows, path, "hf"
    _require(rows, ["ctx", "endings", "label"], path, "{ctx, endings, label}")
    return rows, path, "flat"


def load_boolq(data_dir: Path) -> tuple:
    path = find_file("boolq", data_dir, ["boolq/BoolQ-val.jsonl", "boolq/validation.jsonl",
                                         "boolq/val.jsonl", "boolq/validation-*.parquet"])
    rows = read_records(path)
    _require(rows, ["question", "passage", "label"], path, "the BoolQ schema {question, passage, label}")
    return rows, path


def load_wikitext_pages(data_dir: Path) -> tuple:
    from .prompts import wikitext_pages, wikitext_raw_from_rows

    path = find_file("wikitext2", data_dir, [
        "wikitext2/wiki.test.raw", "wikitext2/wikitext2_raw_test_rows.jsonl", "wikitext2/test-*.parquet",
        "wikitext2/*.parquet", "wikitext2/*.jsonl",
    ])
    if path.name.endswith(".raw"):
        with open_text(path) as f:
            raw = f.read().replace("\r\n", "\n")
        return wikitext_pages(raw), path
    rows = read_records(path)
    if rows and "page" in rows[0]:  # already document level (EleutherAI/wikitext_document_level)
        return [r["page"] for r in rows], path
    _require(rows, ["text"], path, 'HF wikitext rows {"text": ...} or pages {"page": ...}')
    return wikitext_pages(wikitext_raw_from_rows([r["text"] for r in rows])), path


# ------------------------------------------------------------------------------------- hub (optional)
HUB_SOURCES = {
    "arc_easy": ("allenai/ai2_arc", "ARC-Easy", "test"),
    "arc_challenge": ("allenai/ai2_arc", "ARC-Challenge", "test"),
    "piqa": ("baber/piqa", None, "validation"),
    "hellaswag": ("Rowan/hellaswag", None, "validation"),
    "boolq": ("super_glue", "boolq", "validation"),
    "wikitext2": ("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1", "test"),
}


def load_from_hub(task: str) -> list:
    """The same split the harness reads, through `datasets` (needs it installed and network access)."""
    try:
        import datasets
    except ImportError:
        raise ValueError("--source hub needs the `datasets` package (pip install datasets)") from None
    path, name, split = HUB_SOURCES[task]
    return list(datasets.load_dataset(path, name, split=split))
