"""bitmamba.train: schedules, exact resume, gradient accumulation, DDP (2 CPU ranks via torchrun) vs
one process, checkpoints, logs, export. Tiny real BitMambaLM on a tiny BPE vocabulary."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from bitmamba.train import Schedule, TrainConfig, train  # noqa: E402
from bitmamba.train.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402
from bitmamba.train.logs import read_log  # noqa: E402

import datagen  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out, m, _, _ = datagen.prepare(tmp_path_factory.mktemp("trdata"))
    return out, m["tokenizer"]["vocab_size"]


def _cfg(data, out_dir, **over) -> TrainConfig:
    path, vocab = data
    d = dict(model={"vocab_size": vocab, "d_model": 16, "n_layers": 1, "n_heads": 2, "eos_token_id": 0},
             data=str(path), out_dir=str(out_dir), seq_len=16, batch_size=4, micro_batch=2, steps=6,
             lr=1e-2, min_lr=1e-3, warmup_steps=2, log_every=1, eval_every=3, eval_samples=2,
             checkpoint_every=2, keep_checkpoints=10, plot=False, threads=1)
    d.update(over)
    return TrainConfig.from_dict(d)


def _weights(out_dir, step):
    return load_checkpoint(Path(out_dir) / "checkpoints" / f"step-{step:08d}.pt")["model"]


def test_schedules():
    c = Schedule("cosine", lr=1.0, min_lr=0.1, warmup_steps=10, total_steps=110, weight_decay=0.1)
    assert c.lr_at(0) == pytest.approx(0.1) and c.lr_at(9) == pytest.approx(1.0)
    assert c.lr_at(10) == pytest.approx(1.0) and c.lr_at(109) == pytest.approx(0.1)
    assert c.lr_at(59) == pytest.approx(0.55, abs=0.01)
    assert all(c.lr_at(s) >= c.lr_at(s + 1) for s in range(10, 109))
    t = Schedule("two_stage", lr=1.0, min_lr=0.0, warmup_steps=10, total_steps=100, weight_decay=0.1)
    assert t.split == 50 and t.stage2_lr == pytest.approx(0.4)
    assert t.lr_at(49) > 0.5 and t.lr_at(50) == pytest.approx(0.4)  # the abrupt drop
    assert t.lr_at(99) == pytest.approx(0.0, abs=1e-12)
    assert t.weight_decay_at(49) == 0.1 and t.weight_decay_at(50) == 0.0
    k = Schedule("constant", lr=2.0, min_lr=0, warmup_steps=4, total_steps=10, weight_decay=0)
    assert [k.lr_at(s) for s in (0, 3, 9)] == [0.5, 2.0, 2.0]


def test_config_errors(data, tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        _cfg(data, tmp_path, learning_rate=1)
    with pytest.raises(ValueError, match="schedule"):
        _cfg(data, tmp_path, schedule="linear")
    with pytest.raises(ValueError, match="multiple"):
        _cfg(data, tmp_path, batch_size=5).grad_accum(1)
    assert _cfg(data, tmp_path, batch_size=8, micro_batch=2).grad_accum(2) == (2, 2)


def test_exact_resume(data, tmp_path):
    """6 steps straight == 3 steps, stop, resume, 3 more: identical weights, optimizer and losses
    (log_every 2, so the resume lands inside a log interval)."""
    a, b = tmp_path / "a", tmp_path / "b"
    ra = train(_cfg(data, a, checkpoint_every=3, log_every=2), quiet=True)
    rb1 = train(_cfg(data, b, checkpoint_every=3, log_every=2), stop_at=3, quiet=True)
    assert rb1["step"] == 3 and rb1["consumed_samples"] == 12
    rb = train(_cfg(data, b, checkpoint_every=3, log_every=2), resume="auto", quiet=True)
    assert ra["step"] == rb["step"] == 6
    wa, wb = _weights(a, 6), _weights(b, 6)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    oa = load_checkpoint(a / "checkpoints/step-00000006.pt")["optimizer"]["state"]
    ob = load_checkpoint(b / "checkpoints/step-00000006.pt")["optimizer"]["state"]
    for k in oa:
        assert torch.equal(oa[k]["exp_avg_sq"], ob[k]["exp_avg_sq"])
    la, lb = read_log(a / "log.jsonl"), read_log(b / "log.jsonl")
    strip = lambda L: [(r["kind"], r["step"], r.get("loss"), r.get("val_loss")) for r in L]  # noqa: E731
    assert strip(la) == strip(lb)  # the resumed log was truncated at the checkpoint and continued
    assert ra["train_loss"] == rb["train_loss"]
    # a checkpoint from a different data layout is refused
    with pytest.raises(ValueError, match="seq_len"):
        train(_cfg(data, b, seq_len=8, steps=8), resume="auto", quiet=True)


def test_grad_accumulation_matches_big_batch(data, tmp_path):
    r1 = train(_cfg(data, tmp_path / "m2", micro_batch=2, steps=3, eval_every=0), quiet=True)
    r2 = train(_cfg(data, tmp_path / "m4", micro_batch=4, steps=3, eval_every=0), quiet=True)
    w1, w2 = _weights(tmp_path / "m2", 3), _weights(tmp_path / "m4", 3)
    for k in w1:
        # fp32 sums in a different order; ternary rounding can flip on an exact tie only
        assert torch.allclose(w1[k], w2[k], rtol=1e-4, atol=1e-5), k
    assert r1["train_loss"] == pytest.approx(r2["train_loss"], rel=1e-5)


def test_checkpoints_logs_export(data, tmp_path):
    from bitmamba.nn import BitMambaLM

    out = tmp_path / "run"
    r = train(_cfg(data, out, keep_checkpoints=2, plot=True, export="final", schedule="two_stage"), quiet=True)
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["step-00000004.pt", "step-00000006.pt"]
    assert not [p for p in (out / "checkpoints").iterdir() if "tmp" in p.name]
    ck = load_checkpoint(out / "checkpoints/step-00000006.pt")
    assert ck["consumed_samples"] == 24 and set(ck["rng"][0]) >= {"python", "numpy", "torch"}
    log = read_log(out / "log.jsonl")
    assert [x["step"] for x in log if x["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    vals = [x for x in log if x["kind"] == "val"]
    assert [x["step"] for x in vals] == [3, 6] and set(vals[0]["per_source"]) == {"prose", "stories", "code"}
    assert log[-2]["weight_decay"] == 0.0 and log[0]["weight_decay"] == 0.1  # two-stage: no wd in stage 2
    assert (out / "loss.png").stat().st_size > 1000
    m = BitMambaLM.from_pretrained(r["export"])
    for k, v in m.state_dict().items():
        assert torch.equal(v, ck["model"][k]), k
    assert json.loads((Path(r["export"]) / "training.json").read_text())["steps"] == 6


def test_cpu_bf16_autocast_when_asked(data, tmp_path):
    r = train(_cfg(data, tmp_path / "bf", precision="bf16", steps=1, eval_every=0), quiet=True)
    assert r["precision"] == "bf16" and r["train_loss"] > 0
    assert train(_cfg(data, tmp_path / "fp", steps=1, eval_every=0), quiet=True)["precision"] == "fp32"


def _torchrun_two_ranks(single, tmp_path):
    """Run `single`'s config again under torchrun with 2 gloo ranks, into tmp_path / "ddp"."""
    import yaml

    d = single.to_dict()
    d["out_dir"] = str(tmp_path / "ddp")
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(d))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "bitmamba", "train", str(tmp_path / "ddp.yaml"), "--quiet"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]


