"""bitmamba: BitMamba-2 (ternary Mamba-2) language models on ordinary CPUs.

Inference, conversion and evaluation need numpy and the C++ extension; training needs PyTorch
(`pip install bitmamba[train]`), imported only by bitmamba.nn and bitmamba.train.
"""
from ._version import __version__
from .defaults import default_model_path
from .system import cpu_info, get_isa, get_num_threads, set_isa, set_num_threads


def load(path, tokenizer=None, threads=None):
    """Load a GGUF or BIT2 model file: see bitmamba.model.load (imports the C++ extension)."""
    from .model import load as _load

    return _load(path, tokenizer=tokenizer, threads=threads)


def __getattr__(name):
    # Lazy: `import bitmamba` must not need the C++ extension.
    if name == "Model":
        from .model import Model

        return Model
    if name == "Tokenizer":
        from .tokenizer import Tokenizer

        return Tokenizer
    if name == "FormatError":
        # The pure-Python base class: the C++ loaders' FormatError subclasses it.
        from .formats.errors import FormatError

        return FormatError
    raise AttributeError(f"module 'bitmamba' has no attribute {name!r}")


__all__ = [
    "load",
    "default_model_path",
    "Model",
    "Tokenizer",
    "FormatError",
    "__version__",
    "cpu_info",
    "get_isa",
    "set_isa",
    "get_num_threads",
    "set_num_threads",
]
