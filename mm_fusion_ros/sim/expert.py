"""The expert: ground truth to an action label, a target acceleration and a time-to-collision.

Every boundary is a threshold on a quantity the sensors can measure, so a model can learn it:
gaps and lateral offsets (camera geometry, radar x/y), closing speed and lead ground speed
(radar Doppler, ego speed from static returns), light state (camera colour), lane existence and
occupancy (camera lane markings/road edge, radar guardrail and adjacent returns). Priority:

1. EMERGENCY_BRAKE: an in-path object (a vehicle that overlaps the ego corridor, or a
   pedestrian in it or reaching it before the ego passes) with time-to-collision below
   `emergency_ttc`, or one that needs more than `emergency_decel` to stop short of it
   (closing speed^2 / 2 gap: both measured by the radar).
2. STOP: a red light (or a yellow one that can be stopped for at `yellow_max_decel`) whose stop
   line is within `stop_window`, or a pedestrian on the road ahead within it: the expert
   yields until the pedestrian has left the road, whichever way it walks (walking direction
   decides only the emergency, as no single camera frame shows it).
3. CHANGE_LANE_LEFT/RIGHT: while a lane change runs (it is committed), or when the in-path
   lead within `lane_change_gap` is slower than `slow_lead_speed` over ground and the lane on
   that side exists and is free (left preferred).
4. FOLLOW: an in-path lead within `follow_gap`, or closing faster than `closing_speed` within
   `follow_closing_gap`.
5. CRUISE otherwise.

The target acceleration is the minimum of IDM terms (free road, lead, stop line, pedestrian);
for EMERGENCY_BRAKE it is a little more than the required deceleration (at least
`emergency_min_decel`, at most `max_decel`).
"""

from dataclasses import dataclass
import math

from mm_fusion_ros.actions import Action
from mm_fusion_ros.sim.dynamics import DynamicsConfig, EgoState
from mm_fusion_ros.sim.world import Actor, LightState, World


@dataclass(frozen=True)
class ExpertConfig:
    emergency_ttc: float = 2.0  # [s]
    emergency_decel: float = 3.5  # [m/s^2] required deceleration above this is an emergency
    emergency_margin: float = 3.0  # [m] gap kept in the required-deceleration estimate
    emergency_min_decel: float = 4.5  # [m/s^2] an emergency brakes at least this hard
    stop_window: float = 50.0  # [m] ego front to stop line / pedestrian
    follow_gap: float = 40.0  # [m]
    follow_closing_gap: float = 70.0  # [m]
    closing_speed: float = 1.0  # [m/s]
    lane_change_gap: float = 60.0  # [m]
    slow_lead_speed: float = 8.0  # [m/s] over ground
    free_behind: float = 15.0  # [m] target lane must be empty from this far behind (centres)
    free_ahead: float = 45.0  # [m] to this far ahead
    corridor_margin: float = 0.2  # [m] added to the half widths for the in-path test
    pedestrian_corridor: float = 1.8  # [m] |lateral offset| from the ego centre
    yellow_max_decel: float = 5.0  # [m/s^2]
    idm_accel: float = 1.5  # [m/s^2]
    idm_decel: float = 2.0  # [m/s^2] comfortable
    idm_headway: float = 1.5  # [s]
    idm_gap: float = 3.0  # [m] standstill gap to a vehicle
    idm_gap_line: float = 1.0  # [m] to the stop line
    idm_gap_pedestrian: float = 4.0  # [m]
    max_decel: float = 8.0  # [m/s^2]


@dataclass(frozen=True)
class ExpertLabel:
    action: Action
    target_acceleration: float  # [m/s^2]
    ttc: float  # [s] to the nearest in-path object, inf when none


def idm_accel(
    speed: float, desired: float, gap: float, closing: float, c: ExpertConfig, s0: float
) -> float:
    """Intelligent Driver Model acceleration behind an obstacle `gap` metres ahead."""
    s_star = s0 + max(0.0, speed * c.idm_headway
                      + speed * closing / (2.0 * math.sqrt(c.idm_accel * c.idm_decel)))
    free = 1.0 - (speed / max(desired, 0.1)) ** 4
    return c.idm_accel * (free - (s_star / max(gap, 0.1)) ** 2)


def _gap(ego: EgoState, a: Actor, ego_length: float) -> float:
    return (a.x - 0.5 * a.length) - (ego.x + 0.5 * ego_length)


def _required_decel(gap: float, closing: float, margin: float) -> float:
    """Constant deceleration that cancels the closing speed `margin` metres short."""
    if closing <= 0.1:
        return 0.0
    return closing * closing / (2.0 * max(gap - margin, 0.1))


def _ttc(gap: float, closing: float) -> float:
    if gap <= 0.0:
        return 0.0
    return gap / closing if closing > 0.1 else math.inf


