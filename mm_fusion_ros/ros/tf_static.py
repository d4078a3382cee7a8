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
from typing import Any

from mm_fusion_ros.sensors.camera_geometry import OPTICAL_IN_BODY
from mm_fusion_ros.sensors.extrinsics import Extrinsic, matrix_to_quaternion


@dataclass(frozen=True)
class StaticTransform:
    """The pose of frame `child` in frame `parent`: translation [m], unit quaternion."""

    parent: str
    child: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]  # x, y, z, w


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


__all__ = ['StaticTransform', 'broadcast', 'optical_frame',
           'sensor_transforms', 'static_transform', 'to_msgs']
