"""Access to the compiled extension (bitmamba._C) with a clear error when it is missing.

Pure-Python parts of the package (the PyTorch model, data preparation) import without the extension,
so it is loaded on first use rather than at `import bitmamba`.
"""
from __future__ import annotations

import importlib

_C = None


def native():
    """Return the bitmamba._C extension module, importing it on first use."""
    global _C
    if _C is None:
        try:
            _C = importlib.import_module("bitmamba._C")
        except ImportError as e:  # pragma: no cover - depends on how the package was installed
            raise ImportError(
                "bitmamba's C++ extension (bitmamba._C) is not built. Install the package with "
                "`pip install .` (or `pip install -e .` for development) from the repository root."
            ) from e
    return _C
