"""Modality ablation on held-out data: fused vs camera-only vs radar-only, per condition.

One checkpoint, three modality flags (the model was trained with modality dropout, so the
single-modality runs use the same weights and their learned missing-modality token). Every
run gets the ego speed (odometry is not a perception modality; a stack always has it).

Two ways to score it. Open loop (`predict_cache`, then `summarize_ablation`): every modality
sees the same recorded frames, driven by the expert. There the ego's own motion shows the
expert's decision (it brakes from the first STOP frame on), so a modality that cannot see a
cause still reads the effect: radar-only "knows" a red light once the recorded ego slows for
it. On policy
(`on_policy_ablation`): each modality drives the simulator itself (through the safety layer,
as in the node) and its model's decisions are scored against the expert's label for the states
its own driving reached, as in deployment, where the ego's motion follows the model and not an
expert. `timing_bound` says how much of the open-loop gap is left to close at all: the fused
score with only its errors at a change of the expert's label left.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mm_fusion_ros.evaluation.metrics import classification_report
from mm_fusion_ros.sim.conditions import CAMERA_DEGRADED, RADAR_DEGRADED, Condition

MODALITIES = ('fused', 'camera', 'radar')


@dataclass
class AblationResult:
    conditions: list[str]  # rows: 'all', each condition, the degraded groups
    macro_f1: dict[str, dict[str, float]]  # modality -> row -> macro-F1
    accuracy: dict[str, dict[str, float]]
    samples: dict[str, int]

    def best_single(self, row: str) -> float:
        """The better single modality's macro-F1."""
        return max(self.macro_f1['camera'][row], self.macro_f1['radar'][row])

    def margin_over_best_single(self, row: str) -> float:
        """Fused macro-F1 minus the better single modality's, in points (x100)."""
        return 100.0 * (self.macro_f1['fused'][row] - self.best_single(row))


@dataclass
class CachePredictions:
    """Every modality's decision on every sample of a cache, and where each sample lies."""

    y_true: np.ndarray  # (S,) expert action
    preds: dict[str, np.ndarray]  # modality -> (S,) action
    conditions: np.ndarray  # (S,) str
    episodes: np.ndarray  # (S,) episode index in the cache
    stamps_ns: np.ndarray  # (S,) camera stamp


def predict_cache(predictor, dataset, batch_size: int = 128) -> CachePredictions:
    """Run every modality on a cache dataset (`train.data.CacheSamples`)."""
    from mm_fusion_ros.sensors.radar_sequence import RadarSequence

    n = len(dataset)
    y_true = np.empty(n, np.int64)
    conditions = np.empty(n, object)
    episodes = np.empty(n, np.int64)
    stamps = np.empty(n, np.int64)
    preds = {m: np.empty(n, np.int64) for m in MODALITIES}
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        rgbs = [s['image'] for s in items]
        seqs = [
            RadarSequence(s['radar_points'], s['point_mask'], s['frame_mask'], s['time_offsets'])
            for s in items
        ]
        speeds = [float(s['ego_speed']) for s in items]  # NaN: no odometry in the source
        previous = [s['previous_image'] for s in items]
        sl = slice(start, start + len(items))
        y_true[sl] = [int(s['action']) for s in items]
        conditions[sl] = [s['condition'] for s in items]
        episodes[sl] = [int(s['episode']) for s in items]
        stamps[sl] = [int(s['stamp_ns']) for s in items]
        for m in MODALITIES:
            preds[m][sl] = predictor.predict_batch(rgbs, seqs, m, batch_size, speeds,
                                                   previous, composed=True).actions
    return CachePredictions(y_true, preds, conditions, episodes, stamps)


def samples_from_label_change(
    actions: np.ndarray, episodes: np.ndarray, stamps_ns: np.ndarray
) -> np.ndarray:
    """(S,) samples between each sample and the nearest change of the label in its episode.

    0 for the two samples on either side of a change; `len(actions)` where an episode's label
    never changes. An error there is timing: the right decision a sample early or late.
    """
    distance = np.full(len(actions), len(actions), np.int64)
    for episode in np.unique(episodes):
        idx = np.flatnonzero(episodes == episode)
        idx = idx[np.argsort(stamps_ns[idx], kind='stable')]
        labels = actions[idx]
        changes = np.flatnonzero(labels[1:] != labels[:-1]) + 0.5  # between two samples
        if len(changes):
            pos = np.arange(len(idx))
            distance[idx] = np.abs(pos[:, None] - changes[None, :]).min(axis=1) - 0.5
    return distance


@dataclass
class TimingBound:
    """How far fused could rise if only its errors next to a label change remained."""

    window: int  # samples from a change that count as timing
    near_change: dict[str, float]  # row -> share of the samples within the window
    fused_bound: dict[str, float]  # row -> fused macro-F1, errors outside the window made right


