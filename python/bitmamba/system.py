"""Machine facts and process-wide settings: CPU features, kernel set, thread count."""
from __future__ import annotations

import os
import platform

from ._native import native
from ._version import __version__


def cpu_info() -> dict:
    """Describe the CPU and what bitmamba will use on it.

    Returns a dict with the detected ISA features, the kernel table (every kernel set with its
    architecture, the CPU features it needs, whether this build has it and this CPU runs it, and the
    needed features this CPU lacks), the names of the compiled and supported sets, the one in use
    (BITMAMBA_ISA can force a lower one), the thread count and the package version.

    ``amx_permission`` says whether Linux granted this process the AMX tile data (``granted``: bool)
    and, as ``status``, the detector's word for it: "granted", "denied (why)", "not requested (why)"
    or "not applicable (...)". The ``amx`` kernel set needs it; CPUID alone is not enough.
    """
    C = native()
    sets = C.kernel_sets()
    status = C.amx_permission()
    return {
        "version": __version__,
        "machine": platform.machine(),
        "features": C.cpu_features(),
        "kernel_sets": sets,
        "amx_permission": {"granted": status == "granted", "status": status},
        "supported_isas": [k["name"] for k in sets if k["supported"]],
        "compiled_isas": [k["name"] for k in sets if k["compiled"]],
        "isa": C.get_isa(),
        "isa_forced_by_env": bool(os.environ.get("BITMAMBA_ISA")),
        "threads": C.get_num_threads(),
        "default_threads": C.default_threads(),
    }


def get_isa() -> str:
    """Name of the kernel set in use (one of cpu_info()["supported_isas"])."""
    return native().get_isa()


def set_isa(name: str) -> None:
    """Switch the kernel set for this process (ValueError if the CPU cannot run it)."""
    native().set_isa(name)


def get_num_threads() -> int:
    return native().get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the size of the shared C++ thread pool (default: physical cores, or BITMAMBA_NUM_THREADS)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"thread count must be a positive integer, got {n!r}")
    native().set_num_threads(n)
