"""Metrics and reports of a bag evaluation: JSON, Markdown, PNG plots and an index.html.

Metrics are computed once from the merged per-frame arrays (see `replay.merge_results`), so
evaluating bags serially or on Ray gives the same numbers. Pure core (numpy, matplotlib, Pillow).

summary.md and index.html open with what went wrong on the way to the decisions: camera frames,
radar clouds and odometry the decoders rejected (by `SensorDecodeError.reason`), fallback
decisions and degraded decisions (by reason, `metrics.DEGRADED_REASONS`). Then the model's
decision (before the safety layer) and the final one side by side against the expert, where
and why they differ, the latency with what the figure means in this mode, and per bag a
timeline with a few camera thumbnails that have the radar points drawn in.
"""

from collections import Counter
import html
import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mm_fusion_ros.actions import ACTION_LABELS, Action
from mm_fusion_ros.decision import DecisionSource
from mm_fusion_ros.evaluation.metrics import (
    REJECT_REASONS,
    classification_report,
    count_reasons,
    phantom_brake_frames,
    plot_confusion_matrix,
    reason_labels,
)
from mm_fusion_ros.evaluation.recorded_driver import markdown_lines as recorded_driver_lines
from mm_fusion_ros.evaluation.recorded_driver import recorded_driver_metrics
from mm_fusion_ros.evaluation.replay import NO_ACTION

BRAKE_ACTIONS = (int(Action.STOP), int(Action.EMERGENCY_BRAKE))
MAX_BAG_SECTIONS = 24    # index.html details this many bags (all are in the tables)
THUMBS_PER_BAG = 5       # camera thumbnails shown per bag

# What the latency figure is in each mode (the report says it next to the numbers).
LATENCY_MEANING = {
    'offline': 'per-frame compute: the camera decode, the conversion and cleanup of the radar '
               'frame paired with it, radar history and sync, and the safety layer, each timed '
               "for that frame, plus the frame's share of its batched model call. No DDS, no "
               'queueing and no batch-1 model call: a lower bound of what the nodes spend per '
               'frame, not the latency of the live graph.',
    'online': 'wall time from publishing the camera frame to receiving the final decision: '
              "DDS, fusion_node's queue and batch-1 model call, decision_node.",
}


# -- thumbnails -------------------------------------------------------------------------------
class Thumbnail(NamedTuple):
    """A camera frame of a bag, subsampled, with the radar points in sync with it."""

    stamp_ns: int
    rgb: np.ndarray    # (h, w, 3) uint8, at most ThumbnailSampler.max_width wide
    radar: np.ndarray  # (N, F) canonical radar points (x, y, z, radial_velocity, ...), N >= 0


