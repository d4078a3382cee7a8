"""Bag player and decision recorder for online evaluation (rosbags reader + rclpy publishers).

`BagPlayer` publishes a bag's camera and radar messages on the graph's sensor topics at `rate`
times the recorded pace, with /clock following bag time, so nodes running with use_sim_time see
recorded time and their watchdogs and dwell timers run on it. The delivery order is
`bags.delivery.delivery_order`, shared with the offline mode: a radar frame that the
approximate-time sync pairs with a camera frame is published at least `radar_lead` (bag time)
before that camera frame, never after it, and each /clock update goes out `clock_settle` before its
message, so decision_node's watchdog sees the new time before the message. `ros2 bag play`
publishes in log-time order instead, so a radar frame logged a few ms after its camera frame
reaches fusion_node after the model has started on the frame, and the decision depends on
scheduling; this player removes that race.

`DecisionRecorder` keeps the decision_node output per camera stamp: the first final decision with
that header stamp (the node's answer to the model output for that frame; its watchdog decisions
before any model output carry the clock time instead and are skipped).

`evaluate_bag_online` plays one bag into the fusion graph (started in this process with
`running_graph`, or an already running graph with `attach=True`) and returns the same per-frame
arrays as the offline mode.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
import threading
import time
from typing import Any

from nav_msgs.msg import Odometry
import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from mm_fusion_ros.bags.delivery import delivery_order
from mm_fusion_ros.bags.reader import ODOMETRY, POINT_CLOUD2, BagTopics, open_bag
from mm_fusion_ros.evaluation.replay import (
    NO_ACTION,
    BagResult,
    ReplayConfig,
    bag_settings,
    camera_duration_s,
    frames_from_rows,
    node_configs,
    truth_of,
)
from mm_fusion_ros.graph import (
    CAMERA_COMPRESSED,
    CAMERA_IMAGE,
    DECISION,
    EGO_ODOMETRY,
    RADAR_POINTS,
    RAW_DECISION,
)
from mm_fusion_ros.params.nodes import FusionNodeParams
from mm_fusion_ros.ros.messages import DrivingDecision
from mm_fusion_ros.ros.time import stamp_from_ns, stamp_to_ns

NS = 1_000_000_000
_NO_MODEL_YET = 'no fusion output received'


@dataclass(frozen=True)
class PlayerConfig:
    rate: float = 1.0               # playback speed relative to the recording
    publish_clock: bool = True      # /clock with bag time (run the graph with use_sim_time)
    start_delay: float = 0.2        # [s] wall time between discovery and the first message
    clock_settle: float = 0.01      # [s] wall time between a /clock update and its message
    radar_wait: float = FusionNodeParams.radar_wait  # [s] fusion_node's (wall time)
    lockstep: bool = True           # wait for each camera frame's final decision (when a
    # recorder is attached) before going on, so the graph's clock never runs ahead of it
    lockstep_timeout: float = 1.0   # [s] wall; a frame without a decision by then is a miss
    sync_slop: float = FusionNodeParams.sync_slop  # [s] fusion_node's (pairing rule)
    replay: ReplayConfig = field(default_factory=ReplayConfig)

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f'rate must be > 0, got {self.rate}')


def player_config(topics: BagTopics, rate: float = 1.0, replay: ReplayConfig | None = None,
                  lockstep: bool = True) -> PlayerConfig:
    """Player settings matching fusion_node's parameters in the shipped params file."""
    nodes = node_configs(topics)
    return PlayerConfig(rate=rate, sync_slop=nodes.pipeline.sync_slop,
                        radar_wait=nodes.radar_wait, replay=replay or ReplayConfig(),
                        lockstep=lockstep)


