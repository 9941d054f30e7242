"""BIT2 `.bin` files (bitmamba.cpp / bitmamba.c), specified in docs/model.md, "BIT2".

Header: int32 magic 0x42495432, vocab, d_model, n_layers, n_heads. Then records in a fixed order:
float `int32 0, int32 ndim, int32 dims[ndim], f32 data` or ternary `int32 2, int32 rows, int32 cols,
f32 scale_w, rows*cols/4 bytes`, byte = (w0+1) | (w1+1)<<2 | (w2+1)<<4 | (w3+1)<<6 (code 3 reads as +1).
The format has no room for anything but the released BitMamba-2 layout (d_state 1, expand 2, conv 4), and
holds ternary models only (binary ones are GGUF, docs/binary.md).
"""
from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path

import numpy as np

from ..config import BitMambaConfig
from .checkpoint import Checkpoint, Ternary, is_ternary_name, tensor_names

MAGIC = 0x42495432  # the engine's kBit2Magic (csrc/model/weights.h); tests/test_model_facts.py checks they agree
MAGIC_BYTES = MAGIC.to_bytes(4, "little")  # how a BIT2 file starts on disk ("2TIB")
REC_FLOAT = 0
REC_TERNARY = 2


def pack_bit2_codes(codes: np.ndarray) -> bytes:
    """Pack int8 codes (size a multiple of 4, row-major) four to a byte, first weight in the low bits."""
    c = (np.asarray(codes, dtype=np.int8).reshape(-1, 4) + 1).astype(np.uint8)
    return (c[:, 0] | (c[:, 1] << 2) | (c[:, 2] << 4) | (c[:, 3] << 6)).astype(np.uint8).tobytes()


def unpack_bit2_codes(data: np.ndarray, n: int) -> np.ndarray:
    b = np.asarray(data, dtype=np.uint8)
    c = np.stack([(b >> s) & 3 for s in (0, 2, 4, 6)], axis=-1).reshape(-1)[:n]
    c = np.minimum(c, 2)  # code 3 decodes to +1 like bitmamba.c
    return c.astype(np.int8) - 1


def read_bit2(path) -> Checkpoint:
    path = Path(path)
    buf = path.read_bytes()
    n = len(buf)
    if n < 20:
        raise ValueError(f"{path}: too short for a BIT2 header ({n} bytes)")
    magic, vocab, d_model, n_layers, n_heads = struct.unpack_from("<5i", buf, 0)
    if magic != MAGIC:
        raise ValueError(f"{path}: not a BIT2 file (magic 0x{magic & 0xffffffff:08x}, expected 0x{MAGIC:08x})")
    for k, v in (("vocab", vocab), ("d_model", d_model), ("n_layers", n_layers), ("n_heads", n_heads)):
        if v <= 0:
            raise ValueError(f"{path}: bad header field {k} = {v}")
    from .._native import native

    # BIT2 names no special tokens: the engine's default EOS rule, so both read the same EOS.
    cfg = BitMambaConfig(vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                         eos_token_id=native().default_eos_token_id(vocab))
    off = 20
    tensors = {}

    def need(k, what):
        if off + k > n:
            raise ValueError(f"{path}: truncated while reading {what} (needs {k} bytes at offset {off}, "
                             f"file has {n})")

    for name in tensor_names(cfg):
        need(4, name)
        (kind,) = struct.unpack_from("<i", buf, off)
        off += 4
        if is_ternary_name(name):
            if kind != REC_TERNARY:
                raise ValueError(f"{path}: record for {name} has kind {kind}, expected ternary (2)")
            need(12, name)
            rows, cols = struct.unpack_from("<2i", buf, off)
            (scale,) = struct.unpack_from("<f", buf, off + 8)
            off += 12
            if rows <= 0 or cols <= 0 or (rows * cols) % 4:
                raise ValueError(f"{path}: {name} has bad shape {rows}x{cols}")
            nb = rows * cols // 4
            need(nb, name)
            codes = unpack_bit2_codes(np.frombuffer(buf, np.uint8, nb, off), rows * cols).reshape(rows, cols)
            off += nb
            tensors[name] = Ternary(codes, np.float32(scale))
        else:
            if kind != REC_FLOAT:
                raise ValueError(f"{path}: record for {name} has kind {kind}, expected float (0)")
            need(4, name)
            (ndim,) = struct.unpack_from("<i", buf, off)
            off += 4
            if not 1 <= ndim <= 8:
                raise ValueError(f"{path}: {name} has bad ndim {ndim}")
            need(4 * ndim, name)
            dims = struct.unpack_from(f"<{ndim}i", buf, off)
            off += 4 * ndim
            if any(d <= 0 for d in dims):
                raise ValueError(f"{path}: {name} has bad dims {dims}")
            cnt = int(np.prod(dims))
            need(4 * cnt, name)
            tensors[name] = np.frombuffer(buf, "<f4", cnt, off).reshape(dims).copy()
            off += 4 * cnt
    if off != n:
        raise ValueError(f"{path}: {n - off} unexpected trailing bytes after the last record")
    ck = Checkpoint(cfg, tensors, name=path.stem)
    try:
        ck.validate()
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return ck


def bit2_bytes_iter(ck: Checkpoint):
    cfg = ck.config
    if cfg.weights != "ternary":
        raise ValueError(f"BIT2 holds ternary models only; this model's weights are {cfg.weights}: convert to GGUF "
                         "instead (docs/binary.md)")
    if cfg.layout != "bitmamba2" or cfg.d_state != 1 or cfg.expand != 2 or cfg.d_conv != 4:
        raise ValueError("BIT2 stores only the BitMamba-2 layout (d_state 1, n_groups = n_heads, expand 2, "
                         f"conv 4); this model is layout={cfg.layout} d_state={cfg.d_state} "
                         f"expand={cfg.expand} d_conv={cfg.d_conv}: convert to GGUF instead")
    ck.validate()
    yield struct.pack("<5i", MAGIC, cfg.vocab_size, cfg.d_model, cfg.n_layers, cfg.n_heads)
    for name in tensor_names(cfg):
        t = ck.tensors[name]
        if isinstance(t, Ternary):
            rows, cols = t.shape
            if (rows * cols) % 4:
                raise ValueError(f"BIT2 needs rows*cols of {name} to be a multiple of 4, got {rows}x{cols}")
            yield struct.pack("<3if", REC_TERNARY, rows, cols, float(t.scale))
            yield pack_bit2_codes(t.codes)
        else:
            a = np.ascontiguousarray(t, dtype="<f4")
            yield struct.pack(f"<2i{a.ndim}i", REC_FLOAT, a.ndim, *a.shape)
            yield a.tobytes()


def write_bit2(ck: Checkpoint, path, progress: bool = False) -> int:
    """Write atomically (temp file in the same directory, then rename). Returns the file size.
    progress: a bar of the bytes written, on stderr."""
    from ..atomic import atomic_write
    from ..progress import progress_bar

    with atomic_write(path) as f, contextlib.closing(progress_bar(None, "writing", progress, unit="B")) as bar:
        for chunk in bit2_bytes_iter(ck):
            f.write(chunk)
            bar.update(len(chunk))
    return os.path.getsize(path)
