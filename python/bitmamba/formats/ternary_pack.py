"""Vectorized packing of ternary codes into GGML's TQ2_0 and TQ1_0 blocks (256 weights per block), and back.

TQ2_0 block (66 bytes): 64 bytes of 2-bit codes (c + 1), then fp16 d. Within each 128-weight half, byte m
holds weights m, m+32, m+64, m+96 in bits 0-1, 2-3, 4-5, 6-7.
TQ1_0 block (54 bytes): 48 bytes holding 5 trits each (weights 0-159 as 32 bytes x 5, 160-239 as 16 bytes x 5),
4 bytes holding 4 trits each (weights 240-255), then fp16 d. A byte stores the base-3 number
t0 t1 t2 t3 t4 (t0 most significant) scaled to 0..255 by ceil(v * 256 / 243); trit k is recovered as
((byte * 3^k) mod 256) * 3 >> 8.
These are the layouts of ggml's reference quantizers (gguf-py's gguf/quants.py); the tests check our packing
against them on the same codes.
"""
from __future__ import annotations

import numpy as np

QK = 256
TQ2_BLOCK_BYTES = 66
TQ1_BLOCK_BYTES = 54


def _blocks(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.int8)
    if codes.ndim != 2 or codes.shape[1] % QK:
        raise ValueError(f"TQ packing needs rows whose length is a multiple of {QK}, got shape {codes.shape}")
    return (codes.reshape(-1, QK) + 1).astype(np.uint8)


def _d_bytes(n_blocks: int, d: float) -> np.ndarray:
    return np.broadcast_to(np.array([d], dtype="<f2").view(np.uint8), (n_blocks, 2))


def pack_tq2_0(codes: np.ndarray, d: float) -> np.ndarray:
    """codes int8 [rows, cols] in {-1,0,1}, cols % 256 == 0 -> uint8 [rows, cols/256*66]; every block gets d."""
    rows = codes.shape[0]
    c = _blocks(codes).reshape(-1, 2, 4, 32)
    qs = c[:, :, 0] | (c[:, :, 1] << 2) | (c[:, :, 2] << 4) | (c[:, :, 3] << 6)
    out = np.concatenate([qs.reshape(-1, 64), _d_bytes(qs.shape[0], d)], axis=1)
    return np.ascontiguousarray(out).reshape(rows, -1)


def unpack_tq2_0(data: np.ndarray, rows: int, cols: int) -> np.ndarray:
    b = np.asarray(data, dtype=np.uint8).reshape(-1, TQ2_BLOCK_BYTES)[:, :64].reshape(-1, 2, 1, 32)
    c = (b >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)) & 3
    return (c.reshape(rows, cols).astype(np.int8) - 1)


_POW5 = np.array([81, 27, 9, 3, 1], dtype=np.uint16)
_POW4 = np.array([81, 27, 9, 3], dtype=np.uint16)


def _trits_to_byte(v: np.ndarray) -> np.ndarray:
    return ((v.astype(np.uint16) * 256 + 242) // 243).astype(np.uint8)


def pack_tq1_0(codes: np.ndarray, d: float) -> np.ndarray:
    rows = codes.shape[0]
    c = _blocks(codes).astype(np.uint16)
    nb = c.shape[0]
    qs0 = (c[:, :160].reshape(nb, 5, 32) * _POW5[None, :, None]).sum(axis=1)
    qs1 = (c[:, 160:240].reshape(nb, 5, 16) * _POW5[None, :, None]).sum(axis=1)
    qh = (c[:, 240:].reshape(nb, 4, 4) * _POW4[None, :, None]).sum(axis=1)
    out = np.concatenate([_trits_to_byte(qs0), _trits_to_byte(qs1), _trits_to_byte(qh), _d_bytes(nb, d)], axis=1)
    return np.ascontiguousarray(out).reshape(rows, -1)


def _byte_trits(b: np.ndarray, n: int) -> np.ndarray:
    """b uint8 [..., m] -> trits [..., n, m] (most significant first)."""
    pows = np.array([1, 3, 9, 27, 81][:n], dtype=np.uint16)
    v = (b[..., None, :].astype(np.uint16) * pows[:, None]) & 0xFF
    return ((v * 3) >> 8).astype(np.int8)


def unpack_tq1_0(data: np.ndarray, rows: int, cols: int) -> np.ndarray:
    b = np.asarray(data, dtype=np.uint8).reshape(-1, TQ1_BLOCK_BYTES)
    nb = b.shape[0]
    t0 = _byte_trits(b[:, :32], 5).reshape(nb, 160)
    t1 = _byte_trits(b[:, 32:48], 5).reshape(nb, 80)
    t2 = _byte_trits(b[:, 48:52], 4).reshape(nb, 16)
    return (np.concatenate([t0, t1, t2], axis=1) - 1).reshape(rows, cols).astype(np.int8)


def block_scales(data: np.ndarray, block_bytes: int) -> np.ndarray:
    """The fp16 d of every block, as float32."""
    b = np.asarray(data, dtype=np.uint8).reshape(-1, block_bytes)
    return np.ascontiguousarray(b[:, -2:]).view("<f2").reshape(-1).astype(np.float32)