class BagPlayer:
    """Publishes one bag's sensors (and /clock) from the calling thread, paced by bag time."""

    def __init__(self, node: Node, topics: BagTopics, config: PlayerConfig | None = None):
        self.node = node
        self.topics = topics
        self.config = config or PlayerConfig()
        compressed = topics.image_kind == 'compressed'
        self.image_pub = node.create_publisher(
            CompressedImage if compressed else Image,
            CAMERA_COMPRESSED if compressed else CAMERA_IMAGE, qos_profile_sensor_data)
        self.radar_pub = node.create_publisher(PointCloud2, RADAR_POINTS,
                                               qos_profile_sensor_data)
        self.odom_pub = node.create_publisher(Odometry, EGO_ODOMETRY, qos_profile_sensor_data)
        self.clock_pub = node.create_publisher(Clock, '/clock', 10)
        self.published: dict[int, float] = {}  # camera stamp -> wall time published
        self.truth: dict[int, tuple[int, float]] = {}
        self.counts = {'camera_frames': 0, 'radar_frames': 0}
        self.info: dict[str, Any] = {}
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def subscribers_ready(self) -> bool:
        """Every sensor topic the bag feeds is matched (else its first messages are lost)."""
        return (self.image_pub.get_subscription_count() > 0
                and self.radar_pub.get_subscription_count() > 0
                and (self.topics.odometry_topic is None
                     or self.odom_pub.get_subscription_count() > 0))

    def play(self, path: str, await_decision: Callable[[int, float], bool] | None = None,
             ) -> None:
        """Publish the bag; returns when done or stopped. Raises BagError on a bad bag.

        With `await_decision(stamp_ns, timeout)` and `lockstep`, each camera frame waits for
        its decision. Whenever the graph is slower than the recording, the schedule shifts so
        consecutive messages keep at least their recorded spacing (radar stays ahead of its
        camera frame).
        """
        cfg = self.config
        with open_bag(path, self.topics, max_message_bytes=cfg.replay.max_message_bytes) as bag:
            self.info = bag.episode_info()
            store = bag.store
            image_type = self.topics.image_type
            first_ns = None
            wall0 = 0.0
            newest_radar = None
            for ev in delivery_order(bag, cfg.sync_slop, cfg.replay.reorder_window,
                                     cfg.replay.radar_lead):
                if ev.kind == 'ground_truth':
                    self.truth[ev.stamp_ns] = truth_of(ev.msg)
                    continue
                if ev.kind == 'odometry':  # unpaced: it runs ahead of the held camera frames
                    self.odom_pub.publish(bytes(store.serialize_cdr(ev.msg, ODOMETRY)))
                    continue
                if ev.kind not in ('camera', 'radar'):
                    continue
                if first_ns is None:
                    first_ns, wall0 = ev.clock_ns, time.perf_counter() + cfg.start_delay
                target = wall0 + (ev.clock_ns - first_ns) / NS / cfg.rate
                behind = time.perf_counter() - target
                if behind > 0:
                    wall0 += behind
                elif self._stop.wait(-behind):
                    return
                if cfg.publish_clock:
                    self.clock_pub.publish(Clock(clock=stamp_from_ns(ev.clock_ns)))
                    # Let timers due at the new time (decision_node's watchdog) run before
                    # the message, as the offline mode orders them.
                    if self._stop.wait(cfg.clock_settle):
                        return
                if ev.kind == 'radar':
                    self.radar_pub.publish(bytes(store.serialize_cdr(ev.msg, POINT_CLOUD2)))
                    self.counts['radar_frames'] += 1
                    newest_radar = max(newest_radar or ev.stamp_ns, ev.stamp_ns)
                    continue
                self.image_pub.publish(bytes(store.serialize_cdr(ev.msg, image_type)))
                self.published[ev.stamp_ns] = time.perf_counter()
                self.counts['camera_frames'] += 1
                if newest_radar is None or newest_radar < ev.stamp_ns - cfg.sync_slop * NS:
                    # No radar in sync: fusion_node waits radar_wait (wall time) for one. Hold
                    # the next message until it gave up, so a later radar frame cannot slip
                    # into this frame's history (offline never gives it one).
                    wall0 += cfg.radar_wait + 0.01
                    self.counts['sync_holds'] = self.counts.get('sync_holds', 0) + 1
                if cfg.lockstep and await_decision is not None:
                    if not await_decision(ev.stamp_ns, cfg.lockstep_timeout):
                        self.counts['lockstep_timeouts'] = (
                            self.counts.get('lockstep_timeouts', 0) + 1)


class DecisionRecorder:
    """Final decisions by header stamp (see the module docstring for which one is kept)."""

    def __init__(self, node: Node, topic: str = DECISION, raw_topic: str = RAW_DECISION):
        self.decisions: dict[int, tuple[int, float, int, float]] = {}
        self.raw: dict[int, int] = {}  # camera stamp -> fusion_node's (pre-safety) action
        self.received = 0
        self._lock = threading.Condition()
        node.create_subscription(DrivingDecision, topic, self._on_decision, 100)
        node.create_subscription(DrivingDecision, raw_topic, self._on_raw, 100)

    def _on_raw(self, msg: DrivingDecision) -> None:
        if msg.source == DrivingDecision.SOURCE_MODEL:
            self.raw.setdefault(stamp_to_ns(msg.header.stamp), int(msg.action))

    def _on_decision(self, msg: DrivingDecision) -> None:
        now = time.perf_counter()
        self.received += 1
        if _NO_MODEL_YET in msg.degraded_reason:
            return
        stamp = stamp_to_ns(msg.header.stamp)
        with self._lock:
            if stamp not in self.decisions:
                self.decisions[stamp] = (int(msg.action), float(msg.target_acceleration),
                                         int(msg.source), now)
                self._lock.notify_all()

    def wait_for(self, stamp_ns: int, timeout: float) -> bool:
        """Block (another thread spins the executor) until `stamp_ns` has a decision."""
        with self._lock:
            return self._lock.wait_for(lambda: stamp_ns in self.decisions, timeout)


