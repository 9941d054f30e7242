"""Small synthetic corpora, a tiny BPE tokenizer and prepared shards for the data/train tests."""
from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("the cat dog sat on a mat and ran to big small red blue tree house river boat sun moon star "
         "def return if else for in import class self print value list dict").split()


def make_docs(n: int, seed: int, min_words: int = 5, max_words: int = 60) -> list:
    r = random.Random(seed)
    return [" ".join(r.choice(WORDS) for _ in range(r.randint(min_words, max_words))) + "." for _ in range(n)]


def make_tokenizer(path: Path, vocab_size: int = 120) -> Path:
    """A byte-level BPE trained on the test words; '<|endoftext|>' is id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(make_docs(200, 99), trainer=trainer)
    tok.save(str(path))
    return path


def write_corpus(root: Path) -> dict:
    """Three sources in different formats; returns the documents each should yield, in order."""
    root.mkdir(parents=True, exist_ok=True)
    a = make_docs(40, 1)
    (root / "prose").mkdir(exist_ok=True)
    for i in range(0, 40, 10):  # 4 files of 10 documents as jsonl
        with open(root / "prose" / f"part{i // 10}.jsonl", "w") as f:
            for d in a[i:i + 10]:
                f.write(json.dumps({"text": d, "id": i}) + "\n")
    b = make_docs(30, 2)
    (root / "stories.txt").write_text("<|endoftext|>".join(b))
    c = make_docs(12, 3, 20, 80)
    (root / "code").mkdir(exist_ok=True)
    (root / "code" / "skip").mkdir(exist_ok=True)
    for i, d in enumerate(c):
        (root / "code" / f"m{i:02d}.py").write_text(d + "\n")
    (root / "code" / "skip" / "x.py").write_text("excluded")
    return {"prose": a, "stories": b, "code": c}


def data_config(root: Path, tokenizer: Path, out: Path, **over) -> dict:
    cfg = {
        "name": "test",
        "tokenizer": str(tokenizer),
        "output": str(out),
        "shard_tokens": 500,
        "batch_docs": 7,
        "sources": [
            {"name": "prose", "weight": 0.6, "val_fraction": 0.1,
             "inputs": [{"files": str(root / "prose" / "*.jsonl"), "field": "text"}]},
            {"name": "stories", "weight": 0.2, "val_fraction": 0.1,
             "inputs": [{"files": str(root / "stories.txt"), "split": "separator"}]},
            {"name": "code", "weight": 0.2, "val_fraction": 0.2,
             "inputs": [{"files": str(root / "code" / "**" / "*.py"), "exclude": ["skip/**"]}]},
        ],
    }
    cfg.update(over)
    return cfg


def prepare(tmp: Path, **over):
    from bitmamba.data import DataConfig, prepare_data

    tok = make_tokenizer(tmp / "tok.json")
    docs = write_corpus(tmp / "corpus")
    cfg = DataConfig.from_dict(data_config(tmp / "corpus", tok, tmp / "prepared", **over))
    m = prepare_data(cfg, progress=False)
    return tmp / "prepared", m, docs, tok
