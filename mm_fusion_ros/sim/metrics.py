"""Per-episode driving metrics: collision, min TTC, red-light violation, progress, jerk.

Kept apart from the simulator so a recorded trajectory (from a bag, or built by hand in a test)
is scored by exactly the same code as a live episode.
"""

from dataclasses import dataclass
import math

import numpy as np

from mm_fusion_ros.sim.world import Actor, LightState


@dataclass(frozen=True)
class EpisodeMetrics:
    collision: bool
    min_ttc: float  # [s] over the episode, inf when nothing was ever in path
    red_light_violation: bool  # the ego front crossed a stop line on red
    progress: float  # [m] along the road
    rms_jerk: float  # [m/s^3] while moving
    duration: float  # [s]
    frames: int


def boxes_overlap(
    ax: float, ay: float, alength: float, awidth: float, b: Actor
) -> bool:
    """Axis-aligned footprint overlap between a box at (ax, ay) and an actor."""
    return (abs(ax - b.x) < 0.5 * (alength + b.length)
            and abs(ay - b.y) < 0.5 * (awidth + b.width))


def crossed_red(prev_front: float, front: float, x_stop: float, state: LightState) -> bool:
    """True when the front moved over the stop line during a red phase."""
    return state == LightState.RED and prev_front < x_stop <= front


def rms_jerk(accel: np.ndarray, dt: float, moving: np.ndarray | None = None) -> float:
    """RMS of d(accel)/dt; `moving` masks the steps (pairs) to count (e.g. speed > 0)."""
    accel = np.asarray(accel, np.float64)
    if accel.size < 2:
        return 0.0
    jerk = np.diff(accel) / dt
    if moving is not None:
        m = np.asarray(moving, bool)
        jerk = jerk[m[1:] & m[:-1]]
    return float(np.sqrt(np.mean(jerk * jerk))) if jerk.size else 0.0


class MetricsRecorder:
    """Accumulates one episode, one `update` per simulation step."""

    def __init__(self, dt: float, x0: float) -> None:
        self.dt = dt
        self.x0 = x0
        self._x = x0
        self._accel: list[float] = []
        self._moving: list[bool] = []
        self._min_ttc = math.inf
        self._collision = False
        self._red = False

    def update(
        self, x: float, speed: float, accel: float, ttc: float, collision: bool = False,
        red_light_violation: bool = False,
    ) -> None:
        self._x = x
        self._accel.append(accel)
        self._moving.append(speed > 0.05)
        self._min_ttc = min(self._min_ttc, ttc)
        self._collision |= collision
        self._red |= red_light_violation

    def result(self) -> EpisodeMetrics:
        frames = len(self._accel)
        return EpisodeMetrics(
            collision=self._collision,
            min_ttc=self._min_ttc,
            red_light_violation=self._red,
            progress=self._x - self.x0,
            rms_jerk=rms_jerk(np.array(self._accel), self.dt, np.array(self._moving)),
            duration=max(frames - 1, 0) * self.dt,
            frames=frames,
        )
