"""The ego's acceleration out of a radar history: ground frame, or as if it held its speed."""

from types import SimpleNamespace

import numpy as np
import pytest

from mm_fusion_ros.model.config import FusionModelConfig
from mm_fusion_ros.pipeline import FusionPipeline
from mm_fusion_ros.sensors.ego_motion import compensate_ego_motion, frame_speeds
from mm_fusion_ros.sensors.odometry import EgoSpeedBuffer
from mm_fusion_ros.sensors.radar_sequence import RadarSequence

S = 1_000_000_000
T, N = 8, 4
DT = 0.05  # [s] radar period
V0, ACCEL = 14.0, -6.0  # ego speed at the camera stamp [m/s], constant braking [m/s^2]


def ego_at(t):
    """(position, speed) of the braking ego t s relative to the camera stamp (t <= 0)."""
    return V0 * t + 0.5 * ACCEL * t * t, V0 + ACCEL * t


def braking_sequence(target_speed=0.0, target_x=40.0, target_y=3.0):
    """What a radar on the braking ego saw of one target (ground x at t=0 `target_x`)."""
    seq = RadarSequence.empty(T, N, 5)
    speeds = np.zeros(T, np.float32)
    for slot in range(T):
        t = -DT * (T - 1 - slot)
        ego_x, ego_v = ego_at(t)
        p = np.array([target_x + target_speed * t - ego_x, target_y, 0.5])
        seq.points[slot, 0, :3] = p
        seq.points[slot, 0, 3] = (target_speed - ego_v) * p[0] / np.linalg.norm(p)
        seq.points[slot, 0, 4] = 10.0
        seq.point_mask[slot, 0] = True
        seq.frame_mask[slot] = True
        seq.time_offsets[slot] = t
        speeds[slot] = ego_v
    return seq, speeds


def test_ground_mode_static_return_stands_still_with_zero_doppler():
    seq, speeds = braking_sequence()
    raw_x = seq.points[:, 0, 0]
    assert raw_x[0] - raw_x[-1] > 4.0  # raw, the ego's approach shows
    out = compensate_ego_motion(seq, speeds, V0, 'ground')
    np.testing.assert_allclose(out.points[:, 0, 0], 40.0, atol=1e-4)
    np.testing.assert_allclose(out.points[:, 0, 3], 0.0, atol=1e-4)
    np.testing.assert_array_equal(out.points[:, 0, [1, 2, 4]], seq.points[:, 0, [1, 2, 4]])
    assert seq.points[0, 0, 0] == raw_x[0]  # the input is not modified


def test_ground_mode_moving_target_keeps_its_ground_motion():
    seq, speeds = braking_sequence(target_speed=10.0, target_y=0.0)
    out = compensate_ego_motion(seq, speeds, V0, 'ground')
    p = seq.points[:, 0, :3]
    radial = 10.0 * p[:, 0] / np.linalg.norm(p, axis=1)  # its ground speed along the ray
    np.testing.assert_allclose(out.points[:, 0, 3], radial, atol=1e-4)
    expected = 40.0 + 10.0 * seq.time_offsets  # where it was, in the camera-time ego frame
    np.testing.assert_allclose(out.points[:, 0, 0], expected, atol=1e-4)


def test_current_speed_mode_shows_a_braking_ego_as_one_that_held_its_speed():
    braking, speeds = braking_sequence(target_speed=10.0)
    out = compensate_ego_motion(braking, speeds, V0, 'current_speed')
    # the same target seen from an ego that drove at V0 throughout
    held = RadarSequence.empty(T, N, 5)
    for slot in range(T):
        t = float(braking.time_offsets[slot])
        p = np.array([40.0 + 10.0 * t - V0 * t, 3.0, 0.5])
        held.points[slot, 0, :3] = p
        held.points[slot, 0, 3] = (10.0 - V0) * p[0] / np.linalg.norm(p)
    np.testing.assert_allclose(out.points[:, 0, 0], held.points[:, 0, 0], atol=1e-4)
    np.testing.assert_allclose(out.points[:, 0, 3], held.points[:, 0, 3], atol=2e-3)
    # at constant speed the history is left as measured
    steady = compensate_ego_motion(braking, np.full(T, V0, np.float32), V0, 'current_speed')
    np.testing.assert_allclose(steady.points, braking.points, atol=1e-5)


def test_padding_stays_zero_and_unknown_frame_speed_uses_the_camera_speed():
    seq, speeds = braking_sequence()
    seq.frame_mask[:2] = False
    seq.point_mask[:2] = False
    seq.points[:2] = 0.0
    seq.time_offsets[:2] = 0.0
    speeds[:2] = np.nan
    speeds[4] = np.nan
    out = compensate_ego_motion(seq, speeds, V0, 'ground')
    assert not out.points[:2].any() and not out.points[:, 1:].any()
    shift = V0 * -seq.time_offsets[4]
    assert out.points[4, 0, 0] == pytest.approx(seq.points[4, 0, 0] - shift, abs=1e-4)


def test_raw_mode_or_no_camera_speed_leaves_the_sequence_as_it_is():
    seq, speeds = braking_sequence()
    assert compensate_ego_motion(seq, speeds, V0, 'raw') is seq
    assert compensate_ego_motion(seq, speeds, None) is seq
    assert compensate_ego_motion(seq, speeds, float('nan')) is seq
    with pytest.raises(ValueError, match='one of'):
        compensate_ego_motion(seq, speeds, V0, 'compensated')


def test_frame_speeds_reads_odometry_at_each_radar_stamp():
    seq, speeds = braking_sequence()
    seq.frame_mask[0] = False
    odom = EgoSpeedBuffer(max_age=0.2, capacity=64)
    camera = 10 * S
    for k in range(12, -1, -1):
        t = float(np.float32(-DT * k))  # the stamps the float32 offsets name
        odom.push(camera + round(t * S), ego_at(t)[1])
    got = frame_speeds(seq, camera, odom)
    assert np.isnan(got[0])
    np.testing.assert_allclose(got[1:], speeds[1:], atol=1e-4)


@pytest.mark.parametrize('mode', ['raw', 'ground'])
def test_pipeline_compensates_only_for_a_model_trained_so(mode):
    config = FusionModelConfig(num_frames=T, max_points=N, radar_ego_motion=mode)
    pipeline = FusionPipeline(SimpleNamespace(config=config))
    seq, _ = braking_sequence()
    camera = 10 * S
    for slot in range(T):
        t = float(seq.time_offsets[slot])
        stamp = camera + round(t * S)
        pipeline.add_odometry(stamp, ego_at(t)[1])
        pipeline.add_radar(stamp, seq.points[slot, :1])
    got = pipeline.sequence(camera).points[:, 0]
    if mode == 'ground':
        np.testing.assert_allclose(got[:, 0], 40.0, atol=1e-3)
        np.testing.assert_allclose(got[:, 3], 0.0, atol=1e-3)
    else:
        np.testing.assert_array_equal(got, seq.points[:, 0])
