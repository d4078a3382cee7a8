"""Label inputs from a bag: odometry, radar frames, camera stamps (and, to score, the expert).

One pass over the bag through `open_bag` (any topics layout: sim, carla, a YAML). The
derivation never sees the expert's decision topic: `read_label_inputs` returns it apart, for
`score_labels` only. A bag without the layout's odometry topic raises `MissingOdometryError`,
whose one-line message names the topic and lists what the bag has.
"""

from dataclasses import dataclass, field
from pathlib import Path
import time
from typing import Any

import numpy as np

from mm_fusion_ros.actions import ACTION_LABELS
from mm_fusion_ros.bags.reader import BagError, BagTopics, open_bag
from mm_fusion_ros.errors import UserInputError
from mm_fusion_ros.labels.config import LabelConfig
from mm_fusion_ros.labels.derive import DerivedLabels, derive_labels
from mm_fusion_ros.labels.odometry import OdometrySeries
from mm_fusion_ros.sensors.errors import SensorDecodeError
from mm_fusion_ros.sensors.radar_presets import load_preset
from mm_fusion_ros.sensors.sync import msg_stamp_ns

ODOMETRY = 'nav_msgs/msg/Odometry'


class MissingOdometryError(BagError, UserInputError):
    """Labels were asked from a bag that has no odometry topic (or a layout that names none)."""


@dataclass
class LabelInputs:
    """What the derivation reads from one bag, plus the expert's decisions to score against."""

    path: str
    odometry: OdometrySeries
    radar: list[tuple[int, np.ndarray]]  # (stamp_ns, (N, 5) canonical vehicle-frame points)
    camera_stamps_ns: np.ndarray  # (M,) int64, sorted, unique
    expert: dict[int, tuple[int, float]] = field(default_factory=dict)  # stamp -> (action, a)
    radar_rejected: int = 0  # clouds the radar preset could not decode (skipped)
    radar_rcs: bool = True  # False: the preset's rcs is a constant (the radar reports none)


def _listing(available: dict[str, str]) -> str:
    return ', '.join(f'{t} [{ty}]' for t, ty in sorted(available.items())) or '(no topics)'


def read_label_inputs(path: str | Path, topics: BagTopics | str | None = None) -> LabelInputs:
    """Odometry, radar frames and camera stamps of a bag (raises MissingOdometryError).

    Radar points are taken into the model radar frame (the training rig's bumper mount, which
    the gap rules assume) through the bag's geometry (`bags.rig.bag_geometry`: its
    /tf_static where the layout names one, else the training rig's mount).
    """
    from mm_fusion_ros.bags.rig import bag_geometry
    from mm_fusion_ros.sensors.front_end import RadarToModel

    with open_bag(path, topics) as bag:
        odo_topic = bag.topics.odometry_topic
        if not odo_topic or odo_topic not in bag.available:
            what = (f'no odometry topic {odo_topic} [{ODOMETRY}]' if odo_topic else
                    f'topics preset {bag.topics.name!r} names no odometry topic (set'
                    ' odometry_topic in a layout YAML)')
            raise MissingOdometryError(
                f'bag {str(path)!r}: cannot derive labels: {what}; the bag has:'
                f' {_listing(bag.available)}')
        layout = bag.topics
        if layout.odometry_topic in bag.available:
            mount = bag_geometry(path, layout, use_camera_info=False).rig.radar_mount
            convert = RadarToModel(layout.radar_preset, mount)
        else:
            convert = load_preset(layout.radar_preset).converter()
        odo: list[tuple[int, float, float, float]] = []
        radar: list[tuple[int, np.ndarray]] = []
        cams: list[int] = []
        expert: dict[int, tuple[int, float]] = {}
        rejected = 0
        for m in bag.messages(('image', 'radar', 'odometry', 'ground_truth')):
            if m.kind == 'image':
                cams.append(msg_stamp_ns(m.msg))
            elif m.kind == 'radar':
                try:
                    radar.append((msg_stamp_ns(m.msg), convert(m.msg)))
                except SensorDecodeError:
                    rejected += 1
            elif m.kind == 'odometry':
                odo.append(_odometry_row(m.msg))
            else:
                expert[msg_stamp_ns(m.msg)] = (int(m.msg.action),
                                               float(m.msg.target_acceleration))
    rcs_source = load_preset(layout.radar_preset).sources.get('rcs')
    radar_rcs = rcs_source is not None and rcs_source.constant is None
    rows = np.asarray(odo, np.float64).reshape(-1, 4)
    series = OdometrySeries.from_arrays(
        np.asarray([r[0] for r in odo], np.int64), rows[:, 1], rows[:, 2], rows[:, 3])
    if len(series) < 2:
        raise MissingOdometryError(
            f'bag {str(path)!r}: cannot derive labels: odometry topic {odo_topic} has'
            f' {len(series)} usable messages of {len(odo)}')
    return LabelInputs(str(path), series, radar, np.unique(np.asarray(cams, np.int64)),
                       expert, rejected, radar_rcs)


