"""Distillation in bitmamba.train: the KL term, a float teacher trained and a binary student distilled from
it through the real train() entry point, exact resume with a teacher, teacher errors (path, vocabulary,
transformers), and a Hugging Face teacher (a tiny randomly initialised GPT-2 saved locally)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bitmamba.train import TrainConfig, train  # noqa: E402
from bitmamba.train.checkpoint import load_checkpoint  # noqa: E402
from bitmamba.train.distill import distill_kl, load_teacher  # noqa: E402
from bitmamba.train.logs import read_log  # noqa: E402

import datagen  # noqa: E402

torch.set_num_threads(1)

SHAPE = {"d_model": 16, "n_layers": 1, "n_heads": 2, "eos_token_id": 0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out, m, _, _ = datagen.prepare(tmp_path_factory.mktemp("distdata"))
    return out, m["tokenizer"]["vocab_size"]


def _cfg(data, out_dir, weights="binary", **over) -> TrainConfig:
    path, vocab = data
    d = dict(model={"vocab_size": vocab, **SHAPE, "weights": weights}, data=str(path), out_dir=str(out_dir),
             seq_len=16, batch_size=4, micro_batch=2, steps=6, lr=1e-2, min_lr=1e-3, warmup_steps=2,
             log_every=1, eval_every=0, eval_samples=2, checkpoint_every=2, keep_checkpoints=10, plot=False,
             threads=1)
    d.update(over)
    return TrainConfig.from_dict(d)


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory):
    """A tiny float (no quantization) teacher trained 8 steps through train(), exported."""
    out = tmp_path_factory.mktemp("teacher")
    r = train(_cfg(data, out, weights="float", steps=8, export="final", checkpoint_every=0), quiet=True)
    assert json.loads((Path(r["export"]) / "config.json").read_text())["weights"] == "float"
    return r["export"]


def test_kl_term_equals_a_manual_computation():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 11, generator=g) * 3
    t = torch.randn(2, 3, 11, generator=g) * 3
    for T in (1.0, 2.0, 0.5):
        ps = np.exp(s.double().numpy() / T)
        ps /= ps.sum(-1, keepdims=True)
        pt = np.exp(t.double().numpy() / T)
        pt /= pt.sum(-1, keepdims=True)
        want = (pt * (np.log(pt) - np.log(ps))).sum(-1).mean()  # KL(teacher || student) per token, averaged
        got = distill_kl(s, t, T)
        assert got.dtype == torch.float32
        assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(distill_kl(t, t, 1.0)) == pytest.approx(0.0, abs=1e-6)
    # bf16 logits (autocast) are taken to float32 before the softmax: the same value as float32 inputs of
    # the same (bf16-representable) numbers
    sb, tb = s.bfloat16(), t.bfloat16()
    assert distill_kl(sb, tb, 2.0).dtype == torch.float32
    assert float(distill_kl(sb, tb, 2.0)) == float(distill_kl(sb.float(), tb.float(), 2.0))
    # the gradient flows to the student only
    s2, t2 = s.clone().requires_grad_(), t.clone().requires_grad_()
    distill_kl(s2, t2, 1.0).backward()
    assert s2.grad.abs().sum() > 0 and t2.grad is None


def test_kl_and_ce_share_the_log_softmax_at_t1():
    import torch.nn.functional as F

    from bitmamba.train.distill import distill_losses

    g = torch.Generator().manual_seed(1)
    s = torch.randn(3, 5, 17, generator=g, requires_grad=True)
    t = torch.randn(3, 5, 17, generator=g)
    y = torch.randint(0, 17, (3, 5), generator=g)
    for T in (1.0, 2.0):
        kl, ce = distill_losses(s, t, y, T)
        assert float(kl.detach()) == float(distill_kl(s, t, T).detach())
        assert float(ce.detach()) == float(F.cross_entropy(s.reshape(-1, 17), y.reshape(-1)).detach())  # CE at T 1
        assert ce.requires_grad
    assert not distill_losses(s, t, y, 1.0, ce_grad=False)[1].requires_grad


def test_config_keys_are_checked(data, tmp_path):
    c = _cfg(data, tmp_path)
    assert (c.teacher, c.distill_temperature, c.distill_alpha) == (None, 1.0, 1.0)
    with pytest.raises(ValueError, match="distill_alpha must be a number in"):
        _cfg(data, tmp_path, distill_alpha=1.5)
    with pytest.raises(ValueError, match="distill_temperature must be a number > 0"):
        _cfg(data, tmp_path, distill_temperature=0)
    with pytest.raises(ValueError, match="teacher must be a directory path"):
        _cfg(data, tmp_path, teacher=3)


def test_binary_student_distilled_from_a_float_teacher(data, teacher, tmp_path):
    out = tmp_path / "student"
    r = train(_cfg(data, out, teacher=teacher, steps=8, export="final", eval_every=8), quiet=True)
    log = [x for x in read_log(out / "log.jsonl") if x["kind"] == "train"]
    assert len(log) == 8
    for x in log:
        assert math.isfinite(x["kl"]) and math.isfinite(x["ce"]) and x["kl"] >= 0
        assert x["loss"] == pytest.approx(x["kl"], rel=1e-6)  # distill_alpha 1, T 1: loss = KL
    assert log[-1]["kl"] < log[0]["kl"], [x["kl"] for x in log]  # the student moves toward the teacher
    assert r["train_kl"] == log[-1]["kl"] and r["train_ce"] == log[-1]["ce"] and r["teacher"] == teacher
    # The checkpoint holds the student only; the export is a binary model with alpha/beta.
    ck = load_checkpoint(out / "checkpoints" / "step-00000008.pt")
    from bitmamba.nn import BitMambaLM

    m = BitMambaLM.from_pretrained(r["export"])
    assert m.config.weights == "binary" and set(ck["model"]) == set(m.state_dict())
    assert "layers.0.in_proj.alpha" in ck["model"] and "layers.0.out_proj.beta" in ck["model"]
    assert ck["config"]["teacher"] == teacher


def test_mixed_loss_and_temperature(data, teacher, tmp_path):
    """distill_alpha 0.5, T 2: every logged loss is 0.5 * 4 * kl + 0.5 * ce (one step per log line); a ternary
    student distils as well."""
    out = tmp_path / "mixed"
    train(_cfg(data, out, weights="ternary", teacher=teacher, distill_alpha=0.5, distill_temperature=2.0, steps=3,
               checkpoint_every=0), quiet=True)
    log = [x for x in read_log(out / "log.jsonl") if x["kind"] == "train"]
    for x in log:
        assert x["loss"] == pytest.approx(0.5 * 4 * x["kl"] + 0.5 * x["ce"], rel=1e-5)
        assert x["ce"] > 0.5 * 4 * x["kl"]  # both terms present (CE of an untrained student is large)


def test_resume_with_a_teacher_is_exact(data, teacher, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train(_cfg(data, a, teacher=teacher, steps=4, log_every=2), quiet=True)
    train(_cfg(data, b, teacher=teacher, steps=4, log_every=2), stop_at=1, quiet=True)  # mid log interval
    train(_cfg(data, b, teacher=teacher, steps=4, log_every=2), resume="latest", quiet=True)
    wa = load_checkpoint(a / "checkpoints" / "step-00000004.pt")["model"]
    wb = load_checkpoint(b / "checkpoints" / "step-00000004.pt")["model"]
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    strip = lambda p: [(x["step"], x["loss"], x["kl"], x["ce"]) for x in read_log(p) if x["kind"] == "train"]  # noqa
    assert strip(a / "log.jsonl") == strip(b / "log.jsonl")


def test_teacher_errors(data, teacher, tmp_path, capsys):
    import yaml

    from bitmamba.cli import main as cli_main
    from bitmamba.nn import BitMambaConfig, BitMambaLM

    _, vocab = data
    with pytest.raises(FileNotFoundError, match="no such directory"):
        train(_cfg(data, tmp_path / "r1", teacher=str(tmp_path / "nope")), quiet=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        train(_cfg(data, tmp_path / "r2", teacher=str(tmp_path / "empty")), quiet=True)
    big = tmp_path / "bigvocab"
    BitMambaLM(BitMambaConfig(vocab_size=vocab + 8, weights="float", **SHAPE)).save_pretrained(big)
    with pytest.raises(ValueError, match=f"vocabulary of {vocab + 8} logits, the student {vocab}"):
        train(_cfg(data, tmp_path / "r3", teacher=str(big)), quiet=True)
    (tmp_path / "notype").mkdir()
    (tmp_path / "notype" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no model_type"):
        load_teacher(tmp_path / "notype", vocab, 16)
    # On the command line: one line, no traceback, and no run directory content from the failed start.
    cfg = _cfg(data, tmp_path / "r4")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    capsys.readouterr()
    assert cli_main(["train", str(tmp_path / "c.yaml"), "--teacher", str(big), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vocabulary" in err and "Traceback" not in err
    assert not (tmp_path / "r4" / "checkpoints").exists()
    # --distill-* overrides reach the config
    assert cli_main(["train", str(tmp_path / "c.yaml"), "--teacher", teacher, "--distill-alpha", "2",
                     "--quiet"]) == 1
    assert "distill_alpha" in capsys.readouterr().err


def test_cli_distills_with_overrides(data, teacher, tmp_path):
    import yaml

    from bitmamba.cli import main as cli_main

    cfg = _cfg(data, tmp_path / "cli", steps=2, checkpoint_every=0)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    assert cli_main(["train", str(tmp_path / "c.yaml"), "--teacher", teacher, "--distill-alpha", "0.25",
                     "--distill-temperature", "3", "--quiet"]) == 0
    ck = load_checkpoint(tmp_path / "cli" / "checkpoints" / "step-00000002.pt")
    assert (ck["config"]["teacher"], ck["config"]["distill_alpha"], ck["config"]["distill_temperature"]) == \
        (teacher, 0.25, 3.0)
    x = [r for r in read_log(tmp_path / "cli" / "log.jsonl") if r["kind"] == "train"][-1]
    assert x["loss"] == pytest.approx(0.25 * 9 * x["kl"] + 0.75 * x["ce"], rel=1e-5)


def _tiny_gpt2(path, vocab, n_positions=64):
    transformers = pytest.importorskip("transformers", reason="transformers is not installed: pip install "
                                       "transformers (a dev dependency) to test Hugging Face teachers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=n_positions, n_embd=16, n_layer=1, n_head=2,
                                  bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg)
    model.save_pretrained(str(path))
    return model


def test_hugging_face_teacher(data, tmp_path):
    _, vocab = data
    hf = _tiny_gpt2(tmp_path / "gpt2", vocab).eval()
    t = load_teacher(tmp_path / "gpt2", vocab, 16)
    assert t.kind == "hf" and not t.model.training
    assert not any(p.requires_grad for p in t.model.parameters())
    ids = torch.randint(0, vocab, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(t.logits(ids), hf(input_ids=ids).logits, rtol=0, atol=0)
    out = tmp_path / "student"
    r = train(_cfg(data, out, teacher=str(tmp_path / "gpt2"), steps=2, checkpoint_every=0), quiet=True)
    assert math.isfinite(r["train_kl"]) and r["train_kl"] > 0 and math.isfinite(r["train_ce"])
    # a context shorter than seq_len is refused up front, naming both
    _tiny_gpt2(tmp_path / "short", vocab, n_positions=8)
    with pytest.raises(ValueError, match="at most 8 positions, seq_len is 16"):
        load_teacher(tmp_path / "short", vocab, 16)
    # the vocabulary check covers Hugging Face teachers too
    with pytest.raises(ValueError, match=f"vocabulary of {vocab} logits, the student {vocab + 1}"):
        load_teacher(tmp_path / "gpt2", vocab + 1, 16)


def test_hugging_face_teacher_without_transformers(data, tmp_path, monkeypatch):
    """A Hugging Face directory when transformers cannot be imported: one clear error, a ValueError so the
    CLI prints it on one line (and an ImportError for library callers)."""
    import builtins

    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 10}))
    real_import = builtins.__import__

    def no_transformers(name, *a, **k):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("No module named 'transformers'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(ValueError, match="pip install transformers") as e:
        load_teacher(tmp_path / "hf", 10, 16)
    assert isinstance(e.value, ImportError)
