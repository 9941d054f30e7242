"""Models named by a Hugging Face Hub repo id: `bitmamba.load("owner/name")`, `owner/name@revision`, or the
explicit `hf://owner/name[@revision][/path/in/repo]`.

The repo's files come through huggingface_hub: its cache, HF_TOKEN, HF_HUB_OFFLINE, its progress bars. The
best model the repo holds is used: a GGUF, else a BIT2 `.bin` (both loaded straight from the hub's cache),
else a Flax `.msgpack` or a PyTorch directory (config.json + model.safetensors), which are converted once to
a GGUF in our cache:

    $BITMAMBA_CACHE (default $XDG_CACHE_HOME/bitmamba, else ~/.cache/bitmamba)
      hub/models--owner--name/<blob hash>[-<hash of the other inputs>]-v<CONVERTER_VERSION>.gguf

The name is the source file's blob hash (its sha256 for LFS files, as the hub cache names its blobs), so a
later load of the same file skips the conversion and a new upload of the file converts again; the other
inputs (a tokenizer.json, a PyTorch config.json) and the converter version are part of it too.

huggingface_hub is imported only when a repo id is resolved: `import bitmamba` and local loads never need it.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import unquote

PREFIX = "hf://"
# A repo name segment as the hub allows it: letters, digits, '-', '_', '.', starting and ending with a
# letter, digit or '_' (the hub also refuses '--' and '..' inside).
_SEG = r"[A-Za-z0-9_](?:[\w.-]*[A-Za-z0-9_])?"
# owner/name@revision: the revision may hold '/' (refs/pr/1), since nothing follows it.
_IMPLICIT = re.compile(rf"^(?P<repo>{_SEG}/{_SEG})(?:@(?P<rev>[^\s@]+))?$", re.ASCII)
# hf://owner/name@revision/path: here a '/' in the revision is written %2F (as huggingface_hub's hf:// paths).
_EXPLICIT = re.compile(rf"^(?P<repo>{_SEG}/{_SEG})(?:@(?P<rev>[^\s/@]+))?(?:/(?P<file>\S+))?$", re.ASCII)
# Names that are local files, not repos: a missing `out/model.gguf` stays "file not found".
_FILE_SUFFIXES = (".gguf", ".bin", ".msgpack", ".safetensors", ".json")
# .bin files that are not BIT2 models: PyTorch pickles, trainer state, tokenizers of C ports.
_NOT_BIT2 = re.compile(r"(^|/)(pytorch_model|training_args|optimizer|scheduler|scaler|rng_state|[^/]*tokenizer"
                       r"|[^/]*vocab)[^/]*\.bin$", re.IGNORECASE)
_KIND_NAMES = {"gguf": "GGUF files", "bit2": "BIT2 .bin files", "flax": "Flax .msgpack files",
               "pytorch": "PyTorch checkpoint directories"}
USABLE = ("a .gguf, a BIT2 .bin, a Flax .msgpack, or a PyTorch directory with config.json + "
          "model.safetensors")


class HubError(ValueError):
    """A repo id that cannot be resolved to a model: offline and not cached, no such repo or revision, a
    gated repo without access, no usable file. str() is one line that says what to do."""


@dataclass(frozen=True)
class HubRef:
    """A model on the hub: repo id, revision (None: the default branch), and optionally one file or
    directory in it (hf://owner/name/path); explicit: it was written with hf://."""
    repo: str
    revision: Optional[str] = None
    filename: Optional[str] = None
    explicit: bool = False

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        if self.filename:
            rev = rev.replace("/", "%2F")
            return f"{PREFIX}{self.repo}{rev}/{self.filename}"
        return f"{PREFIX if self.explicit else ''}{self.repo}{rev}"


def parse(arg) -> Optional[HubRef]:
    """The hub model `arg` names, or None when it is a local path.

    `hf://...` is always the hub (HubError when malformed). A plain `owner/name[@rev]` is the hub only when
    no local file or directory of that name exists and it does not end like a model file name
    (.gguf, .bin, .msgpack, .safetensors, .json). A Path (or anything but a str) is always local."""
    if not isinstance(arg, str):
        return None
    if arg.startswith(PREFIX):
        m = _EXPLICIT.match(arg[len(PREFIX):])
        if m is None or "--" in m.group("repo") or ".." in m.group("repo"):
            raise HubError(f"{arg}: not a Hugging Face model reference (expected hf://owner/name, "
                           "hf://owner/name@revision or hf://owner/name/path/in/repo)")
        if m.group("repo").split("/")[0] in ("datasets", "spaces"):
            raise HubError(f"{arg}: only model repos hold models (hf://owner/name)")
        f = m.group("file")
        if f is not None:
            f = f.strip("/")
            if not f or any(part in ("", ".", "..") for part in f.split("/")):
                raise HubError(f"{arg}: {f!r} is not a path inside the repo")
        rev = unquote(m.group("rev")) if m.group("rev") else None
        return HubRef(m.group("repo"), rev, f or None, explicit=True)
    if os.path.exists(arg) or arg.lower().endswith(_FILE_SUFFIXES):
        return None
    m = _IMPLICIT.match(arg)
    if m is None or "--" in m.group("repo") or ".." in m.group("repo"):
        return None
    return HubRef(m.group("repo"), m.group("rev"))


def cache_dir() -> Path:
    """Our cache (converted models): $BITMAMBA_CACHE, else $XDG_CACHE_HOME/bitmamba, else ~/.cache/bitmamba."""
    env = os.environ.get("BITMAMBA_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "bitmamba"


# ---- talking to huggingface_hub ----------------------------------------------------------------------
def _hf(ref: HubRef):
    try:
        import huggingface_hub
        import huggingface_hub.constants  # noqa: F401  (submodules used below, imported explicitly)
        import huggingface_hub.utils  # noqa: F401
    except ImportError:
        # A plain owner/name may as well be a mistyped local path: say both.
        what = "" if ref.explicit else ": no such local file or directory, and loading it as a repo id"
        raise HubError(f"{ref}{what or ': loading from the Hugging Face Hub'} needs huggingface_hub: "
                       "pip install 'bitmamba[hub]'") from None
    return huggingface_hub


def _offline(hf) -> bool:
    c = hf.constants
    return bool(c.is_offline_mode() if hasattr(c, "is_offline_mode") else c.HF_HUB_OFFLINE)


def _one_line(e: BaseException, limit: int = 200) -> str:
    s = " ".join(str(e).split()) or type(e).__name__
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _not_local(ref: HubRef) -> str:
    return "" if ref.explicit else f" (and there is no local file or directory {ref.repo})"


def _hub_error(hf, e: BaseException, ref: HubRef, filename: Optional[str] = None) -> Optional[HubError]:
    """huggingface_hub's exceptions as one-line messages that say what to do; None for anything else."""
    E = hf.utils
    url = f"{hf.constants.ENDPOINT}/{ref.repo}"
    if isinstance(e, E.GatedRepoError):
        if _token(hf):
            return HubError(f"{ref} is a gated repo and the account of your token has no access to it yet: "
                            f"accept its terms at {url} with that account")
        return HubError(f"{ref} is a gated repo: accept its terms at {url}, then set HF_TOKEN to an access token "
                        "of that account (or run `hf auth login`)")
    if isinstance(e, E.RepositoryNotFoundError):
        return HubError(f"{ref}: no such model repo on the Hugging Face Hub (a private one needs HF_TOKEN)"
                        + _not_local(ref))
    if isinstance(e, E.RevisionNotFoundError):
        return HubError(f"{ref}: the repo has no revision {ref.revision!r}")
    if isinstance(e, E.EntryNotFoundError) and not isinstance(e, E.LocalEntryNotFoundError):
        return HubError(f"{ref}: {filename} is no longer in the repo (it changed while loading): run again")
    if isinstance(e, E.LocalEntryNotFoundError):
        return HubError(f"{ref}: could not download {filename} and it is not in the Hugging Face cache: "
                        f"{_one_line(e)}")
    if isinstance(e, E.HfHubHTTPError):
        return HubError(f"{ref}: the Hugging Face Hub answered: {_one_line(e)}")
    return None


def _token(hf) -> Optional[str]:
    try:
        return hf.get_token()
    except Exception:  # a token file that cannot be read: as good as none for this message
        return None


def _network_error(e: BaseException) -> bool:
    """A failure to reach the hub at all (no route, refused, timed out, DNS), after which the cache is used."""
    if isinstance(e, OSError):  # builtin ConnectionError / TimeoutError, and requests' errors (OSError subclasses)
        return True
    # httpx's transport errors (huggingface_hub >= 1.0) are not OSErrors.
    return any(c.__name__ in ("TransportError", "TimeoutException")
               and c.__module__.split(".")[0] in ("httpx", "httpx2") for c in type(e).__mro__)


@dataclass
class _Listing:
    commit: Optional[str]
    files: List[str]
    snapshot: Optional[Path] = None  # set when the list is what the cache holds (the files are there)
    why_cached: str = ""


def _cached_listing(hf, ref: HubRef, why: str, error: Optional[HubError]) -> _Listing:
    """The cached snapshot of the revision: its files are all we know of the repo without the hub."""
    E = hf.utils
    try:  # huggingface_hub >= 1.x: a snapshot its tree listing knows to be partial
        from huggingface_hub.errors import IncompleteSnapshotError as incomplete
    except ImportError:
        incomplete = None
    try:
        # cache_dir given explicitly: some huggingface_hub versions copy the default at import time.
        snap = Path(hf.snapshot_download(ref.repo, revision=ref.revision, local_files_only=True,
                                         cache_dir=hf.constants.HF_HUB_CACHE))
    except Exception as e:
        if incomplete is not None and isinstance(e, incomplete):
            # The cache's tree listing says files are missing (some were never downloaded): the ones there
            # are still usable, and the exception names the folder.
            snap = Path(e.snapshot_path)
        elif isinstance(e, (E.LocalEntryNotFoundError, E.OfflineModeIsEnabled, FileNotFoundError)):
            if error is not None:  # the hub said why (gated, no such repo): that, not "not cached"
                raise error from None
            rev = f" (revision {ref.revision})" if ref.revision else ""
            raise HubError(f"{ref}{rev} is not in the Hugging Face cache ({hf.constants.HF_HUB_CACHE}) and {why}: "
                           f"download it once with network access{_not_local(ref)}") from None
        else:
            raise
    files = sorted(p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file())
    return _Listing(snap.name, files, snap, why)


def _listing(hf, ref: HubRef) -> _Listing:
    if _offline(hf):
        return _cached_listing(hf, ref, "HF_HUB_OFFLINE is set", None)
    try:
        info = hf.HfApi().model_info(ref.repo, revision=ref.revision)
    except Exception as e:
        error = _hub_error(hf, e, ref)
        if isinstance(e, hf.utils.RevisionNotFoundError):
            raise error from None
        if error is None and not _network_error(e):
            raise
        # As huggingface_hub does: with the hub unreachable (or refusing), what the cache holds is used.
        return _cached_listing(hf, ref, f"the Hub could not be reached ({_one_line(e, 120)})", error)
    return _Listing(info.sha, sorted(s.rfilename for s in (info.siblings or [])))


# ---- which file ------------------------------------------------------------------------------------------
@dataclass
class Choice:
    """The model a repo's file list offers: kind (gguf, bit2, flax, pytorch), main (the file, or for
    pytorch the directory, '' for the root), the files to fetch, and the nearest tokenizer.json."""
    kind: str
    main: str
    files: List[str]
    tokenizer: Optional[str] = None


def _kind_of_file(name: str) -> Optional[str]:
    low = name.lower()
    if low.endswith(".gguf"):
        return "gguf"
    if low.endswith(".bin") and not _NOT_BIT2.search(name):
        return "bit2"
    if low.endswith(".msgpack"):
        return "flax"
    return None


def _pytorch_dirs(files: List[str]) -> List[str]:
    have = set(files)
    return sorted({posixpath.dirname(f) for f in files if posixpath.basename(f) == "config.json"
                   and posixpath.join(posixpath.dirname(f), "model.safetensors") in have})


def _nearest_tokenizer(files: List[str], directory: str) -> Optional[str]:
    # The model's own folder first, then each folder above it up to the root: a repo often keeps one
    # tokenizer.json at the top for weights in subfolders (jax_weights/, bitmamba_cpp/).
    have = set(files)
    d = directory
    while True:
        t = posixpath.join(d, "tokenizer.json") if d else "tokenizer.json"
        if t in have:
            return t
        if not d:
            return None
        d = posixpath.dirname(d)


def _make_choice(files: List[str], kind: str, main: str) -> Choice:
    if kind == "pytorch":
        fetch = [posixpath.join(main, "config.json"), posixpath.join(main, "model.safetensors")]
        directory = main
    else:
        fetch, directory = [main], posixpath.dirname(main)
    tok = _nearest_tokenizer(files, directory)
    return Choice(kind, main, fetch + ([tok] if tok and tok not in fetch else []), tok)


def choose(files: List[str], ref: HubRef, cached: bool = False) -> Choice:
    """The model to use from a repo's file list (see the module docstring for the order). Several of the best
    kind: a TQ2_0 GGUF (the engine's fastest ternary type) or the one nearest the root, if that is one;
    otherwise HubError listing them, to be named with hf://owner/name/path."""
    where = " in the cached snapshot" if cached else ""
    if ref.filename:
        f = ref.filename
        if f in files:
            kind = _kind_of_file(f)
            if kind is None:
                raise HubError(f"{ref}: bitmamba cannot load {f}; it reads {USABLE}")
            return _make_choice(files, kind, f)
        if f in _pytorch_dirs(files):
            return _make_choice(files, "pytorch", f)
        raise HubError(f"{ref}: the repo has no model file or directory {f}{where}")
    for kind in ("gguf", "bit2", "flax", "pytorch"):
        cands = _pytorch_dirs(files) if kind == "pytorch" else [f for f in files if _kind_of_file(f) == kind]
        if not cands:
            continue
        if kind == "gguf" and len(cands) > 1:
            cands = [f for f in cands if "tq2_0" in f.lower()] or cands
        depth = lambda f: f.count("/") + (f != "")  # noqa: E731  ('' is the root directory)
        top = [f for f in cands if depth(f) == min(map(depth, cands))]
        if len(top) == 1:
            return _make_choice(files, kind, top[0])
        shown = ", ".join(top[:6]) + (f" and {len(top) - 6} more" if len(top) > 6 else "")
        example = HubRef(ref.repo, ref.revision, top[0])
        raise HubError(f"{ref} has {len(top)} {_KIND_NAMES[kind]}{where} ({shown}): name the one to use, "
                       f"e.g. {example}")
    shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "") if files else "no files"
    raise HubError(f"{ref} has no model bitmamba can use{where} ({USABLE}); it holds {shown}")


# ---- fetching ----------------------------------------------------------------------------------------------
@dataclass
class Fetched:
    """A repo's model in the hub's cache: `source` is the file (pytorch: the directory) to load or convert,
    `tokenizer_dir` the folder of its tokenizer.json (None: the repo has none), `blobs` the blob hash of
    every fetched file by its path in the repo."""
    ref: HubRef
    commit: Optional[str]
    choice: Choice
    source: Path
    tokenizer_dir: Optional[Path]
    blobs: Dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.choice.kind

    def describe(self) -> str:
        at = f" at {self.commit[:12]}" if self.commit else ""
        return f"{self.ref.repo}{at}: {self.choice.main or '(root directory)'}"


def blob_hash(path: Path) -> str:
    """The hub's blob hash of a cached file: the name of the blob its snapshot entry links to (the sha256 of
    an LFS file, the git blob id of a small one); for a cache without symlinks, the file's sha256."""
    real = Path(os.path.realpath(path))
    if real.parent.name == "blobs":
        return real.name
    h = hashlib.sha256()
    with open(real, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _as_ref(arg) -> HubRef:
    ref = arg if isinstance(arg, HubRef) else parse(arg)
    if ref is None:
        raise HubError(f"{arg}: not a Hugging Face repo id (owner/name, owner/name@revision or hf://...)")
    return ref


def fetch(arg) -> Fetched:
    """Download (or find in the hub's cache) the model of the repo `arg` names: a repo id string or a HubRef."""
    ref = _as_ref(arg)
    hf = _hf(ref)
    listing = _listing(hf, ref)
    if listing.snapshot is not None and listing.why_cached != "HF_HUB_OFFLINE is set":
        print(f"bitmamba: {listing.why_cached}; using the cached {ref}", file=sys.stderr)
    choice = choose(listing.files, ref, cached=listing.snapshot is not None)
    paths = {}
    for name in choice.files:
        if listing.snapshot is not None:
            paths[name] = listing.snapshot / name
            continue
        try:
            # The revision as given (not the commit listed), so the cache records the branch or tag and a
            # later offline load of the same name finds it.
            paths[name] = Path(hf.hf_hub_download(ref.repo, name, revision=ref.revision,
                                                  cache_dir=hf.constants.HF_HUB_CACHE))
        except Exception as e:
            error = _hub_error(hf, e, ref, name)
            if error is None:
                if not _network_error(e):
                    raise
                error = HubError(f"{ref}: downloading {name} failed: {_one_line(e)}")
            raise error from None
    main = paths[choice.files[0]]
    source = main.parent if choice.kind == "pytorch" else main
    tok_dir = paths[choice.tokenizer].parent if choice.tokenizer else None
    return Fetched(ref, listing.commit, choice, source, tok_dir, {n: blob_hash(p) for n, p in paths.items()})


def converted_path(f: Fetched) -> Path:
    """Where the conversion of `f` lives in our cache: named by the source's blob hash, the hashes of the
    other files it reads (config.json, tokenizer.json) and the converter version (a converter that writes
    differently must not reuse old files)."""
    from .convert import CONVERTER_VERSION

    main = f.choice.files[1] if f.kind == "pytorch" else f.choice.files[0]  # model.safetensors
    others = sorted(f"{n}={h}" for n, h in f.blobs.items() if n != main)
    extra = "-" + hashlib.sha256("\n".join(others).encode()).hexdigest()[:16] if others else ""
    folder = cache_dir() / "hub" / ("models--" + f.ref.repo.replace("/", "--"))
    return folder / f"{f.blobs[main]}{extra}-v{CONVERTER_VERSION}.gguf"


@dataclass
class HubModel(os.PathLike):
    """A hub model as a local file bitmamba.load opens: `path` (a GGUF or BIT2 in the hub's cache, or the
    converted GGUF in ours), `tokenizer_dir` (where its tokenizer.json is, when the file carries none),
    `converted` (this call ran the conversion). os.fspath() gives the file; str() the repo reference."""
    ref: HubRef
    path: Path
    tokenizer_dir: Optional[Path]
    fetched: Fetched
    converted: bool = False

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.ref)


def resolve(arg, progress: Optional[bool] = None) -> HubModel:
    """The local model file for the repo `arg` names, converting a Flax or PyTorch source into our cache the
    first time. progress: the converter's progress bars (default: when stderr is a terminal)."""
    f = fetch(arg)
    if f.kind in ("gguf", "bit2"):
        return HubModel(f.ref, f.source, f.tokenizer_dir, f)
    out = converted_path(f)
    if out.is_file():
        return HubModel(f.ref, out, None, f)
    from .convert import ConversionError, convert

    print(f"bitmamba: converting {f.describe()} ({f.kind}) to a GGUF, once: {out}", file=sys.stderr)
    try:
        # convert() writes to a temporary beside `out` and renames it at the end: the cache never holds a
        # partial GGUF, and concurrent conversions of the same source each publish a whole file.
        res = convert(f.source, out, tokenizer_dir=f.tokenizer_dir, name=f.ref.repo,
                      progress=sys.stderr.isatty() if progress is None else progress)
    except ConversionError as e:
        raise HubError(f"{f.ref}: cannot convert {f.choice.main or 'its checkpoint'}: {e}") from None
    for w in res.warnings:
        print(f"bitmamba: warning: {w}", file=sys.stderr)
    return HubModel(f.ref, out, None, f, converted=True)
