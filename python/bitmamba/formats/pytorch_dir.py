"""PyTorch checkpoint directories (config.json + model.safetensors, as BitMambaLM.save_pretrained writes
them), read with numpy only: the converter does not need torch.

A `"weights": "binary"` config (docs/binary.md) has, for every layer's in_proj and out_proj, the latent
float `P.weight` [out, in] and the learned `P.alpha`, `P.beta` [out]; the signs are taken from the latent
weight here. A `"weights": "float"` config is a distillation teacher, which the engine does not run."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..config import BitMambaConfig
from .checkpoint import (Checkpoint, UnsupportedModelError, binarize, expected_shapes, is_binary_name,
                         is_ternary_name, quantize_ternary)

_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}


def read_safetensors(path) -> dict:
    """name -> float32 array. Handles F32, F16, F64 and BF16 (which numpy lacks)."""
    path = Path(path)
    buf = np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else b""
    if len(buf) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack_from("<Q", buf[:8].tobytes(), 0)
    if 8 + n > len(buf):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    try:
        header = json.loads(bytes(buf[8:8 + n]))
    except ValueError:
        raise ValueError(f"{path}: corrupt safetensors header") from None
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dt, shape, (a, b) = info["dtype"], tuple(int(x) for x in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: malformed header entry for tensor {name}") from None
        if not (0 <= a <= b <= len(buf) - base):
            raise ValueError(f"{path}: tensor {name} has offsets outside the file")
        raw = np.asarray(buf[base + a: base + b])
        if raw.size % {"BF16": 2, "F16": 2, "F32": 4, "F64": 8}.get(dt, 1):
            raise ValueError(f"{path}: tensor {name} has a byte size that does not fit its dtype {dt}")
        if dt == "BF16":
            arr = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        elif dt == "F32":
            arr = np.array(raw.view("<f4"))  # one copy out of the memory map
        elif dt in _DTYPES:
            arr = raw.view(_DTYPES[dt]).astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {dt}")
        if arr.size != int(np.prod(shape)):
            raise ValueError(f"{path}: tensor {name} has {arr.size} values for shape {shape}")
        out[name] = arr.reshape(shape)
    return out


def read_pytorch_dir(directory) -> Checkpoint:
    d = Path(directory)
    for f in ("config.json", "model.safetensors"):
        if not (d / f).is_file():
            raise FileNotFoundError(f"{d}: no {f} (a PyTorch checkpoint directory needs config.json and "
                                    "model.safetensors, as BitMambaLM.save_pretrained writes)")
    cfg = BitMambaConfig.from_json(d / "config.json")
    if cfg.weights == "float":
        raise UnsupportedModelError(f"{d}: config.json says weights: float, a full-precision teacher, not an "
                                    "engine model (convert the ternary or binary student)")
    state = read_safetensors(d / "model.safetensors")
    want = expected_shapes(cfg)
    used = set(want)
    tensors = {}
    for name in want:
        if name not in state:
            raise ValueError(f"{d}: model.safetensors lacks {name}")
        a = state[name]
        if is_binary_name(name, cfg):
            base = name[: -len(".weight")]
            rows = want[name][0]
            for k in (base + ".alpha", base + ".beta"):
                if k not in state:
                    raise ValueError(f"{d}: model.safetensors lacks {k} (a binary projection needs .alpha and .beta)")
                if tuple(state[k].shape) != (rows,):
                    raise ValueError(f"{d}: {k} has shape {tuple(state[k].shape)}, expected ({rows},)")
                used.add(k)
            if tuple(a.shape) != want[name]:
                raise ValueError(f"{d}: {name} has shape {tuple(a.shape)}, expected {want[name]}")
            tensors[name] = binarize(a, state[base + ".alpha"], state[base + ".beta"], name)
        elif is_ternary_name(name):
            tensors[name] = quantize_ternary(a, name)
        else:
            tensors[name] = np.ascontiguousarray(a)
    extra = sorted(set(state) - used)
    if extra:
        raise ValueError(f"{d}: model.safetensors has tensors the config does not explain: {extra[:5]}")
    tok = (d / "tokenizer.json").read_text(encoding="utf-8") if (d / "tokenizer.json").is_file() else None
    ck = Checkpoint(cfg, tensors, tokenizer_json=tok, name=d.name)
    ck.validate()
    return ck
