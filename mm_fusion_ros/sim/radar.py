"""Automotive radar model: sparse detections with noise, Doppler, rcs, clutter and ghosts.

Output rows are the canonical features (x, y, z, radial_velocity, rcs) in the radar frame
(x forward, y left, z up), optionally followed by (vx, vy): the ego-motion-compensated radial
velocity as a vector over ground, the way radars that report it do. Detection is per target
with a kind- and range-dependent probability (pedestrians are weak and often missed), then a
few points per target on its rear face and visible side. Noise is added in range, azimuth
and elevation, and the field of view and range limits are applied after the noise, as a real
sensor reports only what falls inside them. The light state is not observable here: a
gantry returns static points like any metal structure.
"""

from dataclasses import dataclass
import math

import numpy as np

from mm_fusion_ros.sensors.extrinsics import Extrinsic
from mm_fusion_ros.sim.conditions import RADAR_EFFECTS, Condition
from mm_fusion_ros.sim.dynamics import EgoState
from mm_fusion_ros.sim.world import ActorKind, World


@dataclass(frozen=True)
class RadarConfig:
    fov_azimuth: float = 60.0  # [deg] half angle
    fov_elevation: float = 20.0  # [deg] half angle
    max_range: float = 150.0  # [m]
    min_range: float = 0.5  # [m]
    mount_x: float = 2.3  # [m] ahead of the ego centre (front bumper)
    mount_z: float = 0.5  # [m]
    sigma_range: float = 0.12  # [m]
    sigma_azimuth: float = 0.004  # [rad]
    sigma_elevation: float = 0.015  # [rad]
    sigma_velocity: float = 0.1  # [m/s]
    sigma_rcs: float = 2.5  # [dB]
    rcs_car: float = 10.0  # [dBsm]
    rcs_truck: float = 20.0
    rcs_pedestrian: float = -5.0
    rcs_guardrail: float = 0.0
    rcs_gantry: float = 12.0
    include_velocity: bool = False  # append ground-compensated (vx, vy) columns

    @property
    def mount(self) -> Extrinsic:
        """The radar frame in base_link: on the front bumper, level, facing forward."""
        return Extrinsic(x=self.mount_x, z=self.mount_z)


_RCS_FIELD = {ActorKind.CAR: 'rcs_car', ActorKind.TRUCK: 'rcs_truck',
              ActorKind.PEDESTRIAN: 'rcs_pedestrian'}


def detection_probability(kind: ActorKind, rng_m: np.ndarray) -> np.ndarray:
    """Per-target detection probability by kind and range [m]."""
    if kind == ActorKind.PEDESTRIAN:
        return np.clip(0.75 - rng_m / 60.0, 0.1, 0.75)
    base = 0.99 if kind == ActorKind.TRUCK else 0.97
    return np.clip(base - 0.1 * rng_m / 150.0, 0.5, base)


