"""torch Dataset over the training cache: shards loaded one at a time, kept in a small LRU.

Items are dicts of tensors ready for the model's batch preparation:

    image          (3, H, W) uint8 CHW (layout='chw', default) or (H, W, 3) (layout='hwc'),
                   unnormalised: the model's own preprocessing normalises it
    radar_points   (T, N, F) float32 raw canonical units (float16 shards are widened)
    point_mask     (T, N) bool;  frame_mask (T,) bool;  time_offsets (T,) float32 [s]
    action         () int64;  target_accel () float32 [m/s^2];  ttc () float32 [s] (inf/nan)
    episode        () int32;  stamp_ns () int64

Random access over many shards thrashes the LRU; `ShardGroupedSampler` shuffles shard order
and samples within each shard instead, so each shard is read once per epoch.
"""

import bisect
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
import struct
from typing import Any
import zipfile

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mm_fusion_ros.data.cache import SAMPLE_KEYS, CacheError, load_manifest
from mm_fusion_ros.errors import one_line

TENSOR_KEYS = ('image', 'previous_image', 'radar_points', 'point_mask', 'frame_mask',
               'time_offsets', 'action', 'target_accel', 'ttc', 'ego_speed', 'episode',
               'stamp_ns')


ARRAY_KEYS = (
    'image', 'previous_image', 'radar_points', 'point_mask', 'frame_mask', 'time_offsets',
    'action', 'target_accel', 'ttc', 'ego_speed', 'episode', 'stamp_ns',
)
# What reading a truncated, overwritten or foreign .npz raises (zip, npy header, short read).
_SHARD_ERRORS = (OSError, ValueError, EOFError, KeyError, struct.error, zipfile.BadZipFile,
                 zipfile.LargeZipFile, NotImplementedError, OverflowError, TypeError)


