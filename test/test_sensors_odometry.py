"""Ego speed from Odometry: validation and the reading that belongs to a camera stamp."""

import math
from types import SimpleNamespace

import pytest

from mm_fusion_ros.sensors.odometry import EgoSpeedBuffer, OdometryError, forward_speed

MS = 1_000_000


def odom(speed: float, stamp_ns: int = 0) -> SimpleNamespace:
    stamp = SimpleNamespace(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    linear = SimpleNamespace(x=speed, y=0.0, z=0.0)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp),
                           twist=SimpleNamespace(twist=SimpleNamespace(linear=linear)))


def test_forward_speed_reads_body_x_and_rejects_garbage():
    assert forward_speed(odom(12.5)) == 12.5
    assert forward_speed(odom(-1.0)) == -1.0  # reversing
    for bad in (math.nan, math.inf, -math.inf, 1e6):
        with pytest.raises(OdometryError):
            forward_speed(odom(bad))


def test_buffer_gives_newest_reading_not_after_the_stamp():
    buf = EgoSpeedBuffer(max_age=0.2)
    assert buf.at(0) is None
    for i, v in enumerate((10.0, 11.0, 12.0)):
        buf.push(i * 50 * MS, v)
    assert buf.at(50 * MS) == 11.0
    assert buf.at(70 * MS) == 11.0
    assert buf.at(40 * MS) == 10.0
    assert buf.at(-1) is None  # nothing at or before
    assert buf.at(100 * MS + 200 * MS) == 12.0  # exactly max_age old
    assert buf.at(100 * MS + 201 * MS) is None  # stale
    assert buf.at(90 * MS, tolerance_ns=10 * MS) == 12.0


def test_buffer_ignores_late_readings_and_resets_on_a_backwards_jump():
    buf = EgoSpeedBuffer(max_age=0.2)
    buf.push(1000 * MS, 5.0)
    buf.push(990 * MS, 4.0)  # late, within the window: ignored
    assert buf.at(1000 * MS) == 5.0
    buf.push(10 * MS, 1.0)  # bag loop
    assert buf.at(1000 * MS) is None  # only the post-jump reading is left, 990 ms old
    assert buf.at(10 * MS) == 1.0


def test_push_msg_uses_the_header_stamp():
    buf = EgoSpeedBuffer()
    assert buf.push_msg(odom(3.0, 2_000_000_000)) == 3.0
    assert buf.at(2_000_000_000) == 3.0
    with pytest.raises(OdometryError):
        buf.push_msg(odom(math.nan, 2_050_000_000))
