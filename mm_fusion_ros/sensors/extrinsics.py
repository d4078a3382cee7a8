"""Sensor mounts: where each sensor sits on the vehicle, and its points in the vehicle frame.

An `Extrinsic` is the pose of a sensor frame in the vehicle frame (`base_link`, or a preset's
own name for it): translation [m] and roll/pitch/yaw [rad] (fixed axes x, y, z, as in tf2's
`setRPY`). It comes from `/tf_static` (`StaticTransforms`, fed by a bag through rosbags or
live by tf2 where a ROS distro provides it) or from parameters when a rig publishes no TF.

Radar points move into the vehicle frame before features, history, the TTC corridor and the
markers (`points_to_vehicle`): positions are rotated and translated, over-ground velocity
columns rotated; the radial (Doppler) velocity is a speed along the sensor-to-target ray, a
direction that does not depend on the frame, so it keeps its value. Pure numpy, no rclpy.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
import math
from typing import Any

import numpy as np


class TransformError(ValueError):
    """A transform that is missing or malformed (non-finite, zero rotation, a loop)."""


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """3x3 rotation of a unit quaternion (normalised here; zero or non-finite refused)."""
    q = np.array([x, y, z, w], np.float64)
    norm = float(np.linalg.norm(q))
    if not math.isfinite(norm) or norm < 1e-9:
        raise TransformError(f'rotation quaternion {tuple(q)} is zero or not finite')
    x, y, z, w = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a 3x3 rotation, w >= 0."""
    r = np.asarray(r, np.float64)
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = ((r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, s / 4)
    else:
        i = int(np.argmax([r[0, 0], r[1, 1], r[2, 2]]))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        v = [0.0, 0.0, 0.0]
        v[i] = s / 4
        v[j] = (r[j, i] + r[i, j]) / s
        v[k] = (r[k, i] + r[i, k]) / s
        q = (*v, (r[k, j] - r[j, k]) / s)
    x, y, z, w = (float(c) for c in q)
    return (-x, -y, -z, -w) if w < 0 else (x, y, z, w)


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll), tf2's convention."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def matrix_to_rpy(rotation: np.ndarray) -> tuple[float, float, float]:
    r = np.asarray(rotation, np.float64)
    pitch = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    return math.atan2(r[2, 1], r[2, 2]), pitch, math.atan2(r[1, 0], r[0, 0])


