"""Training and validation sets from cache directories (see `mm_fusion_ros.data.cache`)."""

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from mm_fusion_ros.actions import ACTION_LABELS
from mm_fusion_ros.data.dataset import FusionCacheDataset
from mm_fusion_ros.train.config import TrainConfig


class CacheSamples(Dataset):
    """Cache samples as numpy dicts (the trainer's collate runs the inference preprocessing).

    Shards are preloaded: random access across shards would otherwise reload a shard per
    sample (about 100 kB per sample, so 30k samples take ~3 GB of RAM).
    """

    def __init__(self, cache_dir: str) -> None:
        self.cache = FusionCacheDataset(cache_dir, layout='hwc', preload=True)

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.cache.arrays(index)

    @property
    def data_hash(self) -> str:
        return self.cache.data_hash

    @property
    def camera_history(self) -> float:
        """[s] gap of the cache's earlier camera frames (must equal the model's)."""
        return float(self.cache.manifest['config']['camera_history'])

    def class_counts(self) -> np.ndarray:
        counts = self.cache.manifest['class_counts']
        return np.array([counts.get(label, 0) for label in ACTION_LABELS], np.int64)


@dataclass
class TrainingData:
    train: CacheSamples
    val: CacheSamples
    data_hash: str  # of the training cache: what the checkpoint was trained on
    class_counts: np.ndarray


def open_training_data(config: TrainConfig) -> TrainingData:
    train = CacheSamples(config.train_cache)
    val = CacheSamples(config.val_cache)
    return TrainingData(train, val, train.data_hash, train.class_counts())
