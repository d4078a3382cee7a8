"""Radar model: field of view, range, Doppler sign, rcs by kind, dropouts, velocity columns."""

import math

import numpy as np

from mm_fusion_ros.sim.conditions import Condition
from mm_fusion_ros.sim.dynamics import EgoState
from mm_fusion_ros.sim.radar import RadarConfig, RadarModel
from mm_fusion_ros.sim.world import Actor, ActorKind, RoadConfig, World


def _actor(kind, x, y=0.0, speed=0.0):
    dims = {ActorKind.CAR: (4.5, 1.9, 1.5), ActorKind.TRUCK: (9.0, 2.5, 3.5),
            ActorKind.PEDESTRIAN: (0.5, 0.5, 1.75)}[kind]
    return Actor(kind, x=x, y=y, speed=speed, length=dims[0], width=dims[1], height=dims[2])


def _frames(world, ego, n=50, cond=Condition.CLEAR, model=None, seed=0):
    model = model or RadarModel()
    rng = np.random.default_rng(seed)
    return [model.detect(world, ego, rng, cond) for _ in range(n)]


def test_points_within_fov_and_range_and_float32():
    road = RoadConfig()
    actors = [_actor(ActorKind.CAR, x, y, 5.0) for x in (5, 40, 90, 140, 170, 300)
              for y in (-3.5, 0.0, 3.5)] + [_actor(ActorKind.CAR, 3.0, 7.0)]
    cfg = RadarConfig()
    for cond in (Condition.CLEAR, Condition.RADAR_CLUTTER, Condition.RADAR_GHOSTS):
        for pts in _frames(World(road, actors), EgoState(0, 0, 12.0), 20, cond):
            if pts is None:
                continue
            assert pts.dtype == np.float32 and pts.ndim == 2 and pts.shape[1] == 5
            r = np.linalg.norm(pts[:, :3], axis=1)
            az = np.degrees(np.arctan2(pts[:, 1], pts[:, 0]))
            assert (r <= cfg.max_range + 1e-3).all() and (r >= cfg.min_range).all()
            assert (np.abs(az) <= cfg.fov_azimuth + 1e-3).all()


def test_doppler_sign_approaching_negative_receding_positive():
    ego = EgoState(0.0, 0.0, 15.0)
    near = _frames(World(RoadConfig(), [_actor(ActorKind.CAR, 40.0, 0.0, 5.0)]), ego, 30)
    away = _frames(World(RoadConfig(), [_actor(ActorKind.CAR, 40.0, 0.0, 25.0)]), ego, 30)
    pts_near = np.concatenate([p for p in near if p is not None])
    pts_away = np.concatenate([p for p in away if p is not None])
    on_target = lambda p: p[(np.abs(p[:, 0] - 35.4) < 2.0) & (np.abs(p[:, 1]) < 1.5)]  # noqa: E731
    assert np.median(on_target(pts_near)[:, 3]) < -9.0
    assert np.median(on_target(pts_away)[:, 3]) > 9.0


def test_pedestrians_are_weak_and_often_missed():
    ego = EgoState(0.0, 0.0, 0.0)
    ped = World(RoadConfig(), [_actor(ActorKind.PEDESTRIAN, 30.0, 0.0)])
    car = World(RoadConfig(), [_actor(ActorKind.CAR, 30.0, 0.0)])
    sel = lambda p: p[(np.abs(p[:, 0] - 27.5) < 2.0) & (np.abs(p[:, 1]) < 1.5)]  # noqa: E731
    ped_pts = [sel(p) for p in _frames(ped, ego, 200) if p is not None]
    car_pts = [sel(p) for p in _frames(car, ego, 200) if p is not None]
    assert np.mean([len(p) > 0 for p in ped_pts]) < 0.6
    assert np.mean([len(p) > 0 for p in car_pts]) > 0.9
    assert np.median(np.concatenate(ped_pts)[:, 4]) < 0.0 < np.median(
        np.concatenate(car_pts)[:, 4]) - 5.0


def test_dropouts_and_velocity_columns():
    world = World(RoadConfig(), [_actor(ActorKind.CAR, 30.0, 0.0, 10.0)])
    ego = EgoState(0.0, 0.0, 10.0)
    frames = _frames(world, ego, 200, Condition.RADAR_DROPOUT)
    dropped = sum(p is None for p in frames)
    assert 30 < dropped < 100
    model = RadarModel(RadarConfig(include_velocity=True))
    pts = np.concatenate([p for p in _frames(world, ego, 20, model=model) if p is not None])
    assert pts.shape[1] == 7
    # the lead moves with the ego: ground velocity of its returns ~ 10 m/s forward;
    # the guardrail is static: ~ 0 over ground
    lead = pts[(np.abs(pts[:, 1]) < 1.5) & (pts[:, 0] > 20)]
    rail = pts[np.abs(np.abs(pts[:, 1]) - 6.45) < 0.5]
    assert abs(np.median(lead[:, 5]) - 10.0) < 0.5
    assert np.median(np.abs(rail[:, 5:7])) < 0.3


def test_time_offset_extrapolates_positions():
    world = World(RoadConfig(), [_actor(ActorKind.TRUCK, 50.0, 0.0, 0.0)])
    ego = EgoState(0.0, 0.0, 20.0)
    model = RadarModel()
    a = model.detect(world, ego, np.random.default_rng(0), time_offset=0.0)
    b = model.detect(world, ego, np.random.default_rng(0), time_offset=0.5)
    sel = lambda p: p[np.abs(p[:, 1]) < 1.5][:, 0].min()  # noqa: E731
    assert math.isclose(sel(a) - sel(b), 10.0, abs_tol=1.0)
