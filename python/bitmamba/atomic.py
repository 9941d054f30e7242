"""Atomic file output: write to a temporary file beside the target, rename over it only on success, so an
interrupted or failed write never leaves a partial file under the final name.

Temporaries are named `.<target name>.tmp-<pid>-<random>`: derivable from the target, so a later write of
the same target can find the ones a killed process (kill -9, power loss) left behind, and carrying the
writer's pid, so only those whose process is gone are removed, never a live writer's.
"""
from __future__ import annotations

import contextlib
import errno
import fnmatch
import glob
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import List

# .<target>.tmp-<pid>-<8 chars of tempfile's alphabet>
_TEMP = re.compile(r"^\.(?P<target>.+)\.tmp-(?P<pid>\d+)-[a-z0-9_]{8}$")
# What earlier versions wrote (mkstemp's .<target>.<8 chars>.tmp): no pid, so only removed once untouched
# for LEGACY_AGE_S: no live writer leaves a file it is writing unmodified that long.
_LEGACY = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")
LEGACY_AGE_S = 3600
# An errno-less short write (numpy's tofile reports only "N requested and M written") is taken for a full
# disk when less than this is left on the file system.
FULL_DISK_BYTES = 1 << 20
# How Rust's std::io::Error shows an errno in its message.
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


class NoSpaceError(OSError):
    """Writing failed because the file system is full (ENOSPC) or the disk quota is used up (EDQUOT).
    str() is the one-line message alone (no "[Errno 28]" prefix)."""

    def __str__(self) -> str:
        return self.strerror


def _umask() -> int:
    # /proc gives the umask without changing it; the os.umask(0) / os.umask(old) round trip below briefly
    # sets a 0 umask for every thread of the process.
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    umask = os.umask(0)
    os.umask(umask)
    return umask


def default_mode(directory: bool = False) -> int:
    """Permissions a plainly created file (or directory) gets under the current umask. mkstemp and
    mkdtemp create private (0600 / 0700) entries; published outputs should not stay private."""
    return (0o777 if directory else 0o666) & ~_umask()


def temp_prefix(path) -> str:
    """The name prefix of this process's temporaries for `path`."""
    return f".{Path(path).name}.tmp-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:  # not a pid we write (and os.kill(0, ...) would mean our own process group)
        return False
    if pid == os.getpid():
        return True  # another thread of this process may be writing the same target
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except (OSError, OverflowError):
        return False  # not a valid pid on this system
    return True


def remove_stale_temporaries(directory, target_glob: str) -> List[Path]:
    """Remove the temporaries of targets in `directory` whose name matches `target_glob` (fnmatch, case-
    sensitive; glob.escape() a plain name) that were left by processes that no longer run. Returns what
    was removed. Temporaries of live processes and every other file are left alone."""
    d = Path(directory)
    removed = []
    try:
        names = os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    now = time.time()
    for name in names:
        m = _TEMP.match(name)
        if m:
            if not fnmatch.fnmatchcase(m.group("target"), target_glob) or _pid_alive(int(m.group("pid"))):
                continue
        else:
            m = _LEGACY.match(name)
            if not m or not fnmatch.fnmatchcase(m.group("target"), target_glob):
                continue
            with contextlib.suppress(OSError):
                if now - os.lstat(d / name).st_mtime < LEGACY_AGE_S:
                    continue
        p = d / name
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            pass  # another process cleaned it up first
        removed.append(p)
    return removed


def _free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    # root may also fill the blocks the file system reserves for it
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return blocks * st.f_frsize


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def _errno_of(e: BaseException):
    """The errno of a failed write: OSError's own, or the one a library written in Rust puts in its
    message (safetensors raises SafetensorError("... No space left on device (os error 28)")), else None."""
    if isinstance(e, OSError):
        return e.errno
    m = _RUST_OS_ERROR.search(str(e))
    return int(m.group(1)) if m else None


def _no_space_error(e: BaseException, path: Path):
    """A NoSpaceError naming `path` when `e` is a write that failed for lack of space, else None.
    Must run before the temporary is removed (that frees the space it held)."""
    if isinstance(e, NoSpaceError) or not isinstance(e, Exception):
        return None
    code = _errno_of(e)
    if not isinstance(e, OSError) and code is None:
        return None
    try:
        free = _free_bytes(path.parent)
    except (OSError, AttributeError):  # no statvfs on this platform
        free = None
    if code == errno.EDQUOT:
        what, code = "disk quota exceeded", errno.EDQUOT
    elif code == errno.ENOSPC or (not code and free is not None and free < FULL_DISK_BYTES):
        what, code = "no space left on device", errno.ENOSPC
    else:
        return None
    left = f", {_human(free)} free" if free is not None else ""
    return NoSpaceError(code, f"{what} while writing {path}{left}: free some space or write to another "
                              f"disk ({path.name} was not written; an existing one is left as it was)", str(path))


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's directory; on clean exit fsync it, give it the normal
    umask-respecting permissions and rename it to `path`. Stale temporaries of `path` left by dead
    processes are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, glob.escape(path.name))
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException as e:
        full = _no_space_error(e, path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full is not None:
            raise full from None
        raise


@contextlib.contextmanager
def atomic_write(path):
    """Like atomic_path but yields an open binary file."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            yield f


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary directory beside `path` (which must not exist yet) to fill; on clean exit fsync
    its files, give everything in it the normal permissions and rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, glob.escape(path.name))
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), dir=path.parent))
    try:
        yield tmp
        fmode, dmode = default_mode(), default_mode(directory=True)
        for root, dirs, files in os.walk(tmp):
            for name in files:
                p = os.path.join(root, name)
                if not os.path.islink(p):
                    with open(p, "rb+") as f:
                        os.fsync(f.fileno())
                    os.chmod(p, fmode)
            for name in dirs:
                p = os.path.join(root, name)
                if not os.path.islink(p):
                    os.chmod(p, dmode)
        os.chmod(tmp, dmode)
        os.rename(tmp, path)
    except BaseException as e:
        full = _no_space_error(e, path)
        shutil.rmtree(tmp, ignore_errors=True)
        if full is not None:
            raise full from None
        raise
