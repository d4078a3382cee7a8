"""Sensor geometry: mounts, radar into the vehicle frame, cameras into the canonical view.

- a yawed, offset radar gives the same vehicle-frame points as a centred one, Doppler kept;
- /tf_static chains (base_link -> mount -> sensor) resolve like tf2, missing ones name frames;
- two cameras of one scene (other resolution, field of view, principal point, pitch, roll,
  distortion) give nearly the same model input after `CanonicalView`;
- a CameraInfo that does not match its image is refused with a reason.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from mm_fusion_ros.sensors.camera_geometry import (
    OPTICAL_IN_BODY,
    CameraInfoError,
    CanonicalView,
    PinholeCamera,
)
from mm_fusion_ros.sensors.extrinsics import (
    IDENTITY,
    Extrinsic,
    StaticTransforms,
    TransformError,
    points_to_vehicle,
    rpy_to_matrix,
)
from mm_fusion_ros.sim.camera import CameraConfig


def _targets(n: int = 50, seed: int = 0) -> np.ndarray:
    """(n, 5) vehicle-frame x, y, z, radial_velocity, rcs."""
    rng = np.random.default_rng(seed)
    pts = np.zeros((n, 5), np.float32)
    pts[:, 0] = rng.uniform(5, 80, n)
    pts[:, 1] = rng.uniform(-10, 10, n)
    pts[:, 2] = rng.uniform(0, 2, n)
    pts[:, 3] = rng.uniform(-20, 5, n)
    pts[:, 4] = rng.uniform(-10, 20, n)
    return pts


def _seen_from(points: np.ndarray, mount: Extrinsic) -> np.ndarray:
    """What a radar at `mount` reports: positions in its own frame, the rest unchanged."""
    out = points.copy()
    out[:, :3] = (points[:, :3] - mount.translation) @ mount.rotation
    return out


def test_a_yawed_offset_radar_gives_the_centred_radars_points():
    targets = _targets()
    mount = Extrinsic(x=3.6, y=-0.4, z=0.5, yaw=math.radians(4.0), pitch=math.radians(1.0))
    raw = _seen_from(targets, mount)
    assert not np.allclose(raw[:, :3], targets[:, :3], atol=0.1)  # the mount matters
    np.testing.assert_allclose(points_to_vehicle(raw, mount), targets, atol=1e-3)
    assert points_to_vehicle(targets, IDENTITY) is targets  # the sim's radar: no copy


def test_over_ground_velocity_columns_rotate_with_the_mount():
    mount = Extrinsic(yaw=math.radians(90.0))
    points = np.array([[10, 0, 0, -1, 5, 2.0, 0.0]], np.float32)  # vx, vy in columns 5, 6
    moved = points_to_vehicle(points, mount, velocity_columns=(5,))
    np.testing.assert_allclose(moved[0, :2], [0, 10], atol=1e-5)
    np.testing.assert_allclose(moved[0, 5:], [0, 2], atol=1e-5)
    assert moved[0, 3] == -1  # radial velocity: a speed along the ray, kept


def _tf(parent: str, child: str, pose: Extrinsic):
    q = _quaternion(pose.rotation)
    return SimpleNamespace(
        header=SimpleNamespace(frame_id=parent), child_frame_id=child,
        transform=SimpleNamespace(
            translation=SimpleNamespace(x=pose.x, y=pose.y, z=pose.z),
            rotation=SimpleNamespace(x=q[0], y=q[1], z=q[2], w=q[3])))


def _quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    w = math.sqrt(max(0.0, 1 + r[0, 0] + r[1, 1] + r[2, 2])) / 2
    return ((r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w),
            (r[1, 0] - r[0, 1]) / (4 * w), w)


def test_static_transform_chains_resolve_like_tf2():
    mount = Extrinsic(x=3.0, z=0.5, yaw=math.radians(10))
    sensor = Extrinsic(y=0.2, yaw=math.radians(-3))
    tree = StaticTransforms()
    tree.add_message(SimpleNamespace(transforms=[_tf('base_link', 'radar_mount', mount),
                                                 _tf('radar_mount', 'radar', sensor),
                                                 _tf('base_link', 'camera', Extrinsic(x=1))]))
    pose = tree.lookup('base_link', 'radar')
    expected = mount.compose(sensor)
    np.testing.assert_allclose(pose.rotation, expected.rotation, atol=1e-9)
    np.testing.assert_allclose(pose.translation, expected.translation, atol=1e-9)
    # Between siblings: the radar in the camera frame.
    between = tree.lookup('camera', 'radar')
    np.testing.assert_allclose(between.translation, expected.translation - [1, 0, 0], atol=1e-9)
    assert tree.lookup('radar', 'radar') == IDENTITY
    with pytest.raises(TransformError, match="no transform from 'lidar'.*frames: "):
        tree.lookup('base_link', 'lidar')


def test_broken_transforms_are_counted_not_kept():
    tree = StaticTransforms()
    bad = _tf('base_link', 'radar', Extrinsic(x=1))
    bad.transform.rotation = SimpleNamespace(x=0.0, y=0.0, z=0.0, w=0.0)
    tree.add_message(bad)
    tree.add_message(_tf('base_link', 'base_link', Extrinsic()))
    assert tree.rejected == 2 and tree.frames == []


# -- cameras ----------------------------------------------------------------------------------
def _sky(rays_body: np.ndarray) -> np.ndarray:
    """A smooth pattern of the viewing direction (rotation-only views are then exact)."""
    d = rays_body / np.linalg.norm(rays_body, axis=1, keepdims=True)
    az, el = np.arctan2(d[:, 1], d[:, 0]), np.arcsin(np.clip(d[:, 2], -1, 1))
    rgb = np.stack([128 + 100 * np.sin(9 * az), 128 + 100 * np.cos(7 * el),
                    128 + 60 * np.sin(5 * az + 4 * el)], axis=1)
    return np.clip(rgb, 0, 255)


def _render(camera: PinholeCamera, mount_rotation: np.ndarray) -> np.ndarray:
    """The pattern as `camera`, mounted with `mount_rotation` (body in vehicle), sees it."""
    optical = camera.rays()
    if camera.distortion:  # iterate the distorted pixel grid back to rays
        optical = _undistort_rays(camera)
    body = optical @ OPTICAL_IN_BODY.T
    rgb = _sky(body @ mount_rotation.T)
    return rgb.reshape(camera.height, camera.width, 3).astype(np.uint8)


def _undistort_rays(camera: PinholeCamera) -> np.ndarray:
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    xd = (u.ravel() + 0.5 - camera.cx) / camera.fx
    yd = (v.ravel() + 0.5 - camera.cy) / camera.fy
    x, y = xd.copy(), yd.copy()
    k1, k2, p1, p2, k3 = camera.distortion
    for _ in range(20):
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / radial, (yd - dy) / radial
    return np.stack([x, y, np.ones_like(x)], axis=1)


@pytest.mark.parametrize('source, rpy', [
    (PinholeCamera(640, 360, 360.0, 360.0, 330.0, 170.0), (0.0, 3.0, 0.0)),
    (PinholeCamera(1600, 900, 1266.0, 1266.0, 816.0, 491.0), (1.0, -2.0, 0.5)),
    (PinholeCamera(800, 600, 520.0, 520.0, 400.0, 300.0, (-0.12, 0.03, 0.001, -0.001, 0.0)),
     (0.0, 2.0, 0.0)),
])
def test_two_rigs_of_one_scene_feed_the_model_the_same_view(source, rpy):
    target = PinholeCamera.from_config(CameraConfig())
    mount = rpy_to_matrix(*(math.radians(a) for a in rpy))
    canonical = _render(target, np.eye(3))
    foreign = _render(source, mount)
    view = CanonicalView(source, target, rotation=mount)(foreign)
    assert view.shape == canonical.shape and view.dtype == np.uint8
    error = np.abs(view.astype(np.float32) - canonical.astype(np.float32))
    # Wide-angle sources cover the whole canonical view: nothing black, small error.
    assert np.median(error) < 3.0 and np.percentile(error, 99) < 25.0, (
        np.median(error), np.percentile(error, 99))
    # Without the geometry (a plain resize) the model would see another picture.
    from PIL import Image

    resized = np.asarray(Image.fromarray(foreign).resize((target.width, target.height)))
    assert np.median(np.abs(resized.astype(np.float32) - canonical)) > 3 * np.median(error)


def test_the_training_camera_passes_through_untouched():
    camera = PinholeCamera.from_config(CameraConfig())
    frame = np.zeros((128, 256, 3), np.uint8)
    assert CanonicalView(camera, camera)(frame) is frame


def test_camera_info_is_read_and_checked():
    info = SimpleNamespace(width=640, height=360, distortion_model='plumb_bob',
                           k=[360.0, 0, 320, 0, 360.0, 180, 0, 0, 1], d=[0.0] * 5)
    camera = PinholeCamera.from_camera_info(info)
    assert (camera.fx, camera.cy, camera.distortion) == (360.0, 180.0, ())
    view = CanonicalView(camera, PinholeCamera.from_config(CameraConfig()))
    with pytest.raises(CameraInfoError) as err:
        view(np.zeros((480, 640, 3), np.uint8))
    assert err.value.reason == 'size_mismatch'
    for broken in (dict(k=[0.0] * 9), dict(k=[1.0] * 4), dict(width=0),
                   dict(k=[math.nan, 0, 320, 0, 360.0, 180, 0, 0, 1])):
        with pytest.raises(CameraInfoError):
            PinholeCamera.from_camera_info(SimpleNamespace(**{**vars(info), **broken}))
