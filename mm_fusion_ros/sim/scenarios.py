"""Procedural scenarios: (type, condition, seed) -> an initial world, deterministically.

Which modality alone misses what (by design, so that fusion matters):

Camera alone (one frame) misses
- closing speed and lead ground speed: a braking lead whose brake lights do not work
  (`brake_lights_work` is drawn per vehicle, about half the time in LEAD_BRAKE/LEAD_STOP) looks
  the same as a cruising one at the same gap; a slow lead (CHANGE_LANE) looks like a normal one
  (FOLLOW); EMERGENCY_BRAKE depends on TTC = gap / closing speed;
- anything beyond ~30 m in fog (contrast e-folds at 28 m), unlit objects beyond the headlight
  cone at night, brake lights and distant lamps washed out by glare, small objects in rain.
Radar alone misses
- the traffic light state (it sees the far-side gantry, never the colour):
  RED/YELLOW/GREEN_LIGHT;
- weak pedestrians (-5 dBsm, detected well under half the time beyond ~20 m), and a pedestrian
  on the sidewalk vs on the road is a few metres of noisy azimuth;
- targets in dropouts (30 % of frames missing, 40 % per-target misses), and clutter/ghosts
  that look like in-path returns (RADAR_CLUTTER, RADAR_GHOSTS).

Expert label distribution over `scenario_mix(200, seed=0)` (60200 frames at 20 Hz, measured
by `bench/sim_throughput.py`): cruise 55.5 %, follow 19.9 %, stop 12.5 %, emergency_brake
1.8 %, change_lane_left 5.7 %, change_lane_right 4.7 %. EMERGENCY_BRAKE is rare by nature (a
second or two per hazard episode), so the mix over-samples hazard types (`MIX_WEIGHTS`);
training should still weight classes or subsample cruise.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

import numpy as np

from mm_fusion_ros.sim.conditions import CONDITIONS, Condition
from mm_fusion_ros.sim.dynamics import EgoState
from mm_fusion_ros.sim.world import (
    Actor,
    ActorKind,
    ActorScript,
    LightState,
    RoadConfig,
    TrafficLight,
    World,
)


class ScenarioType(str, Enum):
    FREE_ROAD = 'free_road'
    LEAD_CRUISE = 'lead_cruise'
    LEAD_BRAKE = 'lead_brake'
    LEAD_STOP = 'lead_stop'
    CUT_IN = 'cut_in'
    CUT_OUT = 'cut_out'
    STOPPED_VEHICLE = 'stopped_vehicle'
    SLOW_LEAD = 'slow_lead'
    PEDESTRIAN_CROSSING = 'pedestrian_crossing'
    RED_LIGHT = 'red_light'
    YELLOW_LIGHT = 'yellow_light'
    GREEN_LIGHT = 'green_light'


SCENARIO_TYPES: tuple[ScenarioType, ...] = tuple(ScenarioType)


@dataclass(frozen=True)
class ScenarioConfig:
    scenario: ScenarioType = ScenarioType.FREE_ROAD
    condition: Condition = Condition.CLEAR
    seed: int = 0
    duration: float = 15.0  # [s]
    dt: float = 0.05  # [s] camera and radar period (20 Hz)
    road: RoadConfig = field(default_factory=RoadConfig)


@dataclass
class Scenario:
    """The generated initial state; the world is mutated by the simulator."""

    world: World
    ego: EgoState
    desired_speed: float  # [m/s]
    radar_offset: float  # [s] radar stamp minus camera stamp (fixed per episode)


_CAR_COLOURS = (
    (170, 30, 30), (30, 60, 150), (210, 210, 210), (40, 40, 45), (120, 120, 125),
    (20, 100, 60), (200, 160, 40), (90, 50, 30), (230, 230, 235), (70, 80, 110),
)
_SHIRT_COLOURS = ((200, 40, 40), (40, 90, 200), (230, 200, 40), (240, 240, 240), (30, 30, 30))


def _vehicle(
    rng: np.random.Generator, x: float, y: float, speed: float, truck_prob: float = 0.15,
    lights_prob: float = 1.0, script: ActorScript | None = None,
) -> Actor:
    truck = rng.random() < truck_prob
    colour = _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))]
    if truck:
        dims = (float(rng.uniform(7.0, 10.0)), 2.5, float(rng.uniform(3.2, 3.8)))
        colour = (225, 225, 220) if rng.random() < 0.6 else colour
    else:
        dims = (float(rng.uniform(4.2, 4.9)), float(rng.uniform(1.75, 1.95)),
                float(rng.uniform(1.4, 1.7)))
    script = script or ActorScript(cruise_speed=speed)
    return Actor(
        kind=ActorKind.TRUCK if truck else ActorKind.CAR, x=x, y=y, speed=speed,
        length=dims[0], width=dims[1], height=dims[2], colour=colour,
        brake_lights_work=bool(rng.random() < lights_prob), script=script,
    )


def _pedestrian(rng: np.random.Generator, x: float, y: float, script: ActorScript) -> Actor:
    return Actor(
        kind=ActorKind.PEDESTRIAN, x=x, y=y, speed=0.0, length=0.5, width=0.5,
        height=float(rng.uniform(1.55, 1.9)),
        colour=_SHIRT_COLOURS[int(rng.integers(len(_SHIRT_COLOURS)))], script=script,
    )


def _other_lanes(road: RoadConfig, ego_lane: int) -> list[int]:
    return [lane for lane in range(road.num_lanes) if lane != ego_lane]


def _adjacent_traffic(
    rng: np.random.Generator, road: RoadConfig, ego_lane: int, v_des: float, count: int,
    obey_light: bool = False,
) -> list[Actor]:
    """Vehicles in other lanes, ahead of the ego and at least as fast, so always visible."""
    actors: list[Actor] = []
    lanes = _other_lanes(road, ego_lane)
    used: dict[int, float] = {}
    for _ in range(count):
        lane = lanes[int(rng.integers(len(lanes)))]
        if obey_light and lane in used:
            continue  # one car per lane at a light: actors do not follow each other
        x = used.get(lane, float(rng.uniform(3.0, 25.0)))
        speed = v_des + float(rng.uniform(0.0, 1.5))
        actors.append(_vehicle(rng, x + 5.0, road.lane_center(lane), speed,
                               script=ActorScript(cruise_speed=speed, obey_light=obey_light)))
        used[lane] = x + float(rng.uniform(25.0, 45.0))
    return actors


def _sidewalk_pedestrians(rng: np.random.Generator, road: RoadConfig, count: int) -> list[Actor]:
    """Distractors that stay off the road (not in conflict)."""
    peds = []
    for _ in range(count):
        side = 1.0 if rng.random() < 0.5 else -1.0
        y = side * (road.half_width + float(rng.uniform(0.8, 2.0)))
        peds.append(_pedestrian(rng, float(rng.uniform(20.0, 110.0)), y, ActorScript()))
    return peds


def build_scenario(config: ScenarioConfig) -> Scenario:
    """Generate the initial world for a scenario; same config, same world."""
    type_index = SCENARIO_TYPES.index(config.scenario)
    cond_index = CONDITIONS.index(config.condition)
    rng = np.random.default_rng([int(config.seed), type_index, cond_index, 0x5EED])
    road = config.road
    st = config.scenario
    v_des = float(rng.uniform(12.0, 16.0))
    ego_lane = road.num_lanes // 2 if rng.random() < 0.5 else int(rng.integers(road.num_lanes))
    ego_y = road.lane_center(ego_lane)
    ego = EgoState(x=0.0, y=ego_y, speed=v_des, lane=ego_lane)
    front = 0.5 * 4.6
    actors: list[Actor] = []
    light: TrafficLight | None = None
    n_adjacent = int(rng.integers(0, 4))
    lights_prob = 0.5

    if st == ScenarioType.LEAD_CRUISE:
        speed = v_des + float(rng.uniform(-2.0, 0.5))
        actors.append(_vehicle(rng, front + float(rng.uniform(18.0, 65.0)), ego_y, speed))
    elif st == ScenarioType.LEAD_BRAKE:
        speed = v_des - float(rng.uniform(0.0, 1.5))
        to_speed = 0.0 if rng.random() < 0.6 else float(rng.uniform(2.0, 6.0))
        script = ActorScript(cruise_speed=speed, brake_time=float(rng.uniform(0.5, 5.0)),
                             brake_decel=float(rng.uniform(5.0, 9.0)), brake_to_speed=to_speed)
        actors.append(_vehicle(rng, front + float(rng.uniform(9.0, 30.0)), ego_y, speed,
                               lights_prob=lights_prob, script=script))
    elif st == ScenarioType.LEAD_STOP:
        speed = v_des - float(rng.uniform(0.0, 2.0))
        script = ActorScript(cruise_speed=speed, brake_time=float(rng.uniform(1.0, 5.0)),
                             brake_decel=float(rng.uniform(1.5, 3.5)), brake_to_speed=0.0)
        actors.append(_vehicle(rng, front + float(rng.uniform(20.0, 50.0)), ego_y, speed,
                               lights_prob=lights_prob, script=script))
        n_adjacent = int(rng.integers(1, 4))
    elif st == ScenarioType.CUT_IN:
        sides = [s for s in (1, -1) if road.has_lane(ego_lane + s)]
        side = sides[int(rng.integers(len(sides)))]
        speed = v_des - float(rng.uniform(0.0, 4.0))
        shift_time = float(rng.uniform(1.0, 4.0))
        # gap when the shift starts (the ego cruises until then), so the car is ahead of the
        # ego, not beside it, when it moves over
        gap = float(rng.uniform(6.0, 22.0)) + (v_des - speed) * shift_time
        script = ActorScript(cruise_speed=speed, shift_time=shift_time,
                             shift_to_y=ego_y, shift_duration=float(rng.uniform(2.0, 3.0)))
        actors.append(_vehicle(rng, front + gap + 2.4, road.lane_center(ego_lane + side), speed,
                               truck_prob=0.0, script=script))
        n_adjacent = 0
    elif st == ScenarioType.CUT_OUT:
        # the lead swerves out and reveals a stopped car close ahead: a sudden low TTC
        sides = [s for s in (1, -1) if road.has_lane(ego_lane + s)]
        side = sides[int(rng.integers(len(sides)))]
        shift_time = float(rng.uniform(0.3, 1.2))
        lead_gap = float(rng.uniform(12.0, 16.0))
        script = ActorScript(cruise_speed=v_des, shift_time=shift_time,
                             shift_to_y=road.lane_center(ego_lane + side), shift_duration=1.4)
        actors.append(_vehicle(rng, front + lead_gap + 2.4, ego_y, v_des, truck_prob=0.0,
                               script=script))
        reveal = front + v_des * (shift_time + 0.7) + float(rng.uniform(14.0, 28.0))
        actors.append(_vehicle(rng, reveal + 2.5, ego_y, 0.0, truck_prob=0.2,
                               lights_prob=lights_prob))
        n_adjacent = 0
    elif st == ScenarioType.STOPPED_VEHICLE:
        near = rng.random() < 0.6  # sometimes the episode starts already close (sudden)
        gap = float(rng.uniform(20.0, 34.0) if near else rng.uniform(70.0, 130.0))
        actors.append(_vehicle(rng, front + gap + 2.5, ego_y, 0.0, truck_prob=0.3,
                               lights_prob=lights_prob))
    elif st == ScenarioType.SLOW_LEAD:
        speed = float(rng.uniform(2.5, 6.5))
        actors.append(_vehicle(rng, front + float(rng.uniform(45.0, 95.0)), ego_y, speed,
                               truck_prob=0.4))
    elif st == ScenarioType.PEDESTRIAN_CROSSING:
        side = 1.0 if rng.random() < 0.5 else -1.0
        y0 = side * (road.half_width + float(rng.uniform(0.6, 1.5)))
        script = ActorScript(cross_trigger_gap=float(rng.uniform(26.0, 60.0)),
                             cross_speed=float(rng.uniform(1.0, 1.9)), cross_to_y=-y0)
        actors.append(_pedestrian(rng, front + float(rng.uniform(70.0, 120.0)), y0, script))
    elif st in (ScenarioType.RED_LIGHT, ScenarioType.YELLOW_LIGHT, ScenarioType.GREEN_LIGHT):
        x_stop = front + float(rng.uniform(70.0, 140.0))
        if st == ScenarioType.RED_LIGHT:
            light = TrafficLight(x_stop=x_stop, initial=LightState.RED,
                                 trigger_time=float(rng.uniform(9.0, 14.0)),
                                 phases=((LightState.GREEN, float('inf')),))
        elif st == ScenarioType.YELLOW_LIGHT:
            light = TrafficLight(x_stop=x_stop, initial=LightState.GREEN,
                                 trigger_distance=float(rng.uniform(60.0, 80.0)),
                                 phases=((LightState.YELLOW, 3.0),
                                         (LightState.RED, float(rng.uniform(4.0, 7.0))),
                                         (LightState.GREEN, float('inf'))))
        else:
            light = TrafficLight(x_stop=x_stop, initial=LightState.GREEN)
        n_adjacent = int(rng.integers(0, 3))

    actors.extend(_adjacent_traffic(rng, road, ego_lane, v_des, n_adjacent,
                                    obey_light=light is not None))
    if rng.random() < 0.35:
        actors.extend(_sidewalk_pedestrians(rng, road, int(rng.integers(1, 3))))
    radar_offset = float(rng.uniform(-0.008, 0.008))
    world = World(road=road, actors=actors, light=light)
    return Scenario(world=world, ego=ego, desired_speed=v_des, radar_offset=radar_offset)


# Episodes per cycle of the mix: sudden-hazard types (the rare EMERGENCY_BRAKE class) come
# more often, the all-CRUISE ones less.
MIX_WEIGHTS: dict[ScenarioType, int] = {
    ScenarioType.FREE_ROAD: 1, ScenarioType.LEAD_CRUISE: 2, ScenarioType.LEAD_BRAKE: 2,
    ScenarioType.LEAD_STOP: 2, ScenarioType.CUT_IN: 2, ScenarioType.CUT_OUT: 4,
    ScenarioType.STOPPED_VEHICLE: 4, ScenarioType.SLOW_LEAD: 2,
    ScenarioType.PEDESTRIAN_CROSSING: 3, ScenarioType.RED_LIGHT: 2,
    ScenarioType.YELLOW_LIGHT: 2, ScenarioType.GREEN_LIGHT: 1,
}


MixPairing = Literal['balanced', 'first']
MIX_PAIRINGS: tuple[MixPairing, ...] = ('balanced', 'first')


def balanced_mix_length(
    weights: dict[ScenarioType, int] | None = None,
    conditions: tuple[Condition, ...] = CONDITIONS,
) -> int:
    """Episodes of `scenario_mix` after which every type has met every condition equally often."""
    weights = MIX_WEIGHTS if weights is None else weights
    return sum(weights.values()) * len(conditions)


def scenario_mix(
    num_episodes: int,
    seed: int = 0,
    duration: float = 15.0,
    weights: dict[ScenarioType, int] | None = None,
    conditions: tuple[Condition, ...] = CONDITIONS,
    pairing: MixPairing = 'balanced',
) -> list[ScenarioConfig]:
    """A deterministic list of episodes: types cycle by weight, conditions cycle independently.

    Every place in the type cycle moves on by one condition per cycle, so each type meets
    every condition. `pairing='first'` keeps the first formula, `i + i // len(cycle)`, which
    paired a 27-long cycle with only 2-6 of the 8 conditions per type (no red light in clear
    weather, no pedestrian in fog): stages 1-4 of `make checkpoint` were trained on it, so
    reproducing them needs it. Seeds run from `seed` upward, so disjoint seed ranges give
    disjoint train/test sets.
    """
    if pairing not in MIX_PAIRINGS:
        raise ValueError(f'pairing must be one of {MIX_PAIRINGS}, not {pairing!r}')
    weights = MIX_WEIGHTS if weights is None else weights
    cycle = [st for st in SCENARIO_TYPES for _ in range(weights.get(st, 0))]
    configs = []
    for i in range(num_episodes):
        st = cycle[i % len(cycle)]
        step = i // len(cycle) + (i % len(cycle) if pairing == 'balanced' else i)
        cond = conditions[step % len(conditions)]
        configs.append(ScenarioConfig(scenario=st, condition=cond, seed=seed + i,
                                      duration=duration))
    return configs
