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


class Rows(list):
    """Records read from a data file, with where each came from for error messages: `lines[i]` is the
    1-based line (jsonl, text) or row (parquet) of record i, `unit` says which."""

    def __init__(self, records=(), lines=None, unit: str = "line"):
        super().__init__(records)
        self.lines = list(lines) if lines is not None else list(range(1, len(self) + 1))
        self.unit = unit

    def where(self, path, i: int) -> str:
        """ "path: line 12" for record i (counting from 1, as editors do)."""
        return f"{path}: {self.unit} {self.lines[i]}"


def _utf8_error_line(path) -> str:
    """ " at line N" of the first byte that is not UTF-8 (text is decoded in blocks, so the reader's own
    position says nothing), or "" when the file cannot be read again."""
    path = Path(path)
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix, open)
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        return f" at line {line}"
    except (OSError, EOFError):
        pass
    return ""


def _unreadable(path, e: BaseException) -> ValueError:
    if isinstance(e, UnicodeDecodeError):
        return ValueError(f"{path}: not UTF-8 text{_utf8_error_line(path)} (byte 0x{e.object[e.start]:02x}): the "
                          "file is damaged; download it again")
    return ValueError(f"{path}: cannot read ({e}): the file is damaged; download it again")


def read_jsonl(path: Path) -> Rows:
    rows, lines = [], []
    try:
        with open_text(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line.rstrip("\r\n")))  # (an error at the end: on this line)
                except json.JSONDecodeError as e:
                    # e.msg alone can read "Invalid control character at": the position is ours to add.
                    raise ValueError(f"{path}: not valid JSON at line {n}, column {e.colno}: "
                                     f"{e.msg.removesuffix(' at')}; fix the line or download the file again") from None
                lines.append(n)
    except (UnicodeDecodeError, OSError, EOFError) as e:  # not UTF-8, a damaged .gz / .bz2
        raise _unreadable(path, e) from None
    return Rows(rows, lines)


def read_parquet(path: Path) -> Rows:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"{path} is a parquet file: reading it needs pyarrow (pip install pyarrow)") from None
    try:
        return Rows(pq.read_table(path).to_pylist(), unit="row")
    except Exception as e:  # pyarrow raises its own ArrowInvalid etc. for a damaged file
        raise _unreadable(path, e) from None


def read_text(path: Path) -> str:
    """A whole text file (.gz / .bz2 too), with a one-line error naming it when it cannot be read."""
    try:
        with open_text(path) as f:
            return f.read()
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise _unreadable(path, e) from None


def read_records(path: Path) -> Rows:
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


def _require(rows: Rows, keys, path, what):
    """Every record is an object with `keys`; else a ValueError naming the file and line (from 1)."""
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise ValueError(f"{rows.where(path, i)}: a JSON {type(r).__name__}, not an object; expected {what}")
        missing = [k for k in keys if k not in r]
        if missing:
            raise ValueError(f"{rows.where(path, i)}: lacks {', '.join(missing)}; expected {what}")


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
    labels = [(n, ln.strip()) for n, ln in enumerate(read_text(lpath).splitlines(), 1) if ln.strip()]
    if len(labels) != len(rows):
        raise ValueError(f"{lpath} has {len(labels)} labels but {jpath} has {len(rows)} items")
    _require(rows, ["goal", "sol1", "sol2"], jpath, "the official PIQA schema")
    for r, (n, lab) in zip(rows, labels):
        if lab not in ("0", "1"):
            raise ValueError(f"{lpath}: line {n}: label {lab!r} is not 0 or 1")
        r["label"] = int(lab)
    return rows, jpath


def parse_hellaswag_text(lines, path="HellaSwag text file") -> Rows:
    """llama.cpp format: per item "activity_label: ctx", the gold index, then the 4 endings. Item i starts
    on line 6 i + 1."""
    lines = [ln.rstrip("\r\n") for ln in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) % 6:
        raise ValueError(f"{path} has {len(lines)} lines, not a multiple of 6 "
                         "(expected: context, label, 4 endings per item)")
    items = []
    for i in range(0, len(lines), 6):
        try:
            label = int(lines[i + 1])
        except ValueError:
            raise ValueError(f"{path}: line {i + 2}: label {lines[i + 1]!r} is not an integer") from None
        items.append({"ctx": lines[i], "label": label, "endings": lines[i + 2:i + 6]})
    return Rows(items, range(1, len(lines) + 1, 6))


def load_hellaswag(data_dir: Path) -> tuple:
    """Returns (rows, path, schema): schema "hf" rows carry activity_label/ctx_a/ctx_b, schema "flat" rows
    carry the already-joined and cleaned "activity_label: ctx" string."""
    path = find_file("hellaswag", data_dir, [
        "hellaswag/hellaswag_val.jsonl", "hellaswag/hellaswag_val.jsonl.gz", "hellaswag/validation-*.parquet",
        "hellaswag/hellaswag_val_full.txt", "hellaswag/hellaswag_val_full.txt.bz2",
        "hellaswag/hellaswag_val_llamacpp_format.jsonl", "hellaswag/hellaswag_val_llamacpp_format.jsonl.gz",
    ])
    if ".txt" in path.name:
        return parse_hellaswag_text(read_text(path).split("\n"), path), path, "flat"
    rows = read_records(path)
    if rows and isinstance(rows[0], dict) and "ctx_a" in rows[0]:
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
        raw = read_text(path).replace("\r\n", "\n")
        return wikitext_pages(raw), path
    rows = read_records(path)
    if rows and isinstance(rows[0], dict) and "page" in rows[0]:  # document level (wikitext_document_level)
        _require(rows, ["page"], path, 'document-level rows {"page": ...}')
        return Rows([r["page"] for r in rows], rows.lines, rows.unit), path
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
