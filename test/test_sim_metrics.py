"""Episode metrics on constructed trajectories."""

import math

import numpy as np

from mm_fusion_ros.sim.metrics import (
    MetricsRecorder,
    boxes_overlap,
    crossed_red,
    rms_jerk,
)
from mm_fusion_ros.sim.world import Actor, ActorKind, LightState


def test_constructed_trajectory():
    dt = 0.1
    rec = MetricsRecorder(dt, x0=5.0)
    accel = [0.0, 1.0, 2.0, 2.0, 0.0]
    ttc = [math.inf, 4.0, 2.5, 3.0, math.inf]
    x = [5.0, 6.0, 8.0, 11.0, 15.0]
    for i in range(5):
        rec.update(x[i], 10.0, accel[i], ttc[i], collision=(i == 3),
                   red_light_violation=False)
    m = rec.result()
    assert m.collision and not m.red_light_violation
    assert m.min_ttc == 2.5 and m.progress == 10.0 and m.frames == 5
    assert math.isclose(m.duration, 0.4)
    jerk = np.array([10.0, 10.0, 0.0, -20.0])
    assert math.isclose(m.rms_jerk, float(np.sqrt(np.mean(jerk ** 2))))


def test_rms_jerk_ignores_standstill_and_red_crossing():
    assert rms_jerk(np.array([0.0, 0.0, 0.0]), 0.05) == 0.0
    assert rms_jerk(np.array([-8.0, 0.0, 0.0]), 0.05, np.array([False, False, True])) == 0.0
    assert crossed_red(9.5, 10.5, 10.0, LightState.RED)
    assert not crossed_red(9.5, 10.5, 10.0, LightState.YELLOW)
    assert not crossed_red(10.5, 11.5, 10.0, LightState.RED)


def test_boxes_overlap():
    a = Actor(ActorKind.CAR, x=10.0, y=0.0, speed=0.0, length=4.0, width=2.0, height=1.5)
    assert boxes_overlap(6.5, 0.0, 4.0, 2.0, a)
    assert not boxes_overlap(5.5, 0.0, 4.0, 2.0, a)
    assert not boxes_overlap(10.0, 2.5, 4.0, 2.0, a)