def timing_bound(p: CachePredictions, window: int) -> TimingBound:
    """Fused macro-F1 with all its errors but the timing ones corrected.

    An upper bound on what better perception alone gives the fused model on these frames:
    where it stays below best single + 10 points, the margin target needs a weaker single
    modality or the label's switching frames themselves.
    """
    near = samples_from_label_change(p.y_true, p.episodes, p.stamps_ns) < window
    corrected = np.where(near, p.preds['fused'], p.y_true)
    r = _summarize({'fused': (p.y_true, corrected, p.conditions)})
    rows = _condition_rows(p.conditions)
    return TimingBound(
        window=window,
        near_change={row: float(near[rows[row]].mean()) for row in r.conditions},
        fused_bound=r.macro_f1['fused'],
    )


def timing_bound_markdown(result: AblationResult, bound: TimingBound) -> str:
    """The bound next to the measured scores (`result`, of the same predictions)."""
    lines = [
        f'| subset | samples | within {bound.window} of a label change | fused macro-F1 | '
        'fused, only timing errors left | best single | bound − best single [points] |',
        '|' + '---|' * 7,
    ]
    for row in result.conditions:
        best = result.best_single(row)
        lines.append(
            f'| {row} | {result.samples[row]} | {bound.near_change[row]:.3f} | '
            f'{result.macro_f1["fused"][row]:.3f} | {bound.fused_bound[row]:.3f} | {best:.3f} | '
            f'{100 * (bound.fused_bound[row] - best):+.1f} |'
        )
    return '\n'.join(lines)


def summarize_ablation(
    y_true: np.ndarray, preds: dict[str, np.ndarray], conditions: np.ndarray
) -> AblationResult:
    """Scores of every modality on the same samples."""
    return _summarize({m: (y_true, y_pred, conditions) for m, y_pred in preds.items()})


def on_policy_ablation(outcomes: dict[str, Sequence]) -> AblationResult:
    """Scores of closed-loop drivers (`EpisodeOutcome`s per modality) on their own frames.

    What is scored is the model's decision (`model_actions`), not the safety layer's final
    one: the dwell and overrides are the same for every modality and not what is ablated.
    `samples` counts the first driver's frames (an episode ends early only on a collision).
    """
    runs = {}
    for m, episodes in outcomes.items():
        y_true = np.concatenate([np.asarray(o.expert_actions, np.int64) for o in episodes])
        y_pred = np.concatenate([np.asarray(o.model_actions, np.int64) for o in episodes])
        conditions = np.concatenate(
            [np.full(len(o.model_actions), o.condition, object) for o in episodes])
        runs[m] = (y_true, y_pred, conditions)
    return _summarize(runs)


def _condition_rows(conditions: np.ndarray) -> dict[str, np.ndarray]:
    rows: dict[str, np.ndarray] = {'all': np.ones(len(conditions), bool)}
    for c in Condition:
        rows[c.value] = conditions == c.value
    rows['camera_degraded'] = np.isin(conditions, [c.value for c in CAMERA_DEGRADED])
    rows['radar_degraded'] = np.isin(conditions, [c.value for c in RADAR_DEGRADED])
    rows['degraded'] = rows['camera_degraded'] | rows['radar_degraded']
    return rows


def _summarize(runs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> AblationResult:
    """runs: modality -> (expert labels, predictions, condition per sample)."""
    f1: dict[str, dict[str, float]] = {m: {} for m in runs}
    acc: dict[str, dict[str, float]] = {m: {} for m in runs}
    samples: dict[str, int] = {}
    for m, (y_true, y_pred, conditions) in runs.items():
        for row, mask in _condition_rows(conditions).items():
            if not mask.any():
                continue
            report = classification_report(y_true[mask], y_pred[mask])
            f1[m][row] = report.macro_f1
            acc[m][row] = report.accuracy
            samples.setdefault(row, int(mask.sum()))
    return AblationResult(list(samples), f1, acc, samples)


def ablation_markdown(result: AblationResult, modalities: Sequence[str] = MODALITIES) -> str:
    head = '| subset | samples | ' + ' | '.join(f'{m} macro-F1' for m in modalities)
    head += ' | fused − best single [points] |'
    lines = [head, '|' + '---|' * (len(modalities) + 3)]
    for row in result.conditions:
        cells = ' | '.join(f'{result.macro_f1[m][row]:.3f}' for m in modalities)
        lines.append(
            f'| {row} | {result.samples[row]} | {cells} | '
            f'{result.margin_over_best_single(row):+.1f} |'
        )
    return '\n'.join(lines)
