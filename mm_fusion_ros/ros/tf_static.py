"""Static transforms of the sensor frames, for RViz, Foxglove and tf2 consumers.

`sensor_transforms` builds the (parent, child, translation, quaternion) values of a rig's
sensor frames: vehicle -> camera (body, x forward) -> camera optical frame (z forward, x right,
y down, REP-103), vehicle -> radar. `to_msgs` turns them into geometry_msgs/TransformStamped
(in the ROS wheels, so tested everywhere); `broadcast` sends them on /tf_static through tf2_ros'
StaticTransformBroadcaster where tf2_ros is importable (a ROS distro; not among the ROS
wheels on PyPI) and returns None elsewhere.
"""

from collections.abc import Sequence
from dataclasses import dataclass
import math
from typing import Any

import numpy as np

from mm_fusion_ros.sensors.camera_geometry import OPTICAL_IN_BODY
from mm_fusion_ros.sensors.extrinsics import Extrinsic


@dataclass(frozen=True)
class StaticTransform:
    """The pose of frame `child` in frame `parent`: translation [m], unit quaternion."""

    parent: str
    child: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]  # x, y, z, w


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


def static_transform(parent: str, child: str, pose: Extrinsic) -> StaticTransform:
    return StaticTransform(parent, child, tuple(float(v) for v in pose.translation),
                           matrix_to_quaternion(pose.rotation))


def optical_frame(camera_frame: str) -> str:
    return f'{camera_frame}_optical_frame'


def sensor_transforms(vehicle_frame: str, camera_frame: str, camera_mount: Extrinsic,
                      radar_frames: Sequence[tuple[str, Extrinsic]]) -> list[StaticTransform]:
    """Vehicle -> camera -> camera optical frame, vehicle -> each radar."""
    optical = Extrinsic.from_matrix(OPTICAL_IN_BODY, (0.0, 0.0, 0.0))
    out = [static_transform(vehicle_frame, camera_frame, camera_mount),
           static_transform(camera_frame, optical_frame(camera_frame), optical)]
    out += [static_transform(vehicle_frame, frame, mount) for frame, mount in radar_frames]
    return out


def to_msgs(transforms: Sequence[StaticTransform], stamp: Any) -> list:
    """geometry_msgs/TransformStamped messages (what /tf_static carries in a TFMessage)."""
    from geometry_msgs.msg import TransformStamped

    out = []
    for t in transforms:
        msg = TransformStamped()
        msg.header.stamp = stamp
        msg.header.frame_id = t.parent
        msg.child_frame_id = t.child
        tr, rot = msg.transform.translation, msg.transform.rotation
        tr.x, tr.y, tr.z = t.translation
        rot.x, rot.y, rot.z, rot.w = t.rotation
        out.append(msg)
    return out


def broadcast(node: Any, transforms: Sequence[StaticTransform]) -> Any:
    """Send `transforms` on /tf_static; the broadcaster, or None without tf2_ros."""
    try:
        from tf2_ros.static_transform_broadcaster import StaticTransformBroadcaster
    except ImportError:
        return None
    broadcaster = StaticTransformBroadcaster(node)
    broadcaster.sendTransform(to_msgs(transforms, node.get_clock().now().to_msg()))
    return broadcaster


__all__ = ['StaticTransform', 'broadcast', 'matrix_to_quaternion', 'optical_frame',
           'sensor_transforms', 'static_transform', 'to_msgs']
