"""Scoring a drive that has no ground truth against what its recorded driver did.

A bag without a decision topic but with odometry (a CARLA drive, a vehicle's own log) gets the
labels `mm-fusion label` derives (`labels.label_bag`: the ego's future odometry, lane changes,
hindsight over the radar tracks) at every camera stamp, in the per-frame fields
`driver_action` / `driver_accel`. `recorded_driver_metrics` compares the final decisions with
them. This is **agreement with the recorded driver, not ground truth**: a driver who brakes
late, or for something the rules do not see, is scored as if right.

Figures (`metrics.json` `recorded_driver`): macro-F1, accuracy and per-class F1 of the final
decision against the derived label on frames that have both; the acceleration MAE [m/s^2]
(final target acceleration vs the driver's commanded acceleration); and the brake-onset timing
error [s]: for every onset of braking in the driver's labels (a labelled frame of STOP or
EMERGENCY_BRAKE after one that is neither, within one bag) the nearest onset of braking in the
final decisions within `BRAKE_MATCH_WINDOW`; signed (positive: the model brakes later),
median and mean absolute, and how many driver onsets had none.
"""

from collections.abc import Sequence
import logging
from typing import Any

import numpy as np

from mm_fusion_ros.actions import ACTION_LABELS, Action
from mm_fusion_ros.errors import UserInputError
from mm_fusion_ros.evaluation.metrics import classification_report

_LOG = logging.getLogger(__name__)
NS = 1_000_000_000
BRAKE_ACTIONS = (int(Action.STOP), int(Action.EMERGENCY_BRAKE))
BRAKE_MATCH_WINDOW = 2.0  # [s] a model onset this near a driver onset answers it
MEANING = ("agreement with the recorded driver (labels derived from the bag's odometry and "
           'radar by `mm-fusion label`), not ground truth')


def add_recorded_driver(results: Sequence[Any], topics: Sequence[Any]) -> None:
    """Fill `driver_action` / `driver_accel` of bags without ground truth that have odometry.

    `results` are `BagResult`s, `topics` their `BagTopics` (same order). A bag without
    odometry is left as it is (its info says why); nothing is raised for it.
    """
    from mm_fusion_ros.labels import UNLABELLED_REASONS
    from mm_fusion_ros.labels.bag import label_bag

    for result, layout in zip(results, topics, strict=True):
        frames = result.frames
        if (frames['truth_action'] >= 0).any() or not result.num_frames:
            continue
        try:
            labelled = label_bag(result.path, layout)
        except UserInputError as exc:  # no odometry: nothing to derive
            result.info['recorded_driver'] = f'no derived labels: {exc}'
            continue
        labels = labelled.labels
        index = np.searchsorted(labels.stamps_ns, frames['stamp_ns'])
        index = np.clip(index, 0, max(len(labels.stamps_ns) - 1, 0))
        same = (labels.stamps_ns[index] == frames['stamp_ns']) if len(labels.stamps_ns) else \
            np.zeros(len(index), bool)
        frames['driver_action'] = np.where(same, labels.actions[index], -1).astype(np.int64)
        frames['driver_accel'] = np.where(same, labels.accels[index], np.nan).astype(np.float32)
        counts = np.bincount(labels.reasons[labels.reasons >= 0].astype(np.int64),
                             minlength=len(UNLABELLED_REASONS))
        result.info['recorded_driver'] = {
            'labelled_frames': int((frames['driver_action'] >= 0).sum()),
            'unlabelled': {r: int(c) for r, c in zip(UNLABELLED_REASONS, counts, strict=False)
                           if c},
        }


def onsets(actions: np.ndarray, bags: np.ndarray) -> np.ndarray:
    """Indices of braking onsets: a braking frame whose predecessor (same bag) is not."""
    brake = np.isin(actions, BRAKE_ACTIONS)
    known = actions >= 0
    prev_brake = np.r_[False, brake[:-1]]
    prev_known = np.r_[False, known[:-1]]
    same_bag = np.r_[False, bags[1:] == bags[:-1]]
    return np.flatnonzero(brake & same_bag & prev_known & ~prev_brake)


