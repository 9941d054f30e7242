"""Reading the YAML configuration files (configs/model, configs/data, configs/train) the same way for every
config class and command: one error for a missing file, one for a file that is not a mapping.

Plain Python (PyYAML, imported on first use): the config classes that use it are torch-free.
"""
from __future__ import annotations

from pathlib import Path


def read_mapping(path, what: str) -> dict:
    """The top-level mapping of the YAML file at `path`; `what` ("model config", "data config", ...) names
    the file in errors. FileNotFoundError if there is no such file; ValueError if it holds anything but a
    mapping (an empty file included: every config has required keys or must say which shape it means)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    with open(p, encoding="utf-8") as f:
        d = yaml.safe_load(f)
    if not isinstance(d, dict):
        got = "an empty file" if d is None else f"a {type(d).__name__}"
        raise ValueError(f"{what} {p}: expected a mapping at the top level, got {got}")
    return d
