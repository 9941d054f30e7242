"""bitmamba.nn: the PyTorch BitMamba-2 model for quantization-aware training.

    from bitmamba.nn import BitMambaConfig, BitMambaLM
    model = BitMambaLM(BitMambaConfig.from_yaml("configs/model/tiny.yaml"))
    logits = model(input_ids)                 # LongTensor [B, T] -> [B, T, vocab]
    model.save_pretrained("ckpt/")            # config.json + model.safetensors
    model = BitMambaLM.from_pretrained("ckpt/")

BitMambaConfig is plain Python; everything else needs torch, imported on first use.
"""
from ..config import BitMambaConfig

_TORCH_NAMES = {
    "BitMambaLM": "model", "Mamba2Mixer": "model", "RMSNorm": "model", "GatedRMSNorm": "model",
    "BitLinear": "bitlinear", "BinaryLinear": "binarylinear", "FloatLinear": "binarylinear",
    "ssd_chunked": "ssd", "ssm_scan_sequential": "ssd",
}

__all__ = ["BitMambaConfig", *_TORCH_NAMES]


def __getattr__(name):
    if name in _TORCH_NAMES:
        import importlib

        mod = importlib.import_module(f"{__name__}.{_TORCH_NAMES[name]}")
        return getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
