"""Camera model: shapes, intrinsics, fog contrast falloff, light colours, brake lights."""

import numpy as np

from mm_fusion_ros.sim.camera import CameraConfig, CameraModel
from mm_fusion_ros.sim.conditions import Condition
from mm_fusion_ros.sim.dynamics import EgoState
from mm_fusion_ros.sim.world import Actor, ActorKind, LightState, RoadConfig, TrafficLight, World


def _car(x, y=0.0, colour=(30, 60, 150)):
    return Actor(ActorKind.CAR, x=x, y=y, speed=0.0, length=4.5, width=1.9, height=1.5,
                 colour=colour)


def _box(cam, ego, a):
    """Pixel box (v0, v1, u0, u1) of an actor's rear face."""
    c = cam.config
    d = a.x - 0.5 * a.length - (ego.x + c.mount_x)
    u0 = int(round(c.cx - c.fx * (a.y - ego.y + 0.5 * a.width) / d))
    u1 = int(round(c.cx - c.fx * (a.y - ego.y - 0.5 * a.width) / d))
    v0 = int(round(c.cy - c.fy * (a.height - c.mount_height) / d))
    v1 = int(round(c.cy + c.fy * c.mount_height / d))
    return v0, v1, u0, u1


def test_shapes_dtype_and_intrinsics():
    cam = CameraModel()
    img = cam.render(World(RoadConfig(), []), EgoState(0.0, 0.0, 10.0), Condition.CLEAR)
    assert img.shape == (128, 256, 3) and img.dtype == np.uint8
    k = cam.K
    assert k.shape == (3, 3) and k[0, 2] == 128 and k[1, 2] == 64 and k[0, 0] == k[1, 1]
    small = CameraModel(CameraConfig(width=160, height=80))
    assert small.render(World(RoadConfig(), []), EgoState(0, 0, 0)).shape == (80, 160, 3)


def test_every_condition_renders_and_differs_from_clear():
    cam = CameraModel()
    world = World(RoadConfig(), [_car(40.0)])
    ego = EgoState(0.0, 0.0, 10.0)
    clear = cam.render(world, ego, Condition.CLEAR).astype(float)
    for cond in (Condition.RAIN, Condition.FOG, Condition.NIGHT, Condition.GLARE):
        img = cam.render(world, ego, cond, np.random.default_rng(0))
        assert np.abs(img.astype(float) - clear).mean() > 10.0, cond


def test_fog_reduces_contrast_at_range():
    cam = CameraModel()
    ego = EgoState(0.0, 0.0, 10.0)

    def contrast(cond, x):
        car = _car(x, colour=(20, 20, 20))
        img = cam.render(World(RoadConfig(), [car]), ego, cond).astype(float)
        v0, v1, u0, u1 = _box(cam, ego, car)
        inside = img[v0 + 1:v1 - 1, u0 + 1:u1 - 1].mean()
        sky = img[2:6, u0:u1].mean()
        return abs(sky - inside)

    assert contrast(Condition.FOG, 15.0) > 2.0 * contrast(Condition.FOG, 80.0)
    assert contrast(Condition.CLEAR, 80.0) > 2.0 * contrast(Condition.FOG, 80.0)


def test_light_state_rendered_in_its_colour():
    cam = CameraModel()
    ego = EgoState(0.0, 0.0, 10.0)
    expected = {LightState.RED: 0, LightState.YELLOW: None, LightState.GREEN: 1}
    for state, channel in expected.items():
        light = TrafficLight(x_stop=20.0, initial=state, signal_offset=1.0)
        img = cam.render(World(RoadConfig(), [], light), ego, Condition.CLEAR).astype(int)
        top = img[:40]
        r, g, b = top[..., 0], top[..., 1], top[..., 2]
        if channel == 0:
            assert ((r > 220) & (g < 80) & (b < 80)).sum() > 20
            assert ((g > 220) & (r < 100)).sum() == 0
        elif channel == 1:
            assert ((g > 220) & (r < 100) & (b < 150)).sum() > 20
            assert ((r > 220) & (g < 80)).sum() == 0
        else:
            assert ((r > 220) & (g > 150) & (b < 60)).sum() > 20


def test_brake_lights_only_when_braking_and_working():
    cam = CameraModel()
    ego = EgoState(0.0, 0.0, 10.0)

    def red_pixels(accel, works):
        car = _car(20.0, colour=(30, 60, 150))
        car.speed, car.accel, car.brake_lights_work = 10.0, accel, works
        img = cam.render(World(RoadConfig(), [car]), ego, Condition.CLEAR).astype(int)
        return int(((img[..., 0] > 230) & (img[..., 1] < 70)).sum())

    assert red_pixels(-5.0, True) > 10
    assert red_pixels(0.0, True) == 0
    assert red_pixels(-5.0, False) == 0
