"""QAT training for BitMamba-2: `train(TrainConfig.from_yaml(path))`, or `bitmamba train CONFIG`.
Needs PyTorch (imported when training starts, not on import of this package's config)."""
from .config import TrainConfig
from .schedule import Schedule


def train(*args, **kwargs):
    from .loop import train as _train

    return _train(*args, **kwargs)


__all__ = ["TrainConfig", "Schedule", "train"]
