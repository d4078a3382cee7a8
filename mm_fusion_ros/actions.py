"""The action set shared by the model, the expert, the safety layer and `DrivingDecision`.

The integer values are the `ACTION_*` constants of `mm_fusion_msgs/DrivingDecision`; a test
checks that the two agree, so the message and the model's class order cannot drift apart.
"""

from enum import IntEnum


class Action(IntEnum):
    """Discrete driving decisions, in the model's class order."""

    CRUISE = 0
    FOLLOW = 1
    STOP = 2
    EMERGENCY_BRAKE = 3
    CHANGE_LANE_LEFT = 4
    CHANGE_LANE_RIGHT = 5

    @property
    def label(self) -> str:
        return self.name.lower()


ACTION_LABELS: tuple[str, ...] = tuple(a.label for a in Action)
NUM_ACTIONS = len(Action)


class LaneChangeIntent(IntEnum):
    """`DrivingDecision.lane_change_intent` values."""

    RIGHT = -1
    NONE = 0
    LEFT = 1


def lane_change_intent(action: Action) -> LaneChangeIntent:
    """Lane-change intent implied by an action."""
    if action == Action.CHANGE_LANE_LEFT:
        return LaneChangeIntent.LEFT
    if action == Action.CHANGE_LANE_RIGHT:
        return LaneChangeIntent.RIGHT
    return LaneChangeIntent.NONE
