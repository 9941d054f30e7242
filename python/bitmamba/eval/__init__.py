"""Zero-shot evaluation of bitmamba models: WikiText-2 perplexity, ARC-Easy/Challenge, PIQA, HellaSwag,
BoolQ, with the prompts and metrics of EleutherAI lm-evaluation-harness (see docs/evaluation.md).

    import bitmamba
    from bitmamba.eval import evaluate, format_table
    res = evaluate(bitmamba.load("model.gguf"), "arc_easy,piqa", limit=100)
    print(format_table(res))
"""
from .runner import DEFAULT_MAX_LENGTH, Scorer, evaluate, format_table, model_max_length
from .tasks import TASKS, resolve_tasks

__all__ = ["evaluate", "format_table", "Scorer", "TASKS", "resolve_tasks", "DEFAULT_MAX_LENGTH",
           "model_max_length"]
