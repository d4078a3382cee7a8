"""Fuzzed sensor messages and raw decisions into the live nodes' callbacks (in process).

fusion_node and decision_node run in one rclpy context with a random-weight checkpoint; the
cases are real sensor_msgs messages where the message class can hold the values and
message-like objects otherwise (negative sizes, out-of-range fields). No callback may raise;
every reject is counted in `stats()` / the counters, logged with a throttle, and a rejected
camera frame publishes a degraded fallback decision at once.
"""

import os

from hypothesis import given
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
pytest.importorskip(
    'mm_fusion_msgs.msg', reason='the mm_fusion_msgs interface package is not built'
)
pytest.importorskip('torch')

from test.fuzz_cases import (  # noqa: E402
    FakeCompressedImage,
    FakeImage,
    Header,
    Stamp,
    cases,
    fuzz_settings,
    png_with_ihdr_length,
    regressions,
)
from test.fuzz_nodes import (  # noqa: E402
    REJECT_LOG,
    fuzz_graph,
    odometry_messages,
    random_checkpoint,
    raw_decisions,
)

EXAMPLES = int(os.environ.get('MM_FUZZ_EXAMPLES', '300'))


@pytest.fixture(scope='module')
def fuzzer(tmp_path_factory):
    ckpt = random_checkpoint(tmp_path_factory.mktemp('ckpt') / 'random.pt')
    with fuzz_graph(ckpt) as fuzzer:
        yield fuzzer


@fuzz_settings(EXAMPLES)
@given(cases())
def test_sensor_callbacks_never_raise_and_count_rejects(fuzzer, case):
    fuzzer.feed(case)  # raises FuzzCrashError on a crash, a missed count, log or fallback
    fuzzer.spin(0.0)


def test_png_with_truncated_ihdr_length_gets_a_fallback_not_a_crash(fuzzer):
    # Pillow's bare ValueError escaped fusion_node._on_image: the live node lost the frame and
    # published nothing. Now it is counted, logged and answered with a fallback STOP.
    msg = FakeCompressedImage(Header(Stamp(50)), 'png', png_with_ihdr_length(5))
    assert fuzzer.feed(msg) == 'reject'


@pytest.mark.parametrize('name,case', regressions(), ids=[n for n, _ in regressions()])
def test_regression_inputs_are_rejected_by_the_nodes(fuzzer, name, case):
    assert fuzzer.feed(case) == 'reject'


@fuzz_settings(EXAMPLES // 3)
@given(raw_decisions())
def test_decision_callback_never_raises_nor_commands_nan(fuzzer, msg):
    fuzzer.feed_decision(msg)


@fuzz_settings(EXAMPLES // 3)
@given(odometry_messages())
def test_odometry_callback_never_raises_and_counts_rejects(fuzzer, msg):
    fuzzer.feed_odometry(msg)


def test_counters_add_up(fuzzer):
    stats = fuzzer.fusion.stats()
    assert stats['image_rejected'] > 0 and stats['radar_rejected'] > 0
    assert stats['image_rejected'] <= stats['camera_frames']
    assert fuzzer.decision._counts['radar_rejected'] == stats['radar_rejected']
    assert fuzzer.decision._counts['decision_rejected'] > 0
    assert 0 < stats['odometry_rejected'] < stats['odometry_frames']
    assert fuzzer.real > 0 and fuzzer.fake > 0  # both kinds of input were exercised
    # The rejects show up in the diagnostics the node publishes.
    fuzzer.fusion._publish_diagnostics()


def test_rejected_frame_logs_are_throttled(fuzzer, monkeypatch):
    # 50 bad frames in a burst: each is counted and logged through a throttled call site, so
    # rcutils emits at most a couple of lines (throttle 1 s) instead of 50.
    from rclpy.impl import rcutils_logger

    emitted = []
    emit = rcutils_logger._rclpy.rclpy_logging_rcutils_log

    def counting(severity, name, message, *args):
        if REJECT_LOG['image'] in message:
            emitted.append(message)
        return emit(severity, name, message, *args)

    monkeypatch.setattr(rcutils_logger._rclpy, 'rclpy_logging_rcutils_log', counting)
    mark = len(fuzzer.fusion_log.records)
    before = fuzzer.fusion.stats()['image_rejected']
    for i in range(50):
        bad = FakeImage(Header(Stamp(100 + i)), 2, 2, 'bogus', 0, 6, b'\x00' * 12)
        assert fuzzer.feed(bad) == 'reject'
    assert fuzzer.fusion.stats()['image_rejected'] == before + 50
    records = [r for r in fuzzer.fusion_log.records[mark:] if REJECT_LOG['image'] in r[1]]
    assert len(records) == 50 and all(r[2] for r in records)
    assert 0 <= len(emitted) <= 2, emitted  # 0: the previous test's burst is still throttling
