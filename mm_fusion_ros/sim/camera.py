"""Forward camera: a pinhole rendering of the road scene in numpy, fast enough for data generation.

Speed comes from precomputing, once per condition, the ground colour images (road, marking,
grass: fog, night headlights and glare already applied per pixel) and the sky; a frame then is
two masked copies for the lane markings and road, and objects drawn far-to-near as filled
rectangles (painter's algorithm) with colours shaded by their distance.
"""

from dataclasses import dataclass
import math
from typing import Protocol

import numpy as np

from mm_fusion_ros.sensors.extrinsics import Extrinsic
from mm_fusion_ros.sim.conditions import CAMERA_EFFECTS, CameraEffects, Condition
from mm_fusion_ros.sim.dynamics import EgoState
from mm_fusion_ros.sim.world import Actor, ActorKind, LightState, TrafficLight, World

_ROAD = (82, 82, 86)
_MARK = (235, 235, 228)
_GRASS = (72, 108, 52)
_LAMP_ON = {
    LightState.RED: (255, 35, 25),
    LightState.YELLOW: (255, 185, 10),
    LightState.GREEN: (40, 255, 100),
}
_LAMP_Z = {LightState.RED: 5.35, LightState.YELLOW: 4.6, LightState.GREEN: 3.85}  # [m]
_LAMP_OFF = (38, 38, 40)


class ModelView(Protocol):
    """What a model reads of a camera (FusionModelConfig and CacheConfig both say it)."""

    image_width: int
    image_height: int
    fovea_height: int


