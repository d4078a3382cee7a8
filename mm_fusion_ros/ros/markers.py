"""RViz markers: radar points coloured by Doppler, the current decision, the radar tracks."""

from collections.abc import Sequence
import math

from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point
import numpy as np
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from mm_fusion_ros.decision import Decision
from mm_fusion_ros.tracking import Track

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


def track_markers(
    track_ttcs: Sequence[tuple[Track, float]], ttc_threshold: float, frame_id: str, stamp: Time,
) -> MarkerArray:
    """Confirmed radar tracks as boxes with id, relative speed and TTC; red below the threshold.

    The first marker deletes the previous frame's (ns 'tracks'), so a dropped track disappears
    at once instead of lingering for the lifetime.
    """
    clear = Marker(ns='tracks', id=0, action=Marker.DELETEALL)
    clear.header.frame_id = frame_id
    markers = [clear]
    for track, ttc in track_ttcs:
        threat = ttc < ttc_threshold
        color = (ColorRGBA(r=1.0, g=0.2, b=0.2, a=0.8) if threat
                 else ColorRGBA(r=0.2, g=0.8, b=1.0, a=0.6))
        depth = max(2.0 * (track.x - track.near_x), 0.5)
        box = Marker(ns='tracks', id=2 * track.track_id + 1, type=Marker.CUBE,
                     action=Marker.ADD, color=color)
        box.pose.position.x = float(track.near_x + 0.5 * depth)
        box.pose.position.y = float(0.5 * (track.y_low + track.y_high))
        box.pose.position.z = 0.75
        box.pose.orientation.w = 1.0
        box.scale.x, box.scale.y, box.scale.z = depth, max(track.y_high - track.y_low, 0.5), 1.5
        label = Marker(ns='tracks', id=2 * track.track_id + 2, type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD, color=color)
        label.pose.position.x, label.pose.position.y = float(track.x), float(track.y)
        label.pose.position.z = 2.0
        label.scale.z = 0.6
        ttc_text = f'{ttc:.1f} s' if math.isfinite(ttc) else '-'
        label.text = f'#{track.track_id} {track.vx:+.1f} m/s TTC {ttc_text}'
        for m in (box, label):
            m.header.frame_id, m.header.stamp = frame_id, stamp
        markers += [box, label]
    return MarkerArray(markers=markers)
