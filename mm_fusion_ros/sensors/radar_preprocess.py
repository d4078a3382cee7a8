"""Radar frame cleanup before the model: non-finite removal, ROI crop, caps, voxel, outliers.

Input and output are canonical (N, F) float32 arrays (`radar_features`: x, y, z first, rcs at
`rcs_index`). Order, cheapest first so a flood of points is cut before the costly steps:

1. drop rows with NaN/inf (numpy mask);
2. ROI crop (numpy mask);
3. cap to `max_input_points`, strongest rcs kept (numpy argpartition, O(N));
4. voxel downsample, mean of every channel per voxel (velocity and rcs survive);
5. statistical outlier removal;
6. cap to `max_points` (the model's budget), strongest rcs kept.

Backends, chosen by measurement (`bench/sensor_decode.py`; 2 shared cores, 2 threads):
- voxel downsampling: numpy (1-D voxel key, one stable sort, `np.add.reduceat` over all
  channels): 0.08 / 0.6 / 8 ms at 500 / 5k / 50k points against 0.27 / 2.1 / 24 ms for
  Open3D's tensor `voxel_down_sample` (the only Open3D API that carries extra channels
  through; the legacy API drops them), same voxels and means;
- statistical outlier removal: Open3D's KD-tree (`o3d.t.geometry.PointCloud.
  remove_statistical_outliers`): 0.36 ms at 500 points, 6 ms at 5k, against 4 / 360 ms for
  an exact brute-force numpy k-NN (no scipy here); they only tie near 200 points, so Open3D;
- NaN/inf removal, ROI crop, caps: numpy masks / argpartition (under 1 ms at 50k points;
  a round trip through Open3D tensors alone costs more).
The numpy outlier mask is kept as the reference the tests compare Open3D against.
"""

from dataclasses import dataclass
import math

import numpy as np

from mm_fusion_ros.sensors.radar_features import CANONICAL_RADAR_FEATURES

RCS_INDEX = CANONICAL_RADAR_FEATURES.index('rcs')


@dataclass(frozen=True)
class RadarPreprocessConfig:
    """Radar cleanup parameters; units in brackets, 0 disables a step where noted."""

    x_min: float = 0.0        # [m] ROI in the radar frame (x forward, y left, z up)
    x_max: float = 100.0      # [m]
    y_min: float = -30.0      # [m]
    y_max: float = 30.0       # [m]
    z_min: float = -3.0       # [m]
    z_max: float = 5.0        # [m]
    voxel_size: float = 0.0   # [m] edge of the voxel grid; 0 disables
    outlier_neighbors: int = 0     # k for statistical outlier removal (self included); 0 disables
    outlier_std_ratio: float = 2.0  # keep mean k-NN distance < mean + ratio * std
    max_input_points: int = 20000  # cap before voxel/outliers, bounds their cost
    max_points: int = 512          # cap on the output (model budget)
    rcs_index: int = RCS_INDEX     # column ranked by the caps

    def __post_init__(self) -> None:
        for lo, hi in (('x_min', 'x_max'), ('y_min', 'y_max'), ('z_min', 'z_max')):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f'{lo} > {hi} in RadarPreprocessConfig')
        if self.voxel_size < 0 or not math.isfinite(self.voxel_size):
            raise ValueError(f'voxel_size must be finite and >= 0, got {self.voxel_size}')
        if self.outlier_neighbors < 0 or self.outlier_std_ratio <= 0:
            raise ValueError('outlier_neighbors must be >= 0 and outlier_std_ratio > 0')
        if self.max_points < 1 or self.max_input_points < 1:
            raise ValueError('max_points and max_input_points must be >= 1')


@dataclass(frozen=True)
class ThreadConfig:
    """Thread budgets; torch's OpenMP and Open3D's TBB pools oversubscribe small CPUs."""

    torch_threads: int = 1
    torch_interop_threads: int = 1
    open3d_threads: int = 1


def configure_threads(config: ThreadConfig) -> None:
    """Apply `config` to torch and Open3D; call once at startup, before any model run.

    torch refuses to change the inter-op pool after parallel work has started; that case is
    left as it is (the intra-op count, which matters most, still applies).
    """
    import open3d as o3d
    import torch

    torch.set_num_threads(max(1, config.torch_threads))
    try:
        torch.set_num_interop_threads(max(1, config.torch_interop_threads))
    except RuntimeError:
        pass
    o3d.utility.set_max_threads(max(0, config.open3d_threads))


def remove_non_finite(points: np.ndarray) -> np.ndarray:
    """Rows with NaN/inf in any channel removed (drivers emit NaN for invalid detections)."""
    keep = np.isfinite(points).all(axis=1)
    return points if keep.all() else points[keep]