def spin_until(executor: Executor, condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.01)
    return bool(condition())


def graph_settings(topics: BagTopics, checkpoint: str | None, device: str = 'cpu',
                   num_threads: int | None = None) -> dict[str, Any]:
    """Node parameters that make the graph read this bag layout (same as the offline mode)."""
    settings = dict(bag_settings(topics), device=device)
    if num_threads:
        settings['num_threads'] = num_threads
    if checkpoint:
        settings['checkpoint'] = str(checkpoint)
    return settings


def play_and_record(
    executor: Executor, context: Context, path: str, topics: BagTopics,
    config: PlayerConfig, discovery_timeout: float = 20.0, drain_timeout: float = 5.0,
    bag_index: int = 0,
) -> BagResult:
    """Play one bag into whatever graph listens in `context`'s domain; record its decisions."""
    player_node = rclpy.create_node('bag_player', context=context)
    recorder_node = rclpy.create_node('decision_recorder', context=context)
    player = BagPlayer(player_node, topics, config)
    recorder = DecisionRecorder(recorder_node)
    executor.add_node(player_node)
    executor.add_node(recorder_node)
    errors: list[BaseException] = []
    try:
        if not spin_until(executor, lambda: player.subscribers_ready() and
                          recorder_node.count_publishers(DECISION) > 0, discovery_timeout):
            raise RuntimeError(
                f'no fusion graph listening on {CAMERA_IMAGE} / {RADAR_POINTS} / {DECISION}'
                f' after {discovery_timeout:.0f} s')

        def target() -> None:
            try:
                player.play(path, recorder.wait_for)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                errors.append(exc)

        thread = threading.Thread(target=target, name='bag_player', daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                executor.spin_once(timeout_sec=0.01)
        finally:
            player.stop()
            thread.join()
        if errors:
            raise errors[0]
        spin_until(executor, lambda: set(player.published) <= set(recorder.decisions),
                   drain_timeout)
    finally:
        executor.remove_node(player_node)
        executor.remove_node(recorder_node)
        player_node.destroy_node()
        recorder_node.destroy_node()
    rows = []
    for stamp, sent in sorted(player.published.items()):
        rec = recorder.decisions.get(stamp)
        if rec is None:
            rows.append({'stamp_ns': stamp, 'action': NO_ACTION})
            continue
        action, accel, source, received = rec
        rows.append({'stamp_ns': stamp, 'action': action, 'accel': accel, 'source': source,
                     'latency_s': received - sent,
                     'model_action': recorder.raw.get(stamp, NO_ACTION)})
    frames = frames_from_rows(rows, player.truth, bag_index)
    counts = dict(player.counts, decisions_received=recorder.received,
                  frames_without_decision=sum(1 for r in rows if r['action'] == NO_ACTION),
                  fallback=sum(1 for r in rows
                               if r.get('source') == DrivingDecision.SOURCE_FALLBACK))
    from mm_fusion_ros.evaluation.replay_report import bag_thumbnails

    return BagResult(str(path), topics.name, 'online', camera_duration_s(frames['stamp_ns']),
                     frames, counts, player.info,
                     thumbnails=bag_thumbnails(path, topics, config.sync_slop))


def evaluate_bag_online(
    path: str, topics: BagTopics, checkpoint: str | None, config: PlayerConfig | None = None,
    *, attach: bool = False, num_threads: int | None = None, bag_index: int = 0,
) -> BagResult:
    """Play a bag into the fusion graph and record the final decisions.

    Without `attach`, starts fusion_node + decision_node in this process (use_sim_time, the
    bag layout's radar preset and image transport, `checkpoint`), fresh for every bag like the
    offline mode's state; with `attach`, plays into a graph already running elsewhere.
    """
    config = config or player_config(topics)
    if attach:
        context = Context()
        rclpy.init(context=context)
        executor = SingleThreadedExecutor(context=context)
        try:
            return play_and_record(executor, context, path, topics, config,
                                   bag_index=bag_index)
        finally:
            executor.shutdown()
            rclpy.try_shutdown(context=context)
    from mm_fusion_ros.ros.runner import running_graph

    settings = graph_settings(topics, checkpoint, num_threads=num_threads)
    with running_graph('fusion', settings=settings, use_sim_time=True) as (executor, nodes):
        return play_and_record(executor, nodes['fusion_node'].context, path, topics, config,
                               bag_index=bag_index)
