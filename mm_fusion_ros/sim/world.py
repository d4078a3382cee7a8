"""World state: a straight multi-lane road, scripted actors and one optional traffic light.

Frame: x along the road [m], y to the left [m], z up [m]. Lane 0 is the rightmost lane.
Actors follow small scripts whose triggers are times or distances to the ego, so a scenario
stays deterministic in closed loop whatever the ego does, and actors never react to the ego
(which is what makes the ego responsible for every collision).
"""

from dataclasses import dataclass, field
from enum import IntEnum
import math

import numpy as np


class ActorKind(IntEnum):
    CAR = 0
    TRUCK = 1
    PEDESTRIAN = 2


class LightState(IntEnum):
    GREEN = 0
    YELLOW = 1
    RED = 2


@dataclass(frozen=True)
class RoadConfig:
    num_lanes: int = 3
    lane_width: float = 3.5  # [m]
    guardrail_offset: float = 1.2  # [m] from the road edge to the guardrail

    @property
    def half_width(self) -> float:
        """Half the paved width [m]."""
        return 0.5 * self.num_lanes * self.lane_width

    def lane_center(self, lane: int) -> float:
        """Lateral position [m] of a lane's centre line."""
        return (lane - 0.5 * (self.num_lanes - 1)) * self.lane_width

    def lane_of(self, y: float) -> int:
        """Lane index containing lateral position y (clamped to the road)."""
        lane = int(round(y / self.lane_width + 0.5 * (self.num_lanes - 1)))
        return min(max(lane, 0), self.num_lanes - 1)

    def has_lane(self, lane: int) -> bool:
        return 0 <= lane < self.num_lanes

    def boundaries(self) -> np.ndarray:
        """Lateral positions [m] of the lane boundaries, right edge first, (num_lanes + 1,)."""
        return (np.arange(self.num_lanes + 1) - 0.5 * self.num_lanes) * self.lane_width


@dataclass
class ActorScript:
    """What an actor does; every trigger is optional (None disables it)."""

    cruise_speed: float = 0.0  # [m/s] speed held when nothing else applies
    brake_time: float | None = None  # [s] start braking at this sim time
    brake_decel: float = 0.0  # [m/s^2] positive magnitude
    brake_to_speed: float = 0.0  # [m/s] speed reached by the braking, then held
    shift_time: float | None = None  # [s] start a lateral move (cut-in)
    shift_to_y: float = 0.0  # [m]
    shift_duration: float = 2.5  # [s]
    cross_trigger_gap: float | None = None  # [m] pedestrian starts crossing at this ego gap
    cross_speed: float = 1.4  # [m/s]
    cross_to_y: float = 0.0  # [m]
    obey_light: bool = False  # stop at a red/yellow light when it can


@dataclass
class Actor:
    kind: ActorKind
    x: float  # [m] centre
    y: float  # [m] centre
    speed: float  # [m/s] along x
    length: float  # [m]
    width: float  # [m]
    height: float  # [m]
    colour: tuple[int, int, int] = (160, 160, 160)
    brake_lights_work: bool = True  # when False the camera never shows the braking
    script: ActorScript = field(default_factory=ActorScript)
    accel: float = 0.0  # [m/s^2]
    lateral_speed: float = 0.0  # [m/s]
    _shift_from_y: float | None = None
    _crossing: bool = False

    @property
    def braking(self) -> bool:
        """Brake lights on: decelerating or held at a standstill (vehicles only)."""
        if self.kind == ActorKind.PEDESTRIAN:
            return False
        return self.accel < -0.8 or self.speed < 0.2

    @property
    def is_vehicle(self) -> bool:
        return self.kind != ActorKind.PEDESTRIAN


