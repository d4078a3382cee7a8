"""Metrics and reports of a bag evaluation: JSON, Markdown, PNG plots and an index.html.

Metrics are computed once from the merged per-frame arrays (see `replay.merge_results`), so
evaluating bags serially or on Ray gives the same numbers. Pure core (numpy, matplotlib).
"""

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mm_fusion_ros.actions import ACTION_LABELS, Action
from mm_fusion_ros.evaluation.metrics import classification_report, plot_confusion_matrix
from mm_fusion_ros.evaluation.replay import NO_ACTION

BRAKE_ACTIONS = (int(Action.STOP), int(Action.EMERGENCY_BRAKE))


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
    }
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
            out['ground_truth']['model_accuracy_before_safety'] = float(
                np.mean(model[raw] == truth[raw]))
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


# -- files ------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if v is None:
        return 'n/a'
    if isinstance(v, float):
        return f'{v:.4g}'
    return str(v)


def markdown_summary(metrics: dict[str, Any], bags: list[dict[str, Any]], title: str) -> str:
    lines = [f'# {title}', '', f"- frames: {metrics['frames']} "
             f"({metrics['frames_with_decision']} with a decision) over "
             f"{metrics['duration_s']:.1f} s in {len(bags)} bag(s)"]
    lat = metrics['latency']
    lines.append(f"- decision latency: median {_fmt(lat['median_ms'])} ms, "
                 f"p99 {_fmt(lat['p99_ms'])} ms")
    gt = metrics.get('ground_truth')
    if gt:
        lines += [f"- accuracy {_fmt(gt['accuracy'])}, macro-F1 {_fmt(gt['macro_f1'])}",
                  f"- emergency-brake recall {_fmt(gt['emergency_brake_recall'])}",
                  f"- false brakes: {gt['false_brake_events']} events, "
                  f"{_fmt(gt['false_brake_per_hour'])} per hour",
                  '', '| class | precision | recall | f1 | support |', '|---|---|---|---|---|']
        for label, c in gt['per_class'].items():
            lines.append(f"| {label} | {_fmt(c['precision'])} | {_fmt(c['recall'])} | "
                         f"{_fmt(c['f1'])} | {c['support']} |")
    else:
        lines.append('- no ground-truth decision topic: accuracy figures omitted')
    cmp = metrics.get('compare')
    if cmp:
        lines.append(f"\n- agreement with the compare checkpoint: {_fmt(cmp['agreement'])} "
                     f"over {cmp['frames']} frames")
    lines += ['', '| bag | topics | frames | duration [s] |', '|---|---|---|---|']
    for b in bags:
        lines.append(f"| {b['path']} | {b['topics']} | {b['frames']} | "
                     f"{b['duration_s']:.1f} |")
    return '\n'.join(lines) + '\n'


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


def write_report(out_dir: str | Path, metrics: dict[str, Any], frames: dict[str, np.ndarray],
                 bags: list[dict[str, Any]], title: str = 'Bag evaluation') -> dict[str, Path]:
    """metrics.json, summary.md, frames.npz, confusion/latency/timeline PNGs, index.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
    body = ''.join(f'<h2>{html.escape(c)}</h2><img src="{f}" alt="{html.escape(c)}">'
                   for c, f in images)
    paths['index'].write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f'<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;'
        'max-width:1100px;margin:auto}img{max-width:100%}pre{background:#f4f4f4;'
        'padding:1em}</style></head><body>'
        f'<pre>{html.escape(summary)}</pre>{body}'
        '<p><a href="metrics.json">metrics.json</a> · <a href="summary.md">summary.md</a>'
        ' · <a href="frames.npz">frames.npz</a></p></body></html>\n')
    return paths
