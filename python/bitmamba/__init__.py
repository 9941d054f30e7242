"""bitmamba: BitMamba-2 (ternary Mamba-2) language models on ordinary CPUs.

Inference, conversion and evaluation need numpy and the C++ extension; training needs PyTorch
(`pip install bitmamba[train]`), imported only by bitmamba.nn and bitmamba.train.
"""
from ._version import __version__
from .system import cpu_info, get_isa, get_num_threads, set_isa, set_num_threads

__all__ = [
    "__version__",
    "cpu_info",
    "get_isa",
    "set_isa",
    "get_num_threads",
    "set_num_threads",
]
