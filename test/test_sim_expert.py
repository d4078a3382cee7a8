"""Expert labels for hand-built situations, and the dynamics that executes them."""

import math

from mm_fusion_ros.actions import Action
from mm_fusion_ros.sim.dynamics import Command, EgoDynamics, EgoState
from mm_fusion_ros.sim.expert import Expert
from mm_fusion_ros.sim.world import Actor, ActorKind, LightState, RoadConfig, TrafficLight, World

ROAD = RoadConfig()
FRONT = 2.3  # ego half length


def car(gap, lane=1, speed=14.0, accel=0.0):
    return Actor(ActorKind.CAR, x=FRONT + gap + 2.25, y=ROAD.lane_center(lane), speed=speed,
                 length=4.5, width=1.9, height=1.5, accel=accel)


def ped(gap, y, lateral_speed=0.0):
    return Actor(ActorKind.PEDESTRIAN, x=FRONT + gap + 0.25, y=y, speed=0.0, length=0.5,
                 width=0.5, height=1.7, lateral_speed=lateral_speed)


def label(actors, light=None, lane=1, speed=14.0, changing=0):
    ego = EgoState(x=0.0, y=ROAD.lane_center(lane), speed=speed, lane=lane,
                   lane_change=changing)
    return Expert(desired_speed=14.0).label(World(ROAD, actors, light), ego)


def test_free_road_cruise():
    lab = label([])
    assert lab.action == Action.CRUISE and math.isinf(lab.ttc)
    assert label([], speed=8.0).target_acceleration > 0.5


def test_red_light_ahead_stop_and_green_cruise():
    red = TrafficLight(x_stop=FRONT + 40.0, initial=LightState.RED)
    lab = label([], red)
    assert lab.action == Action.STOP and lab.target_acceleration < -0.5
    assert label([], TrafficLight(x_stop=FRONT + 40.0, initial=LightState.GREEN)).action \
        == Action.CRUISE
    assert label([], TrafficLight(x_stop=FRONT + 80.0, initial=LightState.RED)).action \
        == Action.CRUISE  # outside the stop window
    stopped = label([], TrafficLight(x_stop=FRONT + 1.5, initial=LightState.RED), speed=0.0)
    assert stopped.action == Action.STOP and stopped.target_acceleration <= 0.0


def test_yellow_stops_only_when_it_can():
    assert label([], TrafficLight(x_stop=FRONT + 40.0, initial=LightState.YELLOW)).action \
        == Action.STOP
    assert label([], TrafficLight(x_stop=FRONT + 10.0, initial=LightState.YELLOW)).action \
        == Action.CRUISE  # 14^2 / 20 = 9.8 m/s^2: go through


def test_fast_closing_emergency_brake():
    lab = label([car(20.0, speed=0.0)])
    assert lab.action == Action.EMERGENCY_BRAKE
    assert math.isclose(lab.ttc, 20.0 / 14.0, rel_tol=1e-6)
    assert lab.target_acceleration <= -4.5


def test_lead_at_same_speed_follow_and_far_lead_cruise():
    assert label([car(25.0, speed=14.0)]).action == Action.FOLLOW
    assert label([car(55.0, speed=14.0)]).action == Action.CRUISE
    assert label([car(55.0, speed=11.0)]).action == Action.FOLLOW  # closing


def test_slow_lead_changes_lane_left_then_right_then_follows():
    slow = car(45.0, speed=4.0)
    assert label([slow]).action == Action.CHANGE_LANE_LEFT
    blocked_left = car(10.0, lane=2, speed=14.0)
    assert label([slow, blocked_left]).action == Action.CHANGE_LANE_RIGHT
    assert label([car(45.0, lane=0, speed=4.0)], lane=0).action == Action.CHANGE_LANE_LEFT
    slow2 = car(45.0, lane=2, speed=4.0)
    assert label([slow2], lane=2).action == Action.CHANGE_LANE_RIGHT  # no lane to the left
    both = [slow, blocked_left, car(5.0, lane=0, speed=14.0)]
    assert label(both).action == Action.FOLLOW


def test_lane_change_in_progress_is_committed():
    assert label([], changing=1).action == Action.CHANGE_LANE_LEFT
    assert label([], changing=-1).action == Action.CHANGE_LANE_RIGHT


def test_pedestrian_on_the_road_stops_until_it_leaves_sidewalk_does_not():
    assert label([ped(40.0, 0.3)]).action == Action.STOP
    assert label([ped(40.0, -4.5, lateral_speed=1.4)]).action == Action.STOP
    assert label([ped(40.0, -7.0)]).action == Action.CRUISE  # sidewalk
    assert label([ped(40.0, 7.0, lateral_speed=1.4)]).action == Action.CRUISE  # left the road
    # Walking away but still on the road: yield (direction is not visible in one frame) ...
    assert label([ped(40.0, 4.5, lateral_speed=1.4)]).action == Action.STOP
    # ... but direction decides the emergency: walking into the corridor close ahead is one.
    assert label([ped(22.0, 3.0, lateral_speed=-1.4)]).action == Action.EMERGENCY_BRAKE
    assert label([ped(22.0, 3.0, lateral_speed=1.4)]).action == Action.STOP
    assert label([ped(15.0, 0.0)]).action == Action.EMERGENCY_BRAKE


def test_dynamics_limits_and_lane_change():
    dyn = EgoDynamics(ROAD)
    ego = EgoState(x=0.0, y=0.0, speed=10.0)
    for _ in range(20):
        dyn.step(ego, Command(Action.CRUISE, 10.0), 0.05)
    assert ego.accel <= dyn.config.max_accel + 1e-9
    eb = EgoState(x=0.0, y=0.0, speed=10.0)
    dyn.step(eb, Command(Action.EMERGENCY_BRAKE, 0.0), 0.05)
    assert eb.accel < 0.0  # EMERGENCY_BRAKE brakes whatever the accel says
    ego = EgoState(x=0.0, y=0.0, speed=10.0, lane=1)
    dyn.step(ego, Command(Action.CHANGE_LANE_LEFT, 0.0), 0.05)
    assert ego.changing_lane and ego.lane == 2
    for _ in range(int(3.0 / 0.05) + 1):
        dyn.step(ego, Command(Action.CRUISE, 0.0), 0.05)
    assert not ego.changing_lane and math.isclose(ego.y, ROAD.lane_center(2))
    dyn.step(ego, Command(Action.CHANGE_LANE_LEFT, 0.0), 0.05)
    assert not ego.changing_lane  # no lane further left
    stop = EgoState(x=0.0, y=0.0, speed=0.1)
    for _ in range(10):
        dyn.step(stop, Command(Action.STOP, -3.0), 0.05)
    assert stop.speed == 0.0 and stop.accel == 0.0
