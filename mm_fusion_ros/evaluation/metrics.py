"""Decision-classification metrics shared by training validation, ablation and bag evaluation.

Also the per-frame codes a bag evaluation records for why a decision was degraded or a camera
frame rejected: `reason_mask` packs a decision's `degraded_reason` into bits of
`DEGRADED_REASONS`, `reject_code` a decode error's reason into an index of `REJECT_REASONS`.
Both tables are fixed, so codes from different bags, processes or Ray tasks merge as they are.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mm_fusion_ros.actions import ACTION_LABELS
from mm_fusion_ros.sensors.errors import REASONS

# Degraded-reason table: bit i of a frame's reason mask = DEGRADED_REASONS[i]. The prefixes of
# the reasons the nodes write (FusionPipeline.degraded_reason / fallback, SafetyLayer).
DEGRADED_REASONS: tuple[str, ...] = (
    'camera frame rejected',               # fusion_node's fallback STOP for an undecodable frame
    'no radar history',
    'no radar frame at the camera stamp',
    'no odometry (ego speed unknown)',
    'no radar received',                   # decision_node's watchdog
    'radar stale',
    'no fusion output received',
    'fusion output stale',
    'other',
)
_OTHER_BIT = 1 << DEGRADED_REASONS.index('other')
# Decode-reject table: a rejected frame's code is the index of its SensorDecodeError.reason.
REJECT_REASONS: tuple[str, ...] = tuple(REASONS)


def reason_mask(text: str) -> int:
    """Bits of `DEGRADED_REASONS` for a '; '-joined degraded reason (0 for '')."""
    if not text:
        return 0
    if text.startswith(DEGRADED_REASONS[0]):  # one reason: the decoder's message may hold '; '
        return 1
    mask = 0
    for part in text.split('; '):
        bit = next((1 << i for i, r in enumerate(DEGRADED_REASONS[:-1]) if part.startswith(r)),
                   _OTHER_BIT)
        mask |= bit
    return mask


def reason_labels(mask: int) -> list[str]:
    """The reasons set in a mask, in table order."""
    return [r for i, r in enumerate(DEGRADED_REASONS) if mask >= 0 and mask >> i & 1]


def reject_code(reason: str) -> int:
    """Index of a decode error's reason in `REJECT_REASONS`."""
    return REJECT_REASONS.index(reason if reason in REJECT_REASONS else 'bad_message')


def count_reasons(masks: np.ndarray) -> dict[str, int]:
    """Frames per degraded reason (a frame with two reasons counts for each)."""
    masks = np.asarray(masks, np.int64)
    masks = masks[masks > 0]
    return {r: int(np.count_nonzero(masks >> i & 1)) for i, r in enumerate(DEGRADED_REASONS)
            if np.any(masks >> i & 1)}


def phantom_brake_frames(final: np.ndarray, model: np.ndarray, truth: np.ndarray
                         ) -> tuple[int, int]:
    """(phantom emergency brakes, phantom stops) among frames with all three actions.

    A phantom emergency brake is a final EMERGENCY_BRAKE that neither the model nor the truth
    (expert, ground-truth topic) calls; a phantom stop a final STOP where neither calls STOP or
    EMERGENCY_BRAKE: braking the safety layer added on its own.
    """
    from mm_fusion_ros.actions import Action

    final, model, truth = (np.asarray(a) for a in (final, model, truth))
    eb, brakes = int(Action.EMERGENCY_BRAKE), (int(Action.STOP), int(Action.EMERGENCY_BRAKE))
    phantom_eb = (final == eb) & (model != eb) & (truth != eb)
    phantom_stop = (final == int(Action.STOP)) & ~np.isin(model, brakes) & ~np.isin(truth, brakes)
    return int(phantom_eb.sum()), int(phantom_stop.sum())


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = truth, columns = prediction."""
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


@dataclass
class ClassificationReport:
    accuracy: float
    macro_f1: float  # over the classes present in the truth or the predictions
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]
    labels: list[str]
    confusion: list[list[int]]

    def to_dict(self) -> dict:
        return asdict(self)


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str] = ACTION_LABELS
) -> ClassificationReport:
    n = len(labels)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    support = cm.sum(axis=1).astype(float)
    with np.errstate(divide='ignore', invalid='ignore'):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (predicted > 0)
    total = cm.sum()
    return ClassificationReport(
        accuracy=float(tp.sum() / total) if total else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        precision=precision.tolist(),
        recall=recall.tolist(),
        f1=f1.tolist(),
        support=support.astype(int).tolist(),
        labels=list(labels),
        confusion=cm.tolist(),
    )


def plot_confusion_matrix(report: ClassificationReport, path: str, title: str = '') -> None:
    """Row-normalised confusion matrix as a PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cm = np.asarray(report.confusion, float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(len(report.labels)), report.labels, rotation=45, ha='right')
    ax.set_yticks(range(len(report.labels)), report.labels)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f'{int(cm[i, j])}',
                ha='center',
                va='center',
                color='white' if norm[i, j] > 0.5 else 'black',
                fontsize=8,
            )
    ax.set_xlabel('predicted')
    ax.set_ylabel('expert')
    ax.set_title(title or f'accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}')
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
