"""Ego speed from nav_msgs/Odometry, and which reading belongs to a camera frame.

The model takes the ego's forward speed as an input (see `model/fusion.py`). Odometry is the
vehicle stack's standard carrier: `twist.twist.linear.x` is the speed along the body x axis
(REP 103/105: twist in `child_frame_id`, x forward), negative when reversing.
"""

from bisect import bisect_right
from collections import deque
import math
from typing import Any

from mm_fusion_ros.sensors.errors import SensorDecodeError
from mm_fusion_ros.sensors.sync import msg_stamp_ns

NS = 1_000_000_000


class OdometryError(SensorDecodeError):
    """An odometry message whose speed cannot be used (NaN, inf or implausible)."""


def forward_speed(msg: Any, max_speed: float = 100.0) -> float:
    """Forward speed [m/s] of an Odometry message; raises OdometryError when unusable."""
    try:
        speed = float(msg.twist.twist.linear.x)
    except (AttributeError, TypeError, ValueError, OverflowError) as e:
        raise OdometryError(f'unreadable odometry speed: {e}', 'bad_message') from e
    if not math.isfinite(speed):
        raise OdometryError(f'odometry speed {speed!r} m/s is not finite', 'non_finite')
    if abs(speed) > max_speed:
        raise OdometryError(f'odometry speed {speed!r} m/s is above {max_speed}',
                            'out_of_range')
    return speed


class EgoSpeedBuffer:
    """Recent (stamp, speed) readings; `at(stamp)` is the newest one not after the stamp.

    A reading older than `max_age` seconds before the stamp counts as missing (None), as does
    one only available after it, so a camera frame never uses a speed from its future.
    """

    def __init__(self, max_age: float = 0.2, capacity: int = 64) -> None:
        self.max_age_ns = round(max_age * NS)
        self._stamps: deque[int] = deque(maxlen=capacity)
        self._speeds: deque[float] = deque(maxlen=capacity)

    def push(self, stamp_ns: int, speed: float) -> None:
        if self._stamps and stamp_ns < self._stamps[-1]:
            if self._stamps[-1] - stamp_ns > self.max_age_ns:
                self.clear()  # clock went backwards (bag loop): old readings mean nothing
            else:
                return  # late reading within the window: the newer one stands
        self._stamps.append(stamp_ns)
        self._speeds.append(speed)

    def push_msg(self, msg: Any) -> float:
        speed = forward_speed(msg)
        self.push(msg_stamp_ns(msg), speed)
        return speed

    def at(self, stamp_ns: int, tolerance_ns: int = 0) -> float | None:
        """Speed at a camera stamp (readings up to `tolerance_ns` after it count)."""
        i = bisect_right(self._stamps, stamp_ns + tolerance_ns) - 1
        if i < 0 or stamp_ns - self._stamps[i] > self.max_age_ns:
            return None
        return self._speeds[i]

    def clear(self) -> None:
        self._stamps.clear()
        self._speeds.clear()
