"""Bag replay evaluation: the node graph's logic over a recorded drive, without DDS.

Offline mode runs what fusion_node and decision_node run, in the order they see it:
`FusionPipeline` (preset conversion, preprocessing, radar history, approximate-time sync),
the model, then decision_node's `SafetyLayer` callbacks, with bag time as the clock. The model
calls are batched (`predict_batch`); everything stateful is replayed in stream order, so
batching changes speed, not decisions.

The delivery order (`bags.delivery.delivery_order`) is shared with the online player
(`mm_fusion_ros.ros.bag_player`) and the training cache: radar is paired with camera frames by
stamp and each camera frame is delivered after its radar, on a monotonic bag-time clock.
Offline and online then feed the nodes the same inputs at the same clock times, which is what
makes their decisions agree frame by frame.

Pure core: no rclpy import.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
import math
from pathlib import Path
import time
from typing import Any, NamedTuple

import numpy as np
import yaml

from mm_fusion_ros.actions import Action
from mm_fusion_ros.bags.delivery import delivery_order
from mm_fusion_ros.bags.reader import (
    DEFAULT_MAX_MESSAGE_BYTES,
    BagTopics,
    open_bag,
)
from mm_fusion_ros.decision import Decision
from mm_fusion_ros.paths import config_dir
from mm_fusion_ros.pipeline import FusionPipeline, PipelineConfig
from mm_fusion_ros.safety import DecisionLogic, SafetyConfig
from mm_fusion_ros.sensors.image import ImageDecodeError, image_to_rgb
from mm_fusion_ros.sensors.odometry import OdometryError, forward_speed
from mm_fusion_ros.sensors.pointcloud import PointCloudDecodeError
from mm_fusion_ros.sensors.radar_preprocess import RadarPreprocessConfig
from mm_fusion_ros.sensors.radar_presets import RadarPresetError, load_preset

NS = 1_000_000_000
NO_ACTION = -1  # frame without a decision (online: none recorded) or without ground truth

# Per-frame arrays of a BagResult: name -> dtype. Merging bags concatenates these in bag order.
FRAME_FIELDS: dict[str, Any] = {
    'bag': np.int32,             # index of the bag in the evaluated list
    'stamp_ns': np.int64,        # camera stamp
    'action': np.int64,          # final decision (after the safety layer); -1 = none
    'accel': np.float32,         # [m/s^2] final target acceleration (nan = none)
    'source': np.int64,          # DecisionSource of the final decision (-1 = none)
    'model_action': np.int64,    # raw model argmax (-1 = fallback / unknown)
    'latency_s': np.float64,     # [s] offline: model time per frame; online: receive - publish
    'truth_action': np.int64,    # ground-truth decision at the camera stamp (-1 = none)
    'truth_accel': np.float32,   # [m/s^2] (nan = none)
    'compare_action': np.int64,  # final decision with --compare-checkpoint (-1 = none)
    'compare_accel': np.float32,
}


@dataclass(frozen=True)
class ReplayConfig:
    """How a bag is delivered to the pipeline (offline) or to the graph (online)."""

    batch_size: int = 64          # camera frames per predict_batch call (offline)
    radar_lead: float = 0.02      # [s] a radar frame paired with a camera frame is delivered
    # at least this long (bag time) before it, so fusion_node has it before the camera frame
    reorder_window: float = 0.5   # [s] how long a camera frame waits for late-logged radar
    modality: str = 'fused'
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError('batch_size must be >= 1')
        if self.radar_lead < 0 or self.reorder_window <= 0:
            raise ValueError('radar_lead must be >= 0 and reorder_window > 0')


@dataclass
class NodeConfigs:
    """The fusion and decision nodes' configuration as their parameter files set it."""

    pipeline: PipelineConfig
    safety: SafetyConfig
    camera_transport: str = 'raw'
    radar_wait: float = 0.03  # [s] fusion_node's wait for a radar frame (wall time, online)