@dataclass(frozen=True)
class Extrinsic:
    """Pose of a sensor frame in the vehicle frame: translation [m], roll/pitch/yaw [rad]."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        values = (self.x, self.y, self.z, self.roll, self.pitch, self.yaw)
        if not all(math.isfinite(v) for v in values):
            raise TransformError(f'extrinsic {values} is not finite')

    @classmethod
    def from_values(cls, values: Sequence[float]) -> 'Extrinsic':
        """From [x, y, z, roll, pitch, yaw] (a node parameter)."""
        if len(values) != 6:
            raise TransformError(f'a mount is [x, y, z, roll, pitch, yaw], got {list(values)}')
        return cls(*(float(v) for v in values))

    @property
    def values(self) -> list[float]:
        return [self.x, self.y, self.z, self.roll, self.pitch, self.yaw]

    @classmethod
    def from_matrix(cls, rotation: np.ndarray, translation: Sequence[float]) -> 'Extrinsic':
        roll, pitch, yaw = matrix_to_rpy(rotation)
        tx, ty, tz = (float(v) for v in translation)
        return cls(tx, ty, tz, roll, pitch, yaw)

    @property
    def rotation(self) -> np.ndarray:
        return rpy_to_matrix(self.roll, self.pitch, self.yaw)

    @property
    def translation(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z], np.float64)

    @property
    def is_identity(self) -> bool:
        return not any((self.x, self.y, self.z, self.roll, self.pitch, self.yaw))

    def to_parent(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points in this frame -> the parent frame (float64)."""
        return np.asarray(points, np.float64) @ self.rotation.T + self.translation

    def from_parent(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points in the parent frame -> this frame (float64)."""
        return (np.asarray(points, np.float64) - self.translation) @ self.rotation

    def compose(self, child: 'Extrinsic') -> 'Extrinsic':
        """The pose of `child` (given in this frame) in this frame's parent."""
        rotation = self.rotation @ child.rotation
        return Extrinsic.from_matrix(rotation, self.rotation @ child.translation
                                     + self.translation)


IDENTITY = Extrinsic()


def points_to_vehicle(points: np.ndarray, extrinsic: Extrinsic,
                      velocity_columns: Sequence[int] = ()) -> np.ndarray:
    """(N, F) canonical points with x, y, z in columns 0-2 moved into the vehicle frame.

    `velocity_columns` name planar (vx, vy) column pairs (over-ground velocity) to rotate
    too; the radial velocity and rcs keep their values. Returns `points` itself for the
    identity mount (the simulator's radar), else a new array.
    """
    if extrinsic.is_identity or len(points) == 0:
        return points
    rotation = extrinsic.rotation.astype(np.float32)
    out = np.array(points, np.float32, copy=True)
    out[:, :3] = points[:, :3] @ rotation.T + extrinsic.translation.astype(np.float32)
    for vx in velocity_columns:
        planar = np.zeros((len(points), 3), np.float32)
        planar[:, :2] = points[:, vx:vx + 2]
        out[:, vx:vx + 2] = (planar @ rotation.T)[:, :2]
    return out


# -- /tf_static -------------------------------------------------------------------------------
def _transform_of(msg: Any) -> tuple[str, str, Extrinsic]:
    """(parent, child, pose of child in parent) of a geometry_msgs/TransformStamped."""
    t, r = msg.transform.translation, msg.transform.rotation
    rotation = quaternion_to_matrix(float(r.x), float(r.y), float(r.z), float(r.w))
    translation = (float(t.x), float(t.y), float(t.z))
    if not all(math.isfinite(v) for v in translation):
        raise TransformError(f'translation {translation} is not finite')
    parent = str(msg.header.frame_id).lstrip('/')
    child = str(msg.child_frame_id).lstrip('/')
    if not parent or not child or parent == child:
        raise TransformError(f'transform {parent!r} -> {child!r} has no or equal frame names')
    return parent, child, Extrinsic.from_matrix(rotation, translation)


class StaticTransforms:
    """The static transform tree (`/tf_static`), looked up the way tf2 does, without tf2."""

    def __init__(self) -> None:
        self._edges: dict[str, tuple[str, Extrinsic]] = {}  # child -> (parent, pose)
        self.rejected = 0

    def add_message(self, msg: Any) -> None:
        """A tf2_msgs/TFMessage (its `transforms`) or a single TransformStamped."""
        for transform in getattr(msg, 'transforms', [msg]):
            try:
                parent, child, pose = _transform_of(transform)
            except (TransformError, AttributeError, TypeError, ValueError):
                self.rejected += 1
                continue
            self._edges[child] = (parent, pose)

    @property
    def frames(self) -> list[str]:
        return sorted(set(self._edges) | {p for p, _ in self._edges.values()})

    def _ancestors(self, frame: str) -> dict[str, Extrinsic]:
        """{frame or one of its ancestors: the pose of `frame` in it}, nearest first."""
        poses = {frame: IDENTITY}
        pose = IDENTITY
        while frame in self._edges:
            parent, edge = self._edges[frame]
            pose = edge.compose(pose)
            if parent in poses:
                raise TransformError(f'transform loop through {parent!r}')
            poses[parent] = pose
            frame = parent
        return poses

    def lookup(self, target: str, source: str) -> Extrinsic:
        """The pose of frame `source` in frame `target` (tf2's lookupTransform order)."""
        source_in = self._ancestors(source.lstrip('/'))
        target_in = self._ancestors(target.lstrip('/'))
        for common, source_pose in source_in.items():
            if common in target_in:
                return _relative(target_in[common], source_pose)
        raise TransformError(
            f'no transform from {source!r} to {target!r} in /tf_static'
            f' (frames: {self.frames or "none"})')


def _relative(target_in_common: Extrinsic, source_in_common: Extrinsic) -> Extrinsic:
    """Pose of the source in the target frame, both given in a common frame."""
    r_t = target_in_common.rotation
    rotation = r_t.T @ source_in_common.rotation
    translation = r_t.T @ (source_in_common.translation - target_in_common.translation)
    return Extrinsic.from_matrix(rotation, translation)


def static_transforms(messages: Iterable[Any]) -> StaticTransforms:
    tree = StaticTransforms()
    for msg in messages:
        tree.add_message(msg)
    return tree


__all__ = ['IDENTITY', 'Extrinsic', 'StaticTransforms', 'TransformError', 'points_to_vehicle',
           'matrix_to_quaternion', 'quaternion_to_matrix', 'rpy_to_matrix',
           'static_transforms']
