#!/usr/bin/env python
"""Convert a BitMamba-2 checkpoint: same as `bitmamba convert` (see docs/convert.md).

    python scripts/convert.py SRC OUT [--to gguf|bit2] [--ternary-type tq2_0|tq1_0] [--embed-type f32|f16|q8_0]
"""
import sys
from pathlib import Path

try:
    import bitmamba  # noqa: F401
except ImportError:  # running from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from bitmamba.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
