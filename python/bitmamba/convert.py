"""Checkpoint conversion: PyTorch directory, Flax msgpack, BIT2 `.bin` or GGUF in; GGUF or BIT2 out.

    from bitmamba.convert import convert
    result = convert("ckpt/", "model.gguf")             # ternary TQ2_0, f32 embedding, GPT-2 tokenizer
    result = convert("Zhayr1/BitMamba-2-1B", "1b.gguf")  # a Hugging Face repo id: its best source (bitmamba.hub)

Binary models (config weights: binary, docs/binary.md) convert to GGUF only; a float teacher (weights:
float) is refused. Every conversion is checked before anything is written: NaN/Inf anywhere -> refuse
(ConversionError); dead layers (all-zero ternary weights, binary alpha, or norm weights) and degenerate
scales -> warnings in the report. The report gives the bits per weight each projection kind takes in the
output, and sign balance for binary tensors where ternary ones show their zeros.
Output goes to a temporary file renamed at the end, so an interrupted conversion leaves no broken file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from .formats.bit2 import MAGIC_BYTES as BIT2_MAGIC
from .formats.checkpoint import Binary, Checkpoint, NonFiniteError, Ternary, UnsupportedModelError, tensor_names
from .formats.errors import FormatError

GGUF_MAGIC = b"GGUF"
# Part of the name of every conversion cached by bitmamba.hub: raise it whenever the same source would
# convert to a different file (a new key, a changed packing), so no cache keeps a file of the old kind.
CONVERTER_VERSION = 1


class ConversionError(ValueError):
    """The source cannot be converted (non-finite values, unsupported layout for the target, ...)."""


@dataclass
class ConversionResult:
    source_kind: str
    target_kind: str
    out_path: Optional[Path]
    file_size: int
    checkpoint: Checkpoint
    warnings: List[str] = field(default_factory=list)
    tokenizer_embedded: bool = False
    report: str = ""


def detect_source_kind(src) -> str:
    """'pytorch' (a directory), 'bit2', 'gguf' or 'flax' (by magic bytes, then by suffix)."""
    p = Path(src)
    if p.is_dir():
        return "pytorch"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file or directory")
    with open(p, "rb") as f:
        head = f.read(4)
    if head == GGUF_MAGIC:
        return "gguf"
    if head == BIT2_MAGIC:
        return "bit2"
    if p.suffix == ".msgpack" or (head and 0x80 <= head[0] <= 0x8F) or head[:1] in (b"\xde", b"\xdf"):
        return "flax"  # a msgpack map at the top level
    raise ValueError(f"{p}: not a recognised checkpoint (expected a PyTorch checkpoint directory, a Flax "
                     ".msgpack, a BIT2 .bin or a GGUF file)")


def load_checkpoint(src, kind: Optional[str] = None) -> Checkpoint:
    kind = kind or detect_source_kind(src)
    try:
        if kind == "pytorch":
            from .formats.pytorch_dir import read_pytorch_dir

            return read_pytorch_dir(src)
        if kind == "flax":
            from .formats.flax_msgpack import read_flax_msgpack

            return read_flax_msgpack(src)
        if kind == "bit2":
            from .formats.bit2 import read_bit2

            return read_bit2(src)
        if kind == "gguf":
            from .formats.gguf_io import read_gguf

            return read_gguf(src)
    except NonFiniteError as e:
        raise ConversionError(f"{src}: {e}; refusing to convert a model with NaN/Inf weights") from None
    except UnsupportedModelError as e:
        raise ConversionError(str(e)) from None
    raise ValueError(f"unknown source kind {kind!r}")


def check_checkpoint(ck: Checkpoint) -> List[str]:
    """Raise ConversionError on NaN/Inf; return warnings about suspicious but writable content."""
    bad = []
    for name, t in ck.tensors.items():
        if isinstance(t, Ternary):
            if not np.isfinite(t.scale) or t.scale <= 0:
                bad.append(f"{name}.scale = {t.scale}")
        elif isinstance(t, Binary):
            for what, a in (("alpha", t.alpha), ("beta", t.beta)):
                if not np.isfinite(a).all():
                    bad.append(f"{name} {what} ({int(np.count_nonzero(~np.isfinite(a)))} NaN/Inf values)")
        elif not np.isfinite(np.asarray(t)).all():
            bad.append(f"{name} ({int(np.count_nonzero(~np.isfinite(np.asarray(t))))} NaN/Inf values)")
    if bad:
        raise ConversionError("refusing to write a model with non-finite values: " + "; ".join(bad[:5]) +
                              (f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""))
    warnings = []
    for name, t in ck.tensors.items():
        if isinstance(t, Ternary):
            if not np.any(t.codes):
                warnings.append(f"dead tensor: {name} has only zero codes (its layer contributes nothing)")
            elif t.sparsity() > 0.99:
                warnings.append(f"{name} is {100 * t.sparsity():.2f}% zeros")
            if t.scale >= np.float32(1e5) * np.float32(0.999):
                warnings.append(f"{name}: scale_w {float(t.scale):.3g} at the 1/1e-5 floor (weights near zero)")
        elif isinstance(t, Binary):
            if not np.any(t.alpha) and not np.any(t.beta):
                warnings.append(f"dead tensor: {name} has alpha = beta = 0 (its layer contributes nothing)")
            elif t.signs.size and t.balance() in (0.0, 1.0):
                warnings.append(f"{name}: every sign is {'+1' if t.balance() else '-1'} (the latent weight has one "
                                "sign: only beta and alpha remain)")
        elif name.endswith("norm.weight") or name == "norm_f.weight":
            if not np.any(np.asarray(t)):
                warnings.append(f"dead tensor: {name} is all zeros (the norm output is zero)")
    return warnings


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024


def stored_bytes(t, to: str = "gguf", ternary_type: str = "tq2_0") -> (int, str):
    """(bytes the matrix takes in the output file, its encoding): GGUF TQ2_0 / TQ1_0 (I8 codes for rows
    that are no multiple of 256) plus the 4-byte scale, binary bits plus alpha and beta (docs/binary.md),
    or a BIT2 record (16-byte header, 2 bits a code)."""
    rows, cols = t.shape
    if isinstance(t, Binary):
        return rows * ((cols + 7) // 8) + 8 * rows, "binary"
    if to == "bit2":
        return 16 + (rows * cols + 3) // 4, "BIT2"
    if cols % 256:
        return rows * cols + 4, "I8"
    block = 66 if ternary_type == "tq2_0" else 54
    return rows * (cols // 256) * block + 4, ternary_type.upper()


def _projection_kind(name: str) -> str:
    return name.rsplit(".", 2)[-2] if name.startswith("layers.") else name.split(".")[0]


def format_report(ck: Checkpoint, warnings: List[str], source_kind: str = "", target: str = "",
                  out_path=None, file_size: int = 0, extra: Optional[List[str]] = None, to: str = "gguf",
                  ternary_type: str = "tq2_0") -> str:
    cfg = ck.config
    tern = [(n, ck.tensors[n]) for n in tensor_names(cfg) if isinstance(ck.tensors[n], Ternary)]
    bins = [(n, ck.tensors[n]) for n in tensor_names(cfg) if isinstance(ck.tensors[n], Binary)]
    n_tern = sum(t.codes.size for _, t in tern)
    n_bin = sum(t.n_params for _, t in bins)
    n_all = ck.num_parameters()
    split = f"{n_tern:,} ternary + " + (f"{n_bin:,} binary (signs, alpha, beta) + " if bins else "")
    lines = [
        f"model:      {cfg.layout}, d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.n_heads} heads "
        f"(head_dim {cfg.head_dim}), d_state {cfg.d_state}, groups {cfg.n_groups}, vocab {cfg.vocab_size}"
        + (", binary in_proj / out_proj" if cfg.weights == "binary" else ""),
        f"parameters: {n_all:,} total = {split}{n_all - n_tern - n_bin:,} float "
        f"(embedding {cfg.vocab_size * cfg.d_model:,})",
    ]
    if source_kind:
        lines.append(f"source:     {source_kind}")
    # Bits per weight each kind of matrix takes in the output, over its weights (rows x cols).
    kinds = {}
    for n in tensor_names(cfg):
        t = ck.tensors[n]
        if not isinstance(t, (Ternary, Binary)):
            continue
        b, enc = stored_bytes(t, to, ternary_type)
        k = kinds.setdefault(_projection_kind(n), [0, 0, set()])
        k[0] += b
        k[1] += t.shape[0] * t.shape[1]
        k[2].add(enc)
    parts = [f"{k} {8.0 * b / max(1, w):.3f} ({'/'.join(sorted(e))})" for k, (b, w, e) in kinds.items()]
    lines.append(f"bits/weight: {', '.join(parts)}")
    zeros = sum(int(np.count_nonzero(t.codes == 0)) for _, t in tern)
    lines.append(f"ternary:    {len(tern)} tensors, {100.0 * zeros / max(1, n_tern):.1f}% zeros overall")
    lines.append("  tensor                             shape           zeros    -1      +1      scale_w")
    for n, t in tern:
        c = t.codes
        neg = np.count_nonzero(c < 0) / max(1, c.size)
        pos = np.count_nonzero(c > 0) / max(1, c.size)
        shape = "x".join(map(str, t.shape))
        lines.append(f"  {n:<34} {shape:<15} {100 * t.sparsity():5.1f}%  {100 * neg:5.1f}%  {100 * pos:5.1f}%  "
                     f"{float(t.scale):.6g}")
    if bins:
        n_signs = sum(t.signs.size for _, t in bins)
        plus = sum(int(np.count_nonzero(t.signs > 0)) for _, t in bins)
        lines.append(f"binary:     {len(bins)} tensors, {100.0 * plus / max(1, n_signs):.1f}% +1 overall")
        lines.append("  tensor                             shape           +1      -1      alpha mean  beta mean")
        for n, t in bins:
            shape = "x".join(map(str, t.shape))
            lines.append(f"  {n:<34} {shape:<15} {100 * t.balance():5.1f}%  {100 * (1 - t.balance()):5.1f}%  "
                         f"{float(t.alpha.mean(dtype=np.float64)):<10.4g}  {float(t.beta.mean(dtype=np.float64)):.4g}")
    for e in extra or []:
        lines.append(e)
    if out_path is not None:
        lines.append(f"output:     {out_path} ({target}, {_human(file_size)}, {file_size:,} bytes, "
                     f"{8.0 * file_size / max(1, n_all):.2f} bits/parameter)")
    if warnings:
        lines.append(f"warnings ({len(warnings)}):")
        lines += [f"  - {w}" for w in warnings]
    else:
        lines.append("warnings:   none")
    return "\n".join(lines)


def repair_tokenizer_json(text: str) -> str:
    """Apply bitmamba.tokenizer's repairs of known defects in circulating GPT-2 tokenizer.json copies (see
    python/bitmamba/assets/gpt2/README.md) so the embedded vocabulary is right for every GGUF reader; text
    that needs no repair is returned unchanged (byte for byte)."""
    import json

    from .tokenizer import _repair

    before = json.loads(text)
    if not isinstance(before, dict):
        raise ValueError("a tokenizer.json holds a JSON object")
    # _repair edits the mapping it is given, so it gets a second parse and `before` stays the original.
    after = _repair(json.loads(text))
    return text if after == before else json.dumps(after, ensure_ascii=False)


def resolve_tokenizer(ck: Checkpoint, tokenizer: Optional[str], source=None,
                      directory=None) -> (Optional[str], str):
    """(tokenizer.json text or None, where it came from). source: the checkpoint's path, for messages;
    directory: where to look for a tokenizer.json (default: beside the source)."""
    import json

    text, origin = _find_tokenizer(ck, tokenizer, source, directory)
    if text is None:
        return None, origin
    error = _tokenizer_error(ck, tokenizer)
    try:
        return repair_tokenizer_json(text), origin
    except json.JSONDecodeError as e:
        raise error(f"tokenizer from {origin} is not valid JSON ({e.msg.removesuffix(' at')} at line {e.lineno}, "
                    f"column {e.colno}): give a valid tokenizer.json with --tokenizer, or --no-tokenizer") from None
    except ValueError as e:
        raise error(f"tokenizer from {origin} is not a tokenizer.json ({e}): give one with --tokenizer, or "
                    "--no-tokenizer") from None


def _tokenizer_error(ck: Checkpoint, tokenizer: Optional[str]):
    """A bad tokenizer inside the source file means the file is damaged (FormatError); one given with
    --tokenizer or found elsewhere is bad input (ValueError)."""
    return FormatError if not tokenizer and ck.tokenizer_json else ValueError


def _find_tokenizer(ck: Checkpoint, tokenizer: Optional[str], source=None, directory=None) -> (Optional[str], str):
    # The order is the one bitmamba.load follows for the source (bitmamba.tokenizer.tokenizer_source), so the
    # GGUF embeds the tokenizer the source itself would be used with. Paths are read by the function
    # generate/chat/eval use too: a tokenizer.json, its directory, or a GGUF with an embedded tokenizer.
    from .tokenizer import read_tokenizer_json, tokenizer_source

    if directory is None and source is not None:
        directory = Path(source) if Path(source).is_dir() else Path(source).parent
    step, value = tokenizer_source(given=tokenizer or None, embedded=ck.tokenizer_json, directory=directory,
                                   vocab_size=ck.config.vocab_size)
    if step == "embedded":
        return value, "the source checkpoint" + (f" ({source})" if source is not None else "")
    if step == "bundled":
        return read_tokenizer_json(value)[0], f"packaged GPT-2 ({value})"
    if step is not None:
        return read_tokenizer_json(value)
    return None, ""


def convert(src, out, to: Optional[str] = None, ternary_type: str = "tq2_0", embed_type: str = "f32",
            tokenizer: Optional[str] = None, embed_tokenizer: bool = True, name: Optional[str] = None,
            dry_run: bool = False, tokenizer_dir=None, progress: bool = False) -> ConversionResult:
    """Convert `src` (PyTorch dir, Flax msgpack, BIT2, GGUF, or a Hugging Face repo id: its best source, see
    bitmamba.hub) to `out` (GGUF or BIT2; `to` defaults from the suffix: .bin -> bit2, anything else ->
    gguf). tokenizer_dir: the folder to take a tokenizer.json from when the source carries none (default:
    beside the source). progress: progress bars on stderr. Raises ConversionError (NaN/Inf, unsupported
    layout), ValueError (bad input, bitmamba.hub.HubError) or FileNotFoundError."""
    out = Path(out)
    to = (to or ("bit2" if out.suffix == ".bin" else "gguf")).lower()
    if to not in ("gguf", "bit2"):
        raise ValueError(f"--to must be gguf or bit2, got {to!r}")
    from .hub import parse

    shown = src
    ref = parse(src)
    if ref is not None:
        from .hub import fetch

        fetched = fetch(ref)
        src, shown = fetched.source, fetched.describe()
        if tokenizer_dir is None:
            tokenizer_dir = fetched.tokenizer_dir
        # A PyTorch directory would be named after its folder, which in the hub's cache is a commit hash.
        name = name or ref.repo
    kind = detect_source_kind(src)
    ck = load_checkpoint(src, kind)
    if name:
        ck.name = name
    warnings = check_checkpoint(ck)
    extra = []
    tok_text = None
    if to == "gguf" and embed_tokenizer:
        tok_text, origin = resolve_tokenizer(ck, tokenizer, src, tokenizer_dir)
        if tok_text is None:
            warnings.append(f"no tokenizer embedded (none in the source or beside it, no --tokenizer, and the "
                            f"packaged GPT-2 tokenizer does not fit a vocabulary of {ck.config.vocab_size}): "
                            "the file works with token ids only")
        else:
            from .formats.gguf_tokenizer import tokenizer_metadata

            try:
                n_tok = len(tokenizer_metadata(tok_text)["tokens"])
            except ValueError as e:
                raise _tokenizer_error(ck, tokenizer)(f"tokenizer from {origin}: {e}") from None
            if n_tok != ck.config.vocab_size:
                msg = (f"tokenizer from {origin} has {n_tok} tokens but the model's vocabulary is "
                       f"{ck.config.vocab_size}")
                if tokenizer:
                    raise ConversionError(msg)
                warnings.append(msg + ": not embedded")
                tok_text = None
            else:
                extra.append(f"tokenizer:  {n_tok} tokens from {origin}")
    if to == "bit2":
        cfg = ck.config
        if cfg.weights != "ternary":
            raise ConversionError(f"BIT2 holds ternary models only; this model's projections are {cfg.weights}: "
                                  "convert to GGUF")
        if cfg.layout != "bitmamba2" or cfg.expand != 2 or cfg.d_conv != 4:
            raise ConversionError(f"BIT2 holds only the BitMamba-2 layout (expand 2, conv 4); this model is "
                                  f"{cfg.layout}, expand {cfg.expand}, conv {cfg.d_conv}: convert to GGUF")
        for n, t in ck.tensors.items():
            if isinstance(t, Ternary) and t.codes.size % 4:
                raise ConversionError(f"BIT2 needs rows*cols of {n} to be a multiple of 4, got {t.shape}")
        if ck.config.d_size != ck.config.d_inner:
            raise ConversionError("BIT2 stores D per channel")
    size = 0
    if not dry_run:
        if to == "gguf":
            from .formats.gguf_io import write_gguf

            size = write_gguf(ck, out, ternary_type=ternary_type, embed_type=embed_type, tokenizer_json=tok_text,
                              progress=progress)
        else:
            from .formats.bit2 import write_bit2

            size = write_bit2(ck, out, progress=progress)
    if to == "gguf":
        proj = "binary in_proj / out_proj, " if ck.config.weights == "binary" else ""
        target = f"GGUF {proj}{ternary_type.upper()} ternary, {embed_type.upper()} embedding"
    else:
        target = "BIT2"
    rep = format_report(ck, warnings, source_kind=f"{kind} ({shown})", target=target,
                        out_path=None if dry_run else out, file_size=size, extra=extra, to=to,
                        ternary_type=ternary_type)
    return ConversionResult(kind, to, None if dry_run else out, size, ck, warnings, tok_text is not None, rep)
