"""Released BitMamba-2 Flax weights (`jax_weights/*.msgpack`), read without JAX or Flax.

flax.serialization writes the parameter tree as nested msgpack maps; every array is a msgpack ExtType with
code 1 whose payload is itself msgpack: (shape, dtype name, C-order bytes). Numpy scalars use code 3
((dtype name, bytes)); arrays over 2**30 bytes are split into a map {"__msgpack_chunked_array__": True,
"shape": ..., "chunks": {"0": flat array, "1": ...}}. Names (docs/model.md, "Flax msgpack"): Embed_0/embedding,
RMSNorm_0/scale (norm_f), BitLinear_0/{kernel, RMSNorm_0/scale} (lm_head), BitMambaBlock_i/{BitLinear_0
(in_proj), Conv_0/{kernel, bias}, BitLinear_1 (out_proj), dt_bias, A_log, D}; kernels are [in, out], the conv
kernel [K, 1, d_inner].
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from .._native import native
from ..config import BitMambaConfig
from .checkpoint import Checkpoint, quantize_ternary

EXT_NDARRAY = 1
EXT_NPSCALAR = 3


def _array_from(shape, dtype_name, buf) -> np.ndarray:
    if isinstance(dtype_name, bytes):
        dtype_name = dtype_name.decode()
    shape = tuple(int(s) for s in shape)
    if dtype_name == "bfloat16":
        # numpy has no bfloat16: widen the 16 stored bits into the top half of a float32.
        u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).reshape(shape)
    return np.frombuffer(buf, dtype=np.dtype(dtype_name)).reshape(shape)


def _ext_hook(code, data):
    import msgpack

    if code == EXT_NDARRAY:
        shape, dtype_name, buf = msgpack.unpackb(data, raw=False)
        return _array_from(shape, dtype_name, buf)
    if code == EXT_NPSCALAR:
        dtype_name, buf = msgpack.unpackb(data, raw=False)
        return _array_from((), dtype_name, buf)[()]
    raise ValueError(f"unsupported msgpack extension type {code} in a Flax checkpoint")


def _unchunk(tree):
    if isinstance(tree, dict):
        if tree.get("__msgpack_chunked_array__"):
            chunks = tree["chunks"]
            parts = [np.asarray(chunks[str(i)]).ravel() for i in range(len(chunks))]
            return np.concatenate(parts).reshape(tuple(tree["shape"]))
        return {k: _unchunk(v) for k, v in tree.items()}
    return tree


def read_flax_tree(path) -> Dict[str, Any]:
    import msgpack

    data = Path(path).read_bytes()
    try:
        tree = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except (msgpack.exceptions.ExtraData, msgpack.exceptions.UnpackException, ValueError) as e:
        raise ValueError(f"{path}: not a Flax msgpack checkpoint ({e})") from None
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: expected a map of parameters at the top level")
    tree = _unchunk(tree)
    if "params" in tree and isinstance(tree["params"], dict):
        tree = tree["params"]
    return tree


def read_flax_msgpack(path, eos_token_id: Optional[int] = None) -> Checkpoint:
    """eos_token_id: the model's EOS token; None (Flax checkpoints name none) applies the engine's
    default rule for the vocabulary (bitmamba._C.default_eos_token_id)."""
    path = Path(path)
    p = read_flax_tree(path)

    def get(*keys):
        node = p
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                raise ValueError(f"{path}: missing {'/'.join(keys)}")
            node = node[k]
        return np.asarray(node, dtype=np.float32)

    emb = get("Embed_0", "embedding")
    V, D = emb.shape
    blocks = sorted(int(m.group(1)) for k in p if (m := re.fullmatch(r"BitMambaBlock_(\d+)", k)))
    if not blocks or blocks != list(range(len(blocks))):
        raise ValueError(f"{path}: expected BitMambaBlock_0..N-1, found {blocks}")
    L = len(blocks)
    H = get("BitMambaBlock_0", "A_log").size
    d_inner = get("BitMambaBlock_0", "Conv_0", "bias").size
    if d_inner % D:
        raise ValueError(f"{path}: conv width {d_inner} is not a multiple of d_model {D}")
    kern = get("BitMambaBlock_0", "Conv_0", "kernel")
    cfg = BitMambaConfig(vocab_size=V, d_model=D, n_layers=L, n_heads=H, expand=d_inner // D,
                         d_conv=kern.shape[0],
                         eos_token_id=native().default_eos_token_id(V) if eos_token_id is None else eos_token_id)
    t = {"embed.weight": emb, "norm_f.weight": get("RMSNorm_0", "scale"),
         "lm_head.norm.weight": get("BitLinear_0", "RMSNorm_0", "scale"),
         "lm_head.weight": quantize_ternary(get("BitLinear_0", "kernel").T, "BitLinear_0/kernel")}
    for i in range(L):
        b = f"BitMambaBlock_{i}"
        q = f"layers.{i}."
        k = get(b, "Conv_0", "kernel")  # [K, 1, C]
        if k.ndim != 3 or k.shape[1] != 1:
            raise ValueError(f"{path}: {b}/Conv_0/kernel has shape {k.shape}, expected [K, 1, channels]")
        t.update({
            q + "in_proj.norm.weight": get(b, "BitLinear_0", "RMSNorm_0", "scale"),
            q + "in_proj.weight": quantize_ternary(get(b, "BitLinear_0", "kernel").T, f"{b}/BitLinear_0/kernel"),
            q + "conv1d.weight": np.ascontiguousarray(k.transpose(2, 1, 0)),
            q + "conv1d.bias": get(b, "Conv_0", "bias"),
            q + "dt_bias": get(b, "dt_bias").reshape(-1), q + "A_log": get(b, "A_log").reshape(-1),
            q + "D": get(b, "D").reshape(-1),
            q + "out_proj.norm.weight": get(b, "BitLinear_1", "RMSNorm_0", "scale"),
            q + "out_proj.weight": quantize_ternary(get(b, "BitLinear_1", "kernel").T, f"{b}/BitLinear_1/kernel"),
        })
    ck = Checkpoint(cfg, {k: (np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v) for k, v in t.items()},
                    name=path.stem)
    try:
        ck.validate()
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return ck
