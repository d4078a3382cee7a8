"""Training and validation sets from cache directories (see `mm_fusion_ros.data.cache`)."""

from collections.abc import Sequence
from dataclasses import dataclass
import hashlib
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from mm_fusion_ros.actions import ACTION_LABELS
from mm_fusion_ros.data.cache import CacheError, load_manifest
from mm_fusion_ros.data.dataset import FusionCacheDataset
from mm_fusion_ros.errors import UserInputError
from mm_fusion_ros.model.config import FusionModelConfig
from mm_fusion_ros.train.config import TrainConfig

logger = logging.getLogger(__name__)


class TrainingDataError(UserInputError, ValueError):
    """Caches a run cannot train or select a model from (too small, empty, mismatched)."""


class CacheSamples(Dataset):
    """Samples of one or more cache directories, concatenated, as numpy dicts.

    More than one: the expert's cache plus DAgger caches (`mm-fusion dagger`). The trainer's
    collate runs the inference preprocessing. Shards are memory-mapped (`map_npz`): random
    access across shards costs no shard reloads, and the kernel's page cache holds what fits
    instead of the process (about 200 kB per sample: two 128x256 frames; 300 kB with fovea
    rows). Caches larger than the memory available still train, but read from disk each
    epoch: that is logged up front.
    """

    def __init__(self, cache_dirs: str | Sequence[str]) -> None:
        dirs = [cache_dirs] if isinstance(cache_dirs, str | Path) else list(cache_dirs)
        if not dirs:
            raise TrainingDataError('no cache directory given')
        self.name = ', '.join(str(d) for d in dirs)
        need = sum(_shard_bytes(Path(d) / s['file'])  # stored, not compressed: as in RAM
                   for d in dirs for s in load_manifest(d)['shards'])
        available = available_memory()
        if available is not None and need > available:
            logger.warning('caches %s take %.1f GiB, %.1f GiB of memory is available: each '
                           'epoch will read them from disk', [str(d) for d in dirs],
                           need / 2**30, available / 2**30)
        self.caches = [FusionCacheDataset(d, layout='hwc', mmap=True) for d in dirs]
        gaps = {float(c.manifest['config']['camera_history']) for c in self.caches}
        if len(gaps) > 1:
            raise TrainingDataError(f'caches {self.name} pair camera frames at different '
                                    f'gaps: {sorted(gaps)} s')
        frames = {_frame_layout(c.manifest) for c in self.caches}
        if len(frames) > 1:
            raise TrainingDataError(f'caches {self.name} hold model frames of different '
                                    f'layouts: {sorted(frames)}')
        self.offsets = np.cumsum([0] + [len(c) for c in self.caches])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range for {len(self)} samples')
        c = int(np.searchsorted(self.offsets, index, side='right')) - 1
        return self.caches[c].arrays(index - int(self.offsets[c]))

    @property
    def data_hash(self) -> str:
        """The cache's hash; for several, the sha256 of their hashes in order."""
        return _combined_hash([c.data_hash for c in self.caches])

    @property
    def camera_history(self) -> float:
        """[s] gap of the caches' earlier camera frames (must equal the model's)."""
        return float(self.caches[0].manifest['config']['camera_history'])

    @property
    def frame_layout(self) -> tuple[int, int, int, tuple[float, ...]]:
        """(image_height, image_width, fovea_height, fovea_box) of the cached model frames."""
        return _frame_layout(self.caches[0].manifest)

    def class_counts(self) -> np.ndarray:
        return _class_counts([c.manifest for c in self.caches])


def _shard_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise CacheError(f'cache shard {path}: {exc.strerror}; rebuild the cache') from None


def cache_class_counts(cache_dirs: str | Sequence[str]) -> np.ndarray:
    """(C,) samples per action over caches, from their manifests (no shard is opened)."""
    return _class_counts(_manifests(cache_dirs))


def cache_data_hash(cache_dirs: str | Sequence[str]) -> str:
    """`CacheSamples(cache_dirs).data_hash`, from the manifests (no shard is opened)."""
    return _combined_hash([str(m['data_hash']) for m in _manifests(cache_dirs)])


def _manifests(cache_dirs: str | Sequence[str]) -> list[dict[str, Any]]:
    dirs = [cache_dirs] if isinstance(cache_dirs, str | Path) else list(cache_dirs)
    return [load_manifest(d) for d in dirs]


def _class_counts(manifests: Sequence[dict[str, Any]]) -> np.ndarray:
    counts = [m['class_counts'] for m in manifests]
    return np.array([sum(c.get(label, 0) for c in counts) for label in ACTION_LABELS], np.int64)


