"""Training data: the sharded .npz cache built from bags or the simulator, and its Dataset.

`cache` is pure numpy (no torch); `dataset` (FusionCacheDataset) imports torch.
"""

from mm_fusion_ros.data.cache import (
    CacheConfig,
    CacheResult,
    build_cache_from_bags,
    build_cache_from_sim,
    load_manifest,
    verify_cache,
)

__all__ = ['CacheConfig', 'CacheResult', 'build_cache_from_bags', 'build_cache_from_sim',
           'load_manifest', 'verify_cache']
