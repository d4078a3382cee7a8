"""The driving decision as the pure core sees it (the ROS message is built from this)."""

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from mm_fusion_ros.actions import ACTION_LABELS, Action, LaneChangeIntent, lane_change_intent


class DecisionSource(IntEnum):
    """`DrivingDecision.source` values: who made the published decision.

    Where the published action differs from the model's, the source names why: the TTC
    override, the fallback (controlled stop on a lost input), the radar-out caution (the
    model's decision capped while the radar is briefly missing) or the dwell hold (the safety
    layer keeps its previous action for `min_dwell`).
    """

    MODEL = 0
    SAFETY_OVERRIDE = 1
    FALLBACK = 2
    DWELL_HOLD = 3
    RADAR_OUT_CAUTION = 4

    @property
    def label(self) -> str:
        return _SOURCE_LABELS[self]


_SOURCE_LABELS = {
    DecisionSource.MODEL: 'model',
    DecisionSource.SAFETY_OVERRIDE: 'override',
    DecisionSource.FALLBACK: 'fallback',
    DecisionSource.DWELL_HOLD: 'dwell',
    DecisionSource.RADAR_OUT_CAUTION: 'radar-out caution',
}


@dataclass
class Decision:
    """One decision, stamped with the camera frame it was made from."""

    stamp_ns: int
    action: Action
    target_acceleration: float = 0.0  # [m/s^2], negative brakes
    target_speed: float = 0.0  # [m/s]
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    confidence: float = 1.0
    source: DecisionSource = DecisionSource.MODEL
    degraded: bool = False
    degraded_reason: str = ''
    inference_latency: float = 0.0  # [s]
    class_labels: tuple[str, ...] = ACTION_LABELS

    @property
    def lane_change_intent(self) -> LaneChangeIntent:
        return lane_change_intent(self.action)
