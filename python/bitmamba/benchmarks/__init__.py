"""Benchmarks (run as scripts or through their main(argv)); see docs/benchmarks.md for results."""
