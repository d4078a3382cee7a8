"""Multi-target radar tracker: constant-velocity EKF tracks on vehicle-frame detections.

Per radar frame (`RadarTracker.update`):

1. returns above `max_height`, nearer than `min_range` or beyond `max_range` are dropped, the
   rest clustered into detections (`clustering.cluster_returns`);
2. every track is predicted to the frame's stamp (constant velocity, white-acceleration
   process noise `accel_sigma_x`, `accel_sigma_y`);
3. gating: the squared Mahalanobis distance of each detection's (x, y, Doppler) to each
   track's predicted measurement, below `gate_chi2` (chi-square, 3 degrees of freedom). The
   Doppler is part of the measurement, h(s) = (x, y, (x vx + y vy) / r), so a return that lies
   where a track should be but moves differently does not continue it. A position box that
   needs no matrix product comes first: in clutter ~150 tracks live (most of them tentative)
   and only ~10 have a detection near enough to need the full distance;
4. association: greedy global nearest neighbour (gated pairs in order of distance, confirmed
   tracks first). scipy's Hungarian solver is not a dependency here, and with the gates this
   tight the pairs rarely compete. A detection left over beside a confirmed track's own
   (the far end of a car's side) joins that track's returns instead of starting a track;
5. EKF update of the associated tracks; a track's measurement noise is the sensor's plus the
   wander of its object's centroid (the spread of its returns over the square root of their
   number), so a car (returns over its rear and side) gets a wider gate
   than a point return (clutter, pedestrian);
6. M-of-N confirmation (`confirm_hits` of the last `confirm_window` frames), deletion of a
   tentative track that can no longer confirm and of a confirmed track after `max_misses`
   frames in a row without a detection; a new tentative track for every detection left over,
   its velocity from the Doppler on the assumption that it moves along x (exact for the static
   world while the ego drives straight, close for vehicles ahead).

State: (x, y, vx, vy) of the object's centroid relative to the vehicle frame, velocities
relative to the ego (a static object closes at the ego's speed). No odometry is needed; the
ego's own acceleration is covered by the process noise and the Doppler of each update.

Pure numpy, arrays over all tracks at once (struct of arrays), no per-track Python objects in
the loop; `bench/tracker.py` measures the per-frame cost (about 0.9 ms at 70 returns and 145
tracks on a shared 2-core machine: the fixed cost of a few hundred small numpy calls, not of
the number of tracks).
"""

from dataclasses import dataclass, field, replace
import math

import numpy as np

from mm_fusion_ros.tracking.clustering import Detections, cluster_returns, valid_returns

