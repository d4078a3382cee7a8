"""Closed-loop ego dynamics: a decision (action + target acceleration) moves the ego.

Longitudinal: the target acceleration is clipped to the vehicle's limits and reached under a
jerk limit (harder braking gets a higher jerk limit, as a brake system does). The action
constrains it: EMERGENCY_BRAKE brakes at least at `emergency_min_decel` and STOP never
accelerates. Lateral: CHANGE_LANE_* starts a lane change (if that lane exists) that moves the
ego to the next lane centre over `lane_change_duration` along a quintic ramp and cannot be
cancelled; the lateral move is what the camera and radar see shift.
"""

from dataclasses import dataclass
from typing import Protocol

from mm_fusion_ros.actions import Action
from mm_fusion_ros.sim.world import RoadConfig


class DecisionLike(Protocol):
    """Anything with an action and a target acceleration (ExpertLabel, core Decision)."""

    action: Action
    target_acceleration: float


@dataclass
class Command:
    action: Action = Action.CRUISE
    target_acceleration: float = 0.0  # [m/s^2]


@dataclass(frozen=True)
class DynamicsConfig:
    length: float = 4.6  # [m]
    width: float = 1.9  # [m]
    max_accel: float = 2.5  # [m/s^2]
    emergency_decel: float = 8.0  # [m/s^2] magnitude, the vehicle's limit
    emergency_min_decel: float = 4.5  # [m/s^2] EMERGENCY_BRAKE brakes at least this hard
    max_jerk: float = 6.0  # [m/s^3] comfort limit
    brake_jerk: float = 40.0  # [m/s^3] when braking harder
    max_speed: float = 25.0  # [m/s]
    lane_change_duration: float = 3.0  # [s]


@dataclass
class EgoState:
    x: float  # [m] centre
    y: float  # [m]
    speed: float  # [m/s]
    accel: float = 0.0  # [m/s^2]
    lane: int = 1  # current lane, or the target lane while changing
    lane_change: int = 0  # +1 left, -1 right, 0 none
    lane_change_progress: float = 0.0  # 0..1
    lane_change_from_y: float = 0.0  # [m]

    @property
    def changing_lane(self) -> bool:
        return self.lane_change != 0


def _smoothstep(p: float) -> float:
    p = min(max(p, 0.0), 1.0)
    return p * p * p * (10.0 + p * (-15.0 + 6.0 * p))


class EgoDynamics:
    def __init__(self, road: RoadConfig, config: DynamicsConfig | None = None) -> None:
        self.road = road
        self.config = config or DynamicsConfig()

    def commanded_accel(self, decision: DecisionLike) -> float:
        """Acceleration the action allows, before the jerk limit."""
        c = self.config
        action = Action(int(decision.action))
        a = min(max(float(decision.target_acceleration), -c.emergency_decel), c.max_accel)
        if action == Action.EMERGENCY_BRAKE:
            return min(a, -c.emergency_min_decel)
        if action == Action.STOP:
            a = min(a, 0.0)
        return a

    def step(self, ego: EgoState, decision: DecisionLike, dt: float) -> None:
        """Advance the ego state in place by dt."""
        c = self.config
        target = self.commanded_accel(decision)
        jerk = c.brake_jerk if target < ego.accel and target < -1.0 else c.max_jerk
        da = min(max(target - ego.accel, -jerk * dt), jerk * dt)
        accel = ego.accel + da
        speed = ego.speed + accel * dt
        if speed <= 0.0:
            speed = 0.0
            accel = 0.0 if target <= 0.0 else max(accel, 0.0)  # at rest the brake holds
        elif speed > c.max_speed:
            speed, accel = c.max_speed, min(accel, 0.0)
        ego.x += 0.5 * (ego.speed + speed) * dt
        ego.speed, ego.accel = speed, accel
        self._lateral(ego, Action(int(decision.action)), dt)

    def _lateral(self, ego: EgoState, action: Action, dt: float) -> None:
        if not ego.changing_lane and action in (Action.CHANGE_LANE_LEFT, Action.CHANGE_LANE_RIGHT):
            direction = 1 if action == Action.CHANGE_LANE_LEFT else -1
            current = self.road.lane_of(ego.y)
            if self.road.has_lane(current + direction):
                ego.lane_change = direction
                ego.lane = current + direction
                ego.lane_change_progress = 0.0
                ego.lane_change_from_y = ego.y
        if ego.changing_lane:
            ego.lane_change_progress += dt / self.config.lane_change_duration
            target_y = self.road.lane_center(ego.lane)
            s = _smoothstep(ego.lane_change_progress)
            ego.y = ego.lane_change_from_y + (target_y - ego.lane_change_from_y) * s
            if ego.lane_change_progress >= 1.0:
                ego.y = target_y
                ego.lane_change = 0
                ego.lane_change_progress = 0.0