def brake_onset_timing(frames: dict[str, np.ndarray],
                       window: float = BRAKE_MATCH_WINDOW) -> dict[str, Any]:
    """Model (final decision) brake onsets against the driver's, per bag (see module doc)."""
    bags, stamps = frames['bag'], frames['stamp_ns']
    driver = onsets(frames['driver_action'], bags)
    model = onsets(frames['action'], bags)
    errors, missed = [], 0
    for i in driver:
        cand = model[bags[model] == bags[i]]
        if len(cand):
            dt = (stamps[cand] - stamps[i]) / NS
            k = int(np.argmin(np.abs(dt)))
            if abs(dt[k]) <= window:
                errors.append(float(dt[k]))
                continue
        missed += 1
    err = np.asarray(errors, np.float64)
    return {
        'driver_onsets': int(len(driver)), 'matched': int(len(err)), 'missed': missed,
        'model_onsets': int(len(model)), 'window_s': window,
        'median_s': float(np.median(err)) if len(err) else None,
        'mean_abs_s': float(np.abs(err).mean()) if len(err) else None,
        'p90_abs_s': float(np.percentile(np.abs(err), 90)) if len(err) else None,
    }


def recorded_driver_metrics(frames: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The `recorded_driver` block, or None when no frame has a derived label."""
    driver = frames.get('driver_action')
    if driver is None:
        return None
    action = frames['action']
    both = (driver >= 0) & (action >= 0)
    if not both.any():
        return None
    report = classification_report(driver[both], action[both])
    per_class = {label: {'precision': report.precision[k], 'recall': report.recall[k],
                         'f1': report.f1[k], 'support': report.support[k]}
                 for k, label in enumerate(ACTION_LABELS)}
    err = (frames['accel'][both].astype(np.float64)
           - frames['driver_accel'][both].astype(np.float64))
    err = err[np.isfinite(err)]
    model = frames['model_action']
    raw = both & (model >= 0)
    out = {
        'meaning': MEANING,
        'frames': int(both.sum()),
        'macro_f1': report.macro_f1,
        'accuracy': report.accuracy,
        'per_class_f1': {label: c['f1'] for label, c in per_class.items()},
        'per_class': per_class,
        'confusion': report.confusion,
        'accel_mae': float(np.abs(err).mean()) if len(err) else None,
        'brake_onset': brake_onset_timing(frames),
    }
    if raw.any():
        out['model_macro_f1'] = classification_report(driver[raw], model[raw]).macro_f1
    return out


def markdown_lines(block: dict[str, Any]) -> list[str]:
    """summary.md lines for the block."""
    def fmt(v: Any) -> str:
        return 'n/a' if v is None else f'{v:.3f}' if isinstance(v, float) else str(v)

    onset = block['brake_onset']
    lines = [f"- **Not ground truth**: the figures below are {block['meaning']}.", '',
             '| vs recorded driver | value |', '|---|---|',
             f"| frames | {block['frames']} |",
             f"| macro-F1 (final decision) | {fmt(block['macro_f1'])} |",
             f"| macro-F1 (model, before the safety layer) | "
             f"{fmt(block.get('model_macro_f1'))} |",
             f"| accuracy | {fmt(block['accuracy'])} |",
             f"| acceleration MAE [m/s^2] | {fmt(block['accel_mae'])} |",
             f"| brake onsets (driver / matched / missed) | {onset['driver_onsets']} / "
             f"{onset['matched']} / {onset['missed']} |",
             f"| brake-onset error median / mean abs [s] | {fmt(onset['median_s'])} / "
             f"{fmt(onset['mean_abs_s'])} |", '',
             '| class | F1 | driver frames |', '|---|---|---|']
    lines += [f"| {label} | {fmt(c['f1'])} | {c['support']} |"
              for label, c in block['per_class'].items()]
    return lines


__all__ = ['BRAKE_MATCH_WINDOW', 'MEANING', 'add_recorded_driver', 'brake_onset_timing',
           'markdown_lines', 'onsets', 'recorded_driver_metrics']
