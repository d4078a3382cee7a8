"""The recorded ego's odometry as arrays: continuity checks, speed, acceleration, lateral offset.

Pure numpy. A step between two readings is a break when the stamps are further apart than
`gap_periods` nominal periods (the median step), or when the position moved inconsistently
with the speed, or the speed changed faster than any car accelerates (`jump_*`): a relocalised
pose, a reset odometry or a merged log. Nothing is interpolated across a break.
"""

from dataclasses import dataclass
import math

import numpy as np

from mm_fusion_ros.labels.config import LabelConfig

NS = 1_000_000_000
GAP, JUMP = 1, 2  # break codes of a step


@dataclass(frozen=True)
class OdometrySeries:
    """Readings in stamp order: stamp [ns] and, in the odometry frame, x, y [m], speed [m/s]."""

    stamp_ns: np.ndarray  # (N,) int64, strictly increasing
    x: np.ndarray  # (N,) float64
    y: np.ndarray  # (N,) float64
    speed: np.ndarray  # (N,) float64, forward (twist.linear.x)
    dropped: int = 0  # readings refused: non-finite values or a repeated stamp

    @classmethod
    def from_arrays(cls, stamp_ns, x, y, speed) -> 'OdometrySeries':
        """Sorted by stamp; readings with a non-finite value or a repeated stamp dropped."""
        t = np.asarray(stamp_ns, np.int64).ravel()
        cols = [np.asarray(c, np.float64).ravel() for c in (x, y, speed)]
        if any(len(c) != len(t) for c in cols):
            raise ValueError('odometry arrays differ in length')
        ok = np.isfinite(cols[0]) & np.isfinite(cols[1]) & np.isfinite(cols[2])
        order = np.argsort(t[ok], kind='stable')
        t = t[ok][order]
        cols = [c[ok][order] for c in cols]
        first = np.ones(len(t), bool)
        first[1:] = np.diff(t) > 0
        dropped = int(len(ok) - len(t) + np.count_nonzero(~first))
        return cls(t[first], *(c[first] for c in cols), dropped=dropped)

    def __len__(self) -> int:
        return len(self.stamp_ns)

    @property
    def nominal_period_ns(self) -> int:
        if len(self) < 2:
            return 0
        return int(np.median(np.diff(self.stamp_ns)))


def step_breaks(odo: OdometrySeries, c: LabelConfig) -> np.ndarray:
    """(N-1,) int8 per step: 0 continuous, GAP or JUMP."""
    n = len(odo)
    out = np.zeros(max(n - 1, 0), np.int8)
    if n < 2:
        return out
    dt_ns = np.diff(odo.stamp_ns)
    dt = dt_ns / NS
    moved = np.hypot(np.diff(odo.x), np.diff(odo.y))
    expected = 0.5 * np.abs(odo.speed[1:] + odo.speed[:-1]) * dt
    jump = np.abs(moved - expected) > c.jump_distance + c.jump_ratio * expected
    jump |= np.abs(np.diff(odo.speed)) > c.jump_accel * dt
    out[jump] = JUMP
    out[dt_ns > c.gap_periods * odo.nominal_period_ns] = GAP
    return out


def speed_at(odo: OdometrySeries, stamp_ns: np.ndarray) -> np.ndarray:
    """Speed linearly interpolated at the stamps (clamped at the ends)."""
    return np.interp(np.asarray(stamp_ns, np.float64), odo.stamp_ns.astype(np.float64),
                     odo.speed)


def commanded_accel(
    odo: OdometrySeries, breaks: np.ndarray, stamp_ns: np.ndarray, c: LabelConfig,
) -> np.ndarray:
    """[m/s^2] the acceleration the ego was asked for at each stamp, as its motion shows it.

    A car reaches a new command under a jerk limit: after a change of command its
    acceleration ramps (changes faster than `ramp_jerk`) until it gets there. So a step inside
    such a ramp stands for the value the ramp ends at (at most `ramp_window` ahead, and before
    the ego comes to rest: stopping ends any braking at zero); any other step for its own
    realised acceleration. The stamp takes the value of the step it starts; whether that step
    is on a ramp needs the step before it (the frame's past `odometry_window`).
    """
    t = np.asarray(stamp_ns, np.int64)
    if len(odo) < 2:
        return np.full(len(t), np.nan)
    dt = np.diff(odo.stamp_ns) / NS
    step = np.diff(odo.speed) / dt
    command = step.copy()
    if len(step) > 1:
        mid = 0.5 * (odo.stamp_ns[1:] + odo.stamp_ns[:-1]) / NS
        jerk = np.diff(step) / np.diff(mid)
        steep = np.where(np.abs(jerk) >= c.ramp_jerk, np.sign(jerk), 0).astype(np.int8)
        steep[odo.speed[2:] <= c.standstill_speed] = 0  # coming to rest is not a new command
        steep[(breaks[1:] != 0) | (breaks[:-1] != 0)] = 0  # nothing is followed across a break
        edges = np.flatnonzero(np.diff(np.concatenate([[0], steep, [0]])) != 0)
        limit = np.searchsorted(odo.stamp_ns, odo.stamp_ns + round(c.ramp_window * NS),
                                'right') - 2
        for r0, r1 in zip(edges[:-1], edges[1:], strict=True):
            if steep[r0] == 0:
                continue
            inside = np.arange(r0 + 1, r1 + 1)  # steps r0+1 .. r1: jerks r0 .. r1-1 steep
            command[inside] = step[np.minimum(r1, limit[inside])]
    k = np.clip(np.searchsorted(odo.stamp_ns, t, 'right') - 1, 0, len(step) - 1)
    return command[k]


def _running_median(values: np.ndarray, half: int) -> np.ndarray:
    """Median over [i - half, i + half], cut at the ends (never padded with end values)."""
    if half <= 0 or len(values) < 3:
        return values.copy()
    padded = np.pad(values.astype(np.float64), half, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.nanmedian(windows, axis=1)


def lateral_offset(odo: OdometrySeries, breaks: np.ndarray, c: LabelConfig) -> np.ndarray:
    """(N,) [m] the ego's offset across the road, left positive, from its first reading.

    The road heading is a moving median (`heading_window`) of the course over ground: a lane
    change turns the course for a few seconds, less than half the window, so the median keeps
    the road's direction, and a curve (a steady turn) passes through. Each step's displacement
    across that heading is summed; steps across a break add nothing.
    """
    n = len(odo)
    if n < 2:
        return np.zeros(n)
    dx, dy = np.diff(odo.x), np.diff(odo.y)
    course = np.arctan2(dy, dx)
    still = np.hypot(dx, dy) < 1e-3
    if np.all(still):
        return np.zeros(n)
    idx = np.where(~still, np.arange(n - 1), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = int(np.flatnonzero(~still)[0])  # before the first move: the first course
    course = np.unwrap(course[idx])
    period = max(odo.nominal_period_ns, 1) / NS
    road = _running_median(course, int(math.ceil(0.5 * c.heading_window / period)))
    lateral = -np.sin(road) * dx + np.cos(road) * dy
    lateral[breaks != 0] = 0.0
    return np.concatenate([[0.0], np.cumsum(lateral)])
