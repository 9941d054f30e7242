"""Hugging Face Hub stand-ins for the hub tests, with no network: a cache directory in the hub's own layout,
and a small HTTP server on 127.0.0.1 that answers the few endpoints huggingface_hub calls.

The cache layout (what huggingface_hub reads, offline or not):
    <HF_HUB_CACHE>/models--owner--name/
        blobs/<sha256>                        the file contents, named by their hash (the ETag)
        refs/<branch or tag>                  the commit hash it points to
        snapshots/<commit>/<path in repo>     relative symlinks to the blobs
        trees/<commit>.json                   (huggingface_hub >= 1.x) the commit's full file list
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Optional
from urllib.parse import unquote, urlsplit

import numpy as np

TOKEN = "hf_test_token"


def add_repo(cache: Path, repo: str, files: Dict[str, bytes], commit: Optional[str] = None, ref: str = "main",
             tree_extra: Optional[Dict[str, bytes]] = None) -> str:
    """Put `files` ({path: bytes}) in the hub cache as one commit of `repo`, pointed to by `ref`; returns the
    commit hash. tree_extra: files the commit also has but the cache lacks (listed in trees/<commit>.json,
    as huggingface_hub records after a partial download)."""
    base = cache / ("models--" + repo.replace("/", "--"))
    commit = commit or hashlib.sha1(repr(sorted(files)).encode() + os.urandom(8)).hexdigest()
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
    (base / "refs" / ref).write_text(commit)
    for rel, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        (base / "blobs" / blob).write_bytes(data)
        link = base / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(base / "blobs" / blob, link.parent))
    if tree_extra is not None:
        listing = {**files, **tree_extra}
        (base / "trees").mkdir(exist_ok=True)
        (base / "trees" / f"{commit}.json").write_text(json.dumps({"format_version": 1, "files": {
            p: {"size": len(d), "blob_id": hashlib.sha1(d).hexdigest(), "lfs_sha256": hashlib.sha256(d).hexdigest(),
                "lfs_size": len(d)} for p, d in listing.items()}}))
    return commit


# ---- small models as file contents ------------------------------------------------------------------------
def _ext(a):
    import msgpack

    a = np.ascontiguousarray(a, np.float32)
    return msgpack.ExtType(1, msgpack.packb((list(a.shape), "float32", a.tobytes()), use_bin_type=True))


def flax_bytes(seed=0, V=300, D=256, L=1, H=4) -> bytes:
    """A random BitMamba-2 checkpoint as a Flax msgpack (the layout formats/flax_msgpack.py reads)."""
    import msgpack

    r = np.random.default_rng(seed)
    E = 2 * D
    n_in = 2 * E + 2 * H + H
    norm = lambda n: r.uniform(0.5, 1.5, n)  # noqa: E731
    p = {"Embed_0": {"embedding": _ext(r.uniform(-1, 1, (V, D)))}, "RMSNorm_0": {"scale": _ext(norm(D))},
         "BitLinear_0": {"kernel": _ext(r.uniform(-1, 1, (D, V))), "RMSNorm_0": {"scale": _ext(norm(D))}}}
    for i in range(L):
        p[f"BitMambaBlock_{i}"] = {
            "BitLinear_0": {"kernel": _ext(r.uniform(-1, 1, (D, n_in))), "RMSNorm_0": {"scale": _ext(norm(D))}},
            "Conv_0": {"kernel": _ext(r.uniform(-.5, .5, (4, 1, E))), "bias": _ext(r.uniform(-.1, .1, E))},
            "BitLinear_1": {"kernel": _ext(r.uniform(-1, 1, (E, D))), "RMSNorm_0": {"scale": _ext(norm(E))}},
            "dt_bias": _ext(r.uniform(-3, 0, H)), "A_log": _ext(r.uniform(0, 2, H)), "D": _ext(norm(E))}
    return msgpack.packb({"params": p}, use_bin_type=True)


def bit2_bytes(tmp_path: Path, seed=0, vocab=300) -> bytes:
    from engine_fixtures import random_weights, write_bit2

    w, cfg = random_weights(np.random.default_rng(seed), vocab=vocab, d_model=64, d_inner=128, n_layers=1, n_heads=2)
    p = tmp_path / f"src{seed}-{vocab}.bin"
    write_bit2(p, w, cfg)
    return p.read_bytes()


def pytorch_files(tmp_path: Path, seed=0, vocab=300) -> Dict[str, bytes]:
    """A random PyTorch checkpoint directory (config.json + model.safetensors) as {name: bytes}."""
    from safetensors.numpy import save_file

    from bitmamba.config import BitMambaConfig
    from bitmamba.formats.checkpoint import expected_shapes

    cfg = BitMambaConfig(vocab_size=vocab, d_model=256, n_layers=1, n_heads=4, eos_token_id=0)
    r = np.random.default_rng(seed)
    state = {}
    for name, shape in expected_shapes(cfg).items():
        lo, hi = (0.5, 1.5) if name.endswith(("norm.weight", ".D")) else (-1, 1)
        state[name] = r.uniform(lo, hi, shape).astype(np.float32)
    d = tmp_path / f"pt{seed}-{vocab}"
    d.mkdir()
    cfg.to_json(d / "config.json")
    save_file(state, str(d / "model.safetensors"))
    return {p.name: p.read_bytes() for p in d.iterdir()}


def small_tokenizer(tmp_path: Path) -> bytes:
    """A byte-level BPE tokenizer.json with a small vocabulary (its size: len(json vocab))."""
    from datagen import make_tokenizer

    return make_tokenizer(tmp_path / "tok.json", vocab_size=120).read_bytes()


def vocab_size_of(tokenizer_json: bytes) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_json.decode()).get_vocab_size()


# ---- a hub endpoint on 127.0.0.1 ---------------------------------------------------------------------------
class FakeHub:
    """The endpoints huggingface_hub uses to list and download a model repo: GET /api/models/<repo>[/revision/
    <rev>] (model_info) and HEAD/GET /<repo>/resolve/<rev>/<path>. A gated repo serves its files only with
    `Authorization: Bearer TOKEN`, answering as the hub does otherwise (X-Error-Code: GatedRepo)."""

    def __init__(self):
        self.repos: Dict[str, dict] = {}
        self.requests = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, status, body=b"", headers=None, head=False):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _error(self, status, code, head):
                self._send(status, json.dumps({"error": code}).encode(),
                           {"X-Error-Code": code, "X-Error-Message": code, "Content-Type": "application/json"}, head)

            def _handle(self, head):
                path = unquote(urlsplit(self.path).path)
                hub.requests.append((self.command, path, self.headers.get("Authorization")))
                if path.startswith("/api/models/"):
                    rest = path[len("/api/models/"):]
                    repo, _, rev = rest.partition("/revision/")
                    r = hub.repos.get(repo)
                    if r is None:
                        return self._error(404, "RepoNotFound", head)
                    if rev and rev not in ("main", r["commit"]):
                        return self._error(404, "RevisionNotFound", head)
                    # The fields the hub always sends (older huggingface_hub versions require them).
                    body = json.dumps({"id": repo, "modelId": repo, "sha": r["commit"], "private": False,
                                       "gated": "auto" if r["gated"] else False, "disabled": False,
                                       "downloads": 0, "likes": 0, "tags": [], "author": repo.split("/")[0],
                                       "createdAt": "2026-01-01T00:00:00.000Z",
                                       "lastModified": "2026-01-01T00:00:00.000Z",
                                       "siblings": [{"rfilename": f} for f in sorted(r["files"])]}).encode()
                    return self._send(200, body, {"Content-Type": "application/json"}, head)
                parts = path.lstrip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, rev, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                    r = hub.repos.get(repo)
                    if r is None:
                        return self._error(404, "RepoNotFound", head)
                    if r["gated"] and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                        return self._error(401, "GatedRepo", head)
                    if name not in r["files"]:
                        return self._error(404, "EntryNotFound", head)
                    data = r["files"][name]
                    sha = hashlib.sha256(data).hexdigest()
                    return self._send(200, data, {"X-Repo-Commit": r["commit"], "ETag": f'"{sha}"',
                                                  "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                                                  "Content-Type": "application/octet-stream"}, head)
                self._send(404, b"not found")

            def do_GET(self):
                self._handle(False)

            def do_HEAD(self):
                self._handle(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, repo: str, files: Dict[str, bytes], gated: bool = False) -> str:
        commit = hashlib.sha1(repo.encode() + os.urandom(8)).hexdigest()
        self.repos[repo] = {"files": dict(files), "commit": commit, "gated": gated}
        return commit

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
