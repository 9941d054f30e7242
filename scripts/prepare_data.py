#!/usr/bin/env python3
"""Tokenize a data mix into token shards: same as `bitmamba prepare-data CONFIG [options]`."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from bitmamba.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["prepare-data", *sys.argv[1:]]))