def _combined_hash(hashes: Sequence[str]) -> str:
    """One cache: its hash; several: the sha256 of their hashes in order."""
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256('\n'.join(hashes).encode()).hexdigest()


def available_memory() -> int | None:
    """[bytes] MemAvailable of Linux's /proc/meminfo; None where there is none."""
    try:
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _frame_layout(manifest: dict[str, Any]) -> tuple[int, int, int, tuple[float, ...]]:
    cfg = manifest['config']
    return (int(cfg['image_height']), int(cfg['image_width']), int(cfg['fovea_height']),
            tuple(float(v) for v in cfg['fovea_box']))


def check_frames(model: FusionModelConfig, name: str, data: CacheSamples) -> None:
    """Refuse a cache whose frames the model cannot read (gap, view size, fovea).

    A model without a fovea reads the view rows of a cache that has one.
    """
    if not math.isclose(data.camera_history, model.camera_history):
        raise TrainingDataError(
            f'{name} cache {data.name} pairs camera frames {data.camera_history} s apart, the '
            f'model expects camera_history {model.camera_history} s')
    ego_motion = {str(c.manifest['config'].get('radar_ego_motion', 'raw')) for c in data.caches}
    if ego_motion != {model.radar_ego_motion}:
        raise TrainingDataError(
            f'{name} cache {data.name} holds radar_ego_motion {sorted(ego_motion)}, the model '
            f'expects {model.radar_ego_motion!r}')
    height, width, fovea_height, fovea_box = data.frame_layout
    fovea_ok = model.fovea_height == 0 or (
        model.fovea_height == fovea_height
        and np.allclose(model.fovea_box, fovea_box))
    if (height, width) != (model.image_height, model.image_width) or not fovea_ok:
        raise TrainingDataError(
            f'{name} cache {data.name} holds {height}x{width} views with a {fovea_height}-row '
            f'fovea of {fovea_box}; the model reads {model.image_height}x{model.image_width} '
            f'with a {model.fovea_height}-row fovea of {model.fovea_box}')


def full_batches(samples: int, batch_size: int, world: int = 1) -> int:
    """Training steps per epoch: full batches per rank (the last, partial one is dropped).

    Under DDP, DistributedSampler pads every rank to ceil(samples / world) samples.
    """
    return -(-samples // world) // batch_size if samples > 0 else 0


def check_trainable(
    train_name: str, train_samples: int, val_name: str, val_samples: int, batch_size: int,
    world: int = 1, val_class_counts: Sequence[int] | np.ndarray | None = None,
    train_class_counts: Sequence[int] | np.ndarray | None = None,
) -> list[str]:
    """Refuse data that gives no training step or no validation; returns the warnings.

    TrainingDataError when the training samples make no full batch per rank (every step
    would be dropped: nothing is learnt, yet a best.pt would be written) or the validation
    split is empty (no epoch can be scored, no checkpoint chosen). A split with one class
    only is a warning: its macro-F1 is that class's F1 and a 'validation' logit prior moves
    decisions toward it; smoke runs on one scenario are meant to work.
    """
    if full_batches(train_samples, batch_size, world) < 1:
        per_rank = f' ({-(-train_samples // world)} per rank of {world})' if world > 1 else ''
        raise TrainingDataError(
            f'training cache {train_name}: {train_samples} samples{per_rank} make no full batch '
            f'of batch_size {batch_size}, so training would take no step; lower batch_size or '
            f'add data')
    if val_samples < 1:
        raise TrainingDataError(
            f'validation cache {val_name} holds no samples: no epoch could be scored and no '
            f'checkpoint chosen')
    warnings = []
    for what, name, counts in (('validation', val_name, val_class_counts),
                               ('training', train_name, train_class_counts)):
        present = [ACTION_LABELS[i] for i, n in enumerate(counts if counts is not None else [])
                   if n > 0]
        if len(present) == 1:
            warnings.append(
                f'{what} cache {name} holds one class only ({present[0]}): '
                + ('its macro-F1 is the F1 of that class, and a validation logit prior moves '
                   'the decisions toward it' if what == 'validation'
                   else 'the model learns a constant decision'))
    return warnings


@dataclass
class TrainingData:
    train: CacheSamples
    val: CacheSamples
    data_hash: str  # of the training cache: what the checkpoint was trained on
    class_counts: np.ndarray
    val_class_counts: np.ndarray  # the driving prior the checkpoint's logit offsets aim at


def open_training_data(config: TrainConfig) -> TrainingData:
    train = CacheSamples(config.train_cache)
    val = CacheSamples(config.val_cache)
    return TrainingData(train, val, train.data_hash, train.class_counts(), val.class_counts())
