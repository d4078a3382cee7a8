"""Fuzzed messages through the fusion node's and decision node's callbacks, in process.

`NodeFuzzer` owns a running fusion graph (both nodes, random-weight checkpoint) and feeds one
case at a time straight into `_on_image` / `_on_radar` / `_on_decision`. Each call must
return normally; a rejected input must bump its counter, log a throttled warning and, for a
camera frame, publish a degraded fallback decision at once.
"""

from collections.abc import Iterator
from contextlib import contextmanager
import math
import os
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from mm_fusion_ros.sensors.errors import REASONS
from test.fuzz_cases import FuzzCrashError, kind_of, stamps, to_ros

# What the nodes' throttled warnings for a rejected input start with.
REJECT_LOG = {'image': 'rejected image', 'radar': 'rejected radar',
              'odometry': 'rejected odometry'}

try:  # the node fuzzing needs ROS; the pure fuzzing does not
    from mm_fusion_ros.ros.messages import DrivingDecision
except ImportError:  # pragma: no cover - checked by the callers' importorskip
    DrivingDecision = None


class LogRecorder:
    """Stands in for a node's logger: records (level, message, throttle) and passes them on.

    This file is registered as an rclpy-internal caller, so rclpy keys its throttling on the
    node's own call sites, exactly as without the recorder.
    """

    def __init__(self, logger: Any) -> None:
        from rclpy.impl import rcutils_logger

        here = os.path.realpath(__file__)
        if here not in rcutils_logger._internal_callers:
            rcutils_logger._internal_callers.append(here)
        self._logger = logger
        self.records: list[tuple[str, str, float | None]] = []

    def _log(self, level: str, message: str, **kwargs: Any) -> bool:
        self.records.append((level, message, kwargs.get('throttle_duration_sec')))
        return getattr(self._logger, level)(message, **kwargs)

    def warning(self, message: str, **kwargs: Any) -> bool:
        return self._log('warning', message, **kwargs)

    def warn(self, message: str, **kwargs: Any) -> bool:
        return self._log('warning', message, **kwargs)

    def error(self, message: str, **kwargs: Any) -> bool:
        return self._log('error', message, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


def record_publishes(publisher: Any) -> list:
    """Make `publisher` also append every published message to the returned list."""
    sent: list = []
    publish = publisher.publish

    def recording(msg: Any) -> None:
        sent.append(msg)
        publish(msg)

    publisher.publish = recording
    return sent


@st.composite
def raw_decisions(draw: st.DrawFn) -> Any:
    """DrivingDecision messages as a broken fusion node could send them."""
    msg = DrivingDecision()
    header = draw(stamps())
    if not (-(2**31) <= header.stamp.sec < 2**31):
        header.stamp.sec = 0
    msg.header.stamp.sec, msg.header.stamp.nanosec = header.stamp.sec, header.stamp.nanosec
    msg.action = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 200, 255]))
    msg.source = draw(st.sampled_from([0, 1, 2, 3, 255]))
    special = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1e30, 3.0e38])
    value = st.floats(-20, 20, width=32) | special
    msg.target_acceleration = draw(value)
    msg.target_speed = draw(value)
    msg.confidence = draw(value)
    msg.class_probabilities = draw(st.lists(value, max_size=8))
    msg.class_labels = draw(st.lists(st.sampled_from(['cruise', 'x', '']), max_size=8))
    msg.degraded = draw(st.booleans())
    msg.degraded_reason = draw(st.text(max_size=16))
    return msg


