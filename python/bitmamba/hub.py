"""Models named by a Hugging Face Hub repo id: `bitmamba.load("owner/name")`, `owner/name@revision` or
`hf://owner/name`.

The repo's files come through huggingface_hub (its cache, HF_TOKEN, HF_HUB_OFFLINE, its progress bars).
The best file the repo has is used: a GGUF, else a BIT2 `.bin` (both loaded straight from the hub's cache),
else a Flax `.msgpack`, else a PyTorch directory (config.json + model.safetensors); those two are converted
once to a GGUF in our cache ($BITMAMBA_CACHE or ~/.cache/bitmamba), named after the source's blob hash, so a
later load of the same file skips the conversion and a new upload of the file converts again.

huggingface_hub is imported only when a repo id is resolved: `import bitmamba` and local loads never need it.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

PREFIX = "hf://"
# owner/name as the hub allows them (letters, digits, '-', '_', '.'), optionally @revision.
_REPO = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>[\w./-]+))?$")
# Names that are local files, not repos: a missing `out/model.gguf` stays "file not found".
_FILE_SUFFIXES = (".gguf", ".bin", ".msgpack", ".safetensors", ".json")
# .bin files that are not BIT2 models (PyTorch pickles, trainer state).
_NOT_BIT2 = re.compile(r"(^|/)(pytorch_model|training_args|optimizer|scheduler|rng_state)[^/]*\.bin$")


class HubError(ValueError):
    """A repo id that cannot be resolved to a model (offline and not cached, no usable file, gated, ...)."""


def parse_repo_id(arg) -> Optional[Tuple[str, Optional[str]]]:
    """(repo id, revision or None) when `arg` names a hub repo rather than a local path, else None.

    `hf://owner/name[@rev]` is always a repo; a plain `owner/name[@rev]` is one only when no such local
    path exists (a local directory or file of that name wins) and it does not look like a file name."""
    if not isinstance(arg, str):  # a Path (or bytes) is always a local path
        return None
    s = arg
    explicit = s.startswith(PREFIX)
    if explicit:
        s = s[len(PREFIX):]
    elif os.path.exists(s) or s.lower().endswith(_FILE_SUFFIXES):
        return None
    m = _REPO.match(s)
    if m is None:
        if explicit:
            raise HubError(f"{arg}: not a Hugging Face repo id (expected hf://owner/name or hf://owner/name@revision)")
        return None
    return m.group("repo"), m.group("rev")


def cache_dir() -> Path:
    """Where converted models are kept: $BITMAMBA_CACHE, else ~/.cache/bitmamba."""
    env = os.environ.get("BITMAMBA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bitmamba"


@dataclass
class Source:
    """The file (or PyTorch directory) a repo provides, in the hub's cache."""
    repo: str
    revision: Optional[str]
    kind: str  # gguf, bit2, flax, pytorch
    path: Path  # the file, or for pytorch the snapshot directory
    key: str  # content key: the blob hash(es) of the source


def _hf(arg):
    try:
        import huggingface_hub
    except ImportError:
        # The argument may as well be a mistyped local path: say both.
        raise HubError(f"{arg}: no such local file, and loading it as a Hugging Face repo id needs "
                       "huggingface_hub: pip install 'bitmamba[hub]'") from None
    return huggingface_hub


def _describe(repo: str, revision: Optional[str]) -> str:
    return repo + (f"@{revision}" if revision else "")


def _map_error(e: BaseException, repo: str, revision: Optional[str]) -> Optional[HubError]:
    """huggingface_hub's exceptions as one-line messages saying what to do."""
    from huggingface_hub import errors

    name = _describe(repo, revision)
    if isinstance(e, errors.GatedRepoError):
        return HubError(f"{name} is a gated repo: accept its terms on huggingface.co and set HF_TOKEN "
                        "(or run `hf auth login`)")
    if isinstance(e, errors.RepositoryNotFoundError):
        return HubError(f"{name}: no such repo on the Hugging Face Hub (a private one needs HF_TOKEN)")
    if isinstance(e, errors.RevisionNotFoundError):
        return HubError(f"{name}: the repo has no revision {revision!r}")
    if isinstance(e, (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled)):
        offline = "HF_HUB_OFFLINE is set" if _offline() else "the Hub could not be reached"
        return HubError(f"{name} is not in the Hugging Face cache and {offline}: download it once while "
                        "online (unset HF_HUB_OFFLINE), or give a local model file")
    if isinstance(e, errors.HfHubHTTPError):
        return HubError(f"{name}: the Hub answered: {str(e).splitlines()[0]}")
    return None


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _list_files(hf, repo: str, revision: Optional[str]) -> List[str]:
    if _offline():
        # Offline, the repo's file list is what its cached snapshot holds.
        snap = Path(hf.snapshot_download(repo, revision=revision, local_files_only=True))
        return sorted(p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file())
    return sorted(hf.HfApi().list_repo_files(repo, revision=revision))