class RadarModel:
    def __init__(self, config: RadarConfig | None = None) -> None:
        self.config = config or RadarConfig()

    @property
    def num_columns(self) -> int:
        return 7 if self.config.include_velocity else 5

    def detect(
        self, world: World, ego: EgoState, rng: np.random.Generator,
        condition: Condition = Condition.CLEAR, time_offset: float = 0.0, ego_vy: float = 0.0,
    ) -> np.ndarray | None:
        """One radar frame, (N, 5|7) float32, or None when the frame is dropped.

        `time_offset` [s] is the radar stamp minus the world's time: positions are extrapolated
        by it, so a radar stamped a few ms off the camera sees the world at its own stamp.
        """
        c, fx = self.config, RADAR_EFFECTS[condition]
        if rng.random() < fx.frame_drop_prob:
            return None
        sx, sz = ego.x + c.mount_x, c.mount_z
        road = world.road
        pos: list[np.ndarray] = []  # true (x, y, z) relative to the radar, each (n, 3)
        vel: list[np.ndarray] = []  # velocity over ground, (n, 2)
        rcs: list[np.ndarray] = []

        # -- targets ---------------------------------------------------------------------
        actors = world.actors
        if actors:
            kinds = [a.kind for a in actors]
            dx = np.array([a.x - 0.5 * a.length - sx for a in actors])
            dy = np.array([a.y - ego.y for a in actors])
            vx = np.array([a.speed for a in actors])
            vy = np.array([a.lateral_speed for a in actors])
            dx += (vx - ego.speed) * time_offset
            dy += (vy - ego_vy) * time_offset
            r = np.hypot(dx, dy)
            p_det = np.array([float(detection_probability(k, r[i])) for i, k in enumerate(kinds)])
            p_det *= 1.0 - fx.target_miss_prob
            hit = (dx > 0.0) & (r < c.max_range + 5.0) & (rng.random(len(actors)) < p_det)
            for i in np.flatnonzero(hit):
                a = actors[i]
                if a.kind == ActorKind.PEDESTRIAN:
                    n = 1
                else:
                    n = max(1, min(4, int(4 - r[i] / 50.0) + int(rng.integers(0, 2))))
                    n += 2 if a.kind == ActorKind.TRUCK else 0
                u = rng.random((n, 3))
                hw = 0.5 * a.width
                px = dx[i] + 0.3 * u[:, 0]
                py = dy[i] + (2.0 * u[:, 1] - 1.0) * hw
                if a.kind == ActorKind.PEDESTRIAN:
                    pz = 0.8 + 0.6 * u[:, 2]
                else:
                    pz = 0.3 + u[:, 2] * (min(a.height, 1.3) - 0.3)
                    if abs(dy[i]) > hw + 0.3:  # the near side is visible too
                        side = rng.random(n) < 0.4
                        px = np.where(side, dx[i] + u[:, 0] * a.length, px)
                        py = np.where(side, dy[i] - math.copysign(hw, dy[i]), py)
                p = np.stack([px, py, pz - sz], axis=1)
                v = np.broadcast_to(np.array([[vx[i], vy[i]]]), (n, 2))
                base = getattr(c, _RCS_FIELD[a.kind]) - fx.rcs_attenuation
                q = base + c.sigma_rcs * rng.standard_normal(n)
                pos.append(p)
                vel.append(v)
                rcs.append(q)
                if rng.random() < fx.ghost_prob:
                    pos.append(self._ghost(p[:1], road.half_width + road.guardrail_offset,
                                           ego.y, rng))
                    vel.append(v[:1])
                    rcs.append(q[:1] - 9.0)

        # -- static structure and clutter -------------------------------------------------
        lo, hi = fx.guardrail_points
        n = int(rng.integers(lo, hi + 1))
        if n:
            rail = road.half_width + road.guardrail_offset
            side = np.where(rng.random(n) < 0.5, rail, -rail)
            gx = rng.uniform(3.0, 100.0, n)
            pos.append(np.stack([gx, side - ego.y, rng.uniform(-0.2, 0.3, n)], axis=1))
            vel.append(np.zeros((n, 2)))
            rcs.append(c.rcs_guardrail + c.sigma_rcs * rng.standard_normal(n))
        light = world.light
        if light is not None and 0.0 < light.x_signal - sx < c.max_range:
            n = 3
            gy = rng.uniform(-road.half_width, road.half_width, n) - ego.y
            gz = rng.uniform(5.5, 6.1, n) - sz
            pos.append(np.stack([np.full(n, light.x_signal - sx), gy, gz], axis=1))
            vel.append(np.zeros((n, 2)))
            rcs.append(c.rcs_gantry + c.sigma_rcs * rng.standard_normal(n))
        lo, hi = fx.clutter_points
        n = int(rng.integers(lo, hi + 1))
        if n:
            cr = rng.uniform(4.0, 0.8 * c.max_range, n)
            ca = np.radians(rng.uniform(-c.fov_azimuth, c.fov_azimuth, n))
            pos.append(np.stack([cr * np.cos(ca), cr * np.sin(ca), rng.uniform(-0.4, 1.5, n)],
                                axis=1))
            moving = rng.random(n) < 0.3
            cv = np.where(moving[:, None], rng.normal(0.0, 3.0, (n, 2)), 0.0)
            vel.append(cv)
            rcs.append(rng.uniform(-15.0, 2.0, n))

        if not pos:
            return np.zeros((0, self.num_columns), np.float32)
        return self._measure(np.concatenate(pos), np.concatenate(vel), np.concatenate(rcs),
                             ego, ego_vy, rng)

    @staticmethod
    def _ghost(p: np.ndarray, rail: float, ego_y: float, rng: np.random.Generator) -> np.ndarray:
        """Multipath: a double bounce (twice the range) or a mirror in the guardrail."""
        g = p.copy()
        if rng.random() < 0.5:
            g[:, :2] *= rng.uniform(1.6, 2.1)
        else:
            wall = math.copysign(rail, g[0, 1] + ego_y) - ego_y
            g[:, 1] = 2.0 * wall - g[:, 1]
        return g

    def _measure(
        self, p: np.ndarray, v_ground: np.ndarray, rcs: np.ndarray, ego: EgoState,
        ego_vy: float, rng: np.random.Generator,
    ) -> np.ndarray:
        """Noise in polar coordinates, Doppler, field-of-view and range gating."""
        c = self.config
        n = len(p)
        rho = np.linalg.norm(p, axis=1)
        rho = np.maximum(rho, 1e-6)
        los = p / rho[:, None]
        rel_vx = v_ground[:, 0] - ego.speed
        rel_vy = v_ground[:, 1] - ego_vy
        vr = rel_vx * los[:, 0] + rel_vy * los[:, 1]
        noise = rng.standard_normal((n, 4))
        r_m = rho + c.sigma_range * noise[:, 0]
        az = np.arctan2(p[:, 1], p[:, 0]) + c.sigma_azimuth * noise[:, 1]
        el = np.arcsin(np.clip(p[:, 2] / rho, -1.0, 1.0)) + c.sigma_elevation * noise[:, 2]
        vr = vr + c.sigma_velocity * noise[:, 3]
        keep = (
            (r_m >= c.min_range) & (r_m <= c.max_range)
            & (np.abs(az) <= math.radians(c.fov_azimuth))
            & (np.abs(el) <= math.radians(c.fov_elevation))
        )
        r_m, az, el, vr, rcs = r_m[keep], az[keep], el[keep], vr[keep], rcs[keep]
        order = rng.permutation(len(r_m))
        r_m, az, el, vr, rcs = r_m[order], az[order], el[order], vr[order], rcs[order]
        cos_el = np.cos(el)
        ux, uy = cos_el * np.cos(az), cos_el * np.sin(az)
        cols = [r_m * ux, r_m * uy, r_m * np.sin(el), vr, rcs]
        if c.include_velocity:
            v_comp = vr + ego.speed * ux + ego_vy * uy  # radial velocity over ground
            cols += [v_comp * ux, v_comp * uy]
        return np.stack(cols, axis=1).astype(np.float32)
