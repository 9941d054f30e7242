"""Random small models as numpy weights (Reference format, see engine_reference.py) and writers for
GGUF files following docs/formats.md and BIT2 files, for the engine tests."""
from __future__ import annotations

import struct

import numpy as np


def random_weights(rng, vocab=300, d_model=256, n_layers=2, n_heads=4, d_state=1, n_groups=None,
                   layout="bitmamba2", conv_kernel=4, d_inner=None):
    d_inner = d_inner or 2 * d_model
    n_groups = n_groups or n_heads
    gn = n_groups * d_state
    conv_dim = d_inner + 2 * gn if layout == "mamba2" else d_inner
    n_in = 2 * d_inner + 2 * gn + n_heads
    f = lambda *s, lo=-1.0, hi=1.0: rng.uniform(lo, hi, size=s)  # noqa: E731
    codes = lambda r, c: rng.integers(-1, 2, size=(r, c)).astype(np.int8)  # noqa: E731
    w = {"embed": f(vocab, d_model), "layers": []}
    for _ in range(n_layers):
        L = dict(in_norm=f(d_model, lo=0.5, hi=1.5), in_codes=codes(n_in, d_model), in_scale=float(rng.uniform(1, 3)),
                 conv_w=f(conv_dim, conv_kernel, lo=-0.5, hi=0.5), conv_b=f(conv_dim, lo=-0.1, hi=0.1),
                 dt_bias=f(n_heads, lo=-3, hi=0), A=-np.exp(f(n_heads, lo=0, hi=2)), D=f(d_inner, lo=0.5, hi=1.5),
                 out_norm=f(d_inner, lo=0.5, hi=1.5), out_codes=codes(d_model, d_inner),
                 out_scale=float(rng.uniform(1, 3)))
        if layout == "mamba2":
            L["ssm_norm"] = f(d_inner, lo=0.5, hi=1.5)
        w["layers"].append(L)
    w["norm_f"] = f(d_model, lo=0.5, hi=1.5)
    w["lm_norm"] = f(d_model, lo=0.5, hi=1.5)
    w["lm_codes"] = codes(vocab, d_model)
    w["lm_scale"] = float(rng.uniform(1, 3))
    # Values a float32 file can hold exactly, so file and reference agree bit for bit.
    for k in ("embed", "norm_f", "lm_norm"):
        w[k] = w[k].astype(np.float32).astype(np.float64)
    for L in w["layers"]:
        for k, v in L.items():
            if isinstance(v, np.ndarray) and v.dtype != np.int8:
                L[k] = v.astype(np.float32).astype(np.float64)
            elif isinstance(v, float):
                L[k] = float(np.float32(v))
    w["lm_scale"] = float(np.float32(w["lm_scale"]))
    cfg = dict(vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads, d_inner=d_inner,
               d_state=d_state, n_groups=n_groups, conv_kernel=conv_kernel, layout=layout)
    return w, cfg


