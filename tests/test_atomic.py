"""bitmamba.atomic: temporaries named after their target and their writer's pid, stale ones (from
a killed writer) removed by the next write of the same target, published files with umask permissions,
a full disk reported as such with nothing left behind."""
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bitmamba.atomic import NoSpaceError, atomic_dir, atomic_path, atomic_write

ROOT = Path(__file__).resolve().parent.parent


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture()
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_kill_9_leaves_a_temporary_the_next_write_removes(tmp_path):
    target = tmp_path / "model.gguf"
    code = ("import sys, time\n"
            "from bitmamba.atomic import atomic_write\n"
            "with atomic_write(sys.argv[1]) as f:\n"
            "    f.write(b'x' * 100000); f.flush(); print('writing', flush=True); time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    p = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, env=env)
    assert p.stdout.readline() == b"writing\n"
    p.kill()  # SIGKILL: no cleanup runs
    p.wait()
    left = [q.name for q in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".model.gguf.tmp-{p.pid}-"), left
    with atomic_write(target) as f:
        f.write(b"done")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["model.gguf"]
    assert target.read_bytes() == b"done"


def test_only_stale_temporaries_of_the_same_target_are_removed(tmp_path):
    dead, me = _dead_pid(), os.getpid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [f".m.gguf.tmp-{dead}-abcd_123", ".m.gguf.q1w2e3r4.tmp"]  # ours, and an older version's
        kept = [f".m.gguf.tmp-{sleeper.pid}-abcd_123",  # a live writer of the same target
                f".m.gguf.tmp-{me}-abcd_123",          # another thread of this process
                f".other.gguf.tmp-{dead}-abcd_123",    # another target
                ".m.gguf.zzzzzzzz.tmp",                # older version's, but recently written
                "m.gguf.bak", ".m.gguf.tmp-notes", "notes.txt"]
        for n in stale + kept:
            (tmp_path / n).write_bytes(b"x")
        old = time.time() - 2 * 3600
        os.utime(tmp_path / ".m.gguf.q1w2e3r4.tmp", (old, old))
        (tmp_path / f".final.tmp-{dead}-abcdefgh").mkdir()  # a directory temporary, with a file in it
        (tmp_path / f".final.tmp-{dead}-abcdefgh" / "model.safetensors").write_bytes(b"x")
        with atomic_path(tmp_path / "m.gguf") as tmp:
            tmp.write_bytes(b"new")
        with atomic_dir(tmp_path / "final") as d:
            (d / "config.json").write_text("{}")
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == sorted(kept + ["m.gguf", "final"])
    finally:
        sleeper.kill()
        sleeper.wait()


def test_published_files_get_umask_permissions(tmp_path, umask022):
    with atomic_write(tmp_path / "a.bin") as f:
        f.write(b"x")
    with atomic_dir(tmp_path / "d") as d:
        (d / "sub").mkdir()
        (d / "sub" / "x.json").write_text("{}")
        fd = os.open(d / "private-by-default", os.O_CREAT | os.O_WRONLY, 0o600)  # as mkstemp and safetensors do
        os.close(fd)
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(tmp_path / "a.bin") == 0o644
    assert mode(tmp_path / "d") == mode(tmp_path / "d" / "sub") == 0o755
    assert mode(tmp_path / "d" / "sub" / "x.json") == mode(tmp_path / "d" / "private-by-default") == 0o644
    os.umask(0o027)
    with atomic_write(tmp_path / "b.bin") as f:
        f.write(b"x")
    assert mode(tmp_path / "b.bin") == 0o640


def test_save_pretrained_files_are_not_private(tmp_path, umask022):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from bitmamba.nn import BitMambaConfig, BitMambaLM

    torch.manual_seed(0)
    m = BitMambaLM(BitMambaConfig(vocab_size=64, d_model=16, n_layers=1, n_heads=2, eos_token_id=0))
    for _ in range(2):  # a new directory, then the files replaced inside it
        m.save_pretrained(tmp_path / "final")
        d = tmp_path / "final"
        assert {p.name: p.stat().st_mode & 0o777 for p in d.iterdir()} == \
            {"config.json": 0o644, "model.safetensors": 0o644, "README.md": 0o644}
        assert d.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]


@pytest.mark.parametrize("into", ["new directory", "existing directory"])
def test_save_pretrained_on_a_full_disk_names_it_and_leaves_nothing(tmp_path, monkeypatch, into):
    # safetensors reports a full disk as SafetensorError("... No space left on device (os error 28)"),
    # not as an OSError (its message, as seen on a full 1 MiB tmpfs with safetensors 0.8).
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    import safetensors.torch
    from safetensors import SafetensorError

    from bitmamba.nn import BitMambaConfig, BitMambaLM

    torch.manual_seed(0)
    m = BitMambaLM(BitMambaConfig(vocab_size=64, d_model=16, n_layers=1, n_heads=2, eos_token_id=0))
    d = tmp_path / "ckpt"
    if into == "existing directory":
        m.save_pretrained(d)
    before = {p.name: p.read_bytes() for p in d.iterdir()} if d.exists() else None

    def full(state, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 100)  # a partial file, as a write cut short leaves
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(NoSpaceError) as e:
        m.save_pretrained(d)
    msg = str(e.value)
    assert e.value.errno == errno.ENOSPC and "no space left on device while writing" in msg and "\n" not in msg
    if before is None:
        assert not d.exists()
    else:
        assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if before is None else ["ckpt"])
    # A library error that is not about space passes through unchanged.
    monkeypatch.setattr(safetensors.torch, "save_file",
                        lambda *a, **k: (_ for _ in ()).throw(SafetensorError("Error while serializing: bad dtype")))
    with pytest.raises(SafetensorError):
        m.save_pretrained(d)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_full_disk_is_named_and_leaves_nothing(tmp_path, code):
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    with pytest.raises(NoSpaceError) as e:
        with atomic_write(target) as f:
            f.write(b"partial")
            raise OSError(code, os.strerror(code))
    msg = str(e.value)
    assert e.value.errno == code and str(target) in msg and "\n" not in msg
    assert ("no space left on device" if code == errno.ENOSPC else "disk quota exceeded") in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"] and target.read_bytes() == b"previous"
    # Other failures pass through unchanged.
    with pytest.raises(OSError) as e:
        with atomic_write(target) as f:
            raise OSError(errno.EIO, "I/O error")
    assert type(e.value) is OSError and e.value.errno == errno.EIO