@dataclass
class TrafficLight:
    """Signal heads on a gantry over all lanes, a stop line; phases run once after a trigger.

    The gantry stands on the far side of the junction (`signal_offset` beyond the stop line,
    as far-side signals do), so the light stays in the camera's view while the car waits at
    the line; a near-side gantry leaves the frame in the last metres and no single frame
    could then tell a red light from a green one.
    """

    x_stop: float  # [m] stop line position
    signal_offset: float = 20.0  # [m] gantry distance beyond the stop line
    initial: LightState = LightState.GREEN
    trigger_time: float | None = None  # [s] start the phases at this sim time
    trigger_distance: float | None = None  # [m] or when the ego front is this close
    phases: tuple[tuple[LightState, float], ...] = ()  # (state, duration [s]); last one holds
    state: LightState = LightState.GREEN
    _started: float | None = None

    def __post_init__(self) -> None:
        self.state = self.initial

    @property
    def x_signal(self) -> float:
        """[m] x of the signal gantry."""
        return self.x_stop + self.signal_offset

    def update(self, t: float, ego_front_x: float) -> None:
        if self._started is None:
            hit_time = self.trigger_time is not None and t >= self.trigger_time
            hit_dist = (
                self.trigger_distance is not None
                and self.x_stop - ego_front_x <= self.trigger_distance
            )
            if hit_time or hit_dist:
                self._started = t
        if self._started is None or not self.phases:
            return
        elapsed = t - self._started
        for state, duration in self.phases:
            self.state = state
            if elapsed < duration:
                return
            elapsed -= duration


def _smoothstep(p: float) -> float:
    """Quintic 0..1 ramp with zero velocity and acceleration at both ends."""
    p = min(max(p, 0.0), 1.0)
    return p * p * p * (10.0 + p * (-15.0 + 6.0 * p))


@dataclass
class World:
    road: RoadConfig
    actors: list[Actor]
    light: TrafficLight | None = None
    time: float = 0.0  # [s]

    def step(self, dt: float, ego_front_x: float) -> None:
        """Advance every actor and the light by dt."""
        self.time += dt
        t = self.time
        if self.light is not None:
            self.light.update(t, ego_front_x)
        for actor in self.actors:
            if actor.kind == ActorKind.PEDESTRIAN:
                self._step_pedestrian(actor, dt, ego_front_x)
            else:
                self._step_vehicle(actor, t, dt)

    def _step_pedestrian(self, a: Actor, dt: float, ego_front_x: float) -> None:
        s = a.script
        if s.cross_trigger_gap is not None and not a._crossing:
            if a.x - ego_front_x <= s.cross_trigger_gap:
                a._crossing = True
        if a._crossing:
            remaining = s.cross_to_y - a.y
            step = math.copysign(min(abs(remaining), s.cross_speed * dt), remaining)
            a.lateral_speed = step / dt if abs(remaining) > 1e-6 else 0.0
            a.y += step
        a.x += a.speed * dt

    def _step_vehicle(self, a: Actor, t: float, dt: float) -> None:
        s = a.script
        if s.brake_time is not None and t >= s.brake_time:
            accel = -s.brake_decel if a.speed > s.brake_to_speed + 1e-3 else 0.0
            floor = s.brake_to_speed
        else:
            accel = min(max(0.6 * (s.cruise_speed - a.speed), -2.0), 1.5)
            floor = 0.0
        light = self.light
        if s.obey_light and light is not None and light.state != LightState.GREEN:
            d_line = light.x_stop - (a.x + 0.5 * a.length) - 1.0
            if d_line > -0.5:
                need = -a.speed * a.speed / (2.0 * max(d_line, 0.3))
                if need > -6.0 or light.state == LightState.RED:
                    accel = min(accel, need if d_line > 0.3 else -6.0)
        a.accel = accel
        a.speed = max(floor if accel < 0 else 0.0, a.speed + accel * dt)
        if accel < 0 and a.speed <= floor:
            a.speed = floor
        a.x += a.speed * dt
        if s.shift_time is not None and t >= s.shift_time:
            if a._shift_from_y is None:
                a._shift_from_y = a.y
            p = (t - s.shift_time) / s.shift_duration
            y_new = a._shift_from_y + (s.shift_to_y - a._shift_from_y) * _smoothstep(p)
            a.lateral_speed = (y_new - a.y) / dt
            a.y = y_new
