"""RadarSequenceBuffer: windows, padding, masks, out-of-order/duplicate/backwards stamps."""

import numpy as np
import pytest

from mm_fusion_ros.sensors.radar_sequence import (
    RadarSequence,
    RadarSequenceBuffer,
    RadarSequenceConfig,
)

S = 1_000_000_000


def frame(n, value):
    pts = np.full((n, 5), value, np.float32)
    pts[:, 4] = np.arange(n)  # rcs ranks the points
    return pts


def make(**kw):
    cfg = RadarSequenceConfig(**{'num_frames': 3, 'max_points': 4, **kw})
    return RadarSequenceBuffer(cfg)


def test_empty_buffer_gives_empty_sequence():
    seq = make().sequence(5 * S)
    assert isinstance(seq, RadarSequence)
    assert seq.points.shape == (3, 4, 5) and seq.points.dtype == np.float32
    assert not seq.frame_mask.any() and not seq.point_mask.any()


def test_last_frames_padded_and_masked_newest_last():
    buf = make()
    for i in range(5):
        buf.push(i * S // 10, frame(i + 1, i))
    seq = buf.sequence(4 * S // 10)
    assert seq.frame_mask.tolist() == [True, True, True]
    assert seq.points[:, 0, 0].tolist() == [2, 3, 4]
    assert seq.point_mask.sum(1).tolist() == [3, 4, 4]  # frame of 5 points capped to 4
    assert np.allclose(seq.time_offsets, [-0.2, -0.1, 0.0])
    assert (seq.points[0, 3] == 0).all()  # padding is zero


def test_missing_history_in_oldest_slots():
    buf = make()
    buf.push(1 * S, frame(2, 1))
    seq = buf.sequence(1 * S)
    assert seq.frame_mask.tolist() == [False, False, True]
    assert seq.time_offsets[:2].tolist() == [0, 0]


def test_window_ends_at_camera_stamp_with_tolerance():
    buf = make(future_tolerance=0.05)
    for t in (0.9, 1.0, 1.04, 1.2):
        buf.push(round(t * S), frame(1, t))
    seq = buf.sequence(1 * S)
    assert np.allclose(seq.points[:, 0, 0], [0.9, 1.0, 1.04])  # 1.2 is in the future
    assert seq.time_offsets[-1] == pytest.approx(0.04)


def test_max_age_masks_stale_frames():
    buf = make(max_age=0.5)
    buf.push(0, frame(1, 0))
    buf.push(1 * S, frame(1, 1))
    seq = buf.sequence(1 * S)
    assert seq.frame_mask.tolist() == [False, False, True]


def test_out_of_order_push_is_sorted():
    buf = make()
    for t in (3, 1, 2):  # 100 ms apart, within reset_jump
        buf.push(t * S // 10, frame(1, t))
    assert buf.stamps == (S // 10, 2 * S // 10, 3 * S // 10)
    assert buf.sequence(3 * S // 10).points[:, 0, 0].tolist() == [1, 2, 3]


def test_duplicate_stamp_replaces_frame():
    buf = make()
    buf.push(1 * S, frame(1, 1))
    buf.push(1 * S, frame(2, 7))
    assert len(buf) == 1
    seq = buf.sequence(1 * S)
    assert seq.points[2, 0, 0] == 7 and seq.point_mask[2].sum() == 2


def test_backwards_jump_clears_buffer():
    buf = make(reset_jump=1.0)
    for t in (100, 101, 102):
        buf.push(t * S, frame(1, t))
    buf.push(int(101.5 * S), frame(1, 101.5))  # small step back: just out of order
    assert len(buf) == 4 and buf.resets == 0
    buf.push(1 * S, frame(1, 1))  # bag loop
    assert buf.stamps == (1 * S,) and buf.resets == 1
    assert buf.sequence(1 * S).frame_mask.tolist() == [False, False, True]


def test_camera_before_all_radar_gives_empty_window():
    buf = make()
    buf.push(100 * S, frame(1, 1))
    assert not buf.sequence(1 * S).frame_mask.any()


def test_capacity_drops_oldest():
    buf = make(capacity=4)
    for t in range(10):
        buf.push(t * S // 10, frame(1, t))
    assert len(buf) == 4 and buf.stamps[0] == 6 * S // 10


def test_cap_keeps_strongest_rcs_in_order():
    buf = make(max_points=3)
    pts = frame(6, 0)
    pts[:, 4] = [5, 1, 9, 0, 7, 2]
    buf.push(0, pts)
    assert buf.sequence(0).points[2, :, 4].tolist() == [5, 9, 7]


def test_bad_frames_and_config():
    buf = make()
    with pytest.raises(ValueError):
        buf.push(0, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError):
        buf.push(0, np.zeros(5, np.float32))
    with pytest.raises(ValueError):
        RadarSequenceConfig(num_frames=0)
    with pytest.raises(ValueError):
        RadarSequenceConfig(num_frames=8, capacity=4)
    with pytest.raises(ValueError):
        RadarSequenceConfig(max_age=0)


def test_clear():
    buf = make()
    buf.push(0, frame(1, 0))
    buf.clear()
    assert len(buf) == 0