class Expert:
    def __init__(
        self,
        desired_speed: float,
        config: ExpertConfig | None = None,
        vehicle: DynamicsConfig | None = None,
    ) -> None:
        self.desired_speed = desired_speed
        self.config = config or ExpertConfig()
        self.vehicle = vehicle or DynamicsConfig()

    def in_path(self, ego: EgoState, a: Actor) -> bool:
        """A vehicle ahead whose lateral extent overlaps the ego corridor."""
        half = 0.5 * (a.width + self.vehicle.width) + self.config.corridor_margin
        return a.x > ego.x and abs(a.y - ego.y) < half

    @staticmethod
    def on_road_ahead(world: World, ego: EgoState, p: Actor) -> bool:
        """A pedestrian on the road (0.3 m kerb margin) ahead of the ego centre."""
        return abs(p.y) <= world.road.half_width + 0.3 and p.x >= ego.x

    def pedestrian_conflict(self, world: World, ego: EgoState, p: Actor) -> tuple[bool, float]:
        """(on the road and in or walking into the ego corridor, seconds until it is in it)."""
        c = self.config
        dy = p.y - ego.y
        if not self.on_road_ahead(world, ego, p):
            return False, math.inf
        if abs(dy) < c.pedestrian_corridor:
            return True, 0.0
        if dy * p.lateral_speed < 0.0 and abs(p.lateral_speed) > 0.1:
            return True, (abs(dy) - c.pedestrian_corridor) / abs(p.lateral_speed)
        return False, math.inf

    def lane_free(self, world: World, ego: EgoState, lane: int) -> bool:
        road, c = world.road, self.config
        if not road.has_lane(lane):
            return False
        yc = road.lane_center(lane)
        for a in world.actors:
            if not a.is_vehicle:
                continue
            if abs(a.y - yc) < 0.5 * (road.lane_width + a.width) - 0.3 and (
                -c.free_behind <= a.x - ego.x <= c.free_ahead
            ):
                return False
        return True

    def label(self, world: World, ego: EgoState) -> ExpertLabel:
        c, v = self.config, ego.speed
        length = self.vehicle.length
        accel = idm_accel(v, self.desired_speed, math.inf, 0.0, c, c.idm_gap)
        ttc = math.inf
        lead: Actor | None = None
        lead_gap = math.inf
        stop = False
        need = 0.0  # deceleration needed to stop short of the worst in-path object
        for a in world.actors:
            gap = _gap(ego, a, length)
            if a.is_vehicle:
                if not self.in_path(ego, a):
                    continue
                ttc = min(ttc, _ttc(gap, v - a.speed))
                need = max(need, _required_decel(gap, v - a.speed, c.emergency_margin))
                if gap < lead_gap:
                    lead, lead_gap = a, gap
                continue
            if not self.on_road_ahead(world, ego, a) or gap < -0.5:
                continue
            conflict, t_enter = self.pedestrian_conflict(world, ego, a)
            ped_ttc = _ttc(gap, v)
            if conflict and t_enter <= ped_ttc:
                ttc = min(ttc, ped_ttc)
                need = max(need, _required_decel(gap, v, c.emergency_margin))
            if gap <= c.stop_window:
                stop = True
                accel = min(accel, idm_accel(v, self.desired_speed, gap, v, c,
                                             c.idm_gap_pedestrian))
        if lead is not None:
            accel = min(accel, idm_accel(v, self.desired_speed, lead_gap, v - lead.speed, c,
                                         c.idm_gap))
        light = world.light
        if light is not None and light.state != LightState.GREEN:
            d_line = light.x_stop - (ego.x + 0.5 * length)
            if 0.0 < d_line <= c.stop_window and (
                light.state == LightState.RED
                or v * v / (2.0 * d_line) <= c.yellow_max_decel
            ):
                stop = True
                accel = min(accel, idm_accel(v, self.desired_speed, d_line, v, c,
                                             c.idm_gap_line))
        accel = min(max(accel, -c.max_decel), c.idm_accel)

        if ttc < c.emergency_ttc or need > c.emergency_decel:
            # brake a little harder than needed (not blindly at the maximum) so the stop is
            # smooth and the emergency lasts until the threat is gone
            decel = min(c.max_decel, max(1.1 * need + 0.3, c.emergency_min_decel))
            return ExpertLabel(Action.EMERGENCY_BRAKE, -decel, ttc)
        if stop:
            return ExpertLabel(Action.STOP, min(accel, 0.0), ttc)
        if ego.changing_lane:
            action = Action.CHANGE_LANE_LEFT if ego.lane_change > 0 else Action.CHANGE_LANE_RIGHT
            return ExpertLabel(action, accel, ttc)
        if lead is not None and lead_gap <= c.lane_change_gap and lead.speed < c.slow_lead_speed:
            lane = world.road.lane_of(ego.y)
            if self.lane_free(world, ego, lane + 1):
                return ExpertLabel(Action.CHANGE_LANE_LEFT, accel, ttc)
            if self.lane_free(world, ego, lane - 1):
                return ExpertLabel(Action.CHANGE_LANE_RIGHT, accel, ttc)
        if lead is not None and (
            lead_gap <= c.follow_gap
            or (v - lead.speed > c.closing_speed and lead_gap <= c.follow_closing_gap)
        ):
            return ExpertLabel(Action.FOLLOW, accel, ttc)
        return ExpertLabel(Action.CRUISE, accel, ttc)