def write_gguf(path, w, cfg, ternary="TQ2_0", embed="F32", tokenizer_json=None, d_per_head=False,
               skip_tensor=None, extra=None):
    import gguf

    Q = gguf.GGMLQuantizationType
    wr = gguf.GGUFWriter(str(path), "bitmamba2")
    a = "bitmamba2."
    wr.add_string("general.name", "test-model")
    wr.add_uint32(a + "vocab_size", cfg["vocab_size"])
    wr.add_uint32(a + "context_length", 2048)
    wr.add_uint32(a + "embedding_length", cfg["d_model"])
    wr.add_uint32(a + "block_count", cfg["n_layers"])
    wr.add_uint32(a + "ssm.inner_size", cfg["d_inner"])
    wr.add_uint32(a + "ssm.head_count", cfg["n_heads"])
    wr.add_uint32(a + "ssm.state_size", cfg["d_state"])
    wr.add_uint32(a + "ssm.group_count", cfg["n_groups"])
    wr.add_uint32(a + "ssm.conv_kernel", cfg["conv_kernel"])
    wr.add_string(a + "ssm.layout", cfg["layout"])
    wr.add_float32(a + "bitlinear.norm_epsilon", 1e-6)
    if cfg["layout"] == "mamba2":
        wr.add_float32(a + "ssm.norm_epsilon", 1e-5)
    if tokenizer_json is not None:
        wr.add_string("tokenizer.ggml.model", "gpt2")
        wr.add_string("tokenizer.huggingface.json", tokenizer_json)
    wr.add_uint32("tokenizer.ggml.eos_token_id", cfg["vocab_size"] - 1)
    for k, v in (extra or {}).items():
        wr.add_string(k, v)

    def put(name, arr, raw_dtype=None, raw_shape=None):
        if name == skip_tensor:
            return
        if raw_dtype is None:
            wr.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))
        else:
            wr.add_tensor(name, np.ascontiguousarray(arr), raw_dtype=raw_dtype)

    def tern(base, codes, scale):
        rows, cols = codes.shape
        kind = ternary if cols % 256 == 0 else "I8"
        if kind == "I8":
            put(base + ".weight", codes.astype(np.int8), Q.I8)
        else:
            q = gguf.quants.quantize((codes / scale).astype(np.float32), getattr(Q, kind))
            put(base + ".weight", q, getattr(Q, kind))
        put(base + ".scale", np.array([scale], np.float32))

    e = w["embed"].astype(np.float32)
    if embed == "F32":
        put("token_embd.weight", e)
    elif embed == "F16":
        put("token_embd.weight", e.astype(np.float16), Q.F16)
    else:
        put("token_embd.weight", gguf.quants.quantize(e, Q.Q8_0), Q.Q8_0)
    H, di = cfg["n_heads"], cfg["d_inner"]
    for i, L in enumerate(w["layers"]):
        p = f"blk.{i}."
        put(p + "ssm_in_norm.weight", L["in_norm"])
        tern(p + "ssm_in", L["in_codes"], L["in_scale"])
        put(p + "ssm_conv1d.weight", L["conv_w"])
        put(p + "ssm_conv1d.bias", L["conv_b"])
        put(p + "ssm_dt.bias", L["dt_bias"])
        put(p + "ssm_a", L["A"])
        put(p + "ssm_d", L["D"][:: di // H] if d_per_head else L["D"])
        if cfg["layout"] == "mamba2":
            put(p + "ssm_norm.weight", L["ssm_norm"])
        put(p + "ssm_out_norm.weight", L["out_norm"])
        tern(p + "ssm_out", L["out_codes"], L["out_scale"])
    put("output_norm.weight", w["norm_f"])
    put("output_in_norm.weight", w["lm_norm"])
    tern("output", w["lm_codes"], w["lm_scale"])
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def write_bit2(path, w, cfg):
    assert cfg["layout"] == "bitmamba2" and cfg["d_state"] == 1 and cfg["n_groups"] == cfg["n_heads"]
    out = [struct.pack("<5i", 0x42495432, cfg["vocab_size"], cfg["d_model"], cfg["n_layers"], cfg["n_heads"])]

    def fl(a, dims=None):
        a = np.asarray(a, np.float32)
        dims = dims or a.shape
        out.append(struct.pack(f"<2i{len(dims)}i", 0, len(dims), *dims) + a.tobytes())

    def tern(codes, scale):
        u = (codes.reshape(-1, 4).astype(np.int16) + 1).astype(np.uint8)
        b = u[:, 0] | (u[:, 1] << 2) | (u[:, 2] << 4) | (u[:, 3] << 6)
        out.append(struct.pack("<3if", 2, *codes.shape, scale) + b.astype(np.uint8).tobytes())

    fl(w["embed"])
    for L in w["layers"]:
        fl(L["in_norm"]); tern(L["in_codes"], L["in_scale"])  # noqa: E702
        fl(L["conv_w"], (cfg["d_inner"], 1, cfg["conv_kernel"])); fl(L["conv_b"])  # noqa: E702
        fl(L["dt_bias"]); fl(np.log(-L["A"])); fl(L["D"])  # noqa: E702
        fl(L["out_norm"]); tern(L["out_codes"], L["out_scale"])  # noqa: E702
    fl(w["norm_f"]); fl(w["lm_norm"]); tern(w["lm_codes"], w["lm_scale"])  # noqa: E702
    with open(path, "wb") as f:
        f.write(b"".join(out))