def test_ddp_two_cpu_ranks_match_single_process(data, tmp_path):
    """torchrun with 2 gloo ranks (micro_batch 2 each) == 1 process (micro_batch 2, grad_accum 2)."""
    steps = 3
    single = _cfg(data, tmp_path / "single", steps=steps, eval_every=0, checkpoint_every=0)
    train(single, quiet=True)
    _torchrun_two_ranks(single, tmp_path)
    ws, wd = _weights(tmp_path / "single", steps), _weights(tmp_path / "ddp", steps)
    ck = load_checkpoint(tmp_path / "ddp" / "checkpoints" / f"step-{steps:08d}.pt")
    assert ck["world_size"] == 2 and len(ck["rng"]) == 2
    for k in ws:
        assert torch.allclose(ws[k], wd[k], rtol=1e-4, atol=1e-5), k
    ls = [r["loss"] for r in read_log(tmp_path / "single" / "log.jsonl") if r["kind"] == "train"]
    ld = [r["loss"] for r in read_log(tmp_path / "ddp" / "log.jsonl") if r["kind"] == "train"]
    assert ls == pytest.approx(ld, rel=1e-5)
    # the final validation is split over the ranks and summed back: same numbers as one process
    vs = [r for r in read_log(tmp_path / "single" / "log.jsonl") if r["kind"] == "val"][-1]
    vd = [r for r in read_log(tmp_path / "ddp" / "log.jsonl") if r["kind"] == "val"][-1]
    assert vs["step"] == vd["step"] == steps
    assert vd["val_loss"] == pytest.approx(vs["val_loss"], rel=1e-4)


