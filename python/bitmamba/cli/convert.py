"""`bitmamba convert SRC OUT`: PyTorch checkpoint dir / Flax msgpack / BIT2 .bin / GGUF -> GGUF or BIT2."""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a checkpoint (PyTorch dir, Flax msgpack, BIT2 .bin, GGUF) to ternary GGUF or BIT2",
        description="Convert a BitMamba-2 checkpoint. SRC: a PyTorch checkpoint directory (config.json + "
        "model.safetensors), a released Flax .msgpack, a bitmamba.cpp BIT2 .bin, or a GGUF. OUT: a GGUF "
        "(default; ternary TQ2_0 or TQ1_0, tokenizer embedded) or a BIT2 .bin (for bitmamba.c). Prints a "
        "report; refuses to write a model with NaN/Inf values; writes atomically.",
    )
    p.add_argument("src", metavar="SRC", help="source checkpoint (directory or file), or a Hugging Face repo id "
                   "(owner/name[@revision], hf://owner/name[/path/in/repo]): its best source file is "
                   "downloaded and converted with these options")
    p.add_argument("out", metavar="OUT", help="output file")
    p.add_argument("--to", choices=["gguf", "bit2"], default=None,
                   help="output format (default: bit2 if OUT ends in .bin, else gguf)")
    p.add_argument("--ternary-type", choices=["tq2_0", "tq1_0"], default="tq2_0",
                   help="GGUF type for ternary weights (default tq2_0, 2.06 bits/weight; tq1_0 is 1.69)")
    p.add_argument("--embed-type", choices=["f32", "f16", "q8_0"], default="f32",
                   help="GGUF type of the token embedding (default f32: exact)")
    p.add_argument("--tokenizer", metavar="PATH", default=None,
                   help="tokenizer.json, a directory holding one, or a GGUF whose embedded tokenizer to embed "
                   "in the GGUF (default: the source's own, else a tokenizer.json beside it, else the packaged "
                   "GPT-2 tokenizer)")
    p.add_argument("--no-tokenizer", action="store_true", help="do not embed a tokenizer")
    p.add_argument("--name", default=None, help="general.name to record in the GGUF")
    p.add_argument("--dry-run", action="store_true", help="read and check the source, print the report, "
                   "write nothing")
    p.add_argument("--quiet", action="store_true", help="print only warnings and the output line")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..convert import ConversionError, convert

    # A repo id converts the repo's best source file as it is (the options below apply to it), not the
    # cached conversion that loading uses; convert() fetches it through bitmamba.hub.
    try:
        res = convert(args.src, args.out, to=args.to, ternary_type=args.ternary_type, embed_type=args.embed_type,
                      tokenizer=args.tokenizer, embed_tokenizer=not args.no_tokenizer, name=args.name,
                      dry_run=args.dry_run, progress=sys.stderr.isatty() and not args.quiet)
    except ConversionError as e:
        print(f"bitmamba convert: refused: {e}", file=sys.stderr)
        return 1
    if args.quiet:
        for w in res.warnings:
            print(f"warning: {w}", file=sys.stderr)
        if res.out_path is not None:
            print(f"wrote {res.out_path} ({res.file_size:,} bytes)")
    else:
        print(res.report)
    return 0
