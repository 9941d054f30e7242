"""The tokenizer.ggml.* metadata of a GPT-2-style byte-level BPE tokenizer, from its tokenizer.json text."""
from __future__ import annotations

import json
from typing import Dict, List

TOKEN_NORMAL = 1
TOKEN_CONTROL = 3


def tokenizer_metadata(tokenizer_json: str) -> Dict:
    """tokens (by id), token types, merges, eos/bos ids from a Hugging Face tokenizer.json string."""
    tj = json.loads(tokenizer_json)
    if not isinstance(tj, dict):
        raise ValueError("a tokenizer.json holds a JSON object")
    model = tj.get("model") or {}
    if not isinstance(model, dict):
        raise ValueError("its \"model\" is not a JSON object")
    # Older tokenizer.json files (GPT-2's among them) omit model.type; a vocab plus merges is BPE.
    mtype = model.get("type", "BPE" if "merges" in model else None)
    if mtype != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ValueError(f"only byte-level BPE tokenizers can be embedded in GGUF, got model type {mtype!r}")
    vocab: Dict[str, int] = dict(model.get("vocab") or {})
    special = set()
    for t in tj.get("added_tokens") or []:
        vocab[t["content"]] = t["id"]
        if t.get("special"):
            special.add(t["id"])
    n = max(vocab.values()) + 1 if vocab else 0
    tokens: List[str] = [""] * n
    seen = [False] * n
    for s, i in vocab.items():
        tokens[i] = s
        seen[i] = True
    if not all(seen):
        raise ValueError(f"tokenizer ids are not contiguous: {seen.count(False)} of {n} ids have no token")
    merges = []
    for m in model.get("merges") or []:
        merges.append(m if isinstance(m, str) else " ".join(m))
    types = [TOKEN_CONTROL if i in special else TOKEN_NORMAL for i in range(n)]
    eos = vocab.get("<|endoftext|>")
    return {"tokens": tokens, "token_types": types, "merges": merges, "eos": eos, "bos": eos}
