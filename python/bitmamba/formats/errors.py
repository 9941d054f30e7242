"""FormatError: a model, tokenizer or checkpoint file is truncated, corrupt or inconsistent.

Pure Python, so the readers here raise it without the C++ extension; the extension's own FormatError
(bitmamba._C.FormatError) subclasses it, so `except bitmamba.FormatError` catches both."""
from __future__ import annotations


class FormatError(ValueError):
    """A file is truncated, corrupt or inconsistent; the message names the file and the problem."""
