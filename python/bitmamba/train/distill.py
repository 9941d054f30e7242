"""Autoregressive distillation (Bi-Mamba / FBI-LLM style): a frozen teacher's next-token distribution is
the student's target, loss = alpha * T^2 * KL(teacher || student) + (1 - alpha) * CE (docs/training.md,
"Binary models and distillation").

The teacher is either a directory written by BitMambaLM.save_pretrained (any `weights`, typically float)
or a local Hugging Face causal-LM directory, loaded with transformers (imported only then)."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path


def distill_kl(student_logits, teacher_logits, temperature: float):
    """KL(teacher || student) per token over the vocabulary at temperature T, averaged over tokens, in
    float32 whatever the logits' dtype (bf16 log-softmax over 50k entries loses the small probabilities
    the KL is made of). Logits [..., V]; the teacher's carry no gradient."""
    import torch.nn.functional as F

    V = student_logits.shape[-1]
    s = F.log_softmax(student_logits.float().reshape(-1, V) / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.detach().float().reshape(-1, V) / temperature, dim=-1)
    # batchmean: the sum over the vocabulary, divided by the number of rows (tokens)
    return F.kl_div(s, t, log_target=True, reduction="batchmean")


def distill_losses(student_logits, teacher_logits, targets, temperature: float, ce_grad: bool = True):
    """(kl, ce): distill_kl and the cross-entropy of the student against `targets` [...] (both float32).
    At T = 1 the CE reuses the student's log-softmax of the KL (the same numbers F.cross_entropy computes:
    it is nll_loss of log_softmax), saving one log-softmax over the vocabulary per micro-step, which on a
    CPU with a 50k vocabulary is a large part of a small model's step. ce_grad False: CE is only logged,
    computed without a backward graph."""
    import torch
    import torch.nn.functional as F

    V = student_logits.shape[-1]
    logits = student_logits.float().reshape(-1, V)
    tgt = targets.reshape(-1)
    s = F.log_softmax(logits / temperature if temperature != 1 else logits, dim=-1)
    t = F.log_softmax(teacher_logits.detach().float().reshape(-1, V) / temperature, dim=-1)
    kl = F.kl_div(s, t, log_target=True, reduction="batchmean")
    with (contextlib.nullcontext() if ce_grad else torch.no_grad()):
        ce = F.nll_loss(s, tgt) if temperature == 1 else F.cross_entropy(logits, tgt)
    return kl, ce


class MissingTeacherDependency(ImportError, ValueError):
    """transformers is needed for a Hugging Face teacher and is not installed. An ImportError for callers
    of the library, and a ValueError so `bitmamba train` reports it on one line like a config error."""


class Teacher:
    """A frozen model whose forward gives logits [B, T, V] for input ids [B, T]."""

    def __init__(self, model, kind: str, path: str, vocab_size: int, max_positions=None):
        self.model, self.kind, self.path = model, kind, path
        self.vocab_size, self.max_positions = vocab_size, max_positions

    def to(self, device) -> "Teacher":
        self.model.to(device)
        return self

    def logits(self, input_ids):
        import torch

        with torch.no_grad():
            if self.kind == "bitmamba":
                return self.model(input_ids)
            return self.model(input_ids=input_ids, use_cache=False).logits


def load_teacher(path, student_vocab, seq_len: int) -> Teacher:
    """Load the teacher at `path` in eval mode with gradients off. Errors (one line each): no such
    directory, no config.json, transformers needed but not installed, a vocabulary (logit width) other
    than the student's (student_vocab None: not checked here), a context shorter than seq_len."""
    import torch

    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"teacher {p}: no such directory (expected a save_pretrained directory or a "
                                "local Hugging Face causal-LM directory)")
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"teacher {p}: no config.json (expected a save_pretrained directory or a "
                                "local Hugging Face causal-LM directory)")
    try:
        model_type = json.loads((p / "config.json").read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"teacher {p}: config.json is not a JSON object ({e})") from None
    # Loading must not move the student's random stream (a run with a teacher initialises the student as
    # one without; Hugging Face models may draw initial weights before overwriting them).
    with torch.random.fork_rng(devices=[]):
        if model_type == "bitmamba2":
            from ..nn import BitMambaLM

            model = BitMambaLM.from_pretrained(p)
            teacher = Teacher(model, "bitmamba", str(p), model.config.vocab_size)
        else:
            if not model_type:
                raise ValueError(f"teacher {p}: config.json has no model_type (neither a bitmamba "
                                 "save_pretrained directory nor a Hugging Face model)")
            try:
                import transformers
            except ImportError:
                raise MissingTeacherDependency(f"teacher {p} is a Hugging Face model (model_type {model_type!r}): "
                                  "pip install transformers to use it") from None
            # float32 master weights like the student's (a checkpoint stored in bf16 included); bf16
            # autocast, where the run uses it, covers the teacher's forward as the student's.
            model = transformers.AutoModelForCausalLM.from_pretrained(str(p), local_files_only=True).float()
            out = model.get_output_embeddings()
            vocab = out.weight.shape[0] if out is not None else model.config.vocab_size
            max_pos = next((getattr(model.config, k) for k in ("n_positions", "max_position_embeddings")
                            if isinstance(getattr(model.config, k, None), int)), None)
            teacher = Teacher(model, "hf", str(p), int(vocab), max_pos)
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    if student_vocab is not None and teacher.vocab_size != student_vocab:
        raise ValueError(f"teacher {p} has a vocabulary of {teacher.vocab_size} logits, the student "
                         f"{student_vocab}: distillation needs the same vocabulary (tokenizer) in both")
    if teacher.max_positions is not None and teacher.max_positions < seq_len:
        raise ValueError(f"teacher {p} handles at most {teacher.max_positions} positions, seq_len is {seq_len}")
    return teacher
