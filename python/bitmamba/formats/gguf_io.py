"""GGUF files with `general.architecture = "bitmamba2"` (schema: docs/formats.md): writer and reader.

Writing uses gguf-py's GGUFWriter; ternary tensors are packed here (TQ2_0 default, TQ1_0 optional, GGML I8
codes for rows whose length is not a multiple of 256), each with its exact fp32 `<name>.scale`.
Binary models (config weights: binary, docs/binary.md) store each layer's in_proj and out_proj as `P.bits`
(I8 [out, ceil(in / 8)], LSB-first sign bits, set = +1), `P.alpha` and `P.beta` (F32 [out]) in place of
`P.weight` / `P.scale`, with the key `bitmamba2.weights = "binary"`; the lm_head stays ternary.
One addition to the schema, optional for readers: `bitmamba2.ssm.a_log` (f32 array, n_layers * H) keeps
the exact A_log values, because A = -exp(A_log) in float32 cannot always be inverted bit for bit, and we
promise BIT2 -> GGUF -> BIT2 round trips byte for byte.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..numerics import exp_f32

from ..config import BitMambaConfig
from .checkpoint import Binary, Checkpoint, Ternary, is_binary_name
from .errors import FormatError
from .ternary_pack import (QK, TQ1_BLOCK_BYTES, TQ2_BLOCK_BYTES, block_scales, pack_tq1_0, pack_tq2_0,
                           unpack_tq1_0, unpack_tq2_0)

ARCH = "bitmamba2"
TERNARY_TYPES = ("tq2_0", "tq1_0")
EMBED_TYPES = ("f32", "f16", "q8_0")
WEIGHT_KINDS = ("ternary", "binary")  # what bitmamba2.weights may say (absent: ternary)


def pack_sign_bits(signs: np.ndarray) -> np.ndarray:
    """Signs [out, in] in {-1, +1} -> the `P.bits` bytes [out, ceil(in / 8)]: bit i (LSB first) of byte j
    of row r is column 8 j + i, set = +1; the padding bits past `in` are 0."""
    return np.packbits(np.asarray(signs) > 0, axis=1, bitorder="little")


def unpack_sign_bits(bits: np.ndarray, cols: int) -> np.ndarray:
    """The inverse of pack_sign_bits (padding bits are not looked at)."""
    b = np.unpackbits(np.asarray(bits).view(np.uint8), axis=1, count=cols, bitorder="little")
    return np.where(b.astype(bool), 1, -1).astype(np.int8)


def gguf_tensor_names(cfg: BitMambaConfig):
    """checkpoint name -> GGUF name (A_log maps to ssm_a, which stores A = -exp(A_log))."""
    m = {"embed.weight": "token_embd.weight", "norm_f.weight": "output_norm.weight",
         "lm_head.norm.weight": "output_in_norm.weight", "lm_head.weight": "output.weight"}
    for i in range(cfg.n_layers):
        p, b = f"layers.{i}.", f"blk.{i}."
        m.update({
            p + "in_proj.norm.weight": b + "ssm_in_norm.weight", p + "in_proj.weight": b + "ssm_in.weight",
            p + "conv1d.weight": b + "ssm_conv1d.weight", p + "conv1d.bias": b + "ssm_conv1d.bias",
            p + "dt_bias": b + "ssm_dt.bias", p + "A_log": b + "ssm_a", p + "D": b + "ssm_d",
            p + "out_proj.norm.weight": b + "ssm_out_norm.weight", p + "out_proj.weight": b + "ssm_out.weight",
        })
        if cfg.layout == "mamba2":
            m[p + "norm.weight"] = b + "ssm_norm.weight"
    return m


def write_gguf(ck: Checkpoint, path, ternary_type: str = "tq2_0", embed_type: str = "f32",
               tokenizer_json: Optional[str] = None, progress: bool = False) -> int:
    """Write `ck` as GGUF atomically. Returns the file size. tokenizer_json: embed this tokenizer (its size
    must equal the model's vocabulary). progress: bars on stderr for packing the tensors and writing them."""
    import gguf

    from ..atomic import atomic_path
    from ..progress import progress_bar

    if ternary_type not in TERNARY_TYPES:
        raise ValueError(f"ternary type must be one of {TERNARY_TYPES}, got {ternary_type!r}")
    if embed_type not in EMBED_TYPES:
        raise ValueError(f"embedding type must be one of {EMBED_TYPES}, got {embed_type!r}")
    ck.validate()
    cfg = ck.config
    names = gguf_tensor_names(cfg)
    Q = gguf.GGMLQuantizationType

    # closing(): a failed write (a full disk) releases the temporary's handle before atomic_path removes it
    with atomic_path(path) as tmp, contextlib.closing(gguf.GGUFWriter(str(tmp), ARCH)) as w:
        w.add_string("general.name", ck.name or ARCH)
        w.add_uint32(f"{ARCH}.vocab_size", cfg.vocab_size)
        w.add_uint32(f"{ARCH}.context_length", cfg.context_length)
        w.add_uint32(f"{ARCH}.embedding_length", cfg.d_model)
        w.add_uint32(f"{ARCH}.block_count", cfg.n_layers)
        w.add_uint32(f"{ARCH}.ssm.inner_size", cfg.d_inner)
        w.add_uint32(f"{ARCH}.ssm.head_count", cfg.n_heads)
        w.add_uint32(f"{ARCH}.ssm.state_size", cfg.d_state)
        w.add_uint32(f"{ARCH}.ssm.group_count", cfg.n_groups)
        w.add_uint32(f"{ARCH}.ssm.conv_kernel", cfg.d_conv)
        w.add_string(f"{ARCH}.ssm.layout", cfg.layout)
        if cfg.weights == "binary":  # absent for ternary: those files stay what they always were
            w.add_string(f"{ARCH}.weights", "binary")
        w.add_float32(f"{ARCH}.bitlinear.norm_epsilon", cfg.norm_eps)
        w.add_float32(f"{ARCH}.ssm.norm_epsilon", cfg.ssm_norm_eps)
        a_log = np.concatenate([np.asarray(ck.tensors[f"layers.{i}.A_log"], np.float32).ravel()
                                for i in range(cfg.n_layers)])
        w.add_key_value(f"{ARCH}.ssm.a_log", [float(v) for v in a_log], gguf.GGUFValueType.ARRAY,
                        sub_type=gguf.GGUFValueType.FLOAT32)
        if tokenizer_json is not None:
            from .gguf_tokenizer import tokenizer_metadata

            meta = tokenizer_metadata(tokenizer_json)
            if len(meta["tokens"]) != cfg.vocab_size:
                raise ValueError(f"tokenizer has {len(meta['tokens'])} tokens but the model's vocabulary is "
                                 f"{cfg.vocab_size}")
            w.add_tokenizer_model("gpt2")
            w.add_tokenizer_pre("gpt-2")
            w.add_token_list(meta["tokens"])
            w.add_token_types(meta["token_types"])
            w.add_token_merges(meta["merges"])
            eos = meta["eos"] if meta["eos"] is not None else cfg.eos_token_id
            if eos >= 0:  # -1: the model has no EOS token, and the file names none
                w.add_eos_token_id(eos)
                w.add_bos_token_id(meta["bos"] if meta["bos"] is not None else eos)
            w.add_string("tokenizer.huggingface.json", tokenizer_json)
        elif cfg.eos_token_id >= 0:
            w.add_eos_token_id(cfg.eos_token_id)

        bar = progress_bar(len(names), "packing", progress, unit="tensor")
        for src, dst in names.items():
            bar.update()
            t = ck.tensors[src]
            if isinstance(t, Binary):
                base = dst[: -len(".weight")]
                w.add_tensor(base + ".bits", pack_sign_bits(t.signs).view(np.int8))
                w.add_tensor(base + ".alpha", np.ascontiguousarray(t.alpha, dtype=np.float32))
                w.add_tensor(base + ".beta", np.ascontiguousarray(t.beta, dtype=np.float32))
                continue
            if isinstance(t, Ternary):
                rows, cols = t.shape
                d = float(1.0 / np.float64(t.scale))  # fp16 block scale for generic GGUF tools
                if cols % QK == 0:
                    pack, qt = (pack_tq2_0, Q.TQ2_0) if ternary_type == "tq2_0" else (pack_tq1_0, Q.TQ1_0)
                    w.add_tensor(dst, pack(t.codes, d), raw_dtype=qt)
                else:
                    w.add_tensor(dst, t.codes)  # GGML I8 codes
                w.add_tensor(dst[: -len(".weight")] + ".scale", np.array([t.scale], dtype=np.float32))
                continue
            a = np.asarray(t, dtype=np.float32)
            if src == "embed.weight":
                if embed_type == "f16":
                    a = a.astype(np.float16)
                elif embed_type == "q8_0":
                    if a.shape[1] % 32:
                        raise ValueError(f"Q8_0 needs d_model to be a multiple of 32, got {a.shape[1]}")
                    w.add_tensor(dst, gguf.quants.quantize(a, Q.Q8_0), raw_dtype=Q.Q8_0)
                    continue
            elif src.endswith("conv1d.weight"):
                a = a.reshape(cfg.conv_dim, cfg.d_conv)
            elif src.endswith("A_log"):
                # The engine's own exp (bitmamba.numerics), so a GGUF gives the same bits as its BIT2 source.
                a = (-exp_f32(a)).astype(np.float32).reshape(-1)
            else:
                a = a.reshape(-1) if a.ndim != 2 else a
            w.add_tensor(dst, np.ascontiguousarray(a))
        bar.close()
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file(progress=progress)
        w.close()
    return os.path.getsize(path)


# ---- reading --------------------------------------------------------------------------------------
def _read_binary(path, r, base: str, shape) -> Binary:
    """P.bits / P.alpha / P.beta of a binary projection of the given [out, in] shape."""
    rows, cols = shape
    got = {}
    for suffix, want_type, want_shape in ((".bits", "I8", (rows, (cols + 7) // 8)), (".alpha", "F32", (rows,)),
                                          (".beta", "F32", (rows,))):
        t = r.tensors.get(base + suffix)
        if t is None:
            raise FormatError(f"{path}: missing tensor {base}{suffix}")
        if t.type_name != want_type:
            raise FormatError(f"{path}: {base}{suffix} has type {t.type_name}, expected {want_type}")
        if tuple(t.shape) != want_shape:
            raise FormatError(f"{path}: {base}{suffix} has shape {tuple(t.shape)}, expected {want_shape}")
        got[suffix] = np.array(t.data)
    bits = got[".bits"].view(np.uint8)
    if cols % 8 and np.any(bits[:, -1] >> (cols % 8)):
        row = int(np.flatnonzero(bits[:, -1] >> (cols % 8))[0])
        raise FormatError(f"{path}: {base}.bits row {row} has set bits past column {cols} (padding must be 0)")
    for suffix in (".alpha", ".beta"):
        a = got[suffix]
        if not np.isfinite(a).all():
            raise FormatError(f"{path}: {base}{suffix} holds {int(np.count_nonzero(~np.isfinite(a)))} NaN/Inf values")
    return Binary(unpack_sign_bits(bits, cols), got[".alpha"], got[".beta"])


def read_gguf(path) -> Checkpoint:
    """Read a bitmamba2 GGUF back into a Checkpoint (ternary codes + exact scales)."""
    from .._native import native
    from .gguf_reader import GGUFFile

    path = Path(path)
    r = GGUFFile(path)
    f = r.fields
    arch = f.get("general.architecture")
    if arch != ARCH:
        raise FormatError(f"{path}: general.architecture is {arch!r}, expected {ARCH!r}")

    def need(key):
        v = f.get(f"{ARCH}.{key}")
        if v is None:
            raise FormatError(f"{path}: missing metadata key {ARCH}.{key}")
        return v

    weights = f.get(f"{ARCH}.weights", "ternary")
    if weights not in WEIGHT_KINDS:
        raise FormatError(f"{path}: metadata key {ARCH}.weights is {weights!r}, expected one of {WEIGHT_KINDS}")
    try:
        d_model = int(need("embedding_length"))
        d_inner = int(need("ssm.inner_size"))
        if d_model <= 0 or d_inner % d_model:
            raise FormatError(f"{path}: ssm.inner_size {d_inner} is not a multiple of embedding_length {d_model}")
        eos = f.get("tokenizer.ggml.eos_token_id")
        vocab = int(need("vocab_size"))
        cfg = BitMambaConfig(
            vocab_size=vocab, d_model=d_model, n_layers=int(need("block_count")),
            n_heads=int(need("ssm.head_count")), d_state=int(need("ssm.state_size")),
            n_groups=int(need("ssm.group_count")), expand=d_inner // d_model,
            d_conv=int(need("ssm.conv_kernel")), layout=str(f.get(f"{ARCH}.ssm.layout", "bitmamba2")),
            norm_eps=float(f.get(f"{ARCH}.bitlinear.norm_epsilon", 1e-6)),
            ssm_norm_eps=float(f.get(f"{ARCH}.ssm.norm_epsilon", 1e-5)),
            eos_token_id=int(eos) if eos is not None else native().default_eos_token_id(vocab),
            context_length=int(f.get(f"{ARCH}.context_length", native().DEFAULT_CONTEXT_LENGTH)),
            weights=weights,
        )
    except FormatError:
        raise
    except (ValueError, TypeError, OverflowError) as e:  # a value of the wrong type or out of range
        raise FormatError(f"{path}: bad hyperparameters: {e}") from None
    out = {}
    a_log_all = f.get(f"{ARCH}.ssm.a_log")
    H = cfg.n_heads
    want_shapes = None
    for src, dst in gguf_tensor_names(cfg).items():
        base = dst[: -len(".weight")] if dst.endswith(".weight") else dst
        if src.endswith(("in_proj.weight", "out_proj.weight")) and (base + ".bits") in r.tensors:
            if dst in r.tensors:
                raise FormatError(f"{path}: projection {base} is stored both binary ({base}.bits) and ternary ({dst})")
            if not is_binary_name(src, cfg):
                raise FormatError(f"{path}: {base}.bits is binary, but {ARCH}.weights is {weights!r}")
        if is_binary_name(src, cfg):
            if dst in r.tensors:
                raise FormatError(f"{path}: {dst} is ternary, but {ARCH}.weights is 'binary' (expected {base}.bits)")
            if want_shapes is None:
                from .checkpoint import expected_shapes

                want_shapes = expected_shapes(cfg)
            out[src] = _read_binary(path, r, base, want_shapes[src])
            continue
        t = r.tensors.get(dst)
        if t is None:
            raise FormatError(f"{path}: missing tensor {dst}")
        if src.endswith(("in_proj.weight", "out_proj.weight")) or src == "lm_head.weight":
            if len(t.shape) != 2:
                raise FormatError(f"{path}: {dst} should be 2-D, has shape {t.shape}")
            rows, cols = t.shape
            if t.type_name == "TQ2_0":
                codes = unpack_tq2_0(t.data, rows, cols)
            elif t.type_name == "TQ1_0":
                codes = unpack_tq1_0(t.data, rows, cols)
            elif t.type_name == "I8":
                codes = np.array(t.data, dtype=np.int8)
                if codes.size and (codes.min() < -1 or codes.max() > 1):
                    raise FormatError(f"{path}: {dst} holds I8 values outside {{-1, 0, 1}}")
            else:
                raise FormatError(f"{path}: {dst} has type {t.type_name}, expected TQ2_0, TQ1_0 or I8")
            st = r.tensors.get(dst[: -len(".weight")] + ".scale")
            if st is not None:
                if st.type_name != "F32" or st.data.size != 1:
                    raise FormatError(f"{path}: {st.name} must be one F32 value")
                scale = np.float32(st.data.reshape(-1)[0])
            else:  # a file from another tool: fall back to the fp16 block scale
                if t.type_name == "I8":
                    raise FormatError(f"{path}: {dst} is I8 and has no .scale tensor")
                bb = TQ2_BLOCK_BYTES if t.type_name == "TQ2_0" else TQ1_BLOCK_BYTES
                scale = np.float32(1.0 / block_scales(t.data, bb)[0])
            out[src] = Ternary(codes, scale)
            continue
        if t.type_name in ("F32", "F16"):
            a = np.array(t.data, dtype=np.float32)
        elif t.type_name == "Q8_0":
            import gguf

            a = gguf.quants.dequantize(np.array(t.data), gguf.GGMLQuantizationType.Q8_0)
        else:
            raise FormatError(f"{path}: {dst} has unsupported type {t.type_name}")
        a = a.reshape(t.shape)
        if src.endswith("conv1d.weight"):
            if a.size != cfg.conv_dim * cfg.d_conv:
                raise FormatError(f"{path}: {dst} has shape {t.shape}, expected {(cfg.conv_dim, cfg.d_conv)}")
            a = a.reshape(cfg.conv_dim, 1, cfg.d_conv)
        elif src.endswith("A_log"):
            i = int(src.split(".")[1])
            if a_log_all is not None and len(a_log_all) == cfg.n_layers * H:
                a = np.asarray(a_log_all[i * H:(i + 1) * H], dtype=np.float32)
            else:
                a = np.log(-a.astype(np.float64)).astype(np.float32)
        out[src] = a
    tok = f.get("tokenizer.huggingface.json")
    if tok is not None:
        # Checked here, where the file and key can be named; a byte flipped inside it can leave valid
        # UTF-8 that is no longer JSON.
        import json

        if not isinstance(tok, str):
            raise FormatError(f"{path}: metadata key 'tokenizer.huggingface.json' is not a string")
        try:
            json.loads(tok)
        except json.JSONDecodeError as e:
            raise FormatError(f"{path}: metadata key 'tokenizer.huggingface.json' is not valid JSON "
                              f"({e.msg.removesuffix(' at')} at line {e.lineno}, column {e.colno}): the file is "
                              "corrupt; convert it again, or pass --tokenizer (convert --no-tokenizer embeds none)"
                              ) from None
    ck = Checkpoint(cfg, out, tokenizer_json=tok, name=str(f.get("general.name", path.stem)))
    try:
        ck.validate()
    except ValueError as e:
        raise FormatError(f"{path}: {e}") from None
    return ck
