"""Pretraining data: sources -> tokenized uint16 shards + manifest -> exactly proportioned sample mix.

    from bitmamba.data import DataConfig, prepare_data, MixedDataset
    prepare_data(DataConfig.from_yaml("configs/data/offline-demo.yaml"))
    ds = MixedDataset("data/offline-demo", seq_len=256)
    batch = ds.samples(range(0, 8))          # [8, 257] int64 token windows

Needs numpy, tokenizers (tokenizing), pyyaml (YAML configs), tqdm (progress bar, optional), pyarrow
(parquet inputs only) and datasets (Hugging Face streaming only). No torch.
"""
from .config import DataConfig, InputSpec, SourceSpec
from .dataset import MixedDataset, TokenStream, ValidationSet, rank_indices
from .mixing import MixSchedule, integer_weights, permute
from .prepare import load_manifest, prepare_data
from .shards import ShardError, open_shard, read_header, verify_shard

__all__ = [
    "DataConfig", "InputSpec", "SourceSpec", "prepare_data", "load_manifest", "MixedDataset",
    "ValidationSet", "TokenStream", "rank_indices", "MixSchedule", "integer_weights", "permute",
    "ShardError", "open_shard", "read_header", "verify_shard",
]
