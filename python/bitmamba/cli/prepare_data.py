"""`bitmamba prepare-data CONFIG`: tokenize a data mix into uint16 shards + manifest.json."""
from __future__ import annotations

def register(sub) -> None:
    p = sub.add_parser(
        "prepare-data",
        help="tokenize a data mix (YAML) into token shards for training",
        description="Read every source of a data config (local txt/jsonl/json/parquet files or Hugging Face "
        "datasets streamed with `datasets`), tokenize with the configured tokenizer, append EOS after "
        "each document, and write uint16 token shards, a held-out validation shard per source and "
        "manifest.json. See configs/data/*.yaml and docs/training.md.",
    )
    p.add_argument("config", help="data config YAML (e.g. configs/data/offline-demo.yaml)")
    p.add_argument("--output", "-o", help="output directory (default: the config's `output`)")
    p.add_argument("--num-proc", type=int, help="tokenizer processes (default: the config's num_proc)")
    p.add_argument("--total-tokens", type=int, help="train-token budget split by weight (overrides the config)")
    p.add_argument("--train-tokenizer", type=int, metavar="VOCAB_SIZE",
                   help="train a byte-level BPE of this vocabulary size on the mix (saved as OUTPUT/tokenizer.json) "
                   "and tokenize with it instead of the config's tokenizer")
    p.add_argument("--overwrite", action="store_true", help="replace an existing prepared directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--verify", action="store_true", help="re-read every shard afterwards and check its CRC")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..data import DataConfig, prepare_data, verify_shard
    from ..yamlfile import read_mapping

    d = read_mapping(args.config, "data config")
    if args.total_tokens is not None:
        d["total_tokens"] = args.total_tokens
        for s in d.get("sources", []):
            if isinstance(s, dict):
                s.pop("max_tokens", None)
    if args.train_tokenizer is not None:
        d["train_tokenizer"] = {**(d.get("train_tokenizer") or {}), "vocab_size": args.train_tokenizer}
    cfg = DataConfig.from_dict(d)
    m = prepare_data(cfg, output=args.output, overwrite=args.overwrite, progress=not args.no_progress,
                     num_proc=args.num_proc)
    out = Path(args.output or cfg.output)
    if args.verify:
        for name, s in m["sources"].items():
            for split in ("train", "val"):
                for sh in s[split]["shards"]:
                    verify_shard(out / name / sh["path"])
    print(f"prepared {out} in {m['seconds']} s ({m['dtype']} tokens, vocab {m['tokenizer']['vocab_size']})")
    print(f"{'source':>16s} {'weight':>7s} {'docs':>9s} {'train tokens':>14s} {'val tokens':>11s}")
    for name, s in m["sources"].items():
        print(f"{name:>16s} {s['weight']:7.3f} {s['documents_read']:9d} {s['train']['tokens']:14,d} "
              f"{s['val']['tokens']:11,d}")
    t = m["totals"]
    print(f"{'total':>16s} {'':7s} {t['documents']:9d} {t['train_tokens']:14,d} {t['val_tokens']:11,d}")
    if args.verify:
        print("all shards verified (header, size, CRC-32, token range)")
    return 0