def test_ddp_distillation_two_cpu_ranks_match_single_process(data, tmp_path):
    """With a teacher (a float model; each rank loads its own copy, outside DDP) 2 gloo ranks == 1 process:
    the same weights and the same logged loss, kl and ce."""
    from bitmamba.nn import BitMambaConfig, BitMambaLM

    torch.manual_seed(5)
    teacher = tmp_path / "teacher"
    BitMambaLM(BitMambaConfig(vocab_size=data[1], d_model=16, n_layers=1, n_heads=2, eos_token_id=0,
                              weights="float")).save_pretrained(teacher)
    steps = 2
    single = _cfg(data, tmp_path / "single", steps=steps, eval_every=0, checkpoint_every=0, teacher=str(teacher),
                  distill_alpha=0.5, model={**_cfg(data, tmp_path).model, "weights": "binary"})
    train(single, quiet=True)
    _torchrun_two_ranks(single, tmp_path)
    ws, wd = _weights(tmp_path / "single", steps), _weights(tmp_path / "ddp", steps)
    assert "layers.0.in_proj.alpha" in wd and not any(k.startswith("teacher") for k in wd)
    for k in ws:
        assert torch.allclose(ws[k], wd[k], rtol=1e-4, atol=1e-5), k
    pick = lambda p: [(r["loss"], r["kl"], r["ce"]) for r in read_log(p / "log.jsonl") if r["kind"] == "train"]  # noqa
    ls, ld = pick(tmp_path / "single"), pick(tmp_path / "ddp")
    assert len(ls) == len(ld) == steps
    for a, b in zip(ls, ld):
        assert a == pytest.approx(b, rel=1e-5)


@pytest.mark.parametrize("name", ["tiny", "tiny-bpe8k", "255m-curriculum", "tiny-teacher", "tiny-distill-binary",
                                  "tiny-distill-ternary"])
def test_shipped_train_configs_parse(name):
    from bitmamba.nn import BitMambaConfig

    cfg = TrainConfig.from_yaml(ROOT / f"configs/train/{name}.yaml")
    if isinstance(cfg.model, str):
        assert (ROOT / cfg.model).is_file()
        BitMambaConfig.from_yaml(ROOT / cfg.model)
    else:
        BitMambaConfig.from_dict(cfg.model)
    cfg.grad_accum(1)


def test_training_reduces_loss(data, tmp_path):
    """The loop actually optimises the real model: 40 steps on one source cut the loss well below the
    uniform-guess level it starts at."""
    import math

    r = train(_cfg(data, tmp_path / "learn", steps=40, mix={"prose": 1.0}, eval_every=0, checkpoint_every=0,
                   log_every=5, lr=2e-2, min_lr=2e-3, warmup_steps=4), quiet=True)
    log = [x for x in read_log(tmp_path / "learn" / "log.jsonl") if x["kind"] == "train"]
    assert log[0]["loss"] > 0.9 * math.log(data[1])
    assert log[-1]["loss"] < log[0]["loss"] - 1.0, [x["loss"] for x in log]
    assert r["validation"]["val_loss"] < log[0]["loss"] - 1.0


