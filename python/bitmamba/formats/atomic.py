"""Atomic file output: write to a temporary file beside the target, rename over it only on success, so an
interrupted or failed write never leaves a partial file under the final name."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def default_mode(directory: bool = False) -> int:
    """Permissions a plainly created file (or directory) gets under the current umask. mkstemp and
    mkdtemp create private (0600 / 0700) entries; published outputs should not stay private."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's directory; on clean exit fsync and rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path):
    """Like atomic_path but yields an open binary file."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            yield f