@dataclass(frozen=True)
class CameraConfig:
    width: int = 256  # [px] (512x256 for a model with fovea rows: FusionModelConfig.fovea_*)
    height: int = 128  # [px]
    hfov: float = 60.0  # [deg] horizontal field of view
    mount_x: float = 0.8  # [m] ahead of the ego centre
    mount_height: float = 1.4  # [m]
    max_depth: float = 200.0  # [m] objects beyond are not drawn
    noise_bank: int = 4  # precomputed noise / rain images per condition

    @classmethod
    def for_view(cls, view: ModelView) -> 'CameraConfig':
        """The camera a model with this view was trained on; twice its size with a fovea.

        Twice, so the fovea rows hold camera pixels one for one (`compose_frame`).
        """
        scale = 2 if view.fovea_height > 0 else 1
        return cls(width=scale * view.image_width, height=scale * view.image_height)

    @property
    def mount(self) -> Extrinsic:
        """The camera's body frame in base_link: `mount_x` ahead of the centre, level."""
        return Extrinsic(x=self.mount_x, z=self.mount_height)

    @property
    def fx(self) -> float:
        return 0.5 * self.width / math.tan(math.radians(0.5 * self.hfov))

    @property
    def fy(self) -> float:
        return self.fx

    @property
    def cx(self) -> float:
        return 0.5 * self.width

    @property
    def cy(self) -> float:
        return 0.5 * self.height

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name of the intrinsic matrix
        """3x3 intrinsic matrix (CameraInfo.k), no distortion."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], np.float64
        )


@dataclass
class _Background:
    sky: np.ndarray  # (hz, W, 3) uint8
    road: np.ndarray  # (Hg, W, 3) uint8
    mark: np.ndarray
    grass: np.ndarray
    noise: list[np.ndarray]  # int16 (H, W, 3)
    overlays: list[np.ndarray]  # uint8 (H, W, 3), combined with np.maximum (rain, glare)


class CameraModel:
    """Renders (H, W, 3) uint8 RGB frames of a `World` seen from the ego."""

    def __init__(self, config: CameraConfig | None = None) -> None:
        self.config = c = config or CameraConfig()
        self.horizon = int(math.ceil(c.cy))
        rows = np.arange(self.horizon, c.height, dtype=np.float64) + 0.5
        self.row_depth = c.fy * c.mount_height / np.maximum(rows - c.cy, 1e-3)  # (Hg,)
        cols = np.arange(c.width, dtype=np.float64) + 0.5
        self._col_y = -(cols - c.cx) / c.fx  # lateral [m] per metre of depth, (W,)
        # lateral offset of each ground pixel from the camera, (Hg, W)
        self.ground_y = (self.row_depth[:, None] * self._col_y[None, :]).astype(np.float32)
        # half width of a drawn marking: at least ~0.6 px so far markings stay visible
        self._mark_hw = np.maximum(0.08, 0.6 * self.row_depth / c.fx).astype(np.float32)[:, None]
        # depth range each ground row covers: its bottom edge (near) and top edge (far)
        edges = np.arange(self.horizon, c.height + 1, dtype=np.float64) - c.cy
        edge_depth = c.fy * c.mount_height / np.maximum(edges, 1e-3)
        self._row_far, self._row_near = edge_depth[:-1], edge_depth[1:]
        self._cache: dict[tuple[Condition, int], _Background] = {}

    @property
    def K(self) -> np.ndarray:  # noqa: N802
        return self.config.K

    # -- precomputation ---------------------------------------------------------------------
    def _illumination(
        self, fx: CameraEffects, depth: np.ndarray, lateral: np.ndarray
    ) -> np.ndarray:
        """Reflected-light scale: 1 by day; ambient plus the headlight cone at night."""
        if not fx.night:
            return np.ones(np.broadcast(depth, lateral).shape)
        cone = np.clip(1.5 - np.abs(lateral) / (1.6 + 0.22 * depth), 0.15, 1.0)
        return fx.ambient + (1.0 - fx.ambient) * np.exp(-depth / fx.headlight_range) * cone

    def _finish(self, fx: CameraEffects, rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Fog towards the fog colour by depth, then gain and veil; float -> uint8."""
        if math.isfinite(fx.fog_visibility):
            keep = np.exp(-depth / fx.fog_visibility)[..., None]
            rgb = rgb * keep + np.asarray(fx.fog_colour, np.float64) * (1.0 - keep)
        rgb = rgb * fx.gain + fx.veil
        return np.clip(rgb, 0, 255).astype(np.uint8)

    def _background(self, condition: Condition, seed: int) -> _Background:
        key = (condition, seed % self.config.noise_bank)
        if key in self._cache:
            return self._cache[key]
        c, fx = self.config, CAMERA_EFFECTS[condition]
        rng = np.random.default_rng([seed % self.config.noise_bank, 7])
        depth = np.broadcast_to(self.row_depth[:, None], self.ground_y.shape)
        light = self._illumination(fx, depth, self.ground_y)[..., None]
        texture = rng.normal(0.0, 4.0, self.ground_y.shape)[..., None]

        def ground(colour: tuple[int, int, int]) -> np.ndarray:
            return self._finish(fx, (np.asarray(colour, np.float64) + texture) * light, depth)

        t = np.linspace(0.0, 1.0, self.horizon)[:, None, None]
        sky = np.asarray(fx.sky_top, np.float64) * (1 - t) + np.asarray(fx.sky_horizon) * t
        sky = np.broadcast_to(sky, (self.horizon, c.width, 3))
        if math.isfinite(fx.fog_visibility) and fx.fog_visibility < 60.0:
            sky = np.broadcast_to(np.asarray(fx.fog_colour, np.float64), sky.shape)
        sky = np.clip(sky, 0, 255).astype(np.uint8)
        noise = [
            rng.normal(0.0, fx.noise_sigma, (c.height, c.width, 3)).astype(np.int16)
            for _ in range(c.noise_bank)
        ]
        overlays = [self._overlay(fx, rng) for _ in range(c.noise_bank)]
        bg = _Background(sky=sky, road=ground(_ROAD), mark=ground(_MARK), grass=ground(_GRASS),
                         noise=noise, overlays=[o for o in overlays if o is not None])
        self._cache[key] = bg
        return bg

    def _overlay(self, fx: CameraEffects, rng: np.random.Generator) -> np.ndarray | None:
        c = self.config
        if fx.sun is not None:
            v, u = np.mgrid[0:c.height, 0:c.width]
            su, sv = fx.sun[0] * c.width, fx.sun[1] * c.height
            r2 = ((u - su) ** 2 + (v - sv) ** 2) / (0.09 * c.width) ** 2
            streak = np.exp(-((v - sv) ** 2) / 6.0) * np.exp(-np.abs(u - su) / (0.35 * c.width))
            level = 255.0 * np.clip(np.exp(-r2) * 1.1 + 0.8 * streak, 0, 1)
            tint = np.array([1.0, 0.97, 0.85])
            return np.clip(level[..., None] * tint, 0, 255).astype(np.uint8)
        if fx.rain_streaks > 0:
            out = np.zeros((c.height, c.width, 3), np.uint8)
            n = fx.rain_streaks
            u0 = rng.uniform(0, c.width, n)
            v0 = rng.uniform(-10, c.height, n)
            length = rng.integers(5, 14, n)
            slope = rng.uniform(0.1, 0.35)
            for k in range(n):
                vv = (v0[k] + np.arange(length[k])).astype(int)
                uu = (u0[k] + slope * np.arange(length[k])).astype(int)
                ok = (vv >= 0) & (vv < c.height) & (uu >= 0) & (uu < c.width)
                out[vv[ok], uu[ok]] = int(rng.integers(150, 210))
            return out
        return None

    # -- shading of object colours ------------------------------------------------------------
    def _shade(
        self, fx: CameraEffects, colour: tuple[float, float, float], depth: float, lateral: float,
        emissive: bool = False,
    ) -> tuple[int, int, int]:
        if emissive:
            scale = 1.0
            vis = 2.5 * fx.fog_visibility
        else:
            scale = float(self._illumination(fx, np.float64(depth), np.float64(lateral)))
            vis = fx.fog_visibility
        keep = math.exp(-depth / vis) if math.isfinite(vis) else 1.0
        gain = 1.0 if emissive and fx.night else fx.gain
        out = []
        for ch, fog in zip(colour, fx.fog_colour, strict=True):
            val = (ch * scale * keep + fog * (1.0 - keep)) * gain + fx.veil
            out.append(0 if val < 0 else 255 if val > 255 else int(val))
        return out[0], out[1], out[2]

    # -- per frame ----------------------------------------------------------------------------
    def render(
        self, world: World, ego: EgoState, condition: Condition = Condition.CLEAR,
        rng: np.random.Generator | None = None, episode_seed: int = 0,
    ) -> np.ndarray:
        """Render the frame seen from `ego`; `rng` picks noise/rain variants per frame."""
        c, fx = self.config, CAMERA_EFFECTS[condition]
        bg = self._background(condition, episode_seed)
        img = np.empty((c.height, c.width, 3), np.uint8)
        hz = self.horizon
        img[:hz] = bg.sky
        cam_x = ego.x + c.mount_x
        ground = img[hz:]
        ground[...] = bg.grass
        y_world = self.ground_y + np.float32(ego.y)
        road = world.road
        np.copyto(ground, bg.road, where=(np.abs(y_world) < road.half_width)[..., None])
        mark = self._markings(world, y_world, cam_x)
        np.copyto(ground, bg.mark, where=mark[..., None])
        self._draw_objects(img, world, ego, fx, cam_x)
        pick = 0 if rng is None else int(rng.integers(len(bg.noise)))
        if bg.overlays:
            np.maximum(img, bg.overlays[pick % len(bg.overlays)], out=img)
        if fx.noise_sigma > 0:
            noisy = img.astype(np.int16)
            noisy += bg.noise[pick]
            np.clip(noisy, 0, 255, out=noisy)
            img = noisy.astype(np.uint8)
        return img

    def _markings(self, world: World, y_world: np.ndarray, cam_x: float) -> np.ndarray:
        road = world.road
        bounds = road.boundaries()
        dash = ((cam_x + self.row_depth) % 9.0 < 3.5)[:, None]
        mark = np.zeros(y_world.shape, bool)
        for i, b in enumerate(bounds):
            m = np.abs(y_world - np.float32(b)) < self._mark_hw
            if 0 < i < len(bounds) - 1:
                m &= dash
            mark |= m
        light = world.light
        if light is not None:
            rel = light.x_stop - cam_x
            if rel > 0.5:
                rows = (self._row_near <= rel + 0.5) & (self._row_far >= rel)
                mark |= rows[:, None] & (np.abs(y_world) < road.half_width)
        return mark

    def _draw_objects(
        self, img: np.ndarray, world: World, ego: EgoState, fx: CameraEffects, cam_x: float
    ) -> None:
        items: list[tuple[float, Actor | TrafficLight]] = []
        for a in world.actors:
            d = a.x - 0.5 * a.length - cam_x
            if 1.0 < d < self.config.max_depth:
                items.append((d, a))
        if world.light is not None:
            d = world.light.x_signal - cam_x
            if 1.0 < d < self.config.max_depth:
                items.append((d, world.light))
        items.sort(key=lambda item: -item[0])
        for d, obj in items:
            if isinstance(obj, TrafficLight):
                self._draw_light(img, world, obj, d, ego, fx)
            elif obj.kind == ActorKind.PEDESTRIAN:
                self._draw_pedestrian(img, obj, d, ego, fx)
            else:
                self._draw_vehicle(img, obj, d, ego, fx)

    def _rect(
        self, img: np.ndarray, d: float, y_left: float, y_right: float, z_bottom: float,
        z_top: float, colour: tuple[int, int, int],
    ) -> None:
        """Fill the image of an upright rectangle at depth d (lateral y relative to camera)."""
        c = self.config
        u0 = c.cx - c.fx * y_left / d
        u1 = c.cx - c.fx * y_right / d
        v0 = c.cy - c.fy * (z_top - c.mount_height) / d
        v1 = c.cy - c.fy * (z_bottom - c.mount_height) / d
        iu0, iu1 = int(round(u0)), int(round(u1))
        iv0, iv1 = int(round(v0)), int(round(v1))
        if iu1 <= iu0:
            iu1 = iu0 + 1
        if iv1 <= iv0:
            iv1 = iv0 + 1
        if iu1 <= 0 or iv1 <= 0 or iu0 >= c.width or iv0 >= c.height:
            return
        img[max(iv0, 0):iv1, max(iu0, 0):iu1] = colour

    def _draw_vehicle(
        self, img: np.ndarray, a: Actor, d: float, ego: EgoState, fx: CameraEffects
    ) -> None:
        y = a.y - ego.y
        hw, h = 0.5 * a.width, a.height
        shade = self._shade
        body = shade(fx, a.colour, d, y)
        dark = shade(fx, (a.colour[0] * 0.45, a.colour[1] * 0.45, a.colour[2] * 0.45), d, y)
        self._rect(img, d, y + hw * 0.92, y - hw * 0.92, 0.0, 0.35, shade(fx, (20, 20, 22), d, y))
        self._rect(img, d, y + hw, y - hw, 0.22, h, body)
        self._rect(img, d, y + hw, y - hw, 0.22, 0.5, dark)
        if a.kind == ActorKind.CAR:
            self._rect(img, d, y + hw * 0.8, y - hw * 0.8, 0.62 * h, 0.93 * h,
                       shade(fx, (45, 55, 68), d, y))
            z0, z1 = 0.75, 0.95
        else:
            self._rect(img, d, y + hw, y - hw, h - 0.12, h, dark)
            z0, z1 = 0.55, 0.8
        lit = a.braking and a.brake_lights_work
        if lit:
            lamp = shade(fx, (255, 40, 30), d, y, emissive=True)
        elif fx.night:
            lamp = shade(fx, (150, 20, 15), d, y, emissive=True)
        else:
            lamp = shade(fx, (120, 25, 22), d, y)
        lw = 0.28
        if (lit or fx.night) and (fx.night or math.isfinite(fx.fog_visibility)):
            glow = shade(fx, (180, 20, 15) if lit else (90, 10, 8), d, y, emissive=True)
            for yl in (y + hw - 0.02, y - hw + lw + 0.02):
                self._rect(img, d, yl + 0.12, yl - lw - 0.12, z0 - 0.12, z1 + 0.12, glow)
        self._rect(img, d, y + hw - 0.02, y + hw - 0.02 - lw, z0, z1, lamp)
        self._rect(img, d, y - hw + 0.02 + lw, y - hw + 0.02, z0, z1, lamp)

    def _draw_pedestrian(
        self, img: np.ndarray, a: Actor, d: float, ego: EgoState, fx: CameraEffects
    ) -> None:
        y, h = a.y - ego.y, a.height
        legs = self._shade(fx, (45, 45, 70), d, y)
        self._rect(img, d, y + 0.17, y - 0.17, 0.0, 0.47 * h, legs)
        self._rect(img, d, y + 0.25, y - 0.25, 0.45 * h, 0.83 * h, self._shade(fx, a.colour, d, y))
        self._rect(img, d, y + 0.11, y - 0.11, 0.84 * h, h, self._shade(fx, (215, 170, 140), d, y))

    def _draw_light(
        self, img: np.ndarray, world: World, light: TrafficLight, d: float, ego: EgoState,
        fx: CameraEffects,
    ) -> None:
        road = world.road
        half = road.half_width + 1.0
        grey = self._shade(fx, (75, 75, 80), d, 0.0)
        for side in (half, -half):
            self._rect(img, d, side - ego.y + 0.15, side - ego.y - 0.15, 0.0, 6.1, grey)
        self._rect(img, d, half - ego.y, -half - ego.y, 5.85, 6.15, grey)
        housing = self._shade(fx, (25, 25, 28), d, 0.0)
        for lane in range(road.num_lanes):
            y = road.lane_center(lane) - ego.y
            self._rect(img, d, y + 0.5, y - 0.5, 3.35, 5.85, housing)
            for state, z in _LAMP_Z.items():
                if state == light.state:
                    on = _LAMP_ON[state]
                    if fx.night or math.isfinite(fx.fog_visibility):
                        glow = self._shade(fx, (on[0] * 0.6, on[1] * 0.6, on[2] * 0.6), d, y,
                                           emissive=True)
                        self._rect(img, d, y + 0.55, y - 0.55, z - 0.5, z + 0.5, glow)
                    colour = self._shade(fx, on, d, y, emissive=True)
                else:
                    colour = self._shade(fx, _LAMP_OFF, d, y)
                self._rect(img, d, y + 0.33, y - 0.33, z - 0.33, z + 0.33, colour)
