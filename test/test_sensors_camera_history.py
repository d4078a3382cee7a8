"""CameraHistory: which earlier frame a camera frame is paired with, at common camera rates."""

import numpy as np
import pytest

from mm_fusion_ros.sensors.camera_history import CameraHistory

NS = 1_000_000_000


def _frames(history: CameraHistory, hz: float, n: int, start_ns: int = 0) -> list[int | None]:
    """Push n frames at `hz`; returns, per frame, the index of the earlier frame (or None)."""
    out = []
    for i in range(n):
        prev = history.push(start_ns + round(i * NS / hz), np.full((2, 2, 3), i, np.int32))
        out.append(None if prev is None else int(prev[0, 0, 0]))
    return out


@pytest.mark.parametrize('hz', [10.0, 12.0, 20.0, 30.0])
def test_earlier_frame_is_the_one_nearest_gap_seconds_back(hz):
    earlier = _frames(CameraHistory(0.25), hz, 40)
    first = next(i for i, e in enumerate(earlier) if e is not None)
    assert first <= round(0.25 * hz) and all(e is not None for e in earlier[first:])
    for i, e in enumerate(earlier[first:], first):
        assert abs((i - e) / hz - 0.25) <= 0.125  # within gap / 2
        if i / hz >= 0.25 + 0.5 / hz:  # history reaches back far enough: the nearest frame
            assert abs((i - e) / hz - 0.25) <= 0.5 / hz + 1e-9


def test_a_camera_gap_leaves_no_earlier_frame_until_history_refills():
    history = CameraHistory(0.25)
    _frames(history, 20.0, 10)
    assert history.push(2 * NS, np.zeros((2, 2, 3), np.uint8)) is None  # 1.55 s dropout
    assert len(history) == 1  # everything older than gap * 1.5 is let go


def test_backwards_stamp_clears_and_repeated_stamp_is_ignored():
    history = CameraHistory(0.25)
    _frames(history, 20.0, 10, start_ns=5 * NS)
    size = len(history)
    history.push(5 * NS + 9 * NS // 20, np.zeros((2, 2, 3), np.uint8))  # the last stamp again
    assert len(history) == size
    assert history.push(1 * NS, np.zeros((2, 2, 3), np.uint8)) is None  # bag loop
    assert len(history) == 1


def test_memory_is_bounded_by_the_gap():
    history = CameraHistory(0.25)
    _frames(history, 100.0, 500)
    assert len(history) <= 39  # 0.375 s at 100 Hz


def test_gap_must_be_positive():
    with pytest.raises(ValueError, match='gap'):
        CameraHistory(0.0)


def test_the_earlier_frame_is_the_pushed_array_itself():
    # FusionPredictor's frame cache finds a frame's normalised input by the array object.
    history = CameraHistory(0.25)
    frames = [np.zeros((2, 2, 3), np.uint8) for _ in range(8)]
    earlier = [history.push(i * NS // 20, frame) for i, frame in enumerate(frames)]
    assert earlier[5] is frames[0] and earlier[7] is frames[2]
