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

from mm_fusion_ros.actions import Action
from mm_fusion_ros.bags.delivery import delivery_order
from mm_fusion_ros.bags.reader import (
    DEFAULT_MAX_MESSAGE_BYTES,
    BagTopics,
    open_bag,
)
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.evaluation.metrics import reason_mask, reject_code
from mm_fusion_ros.graph import node_overrides
from mm_fusion_ros.params.nodes import DecisionNodeParams, FusionNodeParams
from mm_fusion_ros.params.spec import load_params
from mm_fusion_ros.paths import resolve_params_file
from mm_fusion_ros.pipeline import FusionPipeline, PipelineConfig
from mm_fusion_ros.safety import DecisionLogic, SafetyConfig
from mm_fusion_ros.sensors.errors import SensorDecodeError
from mm_fusion_ros.sensors.front_end import RadarToModel, SensorRig
from mm_fusion_ros.sensors.image import image_to_rgb
from mm_fusion_ros.sensors.odometry import forward_speed

NS = 1_000_000_000
NO_ACTION = -1  # frame without a decision (online: none recorded) or without ground truth
GEOMETRY_SOURCES = ('bag', 'params', 'none')

# Per-frame arrays of a BagResult: name -> dtype. Merging bags concatenates these in bag order.
FRAME_FIELDS: dict[str, Any] = {
    'bag': np.int32,             # index of the bag in the evaluated list
    'stamp_ns': np.int64,        # camera stamp
    'action': np.int64,          # final decision (after the safety layer); -1 = none
    'accel': np.float32,         # [m/s^2] final target acceleration (nan = none)
    'source': np.int64,          # DecisionSource of the final decision (-1 = none)
    'model_action': np.int64,    # raw model argmax (-1 = fallback / unknown)
    # [s] offline: this frame's own compute (camera decode, its radar frame's conversion and
    # cleanup, history/sync, safety layer; each timed per frame) plus its share of the batched
    # model call; online: wall time from publishing the camera frame to the final decision.
    'latency_s': np.float64,
    'degraded': np.int8,         # final decision degraded: 1 / 0; -1 = none or not recorded
    'reason': np.int32,          # bits of metrics.DEGRADED_REASONS of the final decision's
    # degraded_reason (0 = not degraded; -1 = not recorded: online mode)
    'reject': np.int8,           # camera frame rejected by the decoder: index of its reason in
    # metrics.REJECT_REASONS (-1 = decoded, or not recorded: online mode)
    'truth_action': np.int64,    # ground-truth decision at the camera stamp (-1 = none)
    'truth_accel': np.float32,   # [m/s^2] (nan = none)
    'compare_action': np.int64,  # final decision with --compare-checkpoint (-1 = none)
    'compare_accel': np.float32,
    # label derived from the recorded driver's odometry and radar, for bags without ground
    # truth (`evaluation.recorded_driver`; -1 = none or unlabelled)
    'driver_action': np.int64,
    'driver_accel': np.float32,  # [m/s^2] the driver's commanded acceleration (nan = none)
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
    # Sensor geometry (offline): 'bag' = mounts from the bag's /tf_static and intrinsics from
    # its CameraInfo where the layout names them, else the params file's mounts (`bags.rig`);
    # 'params' = the params file's mounts and no CameraInfo; 'none' = the training rig, frames
    # as they come (what the model saw before it knew about geometry).
    geometry: str = 'bag'

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError('batch_size must be >= 1')
        if self.geometry not in GEOMETRY_SOURCES:
            raise ValueError(f'geometry must be one of {GEOMETRY_SOURCES}, got {self.geometry!r}')
        if self.radar_lead < 0 or self.reorder_window <= 0:
            raise ValueError('radar_lead must be >= 0 and reorder_window > 0')


@dataclass(frozen=True)
class NodeConfigs:
    """The fusion and decision nodes' parameters, and the core configs they build."""

    fusion: FusionNodeParams
    decision: DecisionNodeParams

    @property
    def pipeline(self) -> PipelineConfig:
        return self.fusion.pipeline_config()

    @property
    def safety(self) -> SafetyConfig:
        return self.decision.safety_config()

    @property
    def camera_transport(self) -> str:
        return self.fusion.camera_transport

    @property
    def radar_wait(self) -> float:
        return self.fusion.radar_wait  # [s] wall time online


def bag_settings(topics: BagTopics) -> dict[str, Any]:
    """Node parameters a bag layout sets (its radar preset and image kind), in both modes."""
    return {'radar_preset': topics.radar_preset, 'camera_transport': topics.image_kind}


def node_configs(topics: BagTopics, params_file: str | Path | None = None) -> NodeConfigs:
    """The nodes' parameters as they would declare them from `params_file` (default: shipped).

    The bag layout's settings (`bag_settings`) go to the nodes exactly as the online mode
    passes them to the running graph, so both modes run the same configuration.
    """
    file = resolve_params_file(params_file)
    per_node = node_overrides('fusion', bag_settings(topics))
    return NodeConfigs(
        load_params(FusionNodeParams, 'fusion_node', [file], per_node.get('fusion_node')),
        load_params(DecisionNodeParams, 'decision_node', [file], per_node.get('decision_node')),
    )


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
    # rejected inputs by decoder reason: {'image'|'radar'|'odometry': {reason: count}}
    rejects: dict[str, dict[str, int]] = field(default_factory=dict)
    # a few camera frames with their radar points (replay_report.Thumbnail), for the report
    thumbnails: list[Any] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(len(self.frames['stamp_ns']))

    def summary(self) -> dict[str, Any]:
        """What the report shows per bag; 'thumbnails' become PNGs, not metrics.json entries."""
        return {'path': self.path, 'topics': self.topics, 'mode': self.mode,
                'frames': self.num_frames, 'duration_s': self.duration_s,
                'counts': dict(self.counts), 'info': dict(self.info),
                'rejects': {k: dict(v) for k, v in self.rejects.items()},
                'thumbnails': list(self.thumbnails)}


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
    # A field a result lacks (one built by older code) keeps its 'none' value.
    merged = {k: np.concatenate([p[k] if k in p else empty_frames(len(p['stamp_ns']))[k]
                                 for p in parts]).astype(dt)
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
def replay_rig(path: str | Path, topics: BagTopics, configs: NodeConfigs,
               cfg: ReplayConfig) -> tuple[SensorRig, str]:
    """The rig a bag is replayed with (`ReplayConfig.geometry`) and a line saying whence."""
    if cfg.geometry == 'none':
        return SensorRig(), 'training rig (geometry ignored)'
    if cfg.geometry == 'params':
        return configs.fusion.rig(), 'params file mounts'
    from mm_fusion_ros.bags.rig import bag_geometry

    geometry = bag_geometry(path, topics, configs.fusion.rig(), configs.fusion.use_camera_info,
                            cfg.max_message_bytes)
    return geometry.rig, geometry.describe()


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
    from mm_fusion_ros.evaluation.replay_report import ThumbnailSampler  # it imports replay

    # The rig goes to both nodes, as a vehicle's parameters would: fusion_node's front end
    # (radar into the model frame, camera into the training view) and decision_node's radar.
    rig, geometry = replay_rig(path, topics, configs, cfg)
    models = [_Model(predictor, configs)] + ([_Model(compare, configs)] if compare else [])
    for m in models:
        m.pipeline.front.set_rig(rig)
    to_canonical = RadarToModel(configs.pipeline.radar_preset, rig.radar_mount)
    slop_ns = round(configs.pipeline.sync_slop * NS)
    counts = {'camera_frames': 0, 'radar_frames': 0, 'radar_rejected': 0,
              'image_rejected': 0, 'odometry_rejected': 0, 'degraded': 0, 'fallback': 0}
    rejects: dict[str, dict[str, int]] = {'image': {}, 'radar': {}, 'odometry': {}}
    truth: dict[int, tuple[int, float]] = {}
    rows: list[dict[str, Any]] = []
    # ('radar', clock, canonical|None)
    # | ('camera', clock, stamp, slot | fallback Decision, work_s [s], reject code | -1)
    tape: list[tuple] = []
    rgbs: list[np.ndarray] = []
    thumbs = ThumbnailSampler()
    radar_s = 0.0  # [s] radar work since the last camera frame (its paired frame's share)
    last_radar: tuple[int, np.ndarray] | None = None  # newest cleaned radar frame, for thumbnails

    def reject(kind: str, exc: SensorDecodeError) -> None:
        counts[f'{kind}_rejected'] += 1
        by_reason = rejects[kind]
        by_reason[exc.reason] = by_reason.get(exc.reason, 0) + 1

    def flush() -> None:
        n = len(rgbs)
        preds, model_share = [], 0.0
        for k, m in enumerate(models):
            if n:
                p = m.predictor.predict_batch(rgbs, m.seqs, cfg.modality, cfg.batch_size,
                                              m.speeds, m.previous)
                if k == 0:
                    model_share = p.latency_s / n
                preds.append(p)
            else:
                preds.append(None)
        chunk_rows: dict[int, dict[str, Any]] = {}
        for k, m in enumerate(models):
            for item in tape:
                if item[0] == 'radar':
                    m.decider.on_radar(item[1], item[2])
                    continue
                _, clock, stamp, slot, work_s, rejected = item
                start = time.perf_counter()
                if isinstance(slot, Decision):  # the node's fallback for an unusable frame
                    decision, raw, share = slot, NO_ACTION, 0.0  # no model call
                else:
                    p = preds[k]
                    decision = _decision(stamp, p, slot, m.reasons[slot])
                    raw, share = int(p.actions[slot]), model_share
                final = m.decider.on_decision(clock, decision)
                safety_s = time.perf_counter() - start
                row = chunk_rows.setdefault(stamp, {'stamp_ns': stamp})
                if k == 0:
                    row.update(model_action=raw, reject=rejected)
                if final is None:  # rejected by decision_node: nothing published
                    continue
                if k == 0:
                    row.update(action=int(final.action), accel=final.target_acceleration,
                               source=int(final.source), degraded=int(final.degraded),
                               reason=reason_mask(final.degraded_reason),
                               latency_s=work_s + safety_s + share)
                    counts['degraded'] += int(final.degraded)
                    counts['fallback'] += final.source == DecisionSource.FALLBACK
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
                except SensorDecodeError as exc:
                    reject('odometry', exc)  # fusion_node skips it
                    continue
                for m in models:
                    m.pipeline.add_odometry(ev.stamp_ns, speed)
            elif ev.kind == 'radar':
                counts['radar_frames'] += 1
                start = time.perf_counter()
                try:
                    points = models[0].pipeline.radar_points(ev.msg)
                except SensorDecodeError as exc:
                    reject('radar', exc)  # fusion_node skips the cloud
                else:
                    for m in models:
                        m.pipeline.add_radar(ev.stamp_ns, points)
                    last_radar = (ev.stamp_ns, points)
                try:
                    canonical = to_canonical(ev.msg)
                except SensorDecodeError:
                    canonical = None  # decision_node skips it too (counted once, above)
                radar_s += time.perf_counter() - start
                tape.append(('radar', ev.clock_ns, canonical))
            elif ev.kind == 'camera':
                counts['camera_frames'] += 1
                start = time.perf_counter()
                try:  # decode, then the training camera's view (a size mismatch is rejected)
                    rgb = models[0].pipeline.camera_view(image_to_rgb(ev.msg))
                except SensorDecodeError as exc:
                    reject('image', exc)
                    fallback = models[0].pipeline.fallback(
                        ev.stamp_ns, f'camera frame rejected: {exc}')
                    work_s = radar_s + time.perf_counter() - start
                    tape.append(('camera', ev.clock_ns, ev.stamp_ns, fallback, work_s,
                                 reject_code(exc.reason)))
                    radar_s = 0.0
                    continue
                for k, m in enumerate(models):
                    m.previous.append(m.pipeline.add_camera(ev.stamp_ns, rgb))
                    seq = m.pipeline.sequence(ev.stamp_ns)
                    speed = m.pipeline.speed_at(ev.stamp_ns)
                    m.seqs.append(seq)
                    m.speeds.append(speed)
                    m.reasons.append(m.pipeline.degraded_reason(seq, speed))
                    if k == 0:  # the compare model's work is not this frame's latency
                        work_s = radar_s + time.perf_counter() - start
                tape.append(('camera', ev.clock_ns, ev.stamp_ns, len(rgbs), work_s, -1))
                radar_s = 0.0
                if thumbs.due(ev.stamp_ns):
                    near = last_radar is not None and abs(last_radar[0] - ev.stamp_ns) <= slop_ns
                    thumbs.add(ev.stamp_ns, rgb, last_radar[1] if near else None)
                rgbs.append(rgb)
                if len(rgbs) >= cfg.batch_size:
                    flush()
        flush()
        counts['rejected_messages'] = bag.stats.rejected_count
    info = {**info, 'geometry': geometry}
    frames = frames_from_rows(rows, truth, bag_index)
    return BagResult(str(path), topics.name, 'offline', camera_duration_s(frames['stamp_ns']),
                     frames, counts, info, {k: v for k, v in rejects.items() if v},
                     thumbs.thumbnails)


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
# Batched offline inference: 2 threads beat 1 on a 2-core machine (the live node's num_threads
# is 1 because its executor and DDS threads share the cores). `--num-threads` overrides it.
OFFLINE_THREADS = 2


def load_predictor(checkpoint: str, num_threads: int = OFFLINE_THREADS,
                   backend: str = 'auto') -> Any:
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
    num_threads: int = OFFLINE_THREADS
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
    'FRAME_FIELDS', 'GEOMETRY_SOURCES', 'NO_ACTION', 'OFFLINE_THREADS', 'BagResult',
    'DecisionNodeLogic',
    'NodeConfigs', 'OfflineJob', 'ReplayConfig', 'bag_settings', 'camera_duration_s',
    'empty_frames', 'evaluate_bag_offline',
    'frames_from_rows', 'load_predictor', 'merge_results', 'node_configs',
    'replay_rig', 'run_offline_job', 'truth_of',
]
