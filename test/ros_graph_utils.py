"""Helpers for tests that run real nodes over DDS: spin until a condition, fixture messages."""

from collections.abc import Callable
import time

import numpy as np


def spin_until(executor, condition: Callable[[], bool], timeout: float) -> bool:
    """Spin `executor` until `condition()` holds or `timeout` [s] passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.01)
    return condition()


def radar_cloud(stamp, points: np.ndarray | None = None):
    """A sim-layout PointCloud2 with a far, static target unless `points` are given."""
    from std_msgs.msg import Header

    from mm_fusion_ros.sensors.pointcloud import create_cloud
    from mm_fusion_ros.sensors.radar_presets import load_preset

    if points is None:
        points = np.array([[60.0, 0.0, 0.5, 0.0, 10.0], [30.0, 3.5, 0.5, 1.0, 5.0]], np.float32)
    header = Header(frame_id='radar')
    header.stamp = stamp
    return create_cloud(header, load_preset('sim').layout_fields(), points)


def rgb_image(stamp, height: int = 128, width: int = 256, seed: int = 0):
    """A random rgb8 Image built the way the publishers build theirs."""
    from mm_fusion_ros.ros.images import rgb_image_msg

    rgb = np.random.default_rng(seed).integers(0, 255, (height, width, 3), np.uint8)
    return rgb_image_msg(rgb, stamp)


def odometry(stamp, speed: float = 10.0):
    """An Odometry message with forward speed `speed` [m/s] (what the fusion node reads)."""
    from nav_msgs.msg import Odometry

    msg = Odometry()
    msg.header.stamp = stamp
    msg.header.frame_id = 'odom'
    msg.child_frame_id = 'base_link'
    msg.twist.twist.linear.x = float(speed)
    return msg