class NodeFuzzer:
    """Feeds cases into live nodes and checks counters, logs and fallback decisions."""

    def __init__(self, executor: Any, nodes: dict[str, Any]) -> None:
        self.executor = executor
        self.fusion = nodes['fusion_node']
        self.decision = nodes['decision_node']
        self.fusion_log = LogRecorder(self.fusion.get_logger())
        self.decision_log = LogRecorder(self.decision.get_logger())
        self.fusion._logger = self.fusion_log
        self.decision._logger = self.decision_log
        self.fusion_out = record_publishes(self.fusion._decision_pub)
        self.decision_out = record_publishes(self.decision._decision_pub)
        self.accel_out = record_publishes(self.decision._accel_pub)
        self.real = 0
        self.fake = 0

    def _call(self, callback: Any, msg: Any, what: str) -> None:
        try:
            callback(msg)
        except Exception as exc:  # noqa: BLE001 - any exception out of a callback is a crash
            raise FuzzCrashError(f'{what} raised {type(exc).__name__}: {exc}') from exc

    def _warned(self, log: LogRecorder, mark: int, text: str) -> None:
        new = log.records[mark:]
        if not any(text in m and throttle for _, m, throttle in new):
            raise FuzzCrashError(f'no throttled warning containing {text!r}: {new}')

    def feed(self, case: Any) -> str:
        """One sensor case through the nodes; returns 'ok' or 'reject'."""
        msg = to_ros(case)
        if msg is None:
            msg = case
            self.fake += 1
        else:
            self.real += 1
        if kind_of(case) == 'cloud':
            return self._feed_cloud(msg)
        return self._feed_image(msg)

    def _feed_image(self, msg: Any) -> str:
        before = self.fusion.stats()
        log_mark, out_mark = len(self.fusion_log.records), len(self.fusion_out)
        self._call(self.fusion._on_image, msg, 'fusion_node._on_image')
        after = self.fusion.stats()
        if after['camera_frames'] != before['camera_frames'] + 1:
            raise FuzzCrashError('camera frame not counted')
        if after['image_rejected'] == before['image_rejected']:
            return 'ok'
        if after['image_rejected'] != before['image_rejected'] + 1:
            raise FuzzCrashError('one rejected frame counted more than once')
        _check_reason_counted(before, after, 'image')
        self._warned(self.fusion_log, log_mark, REJECT_LOG['image'])
        fallbacks = [m for m in self.fusion_out[out_mark:]
                     if m.degraded and m.source == DrivingDecision.SOURCE_FALLBACK
                     and 'camera frame rejected' in m.degraded_reason]
        if not fallbacks:
            raise FuzzCrashError('rejected camera frame without a fallback decision')
        if not all(math.isfinite(m.target_acceleration) and m.target_acceleration <= 0
                   for m in fallbacks):
            raise FuzzCrashError('fallback decision does not brake')
        return 'reject'

    def _feed_cloud(self, msg: Any) -> str:
        outcome = 'ok'
        for node, log in ((self.fusion, self.fusion_log), (self.decision, self.decision_log)):
            before = _counts(node)['radar_rejected']
            mark = len(log.records)
            self._call(node._on_radar, msg, f'{node.get_name()}._on_radar')
            after = _counts(node)['radar_rejected']
            if after == before + 1:
                self._warned(log, mark, REJECT_LOG['radar'])
                outcome = 'reject'
            elif after != before:
                raise FuzzCrashError('radar reject miscounted')
        return outcome

    def feed_odometry(self, msg: Any) -> str:
        """One Odometry message through fusion_node._on_odometry."""
        before = self.fusion.stats()
        mark = len(self.fusion_log.records)
        self._call(self.fusion._on_odometry, msg, 'fusion_node._on_odometry')
        after = self.fusion.stats()
        if after['odometry_frames'] != before['odometry_frames'] + 1:
            raise FuzzCrashError('odometry message not counted')
        rejected = after['odometry_rejected'] - before['odometry_rejected']
        if rejected == 0:
            return 'ok'
        if rejected != 1:
            raise FuzzCrashError('odometry reject miscounted')
        _check_reason_counted(before, after, 'odometry')
        self._warned(self.fusion_log, mark, REJECT_LOG['odometry'])
        return 'reject'

    def feed_decision(self, msg: Any) -> str:
        """One raw DrivingDecision through decision_node._on_decision."""
        before = self.decision._counts['decision_rejected']
        mark, out_mark = len(self.decision_log.records), len(self.accel_out)
        self._call(self.decision._on_decision, msg, 'decision_node._on_decision')
        for cmd in self.accel_out[out_mark:]:
            if not math.isfinite(cmd.accel.linear.x):
                raise FuzzCrashError(f'non-finite acceleration command {cmd.accel.linear.x}')
        if self.decision._counts['decision_rejected'] == before:
            return 'ok'
        self._warned(self.decision_log, mark, 'rejected fusion output')
        return 'reject'

    def spin(self, seconds: float = 0.0) -> None:
        """Let timers and the inference worker run a little (keeps queues realistic)."""
        self.executor.spin_once(timeout_sec=seconds)


@st.composite
def odometry_messages(draw: st.DrawFn) -> Any:
    """Odometry with any float speed (NaN, inf, absurd) and any stamp."""
    from nav_msgs.msg import Odometry

    msg = Odometry()
    msg.header.stamp.sec = draw(st.integers(0, 2**31 - 1))
    msg.header.stamp.nanosec = draw(st.integers(0, 999_999_999))
    msg.twist.twist.linear.x = draw(st.floats(allow_nan=True, allow_infinity=True))
    return msg


def _check_reason_counted(before: dict, after: dict, kind: str) -> None:
    """The node's per-reason reject counters ('kind:reason', when it keeps them) grew by one."""
    if 'rejects' not in after:
        return
    grew = {k: n - before.get('rejects', {}).get(k, 0) for k, n in after['rejects'].items()
            if k.startswith(f'{kind}:')}
    if sorted(grew.values()) != [0] * (len(grew) - 1) + [1]:
        raise FuzzCrashError(f'{kind} reject not counted by reason: {grew}')
    if not any(k.split(':', 1)[1] in REASONS for k, n in grew.items() if n):
        raise FuzzCrashError(f'{kind} reject counted under an unknown reason: {grew}')


def _counts(node: Any) -> dict:
    return node.stats() if hasattr(node, 'stats') else dict(node._counts)


@contextmanager
def fuzz_graph(checkpoint: str | Path) -> Iterator[NodeFuzzer]:
    """Both nodes of the fusion graph in this process, wrapped in a NodeFuzzer."""
    from mm_fusion_ros.ros.runner import running_graph

    overrides = {'fusion_node': {'checkpoint': str(checkpoint), 'device': 'cpu',
                                 'radar_wait': 0.0}}
    with running_graph('fusion', overrides=overrides) as (executor, nodes):
        yield NodeFuzzer(executor, nodes)


def random_checkpoint(path: str | Path) -> str:
    """A random-weight checkpoint with the real I/O shapes at `path`."""
    import torch

    from mm_fusion_ros.model.checkpoint import save_checkpoint
    from mm_fusion_ros.model.fusion import FusionModel

    torch.manual_seed(0)
    return str(save_checkpoint(FusionModel(), path, training_data_hash='random-weights'))