class FusionCacheDataset(Dataset):
    """Samples of a cache directory (see `mm_fusion_ros.data.cache` for the format)."""

    def __init__(
        self, cache_dir: str | Path, layout: str = 'chw', max_cached_shards: int = 2,
        preload: bool = False, mmap: bool = False,
    ) -> None:
        """Open a cache; shards load lazily into a small LRU by default.

        `preload`: read every shard into memory now; `mmap`: map every shard instead (the
        kernel's page cache holds what fits; random access costs no shard reloads).
        """
        if layout not in ('chw', 'hwc'):
            raise ValueError(f"layout must be 'chw' or 'hwc', got {layout!r}")
        self.root = Path(cache_dir)
        self.manifest = load_manifest(self.root)
        self.layout = layout
        self.max_cached_shards = max(1, int(max_cached_shards))
        self.files = [self.root / s['file'] for s in self.manifest['shards']]
        counts = [int(s['samples']) for s in self.manifest['shards']]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.mmap = mmap
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        if preload or mmap:
            self.max_cached_shards = max(1, len(self.files))
            for i in range(len(self.files)):
                self._shard(i)

    @property
    def data_hash(self) -> str:
        return str(self.manifest['data_hash'])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def shard_ranges(self) -> list[range]:
        return [range(int(a), int(b)) for a, b in zip(self.offsets[:-1], self.offsets[1:],
                                                      strict=True)]

    def _shard(self, i: int) -> dict[str, np.ndarray]:
        shard = self._cache.get(i)
        if shard is not None:
            self._cache.move_to_end(i)
            return shard
        shard = self._read_shard(i)
        self._cache[i] = shard
        while len(self._cache) > self.max_cached_shards:
            self._cache.popitem(last=False)
        return shard

    def _read_shard(self, i: int) -> dict[str, np.ndarray]:
        """Shard `i`'s arrays, checked against the manifest (CacheError when they differ)."""
        file = self.files[i]
        try:
            if self.mmap:
                shard = map_npz(file)
            else:
                with np.load(file, allow_pickle=False) as z:
                    shard = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise CacheError(f'cache shard {file} is missing; rebuild the cache') from None
        except _SHARD_ERRORS as exc:
            raise CacheError(f'cache shard {file} is corrupt or truncated '
                             f'({type(exc).__name__}: {one_line(exc)}); rebuild the cache') \
                from None
        expected = int(self.manifest['shards'][i]['samples'])
        if missing := [k for k in SAMPLE_KEYS if k not in shard]:
            raise CacheError(f'cache shard {file} lacks {missing}; rebuild the cache')
        if lengths := {k: np.shape(shard[k])[:1] for k in SAMPLE_KEYS
                       if np.shape(shard[k])[:1] != (expected,)}:
            raise CacheError(f'cache shard {file} has arrays of lengths {lengths}, the manifest '
                             f'says {expected} samples; rebuild the cache')
        return shard

    def locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range for {len(self)} samples')
        s = bisect.bisect_right(self.offsets, index) - 1
        return s, index - int(self.offsets[s])

    def metadata(self, index: int) -> dict[str, Any]:
        s, j = self.locate(index)
        shard = self._shard(s)
        return {k: shard[k][j].item() for k in ('scenario', 'condition', 'seed', 'episode',
                                                  'stamp_ns')}

    def arrays(self, index: int) -> dict[str, Any]:
        """One sample as numpy views (HWC image) plus its scenario and condition strings."""
        s, j = self.locate(int(index))
        shard = self._shard(s)
        sample = {k: shard[k][j] for k in ARRAY_KEYS}
        sample['scenario'] = str(shard['scenario'][j])
        sample['condition'] = str(shard['condition'][j])
        return sample

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        a = self.arrays(index)
        image, previous = a['image'], a['previous_image']
        if self.layout == 'chw':
            image, previous = image.transpose(2, 0, 1), previous.transpose(2, 0, 1)
        return {
            'image': torch.from_numpy(np.ascontiguousarray(image)),
            'previous_image': torch.from_numpy(np.ascontiguousarray(previous)),
            'radar_points': torch.from_numpy(a['radar_points'].astype(np.float32)),
            'point_mask': torch.from_numpy(a['point_mask'].copy()),
            'frame_mask': torch.from_numpy(a['frame_mask'].copy()),
            'time_offsets': torch.from_numpy(a['time_offsets'].copy()),
            'action': torch.tensor(int(a['action']), dtype=torch.int64),
            'target_accel': torch.tensor(float(a['target_accel']), dtype=torch.float32),
            'ttc': torch.tensor(float(a['ttc']), dtype=torch.float32),
            'ego_speed': torch.tensor(float(a['ego_speed']), dtype=torch.float32),
            'episode': torch.tensor(int(a['episode']), dtype=torch.int32),
            'stamp_ns': torch.tensor(int(a['stamp_ns']), dtype=torch.int64),
        }


def map_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz, each a read-only memory map of its stored (uncompressed) member.

    np.load cannot map members of a zip; the cache writes them stored, so each .npy lies
    verbatim at a known offset of the file. Compressed members are read into memory instead.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, path.open('rb') as raw:
        for info in archive.infolist():
            name = info.filename.removesuffix('.npy')
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            raw.seek(info.header_offset + 26)  # local header: name and extra field lengths
            name_len, extra_len = struct.unpack('<HH', raw.read(4))
            raw.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(raw)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(raw)
            if dtype.hasobject:
                raise ValueError(f'{path}: {info.filename} holds Python objects')
            if int(np.prod(shape)) == 0:
                arrays[name] = np.empty(shape, dtype)
                continue
            mapped = np.memmap(raw.name, dtype=dtype, mode='r', offset=raw.tell(), shape=shape,
                               order='F' if fortran else 'C')
            arrays[name] = mapped.view(np.ndarray)  # plain views: no memmap subclass per item
    return arrays


class ShardGroupedSampler(Sampler[int]):
    """Shuffled shard order, shuffled samples within each shard; `set_epoch` reseeds."""

    def __init__(self, dataset: FusionCacheDataset, seed: int = 0, shuffle: bool = True) -> None:
        self.ranges = dataset.shard_ranges()
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return sum(len(r) for r in self.ranges)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            for r in self.ranges:
                yield from r
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        for s in rng.permutation(len(self.ranges)):
            r = self.ranges[int(s)]
            for j in rng.permutation(len(r)):
                yield r.start + int(j)
