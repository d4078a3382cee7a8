"""The one place that knows the decision message type and converts it to and from the core."""

import numpy as np

from mm_fusion_msgs.msg import DrivingDecision
from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.ros.time import stamp_from_ns, stamp_to_ns

__all__ = ['DrivingDecision', 'decision_to_msg', 'msg_to_decision']


def decision_to_msg(decision: Decision, frame_id: str = 'base_link') -> DrivingDecision:
    msg = DrivingDecision(
        action=int(decision.action),
        action_label=decision.action.label,
        class_labels=list(decision.class_labels) if len(decision.probabilities) else [],
        class_probabilities=np.asarray(decision.probabilities, np.float32).tolist(),
        confidence=float(decision.confidence),
        target_acceleration=float(decision.target_acceleration),
        target_speed=float(decision.target_speed),
        lane_change_intent=int(decision.lane_change_intent),
        source=int(decision.source),
        degraded=bool(decision.degraded),
        degraded_reason=decision.degraded_reason,
        inference_latency=float(decision.inference_latency),
    )
    msg.header.stamp = stamp_from_ns(decision.stamp_ns)
    msg.header.frame_id = frame_id
    return msg


def msg_to_decision(msg: DrivingDecision) -> Decision:
    return Decision(
        stamp_ns=stamp_to_ns(msg.header.stamp),
        action=Action(msg.action),
        target_acceleration=msg.target_acceleration,
        target_speed=msg.target_speed,
        probabilities=np.asarray(msg.class_probabilities, np.float32),
        confidence=msg.confidence,
        source=DecisionSource(msg.source),
        degraded=msg.degraded,
        degraded_reason=msg.degraded_reason,
        inference_latency=msg.inference_latency,
        class_labels=tuple(msg.class_labels) or Decision.class_labels,
    )
