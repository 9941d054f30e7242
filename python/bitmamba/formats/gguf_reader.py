"""A small GGUF v2/v3 reader: metadata and memory-mapped tensors, every size and offset validated.

gguf-py's GGUFReader builds a Python object per array element, which takes ~10 s for a 50k-token vocabulary;
this one reads string arrays in one pass and numeric arrays with numpy."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from .errors import FormatError

# (block size in elements, bytes per block) of the GGML types we read
GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 8: ("Q8_0", 32, 34), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
              26: ("I32", 1, 4), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66)}
_SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8",
            11: "<i8", 12: "<f8"}
T_STRING, T_ARRAY = 8, 9


@dataclass
class GGUFTensor:
    name: str
    type_name: str
    shape: Tuple[int, ...]  # row-major (GGUF dims reversed)
    data: np.ndarray  # raw bytes (uint8, one row per tensor row) for block types; typed array otherwise
    offset: int  # absolute file offset


class GGUFFile:
    def __init__(self, path):
        self.path = Path(path)
        self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        self.buf = memoryview(self._mm)
        self.pos = 0
        self.fields: Dict[str, Any] = {}
        self.tensors: Dict[str, GGUFTensor] = {}
        self._parse()

    # -- primitive reads with bounds checks
    def _need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise FormatError(f"{self.path}: truncated GGUF while reading {what} (offset {self.pos})")

    def _unpack(self, fmt: str, what: str):
        n = struct.calcsize(fmt)
        self._need(n, what)
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return v if len(v) > 1 else v[0]

    def _string(self, what: str, name: str = "") -> str:
        """A length-prefixed UTF-8 string; `name` says which for the error (default: `what`)."""
        n = self._unpack("<Q", what)
        self._need(n, what)
        s = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return s.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"{self.path}: {name or what} is not valid UTF-8 (byte 0x{s[e.start]:02x} at "
                              f"position {e.start}): the file is corrupt; convert or download it again") from None

    def _value(self, t: int, what: str):
        if t == T_STRING:
            return self._string(what, f"metadata key {what!r}")
        if t == T_ARRAY:
            et = self._unpack("<I", what)
            n = self._unpack("<Q", what)
            if et == T_STRING:
                if n > (len(self.buf) - self.pos) // 8:  # each string takes at least its 8-byte length
                    raise FormatError(f"{self.path}: truncated GGUF while reading {what} (offset {self.pos})")
                return [self._string(what, f"metadata key {what!r} element {i}") for i in range(n)]
            if et not in _SCALARS:
                raise FormatError(f"{self.path}: unsupported array element type {et} in {what}")
            dt = np.dtype(_SCALARS[et])
            self._need(n * dt.itemsize, what)
            a = np.frombuffer(self.buf, dt, n, self.pos).copy()
            self.pos += n * dt.itemsize
            return a.astype(bool).tolist() if et == 7 else a
        if t not in _SCALARS:
            raise FormatError(f"{self.path}: unknown metadata type {t} in {what}")
        dt = np.dtype(_SCALARS[t])
        self._need(dt.itemsize, what)
        v = np.frombuffer(self.buf, dt, 1, self.pos)[0]
        self.pos += dt.itemsize
        return bool(v) if t == 7 else v.item()

    def _parse(self) -> None:
        magic = bytes(self.buf[:4]) if len(self.buf) >= 4 else b""
        if magic != b"GGUF":
            raise FormatError(f"{self.path}: not a GGUF file (magic {magic!r})")
        self.pos = 4
        version = self._unpack("<I", "version")
        if version not in (2, 3):
            raise FormatError(f"{self.path}: unsupported GGUF version {version}")
        n_tensors, n_kv = self._unpack("<QQ", "header")
        if n_tensors > len(self.buf) or n_kv > len(self.buf):
            raise FormatError(f"{self.path}: implausible header counts ({n_tensors} tensors, {n_kv} keys)")
        for k in range(n_kv):
            key = self._string("metadata key", f"metadata key #{k}")
            t = self._unpack("<I", key)
            self.fields[key] = self._value(t, key)
        infos = []
        for k in range(n_tensors):
            name = self._string("tensor name", f"the name of tensor #{k}")
            nd = self._unpack("<I", name)
            if not 1 <= nd <= 4:
                raise FormatError(f"{self.path}: tensor {name} has {nd} dimensions")
            dims = self._unpack(f"<{nd}Q", name)
            dims = (dims,) if nd == 1 else tuple(dims)
            t, off = self._unpack("<IQ", name)
            infos.append((name, dims, t, off))
        align = int(self.fields.get("general.alignment", 32))
        if align <= 0 or align & (align - 1):
            raise FormatError(f"{self.path}: bad general.alignment {align}")
        base = (self.pos + align - 1) // align * align
        for name, dims, t, off in infos:
            if t not in GGML_TYPES:
                raise FormatError(f"{self.path}: tensor {name} has unsupported GGML type {t}")
            tname, bs, bb = GGML_TYPES[t]
            shape = tuple(int(d) for d in reversed(dims))
            n = int(np.prod(shape))
            if shape[-1] % bs:
                raise FormatError(f"{self.path}: tensor {name} rows of {shape[-1]} are not a multiple of {bs}")
            nbytes = n // bs * bb
            start = base + off
            if off % align or start + nbytes > len(self.buf):
                raise FormatError(f"{self.path}: tensor {name} (offset {off}, {nbytes} bytes) lies outside the file")
            raw = self._mm[start:start + nbytes]
            if bs == 1:
                data = raw.view({"F32": "<f4", "F16": "<f2", "I8": "<i1", "I16": "<i2", "I32": "<i4"}[tname])
                data = data.reshape(shape)
            else:
                data = raw.reshape(shape[:-1] + (shape[-1] // bs * bb,))
            if name in self.tensors:
                raise FormatError(f"{self.path}: duplicate tensor {name}")
            self.tensors[name] = GGUFTensor(name, tname, shape, data, start)
