"""The radar -> image projection of the view (pure numpy).

Frames follow REP 103: `base_link` at the vehicle centre on the ground, x forward, y left,
z up; a sensor frame is its mount (`sensors.extrinsics.Extrinsic`) in `base_link`, with the
same axis convention (the radar reports x forward; the camera's body frame looks along x).
The camera's optical frame (x right, y down, z forward) is what CameraInfo's K projects.
"""

import numpy as np

from mm_fusion_ros.sensors.camera_geometry import OPTICAL_IN_BODY
from mm_fusion_ros.sensors.extrinsics import Extrinsic

BODY_TO_OPTICAL = OPTICAL_IN_BODY.T  # camera body (x forward) -> optical (z forward)


def project_to_image(
    points: np.ndarray,
    camera: Extrinsic,
    k: np.ndarray,
    width: int,
    height: int,
    min_depth: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Project `base_link` points into the image: ((M, 2) pixel u, v; (M,) row indices).

    Pixel coordinates are continuous, (0, 0) the top-left corner of the top-left pixel, so
    pixel (col, row) holds u in [col, col + 1). Points closer than `min_depth` [m] in front of
    the camera (or behind it), outside the image, or not finite are dropped.
    """
    xyz = np.asarray(points, np.float64).reshape(-1, 3)
    optical = camera.from_parent(xyz) @ BODY_TO_OPTICAL.T  # (N, 3)
    depth = optical[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        uvw = optical @ np.asarray(k, np.float64).reshape(3, 3).T  # (N, 3)
        uv = uvw[:, :2] / uvw[:, 2:3]
    keep = (
        (depth > min_depth) & np.isfinite(uv).all(axis=1)
        & (uv[:, 0] >= 0.0) & (uv[:, 0] < width) & (uv[:, 1] >= 0.0) & (uv[:, 1] < height)
    )
    index = np.flatnonzero(keep)
    return uv[index].astype(np.float32), index


def radar_to_image(
    radar_points: np.ndarray,
    radar: Extrinsic,
    camera: Extrinsic,
    k: np.ndarray,
    width: int,
    height: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Canonical radar rows (N, 5+: x, y, z, ... in the radar frame) -> pixels, row indices."""
    pts = np.asarray(radar_points)
    if pts.ndim != 2 or pts.shape[1] < 3 or len(pts) == 0:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.intp)
    return project_to_image(radar.to_parent(pts[:, :3]), camera, k, width, height)
