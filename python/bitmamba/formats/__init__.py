"""Model file formats: BIT2 (bitmamba.cpp), GGUF (ours, ternary TQ2_0/TQ1_0), Flax msgpack (released
BitMamba-2 weights) and PyTorch checkpoints, all through one neutral `Checkpoint`."""
from .checkpoint import Checkpoint, Ternary, quantize_ternary
from .errors import FormatError

__all__ = ["Checkpoint", "FormatError", "Ternary", "quantize_ternary"]
