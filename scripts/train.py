#!/usr/bin/env python3
"""Train (or resume) from a training config: same as `bitmamba train CONFIG [options]`.
Data-parallel: torchrun --nproc_per_node=N scripts/train.py CONFIG"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from bitmamba.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
