"""The bundled default model: a small BitMamba-2 trained with this package's own pipeline.

It lets `bitmamba generate "Once upon a time"` (and chat, bench, eval) run on a fresh install with no
model argument. How it was made: configs/train/bundled.yaml and the README's section
"The bundled default model".
"""
from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_FILE = "default-model.gguf"


def default_model_path() -> str:
    """Path of the bundled default model (a GGUF file inside the package)."""
    path = Path(__file__).resolve().parent / "assets" / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"the bundled default model is missing ({path}); reinstall bitmamba or pass a model file")
    return str(path)