def _ros_params(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    for value in data.values():
        if isinstance(value, dict) and 'ros__parameters' in value:
            return dict(value['ros__parameters'])
    return {}


def node_configs(topics: BagTopics, params_dir: Path | None = None) -> NodeConfigs:
    """Build PipelineConfig/SafetyConfig from fusion.yaml/decision.yaml, as the nodes do.

    The bag layout's radar preset and image kind override the files, exactly as the online
    mode overrides the nodes' parameters, so both modes run the same configuration.
    """
    params_dir = Path(params_dir) if params_dir else config_dir()
    fusion = _ros_params(params_dir / 'fusion.yaml')
    decision = _ros_params(params_dir / 'decision.yaml')
    pipeline = PipelineConfig(
        radar_preset=topics.radar_preset,
        sync_slop=float(fusion.get('sync_slop', PipelineConfig.sync_slop)),
        preprocess=RadarPreprocessConfig(
            max_points=int(fusion.get('max_radar_points', RadarPreprocessConfig.max_points))),
    )
    safety_fields = set(SafetyConfig.__dataclass_fields__)
    safety = SafetyConfig(**{
        k: type(getattr(SafetyConfig, k))(v) for k, v in decision.items() if k in safety_fields})
    return NodeConfigs(pipeline, safety, topics.image_kind,
                       float(fusion.get('radar_wait', NodeConfigs.radar_wait)))


# -- decision_node over explicit time ---------------------------------------------------------
class DecisionNodeLogic:
    """decision_node's callbacks (`safety.DecisionLogic`) driven by message delivery.

    The node's watchdog timer runs on its clock; under bag replay the clock moves only when a
    message is delivered, so the watchdog check runs before each delivery.
    """

    def __init__(self, config: SafetyConfig) -> None:
        self.logic = DecisionLogic(config)
        self.safety = self.logic.safety

    def on_radar(self, now_ns: int, points: np.ndarray | None) -> None:
        """`points` canonical (converter only, like the node); None = a rejected cloud."""
        self.logic.on_watchdog(now_ns)
        if points is not None:
            self.logic.on_radar(now_ns, points)

    def on_decision(self, now_ns: int, decision: Decision) -> Decision | None:
        """The published final decision; None when the node rejects the model output."""
        self.logic.on_watchdog(now_ns)
        try:
            return self.logic.on_model_decision(now_ns, decision)
        except ValueError:
            return None


# -- results ----------------------------------------------------------------------------------
@dataclass
class BagResult:
    """Per-frame arrays of one bag (FRAME_FIELDS) plus what is needed to merge and report."""

    path: str
    topics: str
    mode: str
    duration_s: float
    frames: dict[str, np.ndarray]
    counts: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(len(self.frames['stamp_ns']))

    def summary(self) -> dict[str, Any]:
        return {'path': self.path, 'topics': self.topics, 'mode': self.mode,
                'frames': self.num_frames, 'duration_s': self.duration_s,
                'counts': dict(self.counts), 'info': dict(self.info)}


def empty_frames(n: int = 0) -> dict[str, np.ndarray]:
    out = {}
    for k, dt in FRAME_FIELDS.items():
        fill = math.nan if np.issubdtype(dt, np.floating) else (0 if k in ('bag', 'stamp_ns')
                                                                else NO_ACTION)
        out[k] = np.full(n, fill, dt)
    return out


def camera_duration_s(stamps: np.ndarray) -> float:
    """Drive length covered by the camera frames: span plus one median period."""
    stamps = np.sort(np.asarray(stamps, np.int64))
    if len(stamps) < 2:
        return 0.0
    period = float(np.median(np.diff(stamps))) / NS
    return float(stamps[-1] - stamps[0]) / NS + period


def merge_results(results: Sequence[BagResult]) -> tuple[dict[str, np.ndarray], float]:
    """Concatenate per-frame arrays in bag order (bag index rewritten); total duration [s]."""
    parts = []
    for i, r in enumerate(results):
        frames = dict(r.frames)
        frames['bag'] = np.full(r.num_frames, i, np.int32)
        parts.append(frames)
    if not parts:
        return empty_frames(), 0.0
    merged = {k: np.concatenate([p[k] for p in parts]).astype(dt)
              for k, dt in FRAME_FIELDS.items()}
    return merged, float(sum(r.duration_s for r in results))


def truth_of(msg: Any) -> tuple[int, float]:
    return int(msg.action), float(msg.target_acceleration)


def frames_from_rows(rows: list[dict[str, Any]], truth: dict[int, tuple[int, float]],
                     bag_index: int = 0) -> dict[str, np.ndarray]:
    """Per-frame arrays from per-camera-frame dicts (missing keys keep their 'none' value)."""
    frames = empty_frames(len(rows))
    frames['bag'][:] = bag_index
    for i, row in enumerate(rows):
        for k, v in row.items():
            frames[k][i] = v
        t = truth.get(int(row['stamp_ns']))
        if t is not None:
            frames['truth_action'][i], frames['truth_accel'][i] = t
    return frames


# -- offline evaluation -----------------------------------------------------------------------
class _Model:
    """One checkpoint's radar history, queued frames and decision_node state."""

    def __init__(self, predictor: Any, configs: NodeConfigs) -> None:
        self.predictor = predictor
        self.pipeline = FusionPipeline(predictor, configs.pipeline)
        self.decider = DecisionNodeLogic(configs.safety)
        self.seqs: list[Any] = []
        self.speeds: list[float | None] = []
        self.previous: list[np.ndarray | None] = []
        self.reasons: list[str] = []


def evaluate_bag_offline(
    path: str | Path,
    topics: BagTopics,
    predictor: Any,
    config: ReplayConfig | None = None,
    compare: Any = None,
    configs: NodeConfigs | None = None,
    bag_index: int = 0,
) -> BagResult:
    """Final decisions for every camera frame of a bag, as the node graph would publish them.

    Streams the bag (memory: one batch of frames plus the reorder window); raises
    BagLayoutError / BagReadError (mm_fusion_ros.bags) for bags that cannot be evaluated.
    """
    cfg = config or ReplayConfig()
    configs = configs or node_configs(topics)
    models = [_Model(predictor, configs)] + ([_Model(compare, configs)] if compare else [])
    to_canonical = load_preset(configs.pipeline.radar_preset).converter()
    counts = {'camera_frames': 0, 'radar_frames': 0, 'radar_rejected': 0,
              'image_rejected': 0, 'odometry_rejected': 0, 'degraded': 0}
    truth: dict[int, tuple[int, float]] = {}
    rows: list[dict[str, Any]] = []
    tape: list[tuple] = []  # ('radar', clock, canonical|None) | ('camera', clock, stamp, slot)
    rgbs: list[np.ndarray] = []

    def flush() -> None:
        n = len(rgbs)
        preds, per_frame = [], 0.0
        for k, m in enumerate(models):
            if n:
                p = m.predictor.predict_batch(rgbs, m.seqs, cfg.modality, cfg.batch_size,
                                              m.speeds, m.previous)
                if k == 0:
                    per_frame = p.latency_s / n
                preds.append(p)
            else:
                preds.append(None)
        chunk_rows: dict[int, dict[str, Any]] = {}
        for k, m in enumerate(models):
            for item in tape:
                if item[0] == 'radar':
                    m.decider.on_radar(item[1], item[2])
                    continue
                _, clock, stamp, slot = item
                if isinstance(slot, Decision):  # the node's fallback for an unusable frame
                    decision, raw = slot, NO_ACTION
                else:
                    p = preds[k]
                    decision = _decision(stamp, p, slot, m.reasons[slot])
                    raw = int(p.actions[slot])
                final = m.decider.on_decision(clock, decision)
                row = chunk_rows.setdefault(stamp, {'stamp_ns': stamp})
                if final is None:  # rejected by decision_node: nothing published
                    if k == 0:
                        row['model_action'] = raw
                    continue
                if k == 0:
                    row.update(action=int(final.action), accel=final.target_acceleration,
                               source=int(final.source), model_action=raw,
                               latency_s=per_frame if raw != NO_ACTION else 0.0)
                    counts['degraded'] += int(final.degraded)
                else:
                    row.update(compare_action=int(final.action),
                               compare_accel=final.target_acceleration)
            m.seqs.clear()
            m.speeds.clear()
            m.previous.clear()
            m.reasons.clear()
        rows.extend(chunk_rows.values())
        tape.clear()
        rgbs.clear()

    with open_bag(path, topics, max_message_bytes=cfg.max_message_bytes) as bag:
        info = bag.episode_info()
        for ev in delivery_order(bag, configs.pipeline.sync_slop, cfg.reorder_window,
                                 cfg.radar_lead):
            if ev.kind == 'ground_truth':
                truth[ev.stamp_ns] = truth_of(ev.msg)
            elif ev.kind == 'odometry':
                try:
                    speed = forward_speed(ev.msg)
                except OdometryError:
                    counts['odometry_rejected'] += 1  # fusion_node skips it
                    continue
                for m in models:
                    m.pipeline.add_odometry(ev.stamp_ns, speed)
            elif ev.kind == 'radar':
                counts['radar_frames'] += 1
                try:
                    points = models[0].pipeline.radar_points(ev.msg)
                except (ValueError, RadarPresetError):
                    counts['radar_rejected'] += 1  # fusion_node skips the cloud
                else:
                    for m in models:
                        m.pipeline.add_radar(ev.stamp_ns, points)
                try:
                    canonical = to_canonical(ev.msg)
                except (PointCloudDecodeError, ValueError):
                    canonical = None  # decision_node skips it too
                tape.append(('radar', ev.clock_ns, canonical))
            elif ev.kind == 'camera':
                counts['camera_frames'] += 1
                try:
                    rgb = image_to_rgb(ev.msg)
                except ImageDecodeError as exc:
                    counts['image_rejected'] += 1
                    fallback = models[0].pipeline.fallback(
                        ev.stamp_ns, f'camera frame rejected: {exc}')
                    tape.append(('camera', ev.clock_ns, ev.stamp_ns, fallback))
                    continue
                for m in models:
                    m.previous.append(m.pipeline.add_camera(ev.stamp_ns, rgb))
                    seq = m.pipeline.sequence(ev.stamp_ns)
                    speed = m.pipeline.speed_at(ev.stamp_ns)
                    m.seqs.append(seq)
                    m.speeds.append(speed)
                    m.reasons.append(m.pipeline.degraded_reason(seq, speed))
                tape.append(('camera', ev.clock_ns, ev.stamp_ns, len(rgbs)))
                rgbs.append(rgb)
                if len(rgbs) >= cfg.batch_size:
                    flush()
        flush()
        counts['rejected_messages'] = bag.stats.rejected_count
    frames = frames_from_rows(rows, truth, bag_index)
    return BagResult(str(path), topics.name, 'offline', camera_duration_s(frames['stamp_ns']),
                     frames, counts, info)


def _decision(stamp_ns: int, batch: Any, i: int, reason: str) -> Decision:
    """FusionPipeline.to_decision for row `i` of a BatchPrediction."""
    cls = int(batch.actions[i])
    pred = _RowPrediction(Action(cls), batch.probabilities[i], float(batch.confidence[i]),
                          float(batch.target_acceleration[i]),
                          batch.latency_s / max(len(batch.actions), 1))
    return FusionPipeline.to_decision(stamp_ns, pred, reason)


class _RowPrediction(NamedTuple):
    action: Action
    probabilities: np.ndarray
    confidence: float
    target_acceleration: float
    latency_s: float


# -- one bag, self-contained (serial loop and Ray tasks) --------------------------------------
_PREDICTORS: dict[tuple[str, int, str], Any] = {}


def load_predictor(checkpoint: str, num_threads: int = 2, backend: str = 'auto') -> Any:
    """A CPU predictor, cached per process (Ray workers evaluate many bags with one load)."""
    key = (str(checkpoint), num_threads, backend)
    if key not in _PREDICTORS:
        from mm_fusion_ros.model.predictor import FusionPredictor

        predictor = FusionPredictor.from_checkpoint(
            checkpoint, device='cpu', num_threads=num_threads, backend=backend)
        predictor.warmup()
        _PREDICTORS[key] = predictor
    return _PREDICTORS[key]


@dataclass(frozen=True)
class OfflineJob:
    """Everything one bag's offline evaluation needs; picklable (a Ray task argument)."""

    path: str
    topics: BagTopics
    checkpoint: str
    compare_checkpoint: str | None = None
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    num_threads: int = 2
    bag_index: int = 0


def run_offline_job(job: OfflineJob) -> BagResult:
    """Module level so Ray can ship it; the serial path calls it too (identical results)."""
    start = time.perf_counter()
    predictor = load_predictor(job.checkpoint, job.num_threads)
    compare = (load_predictor(job.compare_checkpoint, job.num_threads)
               if job.compare_checkpoint else None)
    result = evaluate_bag_offline(job.path, job.topics, predictor, job.replay, compare,
                                  bag_index=job.bag_index)
    result.counts['wall_ms'] = round((time.perf_counter() - start) * 1e3)
    return result


__all__ = [
    'FRAME_FIELDS', 'NO_ACTION', 'BagResult', 'DecisionNodeLogic', 'NodeConfigs', 'OfflineJob',
    'ReplayConfig', 'camera_duration_s', 'empty_frames', 'evaluate_bag_offline',
    'frames_from_rows', 'load_predictor', 'merge_results', 'node_configs',
    'run_offline_job', 'truth_of',
]