def pick_file(files: List[str]) -> Optional[Tuple[str, List[str]]]:
    """(kind, files to fetch) of the best model the file list offers, or None.

    Preference: a GGUF (loads as it is), a BIT2 .bin (loads as it is), a Flax .msgpack, a PyTorch
    checkpoint directory (config.json + model.safetensors)."""
    def first(cands):
        # Several GGUFs: TQ2_0 is the engine's fastest ternary type; otherwise the first by name.
        return sorted(cands, key=lambda f: ("tq2_0" not in f.lower(), f.count("/"), f))[0]

    # tokenizer.json comes along when the repo has one: loading finds it beside the model file and
    # conversion embeds it (the order bitmamba.tokenizer.tokenizer_source follows).
    tok = ["tokenizer.json"] if "tokenizer.json" in files else []
    ggufs = [f for f in files if f.lower().endswith(".gguf")]
    if ggufs:
        return "gguf", [first(ggufs)] + tok
    bins = [f for f in files if f.lower().endswith(".bin") and not _NOT_BIT2.search(f)]
    if bins:
        return "bit2", [first(bins)] + tok
    packs = [f for f in files if f.lower().endswith(".msgpack")]
    if packs:
        return "flax", [first(packs)] + tok
    if "config.json" in files and "model.safetensors" in files:
        return "pytorch", ["config.json", "model.safetensors"] + tok
    return None


def _blob_key(path: Path) -> str:
    """The hub's blob hash of a cached file (the name of the blob its snapshot entry links to); for a cache
    without symlinks, the file's sha256."""
    real = Path(os.path.realpath(path))
    if real.parent.name == "blobs":
        return real.name
    h = hashlib.sha256()
    with open(real, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(arg) -> Source:
    """Download (or find in the hub's cache) the best model file of the repo `arg` names."""
    parsed = parse_repo_id(arg)
    if parsed is None:
        raise HubError(f"{arg}: not a Hugging Face repo id")
    repo, revision = parsed
    hf = _hf(arg)
    try:
        files = _list_files(hf, repo, revision)
        picked = pick_file(files)
        if picked is None:
            shown = ", ".join(files[:8]) + (" ..." if len(files) > 8 else "") if files else "no files"
            raise HubError(f"{_describe(repo, revision)} has no model bitmamba can use (a .gguf, a BIT2 .bin, a "
                           f"Flax .msgpack or config.json + model.safetensors); it holds {shown}")
        kind, names = picked
        paths = [Path(hf.hf_hub_download(repo, n, revision=revision)) for n in names]
    except HubError:
        raise
    except Exception as e:
        mapped = _map_error(e, repo, revision)
        if mapped is None:
            raise
        raise mapped from None
    # The cache key is the source's blob hash; with a tokenizer or config beside it (which the conversion
    # reads too) it is the hash of all their blob hashes, so a change to any of them converts again.
    key = _blob_key(paths[0]) if len(paths) == 1 else \
        hashlib.sha256("\n".join(f"{n}={_blob_key(p)}" for n, p in zip(names, paths)).encode()).hexdigest()
    return Source(repo, revision, kind, paths[0].parent if kind == "pytorch" else paths[0], key)


def resolve(arg, tokenizer=None) -> Path:
    """A local GGUF or BIT2 file for the repo `arg` names, converting a Flax or PyTorch source into our
    cache the first time."""
    src = fetch(arg)
    if src.kind in ("gguf", "bit2"):
        return src.path
    out = cache_dir() / "converted" / f"{src.key}.gguf"
    if out.is_file():
        return out
    from .convert import ConversionError, convert

    print(f"bitmamba: converting {src.repo} ({src.kind}) to {out}", file=sys.stderr)
    try:
        # convert() writes to a temporary beside `out` and renames it at the end: the cache never holds
        # a partial GGUF, and concurrent conversions of the same source each publish a whole file.
        res = convert(src.path, out)
    except ConversionError as e:
        raise HubError(f"{_describe(src.repo, src.revision)}: cannot convert {src.path.name}: {e}") from None
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return out


def model_card(config: dict, name: str = "") -> str:
    """A README.md for a checkpoint directory (what save_pretrained writes): the Hub reads its front
    matter to list the repo under this library and these tags, and the text says how to run it."""
    c = config
    dims = (f"d_model {c.get('d_model')}, {c.get('n_layers')} layers, {c.get('n_heads')} heads, "
            f"d_state {c.get('d_state')}, vocabulary {c.get('vocab_size')}")
    title = name or "BitMamba-2 checkpoint"
    return f"""---
library_name: bitmamba
tags:
- bitmamba
- mamba2
- ternary
---
# {title}

A {c.get('layout', 'bitmamba2')} language model with ternary projections and int8 activations ({dims}),
saved by `bitmamba` as config.json + model.safetensors (float32 latent weights).

Run it on a CPU with `pip install 'bitmamba[hub]'`:

```python
import bitmamba
model = bitmamba.load("OWNER/NAME")   # this repo; converted once to a ternary GGUF, then cached
print(model.generate("Once upon a time", max_new_tokens=64))
```

or convert it yourself: `bitmamba convert OWNER/NAME model.gguf`.
"""