NS = 1_000_000_000


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker settings; units in brackets. Frames count received radar frames."""

    confirm_hits: int = 4  # M: detections needed ...
    confirm_window: int = 6  # N: ... within this many frames to confirm a track
    max_misses: int = 6  # a confirmed track is deleted after this many misses in a row
    gate_chi2: float = 11.34  # chi-square gate, 3 dof (11.34: 99 %)
    accel_sigma_x: float = 5.0  # [m/s^2] white-acceleration process noise, longitudinal
    # (relative motion: the ego's own braking, up to 8 m/s^2, shows in every track) ...
    accel_sigma_y: float = 2.0  # [m/s^2] ... and lateral (cut-ins, the ego's lane changes)
    position_sigma: float = 0.15  # [m] sensor position noise of a detection
    doppler_sigma: float = 0.3  # [m/s] radial velocity noise of a detection
    init_lateral_sigma: float = 2.0  # [m/s] lateral velocity uncertainty of a new track
    init_longitudinal_sigma: float = 1.0  # [m/s] on top of the Doppler's own noise
    min_range: float = 0.5  # [m] returns nearer than this (x) are ignored
    max_range: float = 100.0  # [m]
    max_height: float = 2.5  # [m] returns above this (z) are overhead structure
    cluster_dx: float = 1.5  # [m] returns this close (x, y) ...
    cluster_dy: float = 1.5  # [m]
    cluster_dv: float = 0.5  # [m/s] ... with Doppler this alike form one detection
    max_jitter: float = 0.6  # [m] cap on the centroid wander an object adds to its noise
    max_position_sigma: float = 4.0  # [m] a track less certain than this is deleted
    max_gap: float = 1.0  # [s] a longer gap between radar frames (or time going back) resets
    max_tracks: int = 256  # new tracks beyond this are not started

    def __post_init__(self) -> None:
        if not 1 <= self.confirm_hits <= self.confirm_window <= 30:
            raise ValueError('need 1 <= confirm_hits <= confirm_window <= 30, got '
                             f'{self.confirm_hits} of {self.confirm_window}')
        if self.max_misses < 1 or self.gate_chi2 <= 0 or self.max_tracks < 1:
            raise ValueError('max_misses, gate_chi2 and max_tracks must be positive')


@dataclass(frozen=True)
class Track:
    """A track as published (markers, diagnostics, the TTC override).

    Position and velocity are the filtered centroid, relative to the ego in the vehicle frame.
    `near_x`, `y_low`, `y_high` bound the object around it: its returns of this frame and of
    the frames before (their offsets from the centroid shrink by a tenth a frame, so the bounds
    follow the object's size, not one frame's returns). `returns` are this frame's returns of
    the track (empty while it coasts).
    """

    track_id: int
    x: float  # [m]
    y: float  # [m]
    vx: float  # [m/s] relative to the ego
    vy: float  # [m/s]
    position_sigma: float  # [m] sqrt of the larger position variance
    vy_sigma: float  # [m/s] standard deviation of vy
    near_x: float  # [m]
    y_low: float  # [m]
    y_high: float  # [m]
    hits: int  # detections in the last confirm_window frames
    age: int  # frames since the track started
    misses: int  # frames in a row without a detection
    confirmed: bool
    returns: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.float32))

    @property
    def range(self) -> float:
        return math.hypot(self.x, self.y)

    @property
    def closing_speed(self) -> float:
        """[m/s] speed at which the centroid approaches the ego (negative: receding)."""
        r = max(self.range, 1e-6)
        return -(self.x * self.vx + self.y * self.vy) / r


def _cv_matrices(dt: float, sigma_x: float, sigma_y: float) -> tuple[np.ndarray, np.ndarray]:
    """Transition and process noise of (x, y, vx, vy) over dt (white acceleration)."""
    f = np.eye(4)
    f[0, 2] = f[1, 3] = dt
    a, b, c = dt ** 4 / 4, dt ** 3 / 2, dt ** 2
    qx, qy = sigma_x ** 2, sigma_y ** 2
    q = np.array([[qx * a, 0, qx * b, 0], [0, qy * a, 0, qy * b],
                  [qx * b, 0, qx * c, 0], [0, qy * b, 0, qy * c]])
    return f, q


def _measure(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted measurements (T, 3) and their Jacobians (T, 3, 4) of states (T, 4)."""
    x, y, vx, vy = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
    r = np.maximum(np.hypot(x, y), 1e-3)
    vr = (x * vx + y * vy) / r
    h = np.zeros((len(s), 3, 4))
    h[:, 0, 0] = h[:, 1, 1] = 1.0
    h[:, 2, 0] = (vx - vr * x / r) / r
    h[:, 2, 1] = (vy - vr * y / r) / r
    h[:, 2, 2] = x / r
    h[:, 2, 3] = y / r
    return np.stack([x, y, vr], axis=1), h


def _jitter(det: Detections, rows: np.ndarray, config: TrackerConfig) -> np.ndarray:
    """(k, 2) how far the centroids of these detections' objects wander between frames.

    The returns fall anywhere on the object's rear face and near side each frame: the mean of
    n of them wanders by about their spread / sqrt(n).
    """
    return np.minimum(det.spread[rows] / np.sqrt(det.count[rows, None]), config.max_jitter)