class ThumbnailSampler:
    """Evenly spaced camera frames of one bag, bounded in number.

    Frames are taken on a grid of `period_s` from the bag's first frame; when `capacity` is
    reached every other grid point is dropped and the grid spacing doubles, so a bag of any
    length keeps between capacity/2 and capacity frames, evenly spread over it.
    """

    def __init__(self, capacity: int = 16, period_s: float = 0.5, max_width: int = 320) -> None:
        self.capacity = capacity
        self.period_ns = round(period_s * 1e9)
        self.max_width = max_width
        self.thumbnails: list[Thumbnail] = []
        self._grid: list[int] = []  # grid index of each thumbnail
        self._origin: int | None = None
        self._step = 1  # grid points between kept thumbnails
        self._next: int | None = None

    def due(self, stamp_ns: int) -> bool:
        """True when `stamp_ns` reached the next grid point (or the clock went back)."""
        return self._next is None or stamp_ns >= self._next or (
            stamp_ns < self.thumbnails[-1].stamp_ns)

    def add(self, stamp_ns: int, rgb: np.ndarray, radar: np.ndarray | None) -> None:
        stamp_ns = int(stamp_ns)
        if self._origin is None:
            self._origin = stamp_ns
        elif stamp_ns < self.thumbnails[-1].stamp_ns:  # clock went back (bag loop): the grid
            # goes on from the new stamp
            self._origin = stamp_ns - (self._grid[-1] + self._step) * self.period_ns
        step = max(1, math.ceil(rgb.shape[1] / self.max_width))
        points = np.zeros((0, 5), np.float32) if radar is None else np.array(radar, np.float32)
        grid = round((stamp_ns - self._origin) / self.period_ns)
        self.thumbnails.append(Thumbnail(stamp_ns, np.ascontiguousarray(rgb[::step, ::step]),
                                         points))
        self._grid.append(grid)
        if len(self.thumbnails) >= self.capacity:
            self._step *= 2
            keep = [i for i, g in enumerate(self._grid) if g % self._step == 0]
            self.thumbnails = [self.thumbnails[i] for i in keep]
            self._grid = [self._grid[i] for i in keep]
        following = (grid // self._step + 1) * self._step
        self._next = self._origin + following * self.period_ns


def bag_thumbnails(path: str | Path, topics: Any, sync_slop: float = 0.06) -> list[Thumbnail]:
    """A bag's thumbnails read after a run that kept no frames (the online mode).

    The same sampling as the offline mode; the radar points are the preset's canonical
    features of the cloud in sync with each frame (undecodable messages are skipped).
    """
    from mm_fusion_ros.bags.delivery import delivery_order
    from mm_fusion_ros.bags.reader import open_bag
    from mm_fusion_ros.sensors.errors import SensorDecodeError
    from mm_fusion_ros.sensors.image import image_to_rgb
    from mm_fusion_ros.sensors.radar_presets import load_preset

    sampler = ThumbnailSampler()
    convert = load_preset(topics.radar_preset).converter()
    radar: Any = None
    with open_bag(path, topics) as bag:
        for ev in delivery_order(bag, sync_slop, 0.5, 0.02):
            if ev.kind == 'radar':
                radar = ev
            elif ev.kind == 'camera' and sampler.due(ev.stamp_ns):
                try:
                    rgb = image_to_rgb(ev.msg)
                    near = radar is not None and abs(radar.stamp_ns - ev.stamp_ns) <= \
                        sync_slop * 1e9
                    points = convert(radar.msg) if near else None
                except SensorDecodeError:
                    continue
                sampler.add(ev.stamp_ns, rgb, points)
    return sampler.thumbnails


def project_radar(points: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Pixel (u, v) and depth [m] of canonical radar points in a camera image, vectorised.

    The simulator's geometry (`sim.camera.CameraConfig`, `sim.radar.RadarConfig`): radar and
    camera look along x, the radar `mount_x - camera.mount_x` ahead of the camera and
    `mount_height - mount_z` below it; a pinhole at the camera's horizontal field of view with
    the principal point at the image centre, scaled to `width`. Bags of other rigs are drawn
    with the same geometry (the topics carry no extrinsics). Returns (u, v, depth, index) of
    the points in front of the camera and inside the image, far to near.
    """
    from mm_fusion_ros.sim.camera import CameraConfig
    from mm_fusion_ros.sim.radar import RadarConfig

    cam, rad = CameraConfig(), RadarConfig()
    pts = np.asarray(points, np.float64).reshape(len(points), -1)
    fx = 0.5 * width / math.tan(math.radians(0.5 * cam.hfov))
    depth = pts[:, 0] + (rad.mount_x - cam.mount_x)
    with np.errstate(divide='ignore', invalid='ignore'):
        u = 0.5 * width - fx * pts[:, 1] / depth
        v = 0.5 * height - fx * (pts[:, 2] + rad.mount_z - cam.mount_height) / depth
    keep = np.flatnonzero((depth > 0.5) & (u >= 0) & (u < width) & (v >= 0) & (v < height))
    keep = keep[np.argsort(-depth[keep], kind='stable')]
    return u[keep], v[keep], depth[keep], keep


# Radar dot colour by radial velocity [m/s] (relative to the radar, negative closing): red
# closing fast (static scenery ahead of a moving ego too), yellow 0 (moving with the ego), blue
# opening.
_VR_STOPS = (-10.0, 0.0, 5.0)
_VR_COLOURS = ((255, 45, 45), (255, 220, 0), (40, 150, 255))


def draw_radar(rgb: np.ndarray, points: np.ndarray, radius: int = 2) -> np.ndarray:
    """A copy of `rgb` with each radar point as a dot (dark rim), coloured by radial velocity."""
    out = np.array(rgb, np.uint8, copy=True)
    h, w = out.shape[:2]
    if not len(points):
        return out
    u, v, _, idx = project_radar(points, w, h)
    if not len(idx):
        return out
    vr = np.asarray(points, np.float32).reshape(len(points), -1)[idx, 3]
    colour = np.stack([np.interp(vr, _VR_STOPS, [c[ch] for c in _VR_COLOURS])
                       for ch in range(3)], axis=1).astype(np.uint8)
    ui, vi = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
    for r, rim in ((radius, True), (radius - 1, False)):
        off = np.arange(-r, r + 1)
        rows = np.clip(vi[:, None, None] + off[None, :, None], 0, h - 1)
        cols = np.clip(ui[:, None, None] + off[None, None, :], 0, w - 1)
        rows, cols = np.broadcast_arrays(rows, cols)
        out[rows, cols] = 20 if rim else colour[:, None, None, :]
    return out


# -- metrics ----------------------------------------------------------------------------------
def false_brake_events(pred: np.ndarray, truth: np.ndarray,
                       bag: np.ndarray | None = None) -> int:
    """Onsets of runs of frames braking (STOP/EB) where the expert did neither.

    A run never spans two bags; frames without ground truth end a run.
    """
    pred = np.asarray(pred, np.int64)
    truth = np.asarray(truth, np.int64)
    false = np.isin(pred, BRAKE_ACTIONS) & ~np.isin(truth, BRAKE_ACTIONS) & (truth >= 0)
    if not false.any():
        return 0
    prev = np.concatenate([[False], false[:-1]])
    if bag is not None:
        bag = np.asarray(bag)
        prev &= np.concatenate([[False], bag[1:] == bag[:-1]])
    return int(np.sum(false & ~prev))


def recall_of(pred: np.ndarray, truth: np.ndarray, action: int) -> float | None:
    """Recall of one class (None when the expert never chose it)."""
    sel = np.asarray(truth) == action
    if not sel.any():
        return None
    return float(np.mean(np.asarray(pred)[sel] == action))


def latency_summary(latency_s: np.ndarray) -> dict[str, float | None]:
    lat = np.asarray(latency_s, float)
    lat = lat[np.isfinite(lat) & (lat > 0)]
    if not lat.size:
        return {'count': 0, 'median_ms': None, 'p99_ms': None, 'mean_ms': None, 'max_ms': None}
    return {'count': int(lat.size), 'median_ms': float(np.median(lat) * 1e3),
            'p99_ms': float(np.percentile(lat, 99) * 1e3), 'mean_ms': float(lat.mean() * 1e3),
            'max_ms': float(lat.max() * 1e3)}


def _field(frames: dict[str, np.ndarray], name: str, fill: int = NO_ACTION) -> np.ndarray:
    """A per-frame array, or its 'not recorded' value for frames built without it."""
    if name in frames:
        return np.asarray(frames[name])
    return np.full(len(frames['stamp_ns']), fill)


def robustness(frames: dict[str, np.ndarray]) -> dict[str, Any]:
    """Rejected camera frames, fallback and degraded decisions, each by reason."""
    action = np.asarray(frames['action'])
    source = np.asarray(frames['source'])
    reject = _field(frames, 'reject')
    degraded = _field(frames, 'degraded')
    reason = _field(frames, 'reason')
    fallback = (action >= 0) & (source == int(DecisionSource.FALLBACK))
    bad = (reject >= 0) & (reject < len(REJECT_REASONS))
    rejected = Counter(REJECT_REASONS[int(c)] for c in reject[bad])
    recorded = bool((degraded >= 0).any()) or not len(action)
    return {
        'frames': int(len(action)),
        'frames_without_decision': int((action < 0).sum()),
        'rejected_frames': int(bad.sum()),
        'rejected_by_reason': dict(rejected.most_common()),
        'fallback_frames': int(fallback.sum()),
        'fallback_by_reason': count_reasons(reason[fallback]),
        'degraded_recorded': recorded,
        'degraded_frames': int((degraded == 1).sum()) if recorded else None,
        'degraded_by_reason': count_reasons(reason[degraded == 1]),
    }


_WHY = {
    DecisionSource.SAFETY_OVERRIDE: 'safety override (radar time-to-collision)',
    DecisionSource.DWELL_HOLD: 'held by the safety layer (min_dwell)',
    DecisionSource.RADAR_OUT_CAUTION: 'radar-out caution (radar briefly missing)',
}


def _why_differs(source: int, mask: int) -> str:
    """The named category of a frame whose final action is not the model's (its source)."""
    if source == DecisionSource.FALLBACK:
        labels = reason_labels(mask)
        return 'fallback: ' + ', '.join(labels) if labels else 'fallback'
    return _WHY.get(source, f'unaccounted (source {source})')


def model_vs_final(frames: dict[str, np.ndarray]) -> dict[str, Any]:
    """Where the final decision differs from the model's, grouped by why and by transition."""
    action = np.asarray(frames['action'])
    model = np.asarray(frames['model_action'])
    both = (action >= 0) & (model >= 0)
    diff = np.flatnonzero(both & (action != model))
    source = np.asarray(frames['source'])
    reason = _field(frames, 'reason')
    rows = Counter(
        (_why_differs(int(source[i]), int(reason[i])),
         f'{ACTION_LABELS[model[i]]} -> {ACTION_LABELS[action[i]]}') for i in diff)
    return {'frames': int(both.sum()), 'same': int(both.sum() - len(diff)),
            'different': int(len(diff)),
            'differences': [{'why': why, 'model_to_final': change, 'frames': n}
                            for (why, change), n in rows.most_common()]}


def compute_metrics(frames: dict[str, np.ndarray], duration_s: float) -> dict[str, Any]:
    """All figures of a (merged) evaluation; see the module docstring."""
    action = frames['action']
    truth = frames['truth_action']
    decided = action >= 0
    out: dict[str, Any] = {
        'frames': int(len(action)),
        'frames_with_decision': int(decided.sum()),
        'frames_with_ground_truth': int((truth >= 0).sum()),
        'duration_s': float(duration_s),
        'latency': latency_summary(frames['latency_s']),
        'robustness': robustness(frames),
        'model_vs_final': model_vs_final(frames),
    }
    driver = recorded_driver_metrics(frames) if not (truth >= 0).any() else None
    if driver:
        out['recorded_driver'] = driver
    labelled = decided & (truth >= 0)
    if labelled.any():
        report = classification_report(truth[labelled], action[labelled])
        hours = duration_s / 3600.0
        events = false_brake_events(action[labelled], truth[labelled], frames['bag'][labelled])
        out['ground_truth'] = {
            'accuracy': report.accuracy,
            'macro_f1': report.macro_f1,
            'per_class': {
                label: {'precision': report.precision[i], 'recall': report.recall[i],
                        'f1': report.f1[i], 'support': report.support[i]}
                for i, label in enumerate(report.labels)},
            'confusion': report.confusion,
            'labels': report.labels,
            'emergency_brake_recall': recall_of(action[labelled], truth[labelled],
                                                int(Action.EMERGENCY_BRAKE)),
            'false_brake_events': events,
            'false_brake_per_hour': events / hours if hours > 0 else None,
            'agreement_with_ground_truth': report.accuracy,
        }
        model = frames['model_action']
        raw = labelled & (model >= 0)
        if raw.any():
            model_report = classification_report(truth[raw], model[raw])
            out['ground_truth'].update(
                model_accuracy_before_safety=float(np.mean(model[raw] == truth[raw])),
                model_macro_f1=model_report.macro_f1,
                model_confusion=model_report.confusion,
                model_frames=int(raw.sum()),
                model_per_class={
                    label: {'precision': model_report.precision[i],
                            'recall': model_report.recall[i], 'f1': model_report.f1[i]}
                    for i, label in enumerate(model_report.labels)},
                model_emergency_brake_recall=recall_of(model[raw], truth[raw],
                                                       int(Action.EMERGENCY_BRAKE)),
            )
            phantom_eb, phantom_stop = phantom_brake_frames(action[raw], model[raw], truth[raw])
            out['ground_truth'].update(phantom_emergency_brake_frames=phantom_eb,
                                       phantom_stop_frames=phantom_stop)
    compare = frames['compare_action']
    both = decided & (compare >= 0)
    if both.any():
        out['compare'] = {'agreement': float(np.mean(action[both] == compare[both])),
                          'frames': int(both.sum())}
        if labelled.any():
            sel = both & (truth >= 0)
            if sel.any():
                out['compare']['compare_accuracy'] = float(np.mean(compare[sel] == truth[sel]))
    return out


def agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, Any]:
    """Share of camera frames (matched by bag and stamp) with the same final action."""
    key_a = {(int(g), int(s)): int(x) for g, s, x in zip(a['bag'], a['stamp_ns'], a['action'],
                                                          strict=True)}
    key_b = {(int(g), int(s)): int(x) for g, s, x in zip(b['bag'], b['stamp_ns'], b['action'],
                                                          strict=True)}
    frames = sorted(key_a)
    same = sum(1 for k in frames if key_b.get(k, NO_ACTION) == key_a[k])
    missing = sum(1 for k in frames if key_b.get(k, NO_ACTION) == NO_ACTION)
    return {'frames': len(frames), 'same': same, 'missing': missing,
            'agreement': same / len(frames) if frames else math.nan}


def input_rejects(bags: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rejected input messages over all bags: {kind: {'count', 'total', 'by_reason'}}."""
    out = {}
    for kind, total_key in (('image', 'camera_frames'), ('radar', 'radar_frames'),
                            ('odometry', None)):
        by_reason: Counter = Counter()
        count = total = 0
        for b in bags:
            counts = b.get('counts', {})
            count += int(counts.get(f'{kind}_rejected', 0))
            total += int(counts.get(total_key, 0)) if total_key else 0
            by_reason.update(b.get('rejects', {}).get(kind, {}))
        out[kind] = {'count': count, 'total': total if total_key else None,
                     'by_reason': dict(by_reason.most_common())}
    return out


# -- text -------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if v is None:
        return 'n/a'
    if isinstance(v, float):
        return f'{v:.4g}'
    return str(v)


def _reasons_text(by_reason: dict[str, int]) -> str:
    return ', '.join(f'{r}: {n}' for r, n in by_reason.items())


def _mode(bags: list[dict[str, Any]]) -> str:
    modes = sorted({b.get('mode', 'offline') for b in bags})
    return modes[0] if len(modes) == 1 else 'mixed'


def attention_rows(metrics: dict[str, Any],
                   bags: list[dict[str, Any]]) -> list[tuple[str, str, str, bool]]:
    """(what, how many, reasons, is a problem) rows of the report's first table."""
    rb = metrics.get('robustness') or robustness_placeholder(metrics['frames'])
    rejects = input_rejects(bags)
    n = metrics['frames']
    rows = []
    image = rejects['image']
    rejected = max(rb['rejected_frames'], image['count'])  # frames (offline) or node counts
    rows.append(('camera frames rejected by the decoder', f'{rejected} of {n}',
                 _reasons_text(rb['rejected_by_reason'] or image['by_reason']), rejected > 0))
    radar = rejects['radar']
    rows.append(('radar clouds rejected', f"{radar['count']} of {radar['total']}",
                 _reasons_text(radar['by_reason']), radar['count'] > 0))
    odom = rejects['odometry']
    rows.append(('odometry messages rejected', str(odom['count']),
                 _reasons_text(odom['by_reason']), odom['count'] > 0))
    fb_reasons = _reasons_text(rb['fallback_by_reason'])
    if rb['fallback_frames'] and not fb_reasons:
        fb_reasons = 'reason not recorded in this mode'
    rows.append(('fallback decisions (controlled stop, no model output used)',
                 f"{rb['fallback_frames']} of {metrics['frames_with_decision']}",
                 fb_reasons, rb['fallback_frames'] > 0))
    if rb['degraded_recorded']:
        rows.append(('degraded decisions', f"{rb['degraded_frames']} of "
                     f"{metrics['frames_with_decision']}",
                     _reasons_text(rb['degraded_by_reason']), rb['degraded_frames'] > 0))
    else:
        rows.append(('degraded decisions', 'not recorded',
                     'the online recorder keeps action, acceleration and source only', False))
    rows.append(('frames without a decision', f"{rb['frames_without_decision']} of {n}",
                 '', rb['frames_without_decision'] > 0))
    return rows


def robustness_placeholder(n: int) -> dict[str, Any]:
    return {'frames': n, 'frames_without_decision': 0, 'rejected_frames': 0,
            'rejected_by_reason': {}, 'fallback_frames': 0, 'fallback_by_reason': {},
            'degraded_recorded': False, 'degraded_frames': None, 'degraded_by_reason': {}}


def headline(metrics: dict[str, Any], bags: list[dict[str, Any]]) -> str:
    rb = metrics.get('robustness') or robustness_placeholder(metrics['frames'])
    fallback = rb['fallback_frames']
    decided = metrics['frames_with_decision']
    parts = [f"{metrics['frames']} frames over {metrics['duration_s']:.1f} s in {len(bags)}"
             f" bag(s), {_mode(bags)}", f'{decided} with a decision'
             + (f' ({decided - fallback} from the model, {fallback} fallback)' if fallback
                else '')]
    if rb['degraded_recorded'] and rb['degraded_frames']:
        parts.append(f"{rb['degraded_frames']} degraded")
    if rb['rejected_frames']:
        parts.append(f"{rb['rejected_frames']} camera frames rejected")
    return ', '.join(parts)


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ['| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
    out += ['| ' + ' | '.join(_fmt(c) for c in row) + ' |' for row in rows]
    return out


def _confusion_rows(confusion: list[list[int]]) -> list[list[Any]]:
    return [[ACTION_LABELS[i]] + list(row) for i, row in enumerate(confusion)]


def markdown_summary(metrics: dict[str, Any], bags: list[dict[str, Any]], title: str) -> str:
    lines = [f'# {title}', '', headline(metrics, bags), '',
             '## Rejected inputs, fallbacks and degraded decisions', '']
    lines += _md_table(['what', 'count', 'reasons'],
                       [[w, c, r] for w, c, r, _ in attention_rows(metrics, bags)])
    gt = metrics.get('ground_truth')
    mvf = metrics.get('model_vs_final')
    lines += ['', '## Decisions', '']
    if gt:
        lines += _md_table(
            ['', 'model (before the safety layer)', 'final decision'],
            [['accuracy', gt.get('model_accuracy_before_safety'), gt['accuracy']],
             ['macro-F1', gt.get('model_macro_f1'), gt['macro_f1']],
             ['emergency-brake recall', gt.get('model_emergency_brake_recall'),
              gt['emergency_brake_recall']]])
        lines += ['', f"- false brakes (final): {gt['false_brake_events']} events, "
                  f"{_fmt(gt['false_brake_per_hour'])} per hour"]
        if 'phantom_emergency_brake_frames' in gt:
            lines.append(f"- braking the safety layer added (neither model nor truth brakes): "
                         f"{gt['phantom_emergency_brake_frames']} emergency-brake and "
                         f"{gt['phantom_stop_frames']} stop frames of {gt['model_frames']}")
        lines += ['',
                  '| class | precision | recall | f1 | support |', '|---|---|---|---|---|']
        for label, c in gt['per_class'].items():
            lines.append(f"| {label} | {_fmt(c['precision'])} | {_fmt(c['recall'])} | "
                         f"{_fmt(c['f1'])} | {c['support']} |")
        for name, key in (('model', 'model_confusion'), ('final decision', 'confusion')):
            if gt.get(key):
                lines += ['', f'Confusion, {name} (rows: expert, columns: {name}):', '']
                lines += _md_table(['expert \\ ' + name] + list(ACTION_LABELS),
                                   _confusion_rows(gt[key]))
    elif metrics.get('recorded_driver'):
        lines += ['- no ground-truth decision topic: the decisions are scored against the'
                  ' recorded driver', '']
        lines += recorded_driver_lines(metrics['recorded_driver'])
    else:
        lines.append('- no ground-truth decision topic: accuracy figures omitted')
    if mvf:
        lines += ['', f"Final decision differs from the model's on {mvf['different']} of "
                  f"{mvf['frames']} frames with both:", '']
        if mvf['differences']:
            lines += _md_table(['why', 'model -> final', 'frames'],
                               [[d['why'], d['model_to_final'], d['frames']]
                                for d in mvf['differences']])
    cmp = metrics.get('compare')
    if cmp:
        lines.append(f"\n- agreement with the compare checkpoint: {_fmt(cmp['agreement'])} "
                     f"over {cmp['frames']} frames")
    lat = metrics['latency']
    mode = _mode(bags)
    lines += ['', '## Latency', '',
              f"- decision latency: median {_fmt(lat['median_ms'])} ms, "
              f"p99 {_fmt(lat['p99_ms'])} ms, max {_fmt(lat['max_ms'])} ms "
              f"over {lat['count']} frames"]
    lines += [f'- {m}{" (this run)" if m == mode else ""}: {text}'
              for m, text in LATENCY_MEANING.items()]
    lines += ['', '## Bags', '']
    lines += _md_table(['bag', 'topics', 'mode', 'frames', 'duration [s]', 'rejected',
                        'fallback', 'degraded'],
                       [[b['path'], b['topics'], b.get('mode', ''), b['frames'],
                         f"{b['duration_s']:.1f}", _bag_rejected(b),
                         b.get('counts', {}).get('fallback', 'n/a'),
                         b.get('counts', {}).get('degraded', 'n/a')] for b in bags])
    return '\n'.join(lines) + '\n'


def _bag_rejected(bag: dict[str, Any]) -> str:
    counts = bag.get('counts', {})
    parts = [f'{kind} {counts[f"{kind}_rejected"]}' for kind in ('image', 'radar', 'odometry')
             if counts.get(f'{kind}_rejected')]
    return ', '.join(parts) or '0'


# -- plots ------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def plot_latency(latency_s: np.ndarray, path: Path, title: str) -> None:
    plt = _plt()
    lat = np.asarray(latency_s, float)
    lat = lat[np.isfinite(lat) & (lat > 0)] * 1e3
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    if lat.size:
        ax.hist(lat, bins=min(50, max(5, lat.size // 5)), color='tab:blue')
        ax.axvline(np.median(lat), color='k', ls='--', label=f'median {np.median(lat):.1f} ms')
        ax.axvline(np.percentile(lat, 99), color='r', ls=':',
                   label=f'p99 {np.percentile(lat, 99):.1f} ms')
        ax.legend()
    ax.set_xlabel('latency [ms]')
    ax.set_ylabel('frames')
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_timeline(frames: dict[str, np.ndarray], path: Path, title: str) -> None:
    """Expert vs model action and acceleration over the drive (bags laid end to end)."""
    plt = _plt()
    t = np.zeros(len(frames['stamp_ns']))
    offset, bounds = 0.0, []
    for g in np.unique(frames['bag']):
        sel = frames['bag'] == g
        stamps = frames['stamp_ns'][sel]
        local = (stamps - stamps.min()) / 1e9 if stamps.size else stamps
        t[sel] = local + offset
        offset = float(t[sel].max()) + 0.05 if stamps.size else offset
        bounds.append(offset)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True)
    truth = frames['truth_action'].astype(float)
    truth[truth < 0] = np.nan
    act = frames['action'].astype(float)
    act[act < 0] = np.nan
    if np.isfinite(truth).any():
        ax1.step(t, truth, where='post', color='k', lw=1.5, label='expert')
        ax2.plot(t, frames['truth_accel'], color='k', lw=1.2, label='expert')
    ax1.step(t, act, where='post', color='tab:orange', lw=1.0, label='model (final)')
    ax2.plot(t, frames['accel'], color='tab:orange', lw=1.0, label='model (final)')
    cmp = frames['compare_action'].astype(float)
    if (cmp >= 0).any():
        cmp[cmp < 0] = np.nan
        ax1.step(t, cmp, where='post', color='tab:green', lw=0.8, label='compare')
        ax2.plot(t, frames['compare_accel'], color='tab:green', lw=0.8, label='compare')
    for b in bounds[:-1]:
        for ax in (ax1, ax2):
            ax.axvline(b, color='0.7', lw=0.8)
    ax1.set_yticks(range(len(ACTION_LABELS)), ACTION_LABELS)
    ax1.set_title(title)
    ax1.legend(loc='upper right', fontsize=8)
    ax2.set_ylabel('target accel [m/s^2]')
    ax2.set_xlabel('drive time [s] (bags end to end)')
    ax2.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _spans(t: np.ndarray, mask: np.ndarray) -> list[tuple[float, float]]:
    """Time spans of consecutive True frames (each frame lasts until the next one)."""
    if not mask.any():
        return []
    end_t = np.append(t[1:], t[-1] + (np.median(np.diff(t)) if len(t) > 1 else 0.05))
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(float(t[a]), float(end_t[b])) for a, b in zip(starts, stops, strict=True)]


def plot_bag_timeline(frames: dict[str, np.ndarray], path: Path, title: str,
                      marks: list[float]) -> None:
    """One bag's expert, model and final actions over time.

    Degraded and fallback spans are shaded, rejected camera frames marked, and the thumbnails'
    times (`marks`, [s] from the bag's first frame) numbered as in the report.
    """
    plt = _plt()
    stamps = np.asarray(frames['stamp_ns'], np.int64)
    t0 = int(stamps.min()) if stamps.size else 0
    t = (stamps - t0) / 1e9
    fig, ax = plt.subplots(figsize=(11, 2.9))
    for mask, colour, label in (
            (_field(frames, 'degraded') == 1, '#f2d7a6', 'degraded'),
            ((frames['action'] >= 0) & (frames['source'] == int(DecisionSource.FALLBACK)),
             '#f4a3a3', 'fallback')):
        for k, (a, b) in enumerate(_spans(t, mask)):
            ax.axvspan(a, b, color=colour, lw=0, label=label if k == 0 else None)
    for series, colour, lw, style, label in (
            (frames['truth_action'], 'k', 2.2, '-', 'expert'),
            (frames['model_action'], 'tab:blue', 1.2, '--', 'model'),
            (frames['action'], 'tab:orange', 1.4, '-', 'final')):
        y = np.asarray(series, float)
        y[y < 0] = np.nan
        if np.isfinite(y).any():
            ax.step(t, y, where='post', color=colour, lw=lw, ls=style, label=label)
    rejected = _field(frames, 'reject') >= 0
    if rejected.any():
        ax.plot(t[rejected], np.full(rejected.sum(), len(ACTION_LABELS) - 0.4), 'x',
                color='tab:red', ms=7, mew=2, label='camera frame rejected')
    for k, m in enumerate(marks):
        ax.axvline(m, color='0.35', lw=0.8, ls=':')
        ax.text(m, -0.75, str(k + 1), ha='center', va='center', fontsize=8,
                bbox={'boxstyle': 'circle,pad=0.2', 'fc': 'white', 'ec': '0.35'})
    ax.set_yticks(range(len(ACTION_LABELS)), ACTION_LABELS, fontsize=8)
    ax.set_ylim(-1.1, len(ACTION_LABELS) - 0.1)
    ax.set_xlabel('bag time [s]')
    ax.set_title(title, fontsize=10)
    ax.legend(loc='upper left', bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# -- index.html -------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2430;
max-width:1180px;margin:24px auto;padding:0 16px;line-height:1.4;background:#fbfbfc}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 8px;
border-bottom:2px solid #d8dde6;padding-bottom:4px}h3{font-size:1.02em;margin:18px 0 6px}
.lead{color:#4a5568;margin:0 0 12px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:.9em;background:#fff}
th,td{border:1px solid #d8dde6;padding:4px 9px;text-align:left;vertical-align:top}
th{background:#eef1f6;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.attention{border-left:6px solid #d9822b;background:#fff6ec;padding:8px 14px;border-radius:4px}
.attention.clean{border-left-color:#2f9e44;background:#eefaf0}
tr.bad td{background:#ffe3e0}tr.bad td:first-child{font-weight:600}
.row{display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start}
.cm{font-size:.85em}.cm td,.cm th{padding:3px 6px}.cm td{text-align:center;min-width:30px}
.cm td.diag{font-weight:700;box-shadow:inset 0 0 0 2px #1f5fa8}
.note{color:#4a5568;font-size:.88em;max-width:900px}
.thumbs{display:flex;gap:10px;flex-wrap:wrap}
figure{margin:0;background:#fff;border:1px solid #d8dde6;padding:4px;border-radius:4px}
figure img{display:block;width:208px}
figcaption{font-size:.76em;color:#333;max-width:208px;margin-top:3px}
figcaption b{color:#1f5fa8}.bag{margin-top:18px}img.plot{max-width:100%}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;
border:1px solid #222}
"""


def _h(v: Any) -> str:
    return html.escape(_fmt(v))


def _html_table(headers: list[str], rows: list[list[Any]], numeric: set[int] = frozenset(),
                row_class: list[str] | None = None, css: str = '') -> str:
    head = ''.join(f'<th>{html.escape(h)}</th>' for h in headers)
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{row_class[r]}"' if row_class and row_class[r] else ''
        cells = ''.join(f'<td class="n">{_h(c)}</td>' if i in numeric else f'<td>{_h(c)}</td>'
                        for i, c in enumerate(row))
        body.append(f'<tr{cls}>{cells}</tr>')
    cls = f' class="{css}"' if css else ''
    return f'<table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


_SHORT_LABELS = {'emergency_brake': 'e-brake', 'change_lane_left': 'lane left',
                 'change_lane_right': 'lane right'}


def _confusion_html(confusion: list[list[int]], caption: str) -> str:
    cm = np.asarray(confusion, float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    head = ''.join(f'<th title="{a}">{html.escape(_SHORT_LABELS.get(a, a))}</th>'
                   for a in ACTION_LABELS)
    body = []
    for i, label in enumerate(ACTION_LABELS):
        cells = []
        for j in range(len(ACTION_LABELS)):
            shade = f'background:rgba(31,95,168,{0.08 + 0.8 * norm[i, j]:.2f})' if cm[i, j] \
                else ''
            colour = ';color:#fff' if norm[i, j] > 0.55 else ''
            diag = ' class="diag"' if i == j else ''
            cells.append(f'<td{diag} style="{shade}{colour}">{int(cm[i, j])}</td>')
        body.append(f'<tr><th>{html.escape(_SHORT_LABELS.get(label, label))}</th>'
                    f'{"".join(cells)}</tr>')
    return (f'<div><h3>{html.escape(caption)}</h3><table class="cm"><thead><tr>'
            f'<th>expert \\ decided</th>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            '</table></div>')


def _thumb_caption(k: int, thumb: Thumbnail, frames: dict[str, np.ndarray], t0: int) -> str:
    i = np.flatnonzero(frames['stamp_ns'] == thumb.stamp_ns)
    text = f'<b>{k}</b> t = {(thumb.stamp_ns - t0) / 1e9:.2f} s, {len(thumb.radar)} radar pts'
    if not len(i):
        return text
    i = int(i[0])

    def name(a: Any) -> str:
        return ACTION_LABELS[int(a)] if 0 <= int(a) < len(ACTION_LABELS) else '-'

    text += (f'<br>model {name(frames["model_action"][i])}, final '
             f'{name(frames["action"][i])}, expert {name(frames["truth_action"][i])}')
    labels = reason_labels(int(_field(frames, 'reason')[i]))
    if labels:
        text += '<br>degraded: ' + html.escape(', '.join(labels))
    return text


def _pick(thumbs: list[Thumbnail], n: int) -> list[Thumbnail]:
    if len(thumbs) <= n:
        return list(thumbs)
    return [thumbs[int(i)] for i in np.linspace(0, len(thumbs) - 1, n).round()]


def _write_png(rgb: np.ndarray, path: Path) -> None:
    from PIL import Image as PilImage

    PilImage.fromarray(np.ascontiguousarray(rgb, np.uint8)).save(path, optimize=True)


def _bag_sections(out: Path, frames: dict[str, np.ndarray], bags: list[dict[str, Any]],
                  thumbnails: list[list[Thumbnail]]) -> str:
    parts = []
    shown = bags[:MAX_BAG_SECTIONS]
    if len(bags) > len(shown):
        parts.append(f'<p class="note">The first {len(shown)} of {len(bags)} bags; all of them'
                     ' are in the table above and in metrics.json.</p>')
    (out / 'bags').mkdir(exist_ok=True)
    for g, bag in enumerate(shown):
        sel = frames['bag'] == g
        sub = {k: np.asarray(v)[sel] for k, v in frames.items()
               if np.shape(v) == np.shape(frames['bag'])}
        t0 = int(sub['stamp_ns'].min()) if sub['stamp_ns'].size else 0
        picked = _pick(thumbnails[g] if g < len(thumbnails) else [], THUMBS_PER_BAG)
        figs = []
        for k, thumb in enumerate(picked, 1):
            name = f'bags/bag{g:03d}_thumb{k}.png'
            _write_png(draw_radar(thumb.rgb, thumb.radar), out / name)
            figs.append(f'<figure><img src="{name}" alt="camera frame {k} with radar points">'
                        f'<figcaption>{_thumb_caption(k, thumb, sub, t0)}</figcaption></figure>')
        timeline = f'bags/bag{g:03d}_timeline.png'
        plot_bag_timeline(sub, out / timeline, Path(bag['path']).name,
                          [(th.stamp_ns - t0) / 1e9 for th in picked])
        counts = bag.get('counts', {})
        facts = (f"{bag['frames']} frames, {bag['duration_s']:.1f} s, topics "
                 f"{bag['topics']}, {bag.get('mode', '')}; rejected {_bag_rejected(bag)}, "
                 f"fallback {counts.get('fallback', 'n/a')}, "
                 f"degraded {counts.get('degraded', 'n/a')}")
        thumbs_html = (f'<div class="thumbs">{"".join(figs)}</div><p class="note legend">'
                       "Radar points projected into the camera with the simulator's mounting "
                       'geometry, coloured by radial velocity:'
                       '<span style="background:#ff2d2d"></span>closing at 10 m/s or more'
                       '<span style="background:#ffdc00"></span>0 (moving with the ego)'
                       '<span style="background:#2896ff"></span>opening at 5 m/s</p>'
                       if figs else '<p class="note">No decodable camera frame to show.</p>')
        parts.append(f'<div class="bag"><h3>{html.escape(bag["path"])}</h3>'
                     f'<p class="note">{html.escape(facts)}</p>'
                     f'<img class="plot" src="{timeline}" alt="timeline of {g}">{thumbs_html}'
                     '</div>')
    return ''.join(parts)


def index_html(out: Path, metrics: dict[str, Any], frames: dict[str, np.ndarray],
               bags: list[dict[str, Any]], thumbnails: list[list[Thumbnail]],
               title: str, images: list[tuple[str, str]]) -> str:
    """The report page: problems first, decisions, latency, then each bag."""
    rows = attention_rows(metrics, bags)
    any_bad = any(bad for *_, bad in rows)
    parts = [f'<h1>{html.escape(title)}</h1>',
             f'<p class="lead">{html.escape(headline(metrics, bags))}</p>',
             f'<section class="attention{"" if any_bad else " clean"}">'
             '<h2>Rejected inputs, fallbacks and degraded decisions</h2>',
             _html_table(['what', 'count', 'reasons'], [list(r[:3]) for r in rows], {1},
                         ['bad' if r[3] else '' for r in rows]),
             '</section>', '<h2>Decisions: model (before the safety layer) vs final</h2>']
    gt = metrics.get('ground_truth')
    if gt:
        parts.append(_html_table(
            ['', 'model', 'final decision'],
            [['accuracy', gt.get('model_accuracy_before_safety'), gt['accuracy']],
             ['macro-F1', gt.get('model_macro_f1'), gt['macro_f1']],
             ['emergency-brake recall', gt.get('model_emergency_brake_recall'),
              gt['emergency_brake_recall']],
             ['false brake events (per hour)', '',
              f"{gt['false_brake_events']} ({_fmt(gt['false_brake_per_hour'])})"]], {1, 2}))
        cms = [_confusion_html(gt[key], caption) for key, caption in
               (('model_confusion', 'Model vs expert'), ('confusion', 'Final vs expert'))
               if gt.get(key)]
        parts.append(f'<div class="row">{"".join(cms)}</div>')
        model_pc = gt.get('model_per_class') or {}
        per_class = [[label, c['support'], model_pc.get(label, {}).get('recall'),
                      model_pc.get(label, {}).get('f1'), c['precision'], c['recall'], c['f1']]
                     for label, c in gt['per_class'].items()]
        parts.append('<h3>Per class</h3>' + _html_table(
            ['class', 'expert frames', 'model recall', 'model F1', 'final precision',
             'final recall', 'final F1'], per_class, {1, 2, 3, 4, 5, 6}))
    elif metrics.get('recorded_driver'):
        rd = metrics['recorded_driver']
        onset = rd['brake_onset']
        parts.append('<p class="note"><b>Not ground truth.</b> The bags have no decision topic;'
                     f' the figures below are {html.escape(rd["meaning"])}.</p>')
        parts.append(_html_table(
            ['vs recorded driver', 'value'],
            [['frames', rd['frames']], ['macro-F1 (final)', rd['macro_f1']],
             ['macro-F1 (model)', rd.get('model_macro_f1')], ['accuracy', rd['accuracy']],
             ['acceleration MAE [m/s²]', rd['accel_mae']],
             ['brake onsets driver / matched / missed',
              f"{onset['driver_onsets']} / {onset['matched']} / {onset['missed']}"],
             ['brake-onset error median [s]', onset['median_s']],
             ['brake-onset error mean abs [s]', onset['mean_abs_s']]], {1}))
        parts.append(_confusion_html(rd['confusion'], 'Final vs recorded driver'))
    else:
        parts.append('<p class="note">The bags have no ground-truth decision topic: accuracy '
                     'figures are omitted.</p>')
    mvf = metrics.get('model_vs_final') or {}
    if mvf:
        parts.append(f"<h3>Where the final decision differs from the model's: "
                     f"{mvf['different']} of {mvf['frames']} frames</h3>")
        if mvf['differences']:
            parts.append(_html_table(['why', 'model → final', 'frames'],
                                     [[d['why'], d['model_to_final'].replace('->', '→'),
                                       d['frames']] for d in mvf['differences']], {2}))
    cmp = metrics.get('compare')
    if cmp:
        parts.append(f"<p>Agreement with the compare checkpoint: {_h(cmp['agreement'])} over "
                     f"{cmp['frames']} frames.</p>")
    lat = metrics['latency']
    mode = _mode(bags)
    lat_rows = [['decision latency', lat['count'], lat['median_ms'], lat['p99_ms'],
                 lat['max_ms']]]
    parts += ['<h2>Latency</h2>',
              _html_table(['[ms]', 'frames', 'median', 'p99', 'max'], lat_rows, {1, 2, 3, 4}),
              ''.join(f'<p class="note"><b>{m}</b>{" (this run)" if m == mode else ""}: '
                      f'{html.escape(text)}</p>' for m, text in LATENCY_MEANING.items())]
    bag_rows = [[b['path'], b['topics'], b.get('mode', ''), b['frames'], f"{b['duration_s']:.1f}",
                 _bag_rejected(b), b.get('counts', {}).get('fallback', 'n/a'),
                 b.get('counts', {}).get('degraded', 'n/a')] for b in bags]
    parts += ['<h2>Bags</h2>',
              _html_table(['bag', 'topics', 'mode', 'frames', 'duration [s]', 'rejected',
                           'fallback', 'degraded'], bag_rows, {3, 4, 6, 7}),
              _bag_sections(out, frames, bags, thumbnails),
              '<h2>All bags</h2>']
    parts += [f'<h3>{html.escape(c)}</h3><img class="plot" src="{f}" alt="{html.escape(c)}">'
              for c, f in images if f != 'confusion.png']  # the tables above show it
    parts.append('<p><a href="metrics.json">metrics.json</a> · <a href="summary.md">summary.md'
                 '</a> · <a href="frames.npz">frames.npz</a></p>')
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>'
            + '\n'.join(parts) + '</body></html>\n')


def write_report(out_dir: str | Path, metrics: dict[str, Any], frames: dict[str, np.ndarray],
                 bags: list[dict[str, Any]], title: str = 'Bag evaluation') -> dict[str, Path]:
    """Write metrics.json, summary.md, frames.npz, PNG plots, bags/ and index.html.

    bags/ holds each bag's timeline and its camera thumbnails with the radar points drawn in.

    `bags` are `BagResult.summary()` dicts; their 'thumbnails' go into bags/*.png only.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    thumbnails = [list(b.get('thumbnails') or []) for b in bags]
    bags = [{k: v for k, v in b.items() if k != 'thumbnails'} for b in bags]
    paths = {'metrics': out / 'metrics.json', 'summary': out / 'summary.md',
             'frames': out / 'frames.npz', 'latency': out / 'latency.png',
             'timeline': out / 'timeline.png', 'index': out / 'index.html'}
    paths['metrics'].write_text(json.dumps(_jsonable({'metrics': metrics, 'bags': bags}),
                                           indent=2, sort_keys=True))
    summary = markdown_summary(metrics, bags, title)
    paths['summary'].write_text(summary)
    np.savez(paths['frames'], **frames)
    images = []
    gt = metrics.get('ground_truth')
    if gt:
        paths['confusion'] = out / 'confusion.png'
        labelled = (frames['action'] >= 0) & (frames['truth_action'] >= 0)
        plot_confusion_matrix(classification_report(frames['truth_action'][labelled],
                                                    frames['action'][labelled]),
                              str(paths['confusion']))
        images.append(('Confusion matrix (expert vs final decision)', 'confusion.png'))
    plot_latency(frames['latency_s'], paths['latency'], 'decision latency')
    plot_timeline(frames, paths['timeline'], title)
    images += [('Decision latency', 'latency.png'), ('Decision timeline', 'timeline.png')]
    paths['index'].write_text(index_html(out, metrics, frames, bags, thumbnails, title, images))
    return paths
