#!/usr/bin/env python
"""Ternary kernel benchmark (see python/bitmamba/benchmarks/kernels.py): run from the repository root,
with the package installed or after scripts/dev_build.sh (PYTHONPATH=python)."""
import os
import sys

# Give numpy's BLAS the benchmark's thread count before numpy is imported (fair float32 baseline).
_threads = "2"
for _i, _a in enumerate(sys.argv):
    if _a == "--threads" and _i + 1 < len(sys.argv):
        _threads = sys.argv[_i + 1]
    elif _a.startswith("--threads="):
        _threads = _a.split("=", 1)[1]
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, _threads)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from bitmamba.benchmarks.kernels import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
