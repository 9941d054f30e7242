#!/usr/bin/env python3
"""Zero-shot evaluation of a bitmamba model: the same as `bitmamba eval`, runnable from a checkout.

    python scripts/evaluate.py MODEL --tasks all --output results.json
    python scripts/evaluate.py MODEL --tasks arc_easy,piqa --limit 100
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from bitmamba.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
