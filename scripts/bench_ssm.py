#!/usr/bin/env python
"""Selective-scan prefill benchmark (see bitmamba/benchmarks/ssm.py): python scripts/bench_ssm.py --help"""
import sys

from bitmamba.benchmarks.ssm import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
