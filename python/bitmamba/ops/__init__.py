"""Thin numpy wrappers over the C++ kernels (bitmamba._C), for tests, benchmarks and experiments.

`bitmamba.ops.ternary`: quantization, packings (BIT2, TQ2_0, TQ1_0) and the ternary GEMV/GEMM.
`bitmamba.ops.ssm`: causal conv1d, selective scan (step, sequential, chunked), gating.
"""
