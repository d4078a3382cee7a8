"""The vehicles ahead in the ego's lane, from the whole radar recording (hindsight tracking).

Input: radar frames as (stamp_ns, points) with points (N, >=5) = x, y, z, radial_velocity
(relative, positive receding), rcs in the VEHICLE frame (x forward, y left). The simulator's
points are measured from the front bumper; with sensor extrinsics, transform the points first
and set `front_offset` to the bumper's x.

1. Per frame, points ahead, within `search_half_width` and below `max_height` are grouped
   (single linkage, closer than `cluster_length` along x and `cluster_width` across); an
   object is its nearest x (the rear face), the median y of its rear-face points, its median
   radial velocity and rcs, and its edge: the least |y| of its points (the side nearest the
   ego's centre line, which a car's visible flank shows when it is beside the lane), and its
   number of returns.
2. Objects are chained frame to frame by a nearest-neighbour tracker: prediction at constant
   relative speed, gates `gate_x` (+ `gate_ratio` of the range), `gate_y` and on the radial
   velocity `gate_speed` (+ `gate_accel` per second since the last detection); a track ends
   after `coast_time` without a detection.
3. Offline, a track counts only with `min_hits` detections and a median rcs of at least
   `vehicle_min_rcs` (clutter and ghosts rarely chain; pedestrians are weak reflectors), and it
   covers every instant between its first and last detection (and one radar period beyond):
   dropped frames and missed detections are filled by interpolation, and a moving median
   (`lateral_smoothing`) smooths its edge. A radar without rcs (its preset gives a constant,
   e.g. CARLA's) cannot tell a weak reflector that way: every clutter chain and pedestrian
   would pass, and the frames behind them read FOLLOW instead of CRUISE or STOP. There a track
   needs a median of `vehicle_min_returns` returns per detection instead: a vehicle is an
   extended target with several returns, a pedestrian or a clutter point gives one.
4. A covering track is in the lane when its edge is within `corridor_half_width` (the expert's
   in-path test: the vehicles' lateral extents overlap with a margin). Its gap = x -
   `front_offset`, closing speed = -radial velocity; the lead is the nearest, and the least
   time-to-collision and the largest deceleration needed to stop `emergency_margin` short
   are taken over all of them.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mm_fusion_ros.labels.config import LabelConfig
from mm_fusion_ros.labels.odometry import NS

REAR_DEPTH = 0.5  # [m] points this close behind an object's nearest one are its rear face


@dataclass(frozen=True)
class LeadSeries:
    """Per camera stamp: gap [m] (inf: no vehicle in the lane) and closing speed [m/s]."""

    gap: np.ndarray
    closing: np.ndarray
    ttc: np.ndarray  # [s] least time-to-collision over the vehicles in the lane (inf: none)
    need: np.ndarray  # [m/s^2] largest deceleration needed to stop short of one of them
    tracks: int  # confirmed vehicle tracks in the recording


@dataclass
class _Track:
    t: list[int] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    vr: list[float] = field(default_factory=list)
    rcs: list[float] = field(default_factory=list)
    edge: list[float] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)

    def add(self, t: int, obj: np.ndarray) -> None:
        self.t.append(t)
        for name, v in zip(('x', 'y', 'vr', 'rcs', 'edge', 'returns'), obj[:6], strict=True):
            getattr(self, name).append(float(v))


def _median(v: np.ndarray) -> float:
    return float(v[0]) if len(v) == 1 else float(np.median(v))


def cluster_objects(points: np.ndarray, c: LabelConfig) -> np.ndarray:
    """(M, 6) objects (x, y, radial_velocity, rcs, edge, returns) of one frame's points.

    See step 1.
    """
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] < 5 or len(p) == 0:
        return np.zeros((0, 6))
    keep = (p[:, 0] > c.front_offset) & (np.abs(p[:, 1]) <= c.search_half_width) & \
        (p[:, 2] <= c.max_height) & np.all(np.isfinite(p[:, :5]), axis=1)
    p = p[keep]
    n = len(p)
    if n == 0:
        return np.zeros((0, 6))
    linked = (np.abs(p[:, None, 0] - p[None, :, 0]) <= c.cluster_length) & \
        (np.abs(p[:, None, 1] - p[None, :, 1]) <= c.cluster_width)
    label = np.arange(n)
    while True:  # single linkage: propagate the smallest index through the links
        nxt = np.min(np.where(linked, label[None, :], n), axis=1)
        if np.array_equal(nxt, label):
            break
        label = nxt
    out = np.empty((0, 6))
    ids, counts = np.unique(label, return_counts=True)
    single = np.isin(label, ids[counts == 1])
    if single.any():  # most objects are one point: no medians to take
        q = p[single]
        out = np.stack([q[:, 0], q[:, 1], q[:, 3], q[:, 4], np.abs(q[:, 1]),
                        np.ones(len(q))], axis=1)
    rows = []
    for k in ids[counts > 1]:
        q = p[label == k]
        x0 = q[:, 0].min()
        rear = q[q[:, 0] <= x0 + REAR_DEPTH]
        rows.append((x0, _median(rear[:, 1]), _median(q[:, 3]), _median(q[:, 4]),
                     np.abs(q[:, 1]).min(), len(q)))
    return np.concatenate([out, np.asarray(rows, np.float64).reshape(-1, 6)])


def track_objects(radar: Sequence[tuple[int, np.ndarray]], c: LabelConfig) -> list[_Track]:
    """Every track of the recording, confirmed or not (see step 2)."""
    live: list[_Track] = []
    done: list[_Track] = []
    coast = round(c.coast_time * NS)
    for stamp, points in sorted(radar, key=lambda r: r[0]):
        objs = cluster_objects(points, c)
        if live:
            last = np.array([(tr.t[-1], tr.x[-1], tr.y[-1], tr.vr[-1]) for tr in live])
            alive = stamp - last[:, 0] <= coast
            done += [tr for tr, a in zip(live, alive, strict=True) if not a]
            live = [tr for tr, a in zip(live, alive, strict=True) if a]
            last = last[alive]
        used = np.zeros(len(objs), bool)
        if live and len(objs):
            dt = (stamp - last[:, 0]) / NS
            x, y, vr = last[:, 1], last[:, 2], last[:, 3]
            # radial velocity -> rate along x, for a target without lateral motion
            px = x + vr * np.hypot(x, y) / np.maximum(x, 1.0) * dt
            gx = c.gate_x + c.gate_ratio * np.abs(px)
            gv = c.gate_speed + c.gate_accel * dt
            dx = np.abs(objs[None, :, 0] - px[:, None]) / gx[:, None]
            dy = np.abs(objs[None, :, 1] - y[:, None]) / c.gate_y
            dv = np.abs(objs[None, :, 2] - vr[:, None]) / gv[:, None]
            ti, oj = np.nonzero((dx <= 1.0) & (dy <= 1.0) & (dv <= 1.0))
            cost = dx[ti, oj] + dy[ti, oj] + dv[ti, oj]
            taken = np.zeros(len(live), bool)
            for k in np.argsort(cost, kind='stable'):  # greedy, cheapest pair first
                i, j = ti[k], oj[k]
                if not taken[i] and not used[j]:
                    taken[i] = used[j] = True
                    live[i].add(stamp, objs[j])
        for j in np.flatnonzero(~used):
            tr = _Track()
            tr.add(stamp, objs[j])
            live.append(tr)
    return done + live


def _moving_median(t: np.ndarray, v: np.ndarray, half_ns: int) -> np.ndarray:
    if half_ns <= 0 or len(v) < 3:
        return v
    lo = np.searchsorted(t, t - half_ns, 'left')
    hi = np.searchsorted(t, t + half_ns, 'right')
    return np.array([np.median(v[a:b]) for a, b in zip(lo, hi, strict=True)])


def is_vehicle(track: _Track, c: LabelConfig, radar_rcs: bool = True) -> bool:
    """A confirmed vehicle track (step 3): rcs, or without rcs the returns per detection."""
    if len(track.t) < c.min_hits:
        return False
    if radar_rcs:
        return float(np.median(track.rcs)) >= c.vehicle_min_rcs
    return float(np.median(track.returns)) >= c.vehicle_min_returns


def lead_at(
    radar: Sequence[tuple[int, np.ndarray]], stamps_ns: np.ndarray, c: LabelConfig,
    radar_rcs: bool = True,
) -> LeadSeries:
    """The in-lane lead at each camera stamp (see the module docstring).

    `radar_rcs` False: the radar reports no rcs (the vehicle test counts returns instead).
    """
    stamps = np.asarray(stamps_ns, np.int64)
    m = len(stamps)
    gap, closing = np.full(m, np.inf), np.zeros(m)
    ttc, need = np.full(m, np.inf), np.zeros(m)
    confirmed = 0
    half = round(c.lateral_smoothing * NS)
    radar_t = np.sort(np.asarray([r[0] for r in radar], np.int64))
    margin = int(np.median(np.diff(radar_t))) if len(radar_t) > 1 else 0
    for tr in track_objects(radar, c):
        if not is_vehicle(tr, c, radar_rcs):
            continue
        confirmed += 1
        t = np.asarray(tr.t, np.int64)
        idx = np.flatnonzero((stamps >= t[0] - margin) & (stamps <= t[-1] + margin))
        if not len(idx):
            continue
        tf, sf = t.astype(np.float64), stamps[idx].astype(np.float64)
        edge = np.interp(sf, tf, _moving_median(t, np.asarray(tr.edge), half))
        x = np.interp(sf, tf, np.asarray(tr.x)) - c.front_offset
        cl = -np.interp(sf, tf, np.asarray(tr.vr))
        lane = edge <= c.corridor_half_width
        idx, x, cl = idx[lane], x[lane], cl[lane]
        nearer = x < gap[idx]
        gap[idx[nearer]] = x[nearer]
        closing[idx[nearer]] = cl[nearer]
        moving_in = cl > 0.1
        with np.errstate(divide='ignore'):
            t_hit = np.where(moving_in, np.maximum(x, 0.0) / np.where(moving_in, cl, 1.0),
                             np.inf)
        n_stop = np.where(moving_in, cl * cl / (2.0 * np.maximum(x - c.emergency_margin, 0.1)),
                          0.0)
        ttc[idx] = np.minimum(ttc[idx], t_hit)
        need[idx] = np.maximum(need[idx], n_stop)
    return LeadSeries(gap, closing, ttc, need, confirmed)
