"""Environmental conditions and what each one does to the camera and to the radar.

Camera conditions (rain, fog, night, glare) leave the radar clean; radar conditions (clutter,
ghosts, dropout) leave the image clean, so each degraded subset has one healthy modality.
"""

from dataclasses import dataclass
from enum import Enum
import math


class Condition(str, Enum):
    CLEAR = 'clear'
    RAIN = 'rain'
    FOG = 'fog'
    NIGHT = 'night'
    GLARE = 'glare'
    RADAR_CLUTTER = 'radar_clutter'
    RADAR_GHOSTS = 'radar_ghosts'
    RADAR_DROPOUT = 'radar_dropout'


CONDITIONS: tuple[Condition, ...] = tuple(Condition)
CAMERA_DEGRADED: frozenset[Condition] = frozenset(
    {Condition.RAIN, Condition.FOG, Condition.NIGHT, Condition.GLARE}
)
RADAR_DEGRADED: frozenset[Condition] = frozenset(
    {Condition.RADAR_CLUTTER, Condition.RADAR_GHOSTS, Condition.RADAR_DROPOUT}
)


@dataclass(frozen=True)
class CameraEffects:
    """Image formation knobs; colours are RGB 0..255."""

    gain: float = 1.0  # multiplies every reflected colour
    veil: float = 0.0  # added grey level (glare washes contrast out)
    fog_visibility: float = math.inf  # [m] e-folding distance of the contrast
    fog_colour: tuple[int, int, int] = (200, 202, 206)
    night: bool = False  # ambient light only, plus the ego's headlight cone
    ambient: float = 1.0  # reflected-light scale outside the headlights at night
    headlight_range: float = 35.0  # [m] e-folding distance of the headlight illumination
    noise_sigma: float = 2.0  # grey levels of sensor noise
    rain_streaks: int = 0  # streaks per frame
    sun: tuple[float, float] | None = None  # glare source (u, v) as a fraction of W, H
    sky_top: tuple[int, int, int] = (90, 140, 215)
    sky_horizon: tuple[int, int, int] = (175, 200, 230)


@dataclass(frozen=True)
class RadarEffects:
    frame_drop_prob: float = 0.01  # whole frame missing
    target_miss_prob: float = 0.0  # extra per-target miss on top of the detection model
    clutter_points: tuple[int, int] = (0, 3)  # random static/moving clutter per frame
    guardrail_points: tuple[int, int] = (4, 8)
    ghost_prob: float = 0.05  # per real target and frame
    rcs_attenuation: float = 0.0  # [dB] (rain)


CAMERA_EFFECTS: dict[Condition, CameraEffects] = {
    Condition.CLEAR: CameraEffects(),
    Condition.RAIN: CameraEffects(
        gain=0.72, veil=28.0, fog_visibility=120.0, fog_colour=(120, 125, 130),
        noise_sigma=6.0, rain_streaks=70, sky_top=(105, 110, 118), sky_horizon=(140, 145, 150),
    ),
    Condition.FOG: CameraEffects(
        gain=0.9, fog_visibility=28.0, fog_colour=(190, 192, 196), noise_sigma=3.0,
        sky_top=(185, 187, 191), sky_horizon=(192, 194, 198),
    ),
    Condition.NIGHT: CameraEffects(
        gain=1.0, night=True, ambient=0.07, headlight_range=30.0, noise_sigma=7.0,
        sky_top=(4, 6, 14), sky_horizon=(14, 16, 28),
    ),
    Condition.GLARE: CameraEffects(
        gain=0.55, veil=95.0, noise_sigma=3.0, sun=(0.5, 0.3),
        sky_top=(200, 210, 230), sky_horizon=(240, 240, 235),
    ),
    Condition.RADAR_CLUTTER: CameraEffects(),
    Condition.RADAR_GHOSTS: CameraEffects(),
    Condition.RADAR_DROPOUT: CameraEffects(),
}

RADAR_EFFECTS: dict[Condition, RadarEffects] = {
    Condition.CLEAR: RadarEffects(),
    Condition.RAIN: RadarEffects(rcs_attenuation=2.0, clutter_points=(1, 6)),
    Condition.FOG: RadarEffects(),
    Condition.NIGHT: RadarEffects(),
    Condition.GLARE: RadarEffects(),
    Condition.RADAR_CLUTTER: RadarEffects(clutter_points=(25, 45), guardrail_points=(14, 24)),
    Condition.RADAR_GHOSTS: RadarEffects(ghost_prob=0.7, clutter_points=(2, 6)),
    Condition.RADAR_DROPOUT: RadarEffects(frame_drop_prob=0.3, target_miss_prob=0.4),
}
