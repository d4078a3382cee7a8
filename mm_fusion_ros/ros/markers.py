"""RViz markers: radar points coloured by Doppler and the current decision as text."""

from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point
import numpy as np
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from mm_fusion_ros.decision import Decision

DOPPLER_RANGE = 15.0  # [m/s] radial speed that maps to full red (approaching) / blue (receding)


def doppler_colors(radial_velocity: np.ndarray) -> np.ndarray:
    """(N, 4) RGBA: red approaching, grey static, blue receding."""
    t = np.clip(radial_velocity / DOPPLER_RANGE, -1.0, 1.0)
    rgba = np.empty((len(t), 4), np.float32)
    rgba[:, 0] = 0.5 - 0.5 * t
    rgba[:, 1] = 0.5 - 0.5 * np.abs(t)
    rgba[:, 2] = 0.5 + 0.5 * t
    rgba[:, 3] = 1.0
    return rgba


def decision_markers(
    decision: Decision, radar_points: np.ndarray, frame_id: str, stamp: Time
) -> MarkerArray:
    lifetime = Duration(sec=0, nanosec=500_000_000)
    points = Marker(ns='radar', id=0, type=Marker.POINTS, action=Marker.ADD, lifetime=lifetime)
    points.header.frame_id = frame_id
    points.header.stamp = stamp
    points.scale.x = points.scale.y = 0.4
    xyz = np.asarray(radar_points[:, :3], float)
    points.points = [Point(x=x, y=y, z=z) for x, y, z in xyz.tolist()]
    points.colors = [
        ColorRGBA(r=r, g=g, b=b, a=a) for r, g, b, a in doppler_colors(radar_points[:, 3]).tolist()
    ]
    text = Marker(
        ns='decision', id=1, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, lifetime=lifetime
    )
    text.header.frame_id = frame_id
    text.header.stamp = stamp
    text.pose.position.z = 3.0
    text.scale.z = 1.0
    degraded = f' DEGRADED: {decision.degraded_reason}' if decision.degraded else ''
    text.text = (
        f'{decision.action.label} {decision.confidence:.2f} '
        f'a={decision.target_acceleration:+.1f} m/s2{degraded}'
    )
    text.color = (
        ColorRGBA(r=1.0, g=0.3, b=0.3, a=1.0)
        if decision.degraded
        else ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    )
    return MarkerArray(markers=[points, text])