# ---- resuming: missing, damaged and stale checkpoints -----------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_resume_needs_a_checkpoint_and_auto_starts_fresh(data, tmp_path, capsys):
    import yaml

    from bitmamba.cli import main as cli_main

    out = tmp_path / "run"
    cfg = _cfg(data, out, steps=2, eval_every=0)
    with pytest.raises(ValueError, match="no checkpoint in .*--resume auto"):
        train(cfg, resume="latest", quiet=True)
    # The command line: `--resume` alone means the latest checkpoint, and says so when there is none.
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    assert cli_main(["train", str(tmp_path / "c.yaml"), "--resume", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no checkpoint" in err and "Traceback" not in err
    assert not list_checkpoints(out / "checkpoints")
    # --resume auto: nothing to resume, so a fresh start, and it says which it did.
    assert train(cfg, resume="auto", quiet=True)["step"] == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "starting from step 0" in err
    r = train(_cfg(data, out, steps=4, eval_every=0), resume="auto", quiet=True)
    assert r["step"] == 4 and "resumed from" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous(data, tmp_path, capsys, damage):
    a, b = tmp_path / "a", tmp_path / "b"
    # keep_checkpoints 1 still keeps the previous checkpoint: it is what a damaged latest falls back to.
    train(_cfg(data, a, steps=6, eval_every=0, log_every=2, keep_checkpoints=1), quiet=True)
    train(_cfg(data, b, steps=6, eval_every=0, log_every=2, keep_checkpoints=1), stop_at=4, quiet=True)
    names = [p.name for p in list_checkpoints(b / "checkpoints")]
    assert names == ["step-00000002.pt", "step-00000004.pt"]
    latest = b / "checkpoints" / "step-00000004.pt"
    raw = latest.read_bytes()
    latest.write_bytes(raw[: len(raw) // 2] if damage == "truncated" else b"not a checkpoint\n" * 100)
    capsys.readouterr()
    r = train(_cfg(data, b, steps=6, eval_every=0, log_every=2, keep_checkpoints=1), resume="latest", quiet=True)
    err = capsys.readouterr().err
    assert f"warning: {latest}" in err and "step-00000002.pt at step 2" in err
    assert r["step"] == 6
    # Resumed from step 2 and trained on: the same model as the straight run.
    wa, wb = _weights(a, 6), _weights(b, 6)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert [p.name for p in list_checkpoints(b / "checkpoints")] == ["step-00000004.pt", "step-00000006.pt"]
    # Nothing readable at all: an error, not a silent restart.
    for p in list_checkpoints(b / "checkpoints"):
        p.write_bytes(b"")
    with pytest.raises(ValueError, match="no readable checkpoint"):
        train(_cfg(data, b, steps=8, eval_every=0), resume="auto", quiet=True)


def test_stale_checkpoint_temporaries_are_removed(data, tmp_path):
    """A run killed while writing a checkpoint leaves its temporary; the next checkpoint write of the run
    removes it (any step), and leaves files that are not such temporaries alone."""
    ck = tmp_path / "run" / "checkpoints"
    ck.mkdir(parents=True)
    dead = _dead_pid()
    stale = [ck / f".step-00000100.pt.tmp-{dead}-abcd1234", ck / f".step-00000002.pt.tmp-{dead}-zz_99xyz"]
    live = ck / f".step-00000100.pt.tmp-{os.getpid()}-abcd1234"
    keep = [ck / "notes.txt", ck / f".other.pt.tmp-{dead}-abcd1234", live]
    for p in stale + keep:
        p.write_bytes(b"x" * 1000)
    train(_cfg(data, tmp_path / "run", steps=2, eval_every=0), quiet=True)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)


def test_log_line_cut_by_a_kill_is_dropped_on_resume(tmp_path):
    from bitmamba.train.logs import JsonlLog

    p = tmp_path / "log.jsonl"
    p.write_text('{"kind": "train", "step": 1}\n{"kind": "train", "step": 2}\n{"kind": "tra')
    JsonlLog(p, resume_step=2)
    assert [r["step"] for r in read_log(p)] == [1, 2]
    p.write_text('{"kind": "train", "step": 1}\n{"kind": \n{"kind": "train", "step": 2}\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        JsonlLog(p, resume_step=2)
