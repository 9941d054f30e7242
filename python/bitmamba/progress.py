"""Progress bars for long work (conversion, evaluation), on stderr through tqdm when it is installed; without
tqdm, or when disabled, a bar that does nothing, so callers need no branches."""
from __future__ import annotations

import sys
from typing import Optional


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress_bar(total: Optional[int], desc: str, enabled: bool = True, unit: str = "it"):
    """A tqdm bar (total None: a counter) or, when disabled or tqdm is missing, one that does nothing."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", file=sys.stderr, dynamic_ncols=True,
                leave=False)
