"""The README.md model card that `BitMambaLM.save_pretrained` writes beside config.json and model.safetensors,
so a trained checkpoint directory is ready to upload to the Hugging Face Hub.

The card opens with the YAML metadata the Hub reads: library_name, pipeline_tag, tags, and when given
license, base_model, datasets, and `model-index` results from a `bitmamba eval --output` JSON file. Plain
Python (no torch, no huggingface_hub): the YAML is written here, with every string quoted when plain YAML
could read it as something else.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, List, Optional, Union

# A card that still holds this line was written by us and is rewritten on the next save; delete the line to
# keep your own edits (a README.md without it is never replaced).
MARKER = "<!-- written by bitmamba save_pretrained: delete this line to keep your edits when it saves again -->"
BASE_TAGS = ["bitmamba", "mamba2", "ternary", "text-generation"]

# `bitmamba eval` tasks as model-index datasets: (display name, hub dataset, config, split). The hub ids are
# the ones `bitmamba eval --source hub` reads (bitmamba.eval.data.HUB_SOURCES).
_TASK_DATASETS = {
    "arc_easy": ("ARC-Easy", "allenai/ai2_arc", "ARC-Easy", "test"),
    "arc_challenge": ("ARC-Challenge", "allenai/ai2_arc", "ARC-Challenge", "test"),
    "piqa": ("PIQA", "baber/piqa", None, "validation"),
    "hellaswag": ("HellaSwag", "Rowan/hellaswag", None, "validation"),
    "boolq": ("BoolQ", "super_glue", "boolq", "validation"),
    "wikitext2": ("WikiText-2", "EleutherAI/wikitext_document_level", "wikitext-2-raw-v1", "test"),
}
_METRICS = ("acc", "acc_norm", "word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity")

_PLAIN = re.compile(r"^[A-Za-z_][\w./+-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid double-quoted YAML scalar


def _yaml(value, indent: int = 0) -> List[str]:
    """Block-style YAML lines for dicts, lists and scalars (None values are left out)."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for k, v in value.items():
            if v is None:
                continue
            if isinstance(v, (dict, list)):
                lines.append(f"{pad}{k}:")
                lines += _yaml(v, indent + (2 if isinstance(v, dict) else 0))
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                sub = _yaml(item, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines += sub[1:]
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return lines


def read_eval_results(results: Union[str, Path, dict]) -> dict:
    """The results of `bitmamba eval --output FILE`: the file's path or the dict itself; ValueError naming
    the file when it is not such a file."""
    if isinstance(results, dict):
        data, what = results, "the eval results"
    else:
        what = str(results)
        try:
            data = json.loads(Path(results).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"eval results not found: {results}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{results}: not a JSON file written by bitmamba eval --output ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise ValueError(f"{what}: not the output of bitmamba eval --output (no 'results' mapping)")
    return data


def _model_index(name: str, ev: dict) -> list:
    entries = []
    for task, res in ev["results"].items():
        if task not in _TASK_DATASETS or not isinstance(res, dict):
            continue
        title, dataset, config, split = _TASK_DATASETS[task]
        metrics = [{"type": m, "value": round(float(res[m]), 6), "name": f"{m} (zero-shot)"}
                   for m in _METRICS if isinstance(res.get(m), (int, float))]
        if metrics:
            entries.append({"task": {"type": "text-generation", "name": "Text Generation"},
                            "dataset": {"name": title, "type": dataset, "config": config, "split": split},
                            "metrics": metrics})
    return [{"name": name, "results": entries}] if entries else []


def _results_table(ev: dict) -> List[str]:
    rows = []
    for task, res in ev["results"].items():
        n = (ev.get("tasks") or {}).get(task, {}).get("n_docs")
        for m in _METRICS:
            if isinstance(res, dict) and isinstance(res.get(m), (int, float)):
                err = res.get(m + "_stderr")
                err = f"± {err:.4f}" if isinstance(err, (int, float)) else ""
                rows.append(f"| {task} | {n if n is not None else ''} | {m} | {res[m]:.4f} | {err} |")
    if not rows:
        return []
    cfg = ev.get("config") or {}
    limit = cfg.get("limit")
    note = f" on the first {limit} documents of each task" if limit else ""
    return (["", "## Evaluation", "",
             f"Zero-shot, lm-evaluation-harness prompts and metrics (`bitmamba eval`){note}:", "",
             "| task | documents | metric | value | stderr |", "|---|---|---|---|---|"] + rows)


def model_card(config: dict, name: str = "", *, license: Optional[str] = None, base_model: Optional[str] = None,
               datasets: Optional[Iterable[str]] = None, tags: Optional[Iterable[str]] = None,
               eval_results: Union[str, Path, dict, None] = None, language: Optional[str] = None,
               training: Optional[dict] = None) -> str:
    """README.md text for a checkpoint of this config (a BitMambaConfig.to_dict()). license: a Hub license
    id (mit, apache-2.0, ...); base_model: the repo id it was trained from; datasets: hub dataset ids it was
    trained on; eval_results: a `bitmamba eval --output` file (or its dict), listed as model-index results
    and a table; training: facts for the card's text (steps, train_tokens, final_train_loss)."""
    c = config
    title = name or "BitMamba-2 checkpoint"
    ev = read_eval_results(eval_results) if eval_results is not None else None
    all_tags = list(dict.fromkeys(BASE_TAGS + [str(t) for t in (tags or [])]))
    meta = {"library_name": "bitmamba", "pipeline_tag": "text-generation", "license": license,
            "language": [language] if language else None, "base_model": base_model,
            "datasets": sorted(dict.fromkeys(datasets)) if datasets else None, "tags": all_tags,
            "model-index": (_model_index(title, ev) or None) if ev is not None else None}
    dims = (f"d_model {c.get('d_model')}, {c.get('n_layers')} layers, {c.get('n_heads')} heads, "
            f"d_state {c.get('d_state')}, vocabulary {c.get('vocab_size')}")
    body = ["---", *_yaml(meta), "---", MARKER, f"# {title}", "",
            f"A {c.get('layout', 'bitmamba2')} language model (Mamba-2 with ternary {{-1, 0, +1}} projections "
            f"and int8 activations; {dims}), saved by bitmamba as config.json + model.safetensors "
            "(float32 latent weights)."]
    if base_model:
        body += ["", f"Trained from [{base_model}](https://huggingface.co/{base_model})."]
    if training:
        facts = [f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else f"{k.replace('_', ' ')} {v:.4g}"
                 for k, v in training.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if facts:
            body += ["", "Training: " + ", ".join(facts) + "."]
    if ev is not None:
        body += _results_table(ev)
    body += ["", "## Use", "", "On a CPU, with `pip install 'bitmamba[hub]'` (OWNER/NAME: this repo):", "",
             "```python", "import bitmamba",
             'model = bitmamba.load("OWNER/NAME")   # converted once to a ternary GGUF, then cached',
             'print(model.generate("Once upon a time", max_new_tokens=64))', "```", "",
             "or `bitmamba generate OWNER/NAME \"Once upon a time\"`, `bitmamba convert OWNER/NAME model.gguf`."]
    if not license:
        body += ["", "License: not stated; add a `license:` line above before publishing."]
    return "\n".join(body) + "\n"


def keeps_user_card(path: Path) -> bool:
    """Whether `path` is a README.md to leave alone: it exists and lacks the MARKER line (the user wrote it,
    or edited ours and deleted the line)."""
    try:
        return MARKER not in path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return False