class RadarTracker:
    """Tracks over a stream of radar frames; `update` once per frame, in stamp order."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.reset()

    def reset(self) -> None:
        self._next_id = 1
        self._last_ns: int | None = None
        self._id = np.zeros(0, np.int64)
        self._s = np.zeros((0, 4))
        self._p = np.zeros((0, 4, 4))
        self._hist = np.zeros(0, np.int64)  # bit i: a detection i frames ago
        self._age = np.zeros(0, np.int64)
        self._misses = np.zeros(0, np.int64)
        self._confirmed = np.zeros(0, bool)
        self._jitter = np.zeros((0, 2))  # how far its centroid wanders (x, y), see _correct
        self._shape = np.zeros((0, 3))  # near_x, y_low, y_high relative to the centroid
        self._assigned = np.zeros(0, np.int64)  # this frame's detection, -1: none
        self._detections: Detections | None = None
        self._gated: tuple | None = None  # this frame's gated tracks, see _associate

    def __len__(self) -> int:
        return len(self._id)

    # -- one frame ----------------------------------------------------------------------------
    def update(self, stamp_ns: int, points: np.ndarray | None) -> list[Track]:
        """Feed one radar frame (canonical rows, vehicle frame); returns the confirmed tracks."""
        cfg = self.config
        if self._last_ns is not None:
            dt = (stamp_ns - self._last_ns) / NS
            if not 0.0 < dt <= cfg.max_gap:
                self.reset()
        dt = 0.0 if self._last_ns is None else (stamp_ns - self._last_ns) / NS
        self._last_ns = stamp_ns
        kept = valid_returns(points, cfg.min_range, cfg.max_range, cfg.max_height)
        det = cluster_returns(kept, cfg.cluster_dx, cfg.cluster_dy, cfg.cluster_dv)
        if len(self._id):
            self._predict(dt)
        assigned = self._associate(det)
        self._correct(det, assigned)
        det, absorbed = self._absorb(det, assigned)
        self._detections = det
        self._manage(assigned)
        self._start_tracks(det, absorbed)
        return self.confirmed_tracks()

    def _predict(self, dt: float) -> None:
        f, q = _cv_matrices(dt, self.config.accel_sigma_x, self.config.accel_sigma_y)
        self._s = self._s @ f.T
        self._p = f @ self._p @ f.T + q

    def _noise(self) -> np.ndarray:
        """(T, 3, 3) measurement noise per track: sensor noise plus its centroid's wander."""
        cfg = self.config
        r = np.zeros((len(self._id), 3, 3))
        r[:, 0, 0] = cfg.position_sigma ** 2 + self._jitter[:, 0] ** 2
        r[:, 1, 1] = cfg.position_sigma ** 2 + self._jitter[:, 1] ** 2
        r[:, 2, 2] = cfg.doppler_sigma ** 2
        return r

    def _associate(self, det: Detections) -> np.ndarray:
        """Detection index per track (-1: none), greedy nearest neighbour inside the gates.

        Per axis, nu_i^2 / S_ii <= nu' S^-1 nu: a box of half-widths sqrt(gate * S_ii) holds
        every pair inside the gate, so only the pairs in it need the full distance. The
        position rows of the measurement Jacobian are unit vectors, so S_xx and S_yy are
        P_xx + R_xx and P_yy + R_yy (exactly what the matrix product gives): the position box
        costs no matrix product, and S, its inverse and the Doppler box are computed only for
        the tracks with a detection in it (a few of the ~150 tentative tracks in clutter). The
        innovations of those tracks are kept for `_correct`.
        """
        n_tracks, n_det = len(self._id), len(det)
        assigned = np.full(n_tracks, -1, np.int64)
        self._gated = None
        if not n_tracks or not n_det:
            return assigned
        gate = self.config.gate_chi2
        r = self._noise()
        z = np.concatenate([det.position, det.doppler[:, None]], axis=1)
        half = np.sqrt(gate * (self._p[:, (0, 1), (0, 1)] + r[:, (0, 1), (0, 1)]))  # (T, 2)
        box = ((np.abs(z[None, :, 0] - self._s[:, None, 0]) <= half[:, None, 0])
               & (np.abs(z[None, :, 1] - self._s[:, None, 1]) <= half[:, None, 1]))
        near = np.flatnonzero(box.any(axis=1))
        if not len(near):
            return assigned
        zp, h = _measure(self._s[near])
        s = h @ self._p[near] @ h.transpose(0, 2, 1) + r[near]
        s_inv = np.linalg.inv(s)
        self._gated = (near, zp, h, s_inv)
        box = box[near] & (np.abs(z[None, :, 2] - zp[:, None, 2])
                           <= np.sqrt(gate * s[:, 2, 2])[:, None])
        rows, cols = np.nonzero(box)  # rows index `near`
        nu = z[cols] - zp[rows]  # (K, 3)
        d2 = ((nu[:, None, :] @ s_inv[rows])[:, 0, :] * nu).sum(axis=1)  # squared Mahalanobis
        inside = d2 < gate
        rows, cols, d2 = near[rows[inside]], cols[inside], d2[inside]
        if not len(rows):
            return assigned
        # confirmed tracks choose first, then by distance
        order = np.lexsort((d2, ~self._confirmed[rows]))
        det_taken = np.zeros(n_det, bool)
        for t, d in zip(rows[order].tolist(), cols[order].tolist(), strict=True):
            if assigned[t] < 0 and not det_taken[d]:
                assigned[t] = d
                det_taken[d] = True
        return assigned

    def _correct(self, det: Detections, assigned: np.ndarray) -> None:
        idx = np.flatnonzero(assigned >= 0)
        self._assigned = assigned
        if not len(idx):
            return
        d = assigned[idx]
        near, zp, h, s_inv = self._gated  # an assigned track had a detection in its gate
        k = np.searchsorted(near, idx)
        zp, h, s_inv = zp[k], h[k], s_inv[k]
        s, p = self._s[idx], self._p[idx]
        gain = p @ h.transpose(0, 2, 1) @ s_inv  # (k, 4, 3)
        z = np.concatenate([det.position[d], det.doppler[d, None]], axis=1)
        self._s[idx] = s + (gain @ (z - zp)[:, :, None])[:, :, 0]
        p = (np.eye(4) - gain @ h) @ p
        self._p[idx] = 0.5 * (p + p.transpose(0, 2, 1))
        # the centroid's wander and the object's bounds around the filtered centroid (nearest x,
        # lowest and highest y), both forgotten slowly: a car seen with one return keeps them
        self._jitter[idx] = np.maximum(_jitter(det, d, self.config), 0.9 * self._jitter[idx])
        seen = np.stack([det.near_x[d], det.y_low[d], det.y_high[d]], axis=1) - \
            self._s[idx][:, [0, 1, 1]]
        kept = 0.9 * self._shape[idx]
        self._shape[idx] = np.stack([np.minimum(seen[:, 0], kept[:, 0]),
                                     np.minimum(seen[:, 1], kept[:, 1]),
                                     np.maximum(seen[:, 2], kept[:, 2])], axis=1)

    def _absorb(self, det: Detections, assigned: np.ndarray) -> tuple[Detections, np.ndarray]:
        """Left-over detections beside a confirmed track's detection are more of its object.

        A car's returns sometimes fall into two clusters (its rear and the far end of its side);
        the second joins the track's returns (they count for its time to collision) instead
        of starting a track of its own. Returns the detections relabelled and the absorbed mask.
        """
        cfg = self.config
        absorbed = np.zeros(len(det), bool)
        owners = np.flatnonzero((assigned >= 0) & self._confirmed)
        free = np.ones(len(det), bool)
        free[assigned[assigned >= 0]] = False
        if not len(owners) or not free.any():
            return det, absorbed
        d_own = assigned[owners]
        cand = np.flatnonzero(free)
        # (free detection, owning track) pairs: beside the owner's returns, moving alike
        near = ((det.position[cand, None, 0] >= det.near_x[None, d_own] - cfg.cluster_dx)
                & (np.abs(det.position[cand, None, 0] - self._s[None, owners, 0])
                   <= 2 * cfg.cluster_dx)
                & (det.position[cand, None, 1] >= det.y_low[None, d_own] - cfg.cluster_dy)
                & (det.position[cand, None, 1] <= det.y_high[None, d_own] + cfg.cluster_dy)
                & (np.abs(det.doppler[cand, None] - det.doppler[None, d_own])
                   <= 2 * cfg.cluster_dv))
        rows, cols = np.nonzero(near)
        if not len(rows):
            return det, absorbed
        labels = det.labels.copy()
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if not absorbed[cand[r]]:
                absorbed[cand[r]] = True
                labels[det.labels == cand[r]] = d_own[c]
        return replace(det, labels=labels), absorbed

    def _manage(self, assigned: np.ndarray) -> None:
        cfg = self.config
        hit = assigned >= 0
        window = (1 << cfg.confirm_window) - 1
        self._hist = ((self._hist << 1) | hit) & window
        self._age += 1
        self._misses = np.where(hit, 0, self._misses + 1)
        hits = np.bitwise_count(self._hist)
        self._confirmed |= hits >= cfg.confirm_hits
        tentative = ~self._confirmed
        # a tentative track that cannot reach M hits within its first N frames goes
        hopeless = tentative & (hits + np.maximum(cfg.confirm_window - self._age, 0)
                                < cfg.confirm_hits)
        lost = self._confirmed & (self._misses > cfg.max_misses)
        x, y = self._s[:, 0], self._s[:, 1]
        near_x = x + self._shape[:, 0]
        sigma = np.sqrt(np.maximum(self._p[:, 0, 0], self._p[:, 1, 1]))
        gone = ((near_x < cfg.min_range) | (np.hypot(x, y) > cfg.max_range + 5.0)
                | (sigma > cfg.max_position_sigma) | ~np.isfinite(sigma))
        keep = ~(hopeless | lost | gone | self._duplicates())
        if not keep.all():
            self._select(keep)

    def _duplicates(self) -> np.ndarray:
        """Tracks of an object an older confirmed track already follows: the younger go.

        The same object: within the clustering distances in position, and in velocity.
        """
        cfg = self.config
        n = len(self._id)
        if n < 2:
            return np.zeros(n, bool)
        s, c = self._s, np.flatnonzero(self._confirmed)
        same = ((np.abs(s[:, None, 0] - s[None, c, 0]) <= cfg.cluster_dx)
                & (np.abs(s[:, None, 1] - s[None, c, 1]) <= cfg.cluster_dy)
                & (np.abs(s[:, None, 2] - s[None, c, 2]) <= 2 * cfg.cluster_dv)
                & (np.abs(s[:, None, 3] - s[None, c, 3]) <= 2 * cfg.cluster_dv))
        # i duplicates confirmed track j when j is older (ties: the earlier id)
        age, ids = self._age, self._id
        older = (age[None, c] > age[:, None]) | (
            (age[None, c] == age[:, None]) & (ids[None, c] < ids[:, None]))
        return (same & older).any(axis=1)

    def _select(self, keep: np.ndarray) -> None:
        for name in ('_id', '_s', '_p', '_hist', '_age', '_misses', '_confirmed', '_jitter',
                     '_shape', '_assigned'):
            setattr(self, name, getattr(self, name)[keep])

    def _start_tracks(self, det: Detections, absorbed: np.ndarray) -> None:
        cfg = self.config
        free = ~absorbed
        free[self._assigned[self._assigned >= 0]] = False
        new = np.flatnonzero(free)[:max(cfg.max_tracks - len(self._id), 0)]
        if not len(new):
            return
        k = len(new)
        x, y = det.position[new, 0], det.position[new, 1]
        r = np.hypot(x, y)
        cos = np.maximum(x / r, 0.2)  # x > min_range and a 60 deg field of view: >= 0.5
        vx = det.doppler[new] / cos  # moving along x: the Doppler is vx * x / r
        s = np.stack([x, y, vx, np.zeros(k)], axis=1)
        p = np.zeros((k, 4, 4))
        jitter = _jitter(det, new, cfg)
        p[:, 0, 0] = cfg.position_sigma ** 2 + jitter[:, 0] ** 2
        p[:, 1, 1] = cfg.position_sigma ** 2 + jitter[:, 1] ** 2
        p[:, 2, 2] = (cfg.doppler_sigma / cos) ** 2 + cfg.init_longitudinal_sigma ** 2
        p[:, 3, 3] = cfg.init_lateral_sigma ** 2
        shape = np.stack([det.near_x[new] - x, det.y_low[new] - y, det.y_high[new] - y], axis=1)
        ids = np.arange(self._next_id, self._next_id + k)
        self._next_id += k
        self._id = np.concatenate([self._id, ids])
        self._s = np.concatenate([self._s, s])
        self._p = np.concatenate([self._p, p])
        self._hist = np.concatenate([self._hist, np.ones(k, np.int64)])
        self._age = np.concatenate([self._age, np.ones(k, np.int64)])
        self._misses = np.concatenate([self._misses, np.zeros(k, np.int64)])
        confirmed = np.full(k, cfg.confirm_hits <= 1)
        self._confirmed = np.concatenate([self._confirmed, confirmed])
        self._jitter = np.concatenate([self._jitter, jitter])
        self._shape = np.concatenate([self._shape, shape])
        self._assigned = np.concatenate([self._assigned, new])

    # -- output -------------------------------------------------------------------------------
    def tracks(self, confirmed_only: bool = False) -> list[Track]:
        """Snapshots of the tracks after the last update (all, or the confirmed ones)."""
        det = self._detections
        rows = np.flatnonzero(self._confirmed) if confirmed_only else np.arange(len(self._id))
        if not len(rows):
            return []
        s = self._s[rows]
        near_x, y_low, y_high = (s[:, [0, 1, 1]] + self._shape[rows]).T.tolist()
        sigma = np.sqrt(np.maximum(self._p[rows, 0, 0], self._p[rows, 1, 1]))
        vy_sigma = np.sqrt(self._p[rows, 3, 3])
        hits = np.bitwise_count(self._hist[rows])
        empty = np.zeros((0, det.points.shape[1] if det is not None else 5), np.float32)
        out = []
        for k, i in enumerate(rows.tolist()):
            a = int(self._assigned[i])
            x, y, vx, vy = s[k].tolist()
            out.append(Track(
                track_id=int(self._id[i]), x=x, y=y, vx=vx, vy=vy,
                position_sigma=float(sigma[k]), vy_sigma=float(vy_sigma[k]),
                near_x=near_x[k], y_low=y_low[k],
                y_high=y_high[k], hits=int(hits[k]),
                age=int(self._age[i]), misses=int(self._misses[i]),
                confirmed=bool(self._confirmed[i]),
                returns=det.returns_of(a) if a >= 0 and det is not None else empty))
        return out

    def confirmed_tracks(self) -> list[Track]:
        return self.tracks(confirmed_only=True)