def _odometry_row(msg: Any) -> tuple[int, float, float, float]:
    """(stamp_ns, x, y, forward speed); unreadable values become NaN (dropped, counted)."""
    try:
        p = msg.pose.pose.position
        return msg_stamp_ns(msg), float(p.x), float(p.y), float(msg.twist.twist.linear.x)
    except (AttributeError, TypeError, ValueError, OverflowError):
        return msg_stamp_ns(msg), np.nan, np.nan, np.nan


@dataclass
class BagLabels:
    """Derived labels of one bag, the expert's decisions at the same stamps when it has them."""

    inputs: LabelInputs
    labels: DerivedLabels
    expert_actions: np.ndarray | None  # (M,) int64, -1 where the expert has no decision
    expert_accels: np.ndarray | None  # (M,) float64, NaN where none
    seconds: float  # wall time: read + derive


def expert_at(expert: dict[int, tuple[int, float]], stamps: np.ndarray,
              tolerance_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The expert's (action, acceleration) nearest each stamp within tolerance (else -1, NaN)."""
    actions = np.full(len(stamps), -1, np.int64)
    accels = np.full(len(stamps), np.nan)
    if not expert:
        return actions, accels
    keys = np.asarray(sorted(expert), np.int64)
    i = np.clip(np.searchsorted(keys, stamps), 1, max(len(keys) - 1, 1))
    left = keys[np.minimum(i - 1, len(keys) - 1)]
    right = keys[np.minimum(i, len(keys) - 1)]
    near = np.where(np.abs(stamps - left) <= np.abs(right - stamps), left, right)
    ok = np.abs(near - stamps) <= tolerance_ns
    for k in np.flatnonzero(ok):
        actions[k], accels[k] = expert[int(near[k])]
    return actions, accels


def label_bag(path: str | Path, topics: BagTopics | str | None = None,
              config: LabelConfig | None = None) -> BagLabels:
    """Read a bag and derive its labels (the expert's decisions kept apart, for scoring)."""
    t0 = time.perf_counter()
    inputs = read_label_inputs(path, topics)
    labels = derive_labels(inputs.odometry, inputs.radar, inputs.camera_stamps_ns, config,
                           inputs.radar_rcs)
    stamps = inputs.camera_stamps_ns
    exp_a = exp_acc = None
    if inputs.expert:
        half = int(np.median(np.diff(stamps))) // 2 if len(stamps) > 1 else 0
        exp_a, exp_acc = expert_at(inputs.expert, stamps, half)
    return BagLabels(inputs, labels, exp_a, exp_acc, time.perf_counter() - t0)


def score_labels(
    derived: np.ndarray, expert: np.ndarray, derived_accel: np.ndarray | None = None,
    expert_accel: np.ndarray | None = None,
) -> dict[str, Any]:
    """Derived vs expert on the frames both label: classification report, accel errors."""
    from mm_fusion_ros.evaluation.metrics import classification_report

    derived, expert = np.asarray(derived, np.int64), np.asarray(expert, np.int64)
    both = (derived >= 0) & (expert >= 0)
    report = classification_report(expert[both], derived[both], ACTION_LABELS)
    out: dict[str, Any] = {'frames': int(both.sum()), **report.to_dict()}
    if derived_accel is not None and expert_accel is not None:
        err = np.asarray(derived_accel, np.float64)[both] - \
            np.asarray(expert_accel, np.float64)[both]
        err = err[np.isfinite(err)]
        out['accel_mae'] = float(np.abs(err).mean()) if len(err) else float('nan')
        out['accel_p95_abs'] = float(np.percentile(np.abs(err), 95)) if len(err) else \
            float('nan')
    return out
