"""Radar preprocessing: each step, backend agreement, the full pipeline, thread settings."""

import numpy as np
import pytest

from mm_fusion_ros.sensors import radar_preprocess as rp
from mm_fusion_ros.sensors.radar_preprocess import RadarPreprocessConfig

RNG = np.random.default_rng(11)


def cloud(n, rng=RNG):
    lo, hi = [0, -30, -2, -20, -10], [100, 30, 4, 20, 30]
    return rng.uniform(lo, hi, (n, 5)).astype(np.float32)


def test_remove_non_finite():
    pts = cloud(5)
    pts[1, 0], pts[3, 4] = np.nan, np.inf
    out = rp.remove_non_finite(pts)
    np.testing.assert_array_equal(out, pts[[0, 2, 4]])
    clean = cloud(3)
    assert rp.remove_non_finite(clean) is clean


def test_crop_roi_inclusive_bounds():
    cfg = RadarPreprocessConfig(x_min=0, x_max=10, y_min=-1, y_max=1, z_min=0, z_max=1)
    pts = np.array([[0, 0, 0, 1, 1], [10, 1, 1, 1, 1], [10.1, 0, 0, 1, 1], [5, -1.5, 0, 1, 1],
                    [5, 0, -0.1, 1, 1]], np.float32)
    assert rp.crop_roi(pts, cfg).shape[0] == 2


def test_cap_points_keeps_strongest_in_order():
    pts = np.zeros((6, 5), np.float32)
    pts[:, 0] = np.arange(6)
    pts[:, 4] = [3, 9, 1, 8, 2, 7]
    assert rp.cap_points(pts, 3)[:, 0].tolist() == [1, 3, 5]
    assert rp.cap_points(pts, 10) is pts


def test_voxel_numpy_means_every_channel():
    pts = np.array([[0.1, 0.1, 0.1, 2, 10], [0.3, 0.2, 0.4, 4, 20], [1.5, 0, 0, -1, 5]],
                   np.float32)
    out = rp.voxel_downsample_numpy(pts, 1.0)
    out = out[np.argsort(out[:, 0])]
    np.testing.assert_allclose(out, [[0.2, 0.15, 0.25, 3, 15], [1.5, 0, 0, -1, 5]], rtol=1e-6)
    assert rp.voxel_downsample_numpy(pts, 0) is pts
    assert rp.voxel_downsample_numpy(pts[:0], 1.0).shape == (0, 5)


def test_voxel_negative_coordinates_split_at_origin():
    pts = np.array([[-0.1, 0, 0, 1, 1], [0.1, 0, 0, 3, 1]], np.float32)
    assert rp.voxel_downsample_numpy(pts, 1.0).shape[0] == 2


def _sorted_rows(a):
    return a[np.lexsort(a[:, ::-1].T)]


def test_voxel_backends_agree():
    pts = cloud(3000)
    a = rp.voxel_downsample_numpy(pts, 2.0)
    b = rp.voxel_downsample_open3d(pts, 2.0)
    assert a.shape == b.shape
    np.testing.assert_allclose(_sorted_rows(a), _sorted_rows(b), rtol=1e-4, atol=1e-4)
    assert rp.voxel_downsample_open3d(pts, 0) is pts


def test_outlier_backends_agree_and_drop_isolated_points():
    cluster = RNG.normal(0, 0.5, (300, 3)).astype(np.float32) + [20, 0, 0]
    far = np.array([[80, 25, 3], [5, -28, -1]], np.float32)
    xyz = np.concatenate([cluster, far])
    a = rp.statistical_outlier_mask_numpy(xyz, 8, 2.0)
    b = rp.statistical_outlier_mask_open3d(xyz, 8, 2.0)
    np.testing.assert_array_equal(a, b)
    assert not a[-2:].any() and a[:300].mean() > 0.9
    assert rp.statistical_outlier_mask_open3d(xyz[:1], 8, 2.0).tolist() == [True]
    assert rp.statistical_outlier_mask_numpy(xyz[:1], 8, 2.0).tolist() == [True]
    pts = np.concatenate([xyz, np.zeros((len(xyz), 2), np.float32)], 1)
    assert rp.remove_statistical_outliers(pts, 8, 2.0).shape[0] == a.sum()
    assert rp.remove_statistical_outliers(pts, 0, 2.0) is pts


def test_pipeline_bounds_output_and_keeps_channels():
    cfg = RadarPreprocessConfig(voxel_size=1.0, outlier_neighbors=6, max_points=64,
                                max_input_points=5000)
    pts = cloud(50_000)
    pts[::100, 1] = np.nan
    out = rp.preprocess_radar(pts, cfg)
    assert out.shape == (64, 5) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert (out[:, 0] >= cfg.x_min).all() and (out[:, 0] <= cfg.x_max).all()
    assert (np.abs(out[:, 3]) > 0).any()  # velocity survived voxel averaging


def test_pipeline_minimal_and_empty():
    cfg = RadarPreprocessConfig()
    pts = np.array([[5, 0, 0, 1.5, 3], [5, 0, 0, np.nan, 3], [-5, 0, 0, 1, 1]], np.float32)
    np.testing.assert_array_equal(rp.preprocess_radar(pts, cfg), pts[:1])
    assert rp.preprocess_radar(np.zeros((0, 5)), cfg).shape == (0, 5)
    with pytest.raises(ValueError):
        rp.preprocess_radar(np.zeros((4, 3)), cfg)


@pytest.mark.parametrize('kw', [
    {'x_min': 5, 'x_max': 1}, {'voxel_size': -1}, {'voxel_size': float('inf')},
    {'outlier_neighbors': -1}, {'outlier_std_ratio': 0}, {'max_points': 0},
])
def test_bad_config(kw):
    with pytest.raises(ValueError):
        RadarPreprocessConfig(**kw)


def test_configure_threads_sets_torch_and_open3d_together():
    import open3d as o3d
    import torch

    before = (torch.get_num_threads(), o3d.utility.get_max_threads())
    try:
        rp.configure_threads(rp.ThreadConfig(torch_threads=1, open3d_threads=1))
        assert torch.get_num_threads() == 1 and o3d.utility.get_max_threads() == 1
        rp.configure_threads(rp.ThreadConfig(torch_threads=2, open3d_threads=2))
        assert torch.get_num_threads() == 2 and o3d.utility.get_max_threads() == 2
        # Both pools work in one process after the settings (the oversubscription case).
        x = torch.randn(64, 64)
        assert torch.isfinite(x @ x).all()
        assert rp.voxel_downsample_open3d(cloud(500), 5.0).shape[1] == 5
    finally:
        torch.set_num_threads(before[0])
        o3d.utility.set_max_threads(before[1])