def crop_roi(points: np.ndarray, config: RadarPreprocessConfig) -> np.ndarray:
    """Rows inside the axis-aligned ROI box (bounds inclusive)."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    keep = ((x >= config.x_min) & (x <= config.x_max) & (y >= config.y_min)
            & (y <= config.y_max) & (z >= config.z_min) & (z <= config.z_max))
    return points if keep.all() else points[keep]


def cap_points(points: np.ndarray, max_points: int, rcs_index: int = RCS_INDEX) -> np.ndarray:
    """At most `max_points` rows, the strongest rcs kept, in their original order."""
    if points.shape[0] <= max_points:
        return points
    top = np.argpartition(-points[:, rcs_index], max_points - 1)[:max_points]
    return points[np.sort(top)]


def voxel_downsample_numpy(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """One row per occupied voxel (grid aligned at the origin), every channel averaged."""
    if points.shape[0] == 0 or voxel_size <= 0:
        return points
    cells = np.floor(points[:, :3] / voxel_size).astype(np.int64)
    cells -= cells.min(axis=0)
    dims = cells.max(axis=0) + 1
    key = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
    order = np.argsort(key, kind='stable')
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    sums = np.add.reduceat(points[order].astype(np.float64), starts, axis=0)
    counts = np.diff(np.r_[starts, key.size])
    return (sums / counts[:, None]).astype(np.float32)


def voxel_downsample_open3d(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Same as `voxel_downsample_numpy` through Open3D's tensor API (kept for the bench)."""
    if points.shape[0] == 0 or voxel_size <= 0:
        return points
    import open3d as o3d

    pts = np.ascontiguousarray(points, dtype=np.float32)
    pcd = o3d.t.geometry.PointCloud(o3d.core.Tensor.from_numpy(np.ascontiguousarray(pts[:, :3])))
    pcd.point['extra'] = o3d.core.Tensor.from_numpy(np.ascontiguousarray(pts[:, 3:]))
    down = pcd.voxel_down_sample(voxel_size)
    return np.concatenate(
        [down.point.positions.numpy(), down.point['extra'].numpy()], axis=1).astype(np.float32)


def _outlier_keep(mean_dist: np.ndarray, std_ratio: float) -> np.ndarray:
    # Open3D's rule: sample std over the per-point mean distances.
    mu = mean_dist.mean()
    sd = mean_dist.std(ddof=1) if mean_dist.size > 1 else 0.0
    return mean_dist < mu + std_ratio * sd


def statistical_outlier_mask_numpy(
    xyz: np.ndarray, neighbors: int, std_ratio: float, chunk: int = 512,
) -> np.ndarray:
    """Keep-mask by mean distance to the `neighbors` nearest points (self included).

    Exact brute force in row chunks (memory chunk * N), O(N^2): the test reference.
    """
    n = xyz.shape[0]
    k = min(neighbors, n)
    if n <= 1 or k <= 1:
        return np.ones(n, bool)
    xyz = xyz.astype(np.float64)
    sq = (xyz * xyz).sum(1)
    mean_dist = np.empty(n)
    for start in range(0, n, chunk):
        block = xyz[start:start + chunk]
        d2 = sq[start:start + chunk, None] + sq[None, :] - 2.0 * block @ xyz.T
        np.maximum(d2, 0.0, out=d2)
        near = np.partition(d2, k - 1, axis=1)[:, :k]
        near[np.arange(len(block)), np.argmin(near, axis=1)] = 0.0  # self, free of rounding
        mean_dist[start:start + chunk] = np.sqrt(near).mean(1)
    return _outlier_keep(mean_dist, std_ratio)


def statistical_outlier_mask_open3d(
    xyz: np.ndarray, neighbors: int, std_ratio: float,
) -> np.ndarray:
    """Keep-mask from Open3D's KD-tree statistical outlier removal (tensor API)."""
    n = xyz.shape[0]
    if n <= 1 or min(neighbors, n) <= 1:
        return np.ones(n, bool)
    import open3d as o3d

    pcd = o3d.t.geometry.PointCloud(
        o3d.core.Tensor.from_numpy(np.ascontiguousarray(xyz, dtype=np.float32)))
    _, mask = pcd.remove_statistical_outliers(min(neighbors, n), std_ratio)
    return mask.numpy().astype(bool)


def remove_statistical_outliers(
    points: np.ndarray, neighbors: int, std_ratio: float,
) -> np.ndarray:
    """Rows whose neighbourhood is not abnormally sparse (Open3D KD-tree, see module doc)."""
    if neighbors <= 1 or points.shape[0] <= 1:
        return points
    return points[statistical_outlier_mask_open3d(points[:, :3], neighbors, std_ratio)]


def preprocess_radar(points: np.ndarray, config: RadarPreprocessConfig) -> np.ndarray:
    """Canonical (N, F) float32 -> cleaned (M, F) float32 with M <= `config.max_points`."""
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] < 3 or points.shape[1] <= config.rcs_index:
        raise ValueError(f'expected (N, F) radar points with F > {config.rcs_index},'
                         f' got {points.shape}')
    points = remove_non_finite(points)
    points = crop_roi(points, config)
    points = cap_points(points, config.max_input_points, config.rcs_index)
    if config.voxel_size > 0:
        points = voxel_downsample_numpy(points, config.voxel_size)
    if config.outlier_neighbors > 1:
        points = remove_statistical_outliers(
            points, config.outlier_neighbors, config.outlier_std_ratio)
    return cap_points(points, config.max_points, config.rcs_index)
