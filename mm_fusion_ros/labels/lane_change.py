"""Lane changes from the ego's lateral offset: moves of about a lane width, timed by a fit.

A lateral move is a run of steps whose lateral speed exceeds `lateral_speed` in one direction
(runs of one sign less than `MERGE_GAP` apart are one move). It is a lane change when it
covers `lane_change_min_fraction`..`lane_change_max_fraction` of `lane_width` within
`lane_change_max_duration`. Its start and end come from the times the offset crosses 10 % and
90 % of the move, under a minimum-jerk (quintic) profile, the standard model of a human lane
change and the one the simulator drives: the slow ends of the move, which no speed threshold
sees, are placed where the profile puts them. A move that runs into the start or end of the
odometry, or into a break, cannot be told from a lane change: it is returned as cut.
"""

from dataclasses import dataclass

import numpy as np

from mm_fusion_ros.labels.config import LabelConfig
from mm_fusion_ros.labels.odometry import NS, OdometrySeries

MERGE_GAP = 0.5  # [s] one move when two runs of one sign are this close
BASELINE = 0.5  # [s] before and after a run: where its offsets are read
P10 = 0.2466364532884666  # the quintic s(p) = 10p^3 - 15p^4 + 6p^5 crosses 0.1 here


@dataclass(frozen=True)
class LaneChange:
    start_ns: int
    end_ns: int
    direction: int  # +1 left, -1 right
    offset: float  # [m] lateral distance covered, left positive


@dataclass(frozen=True)
class CutMove:
    """A lateral move that touches the start or end of continuous odometry."""

    start_ns: int
    end_ns: int
    at_start: bool  # cut by the first reading of a continuous stretch, else by its last


def _runs(active: np.ndarray, sign: np.ndarray) -> list[tuple[int, int]]:
    """[first, last] step index of each run of active steps with one sign."""
    key = np.where(active, sign, 0).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], key, [0]])) != 0)
    pairs = zip(edges[:-1], edges[1:], strict=True)
    return [(int(s), int(e) - 1) for s, e in pairs if key[s] != 0]


def _crossing(t: np.ndarray, e: np.ndarray, level: float) -> float:
    """First time [ns] the rising series e crosses `level` (linear between readings)."""
    k = int(np.argmax(e >= level))
    if k == 0:
        return float(t[0])
    e0, e1 = e[k - 1], e[k]
    frac = (level - e0) / (e1 - e0) if e1 != e0 else 0.0
    return float(t[k - 1] + frac * (t[k] - t[k - 1]))


def detect_lane_changes(
    odo: OdometrySeries, breaks: np.ndarray, offset: np.ndarray, c: LabelConfig,
) -> tuple[list[LaneChange], list[CutMove]]:
    """Lane changes and cut moves in the odometry (see the module docstring)."""
    n = len(odo)
    if n < 3:
        return [], []
    t = odo.stamp_ns
    dt = np.diff(t) / NS
    u = np.diff(offset) / dt
    u[breaks != 0] = 0.0
    active = np.abs(u) > c.lateral_speed
    sign = np.sign(u).astype(np.int8)
    # the continuous stretch of each step: [first step, last step]
    seg_id = np.concatenate([[0], np.cumsum(breaks[:-1] != 0)])
    seg_first = np.searchsorted(seg_id, seg_id, 'left')
    seg_last = np.searchsorted(seg_id, seg_id, 'right') - 1
    merged: list[list[int]] = []
    for a, b in _runs(active, sign):
        if merged:
            pa, pb = merged[-1]
            if sign[pa] == sign[a] and seg_id[pb] == seg_id[a] and \
                    (t[a] - t[pb + 1]) / NS <= MERGE_GAP:
                merged[-1][1] = b
                continue
        merged.append([a, b])
    changes: list[LaneChange] = []
    cuts: list[CutMove] = []
    base = max(1, round(BASELINE / max(float(np.median(dt)), 1e-9)))
    for a, b in merged:
        first, last = int(seg_first[a]), int(seg_last[a])
        if a == first or b == last:
            cuts.append(CutMove(int(t[a]), int(t[b + 1]), at_start=a == first))
            continue
        i0, i1 = max(first, a - base), min(last + 1, b + 1 + base)
        move = float(offset[i1] - offset[i0])
        duration = (t[b + 1] - t[a]) / NS
        if not (c.lane_change_min_fraction * c.lane_width <= abs(move)
                <= c.lane_change_max_fraction * c.lane_width) or \
                duration > c.lane_change_max_duration:
            continue
        direction = 1 if move > 0 else -1
        e = direction * (offset[i0:i1 + 1] - offset[i0])
        tt = t[i0:i1 + 1].astype(np.float64)
        t10 = _crossing(tt, e, 0.1 * abs(move))
        t90 = _crossing(tt, e, 0.9 * abs(move))
        length = (t90 - t10) / (1.0 - 2.0 * P10)
        start = t10 - P10 * length
        changes.append(LaneChange(round(start), round(start + length), direction, move))
    return changes, cuts
