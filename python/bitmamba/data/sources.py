"""Document readers: local files (txt / jsonl / json / parquet, globbed) and Hugging Face streaming.

Every reader yields documents as plain `str`, in a deterministic order (files sorted by path), so the
same config always produces the same token shards.
"""
from __future__ import annotations

import fnmatch
import glob
import gzip
import json
import os
import re
from pathlib import Path
from typing import Iterator

from .config import InputSpec

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n.*?\r?\n---[ \t]*(\r?\n|\Z)", re.S)
_BLANK_LINES = re.compile(r"\n[ \t]*\n")
_EXT_FORMAT = {".txt": "txt", ".md": "txt", ".py": "txt", ".text": "txt", ".jsonl": "jsonl",
               ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}


def _glob_root(pattern: str) -> str:
    """The directory part of a glob before its first wildcard: excludes match paths relative to it."""
    parts = Path(pattern).parts
    root = []
    for p in parts:
        if any(c in p for c in "*?["):
            break
        root.append(p)
    return str(Path(*root)) if root else "."


def list_files(spec: InputSpec) -> list:
    """The files a spec names, sorted; a pattern that matches nothing is an error (typo, not "no data")."""
    pattern = spec.files
    if not any(c in pattern for c in "*?["):
        if not os.path.isfile(pattern):
            raise FileNotFoundError(f"data input file not found: {pattern}")
        return [pattern]
    root = _glob_root(pattern)
    out = []
    for f in sorted(glob.glob(pattern, recursive=True)):
        if not os.path.isfile(f):
            continue
        rel = Path(os.path.relpath(f, root)).as_posix()
        if any(fnmatch.fnmatch(rel, ex) or fnmatch.fnmatch("/" + rel, ex) for ex in spec.exclude):
            continue
        out.append(f)
    if not out:
        raise FileNotFoundError(f"data input glob matched no files: {pattern}"
                                + (f" (after excluding {spec.exclude})" if spec.exclude else ""))
    return out


def file_format(spec: InputSpec, path: str) -> str:
    if spec.format:
        return spec.format
    name = path[:-3] if path.endswith(".gz") else path
    fmt = _EXT_FORMAT.get(os.path.splitext(name)[1].lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path} from its extension; set 'format' "
                         f"(one of txt, jsonl, json, parquet) on its input")
    return fmt


def _open_text(path: str, encoding: str):
    # errors="replace": a stray undecodable byte in one file (the stdlib has a few latin-1 test files)
    # should cost a replacement character, not the whole run.
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding=encoding, errors="replace")
    return open(path, encoding=encoding, errors="replace")


def _field(record, field: str, where: str) -> str:
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an object with field {field!r}, got {type(record).__name__}")
    if field not in record:
        raise ValueError(f"{where}: record has no field {field!r} (fields: {sorted(record)[:10]})")
    v = record[field]
    if v is None:
        return ""
    if not isinstance(v, str):
        raise ValueError(f"{where}: field {field!r} is {type(v).__name__}, expected a string")
    return v


def _txt_docs(spec: InputSpec, path: str) -> Iterator[str]:
    with _open_text(path, spec.encoding) as f:
        if spec.split == "line":
            for line in f:
                yield line
            return
        text = f.read()
    if spec.split == "file":
        yield text
    elif spec.split == "separator":
        yield from text.split(spec.separator)
    else:  # blank_line
        yield from _BLANK_LINES.split(text)


def _jsonl_docs(spec: InputSpec, path: str) -> Iterator[str]:
    with _open_text(path, spec.encoding) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: invalid JSON ({e.msg})") from None
            yield _field(rec, spec.field, f"{path}:{n}")


def _json_docs(spec: InputSpec, path: str) -> Iterator[str]:
    """A JSON array of records/strings, or an object whose `field` is such an array."""
    with _open_text(path, spec.encoding) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(data, dict):
        if isinstance(data.get(spec.field), list):
            data = data[spec.field]
        else:
            raise ValueError(f"{path}: expected a list, or an object whose {spec.field!r} is a list")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of documents")
    for i, rec in enumerate(data):
        yield _field(rec, spec.field, f"{path}[{i}]")


def _parquet_docs(spec: InputSpec, path: str) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading parquet needs pyarrow: pip install pyarrow (or bitmamba[data])") from None
    pf = pq.ParquetFile(path)
    if spec.field not in pf.schema_arrow.names:
        raise ValueError(f"{path}: parquet file has no column {spec.field!r} (columns: {pf.schema_arrow.names})")
    for batch in pf.iter_batches(columns=[spec.field], batch_size=1024):
        for v in batch.column(0).to_pylist():
            yield "" if v is None else str(v)


def _hf_docs(spec: InputSpec) -> Iterator[str]:
    try:
        import datasets  # imported only here: streaming from the Hub is optional
    except ImportError:
        raise ImportError(f"source {spec.hf!r} streams from the Hugging Face Hub and needs the 'datasets' "
                          f"package (pip install datasets), or point the input at local files") from None
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
    ds = datasets.load_dataset(spec.hf, name=spec.config, data_dir=spec.data_dir, split=spec.hf_split,
                               streaming=True, token=token)
    for i, rec in enumerate(ds):
        yield _field(rec, spec.field, f"{spec.hf}[{i}]")


_READERS = {"txt": _txt_docs, "jsonl": _jsonl_docs, "json": _json_docs, "parquet": _parquet_docs}


def iter_documents(spec: InputSpec) -> Iterator[str]:
    """All documents of one input, cleaned (front matter dropped if asked, outer whitespace stripped)."""
    if spec.hf is not None:
        it = _hf_docs(spec)
    else:
        it = (d for path in list_files(spec) for d in _READERS[file_format(spec, path)](spec, path))
    for doc in it:
        if spec.strip_front_matter:
            doc = _FRONT_MATTER.sub("", doc, count=1)
        yield doc.strip()


def describe(spec: InputSpec) -> dict:
    """What the manifest records about an input."""
    if spec.hf is not None:
        return {"hf": spec.hf, "config": spec.config, "data_dir": spec.data_dir, "split": spec.hf_split,
                "field": spec.field}
    files = list_files(spec)
    return {"files": spec.files, "exclude": spec.exclude, "n_files": len(files),
            "bytes": sum(os.path.getsize(f) for f in files)}
