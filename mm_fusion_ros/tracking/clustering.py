"""Radar returns -> object detections: one detection per group of nearby, alike returns.

A car gives 2-6 returns per frame spread over its rear face and near side; clustering them
first gives the tracker one measurement per object instead of a handful of competing ones.
Returns are connected when they lie within `cluster_dx` longitudinally, `cluster_dy`
laterally and `cluster_dv` in Doppler of each other (single linkage: connected components).
Vectorised numpy (an (N, N) adjacency, min-label propagation); at 50 returns it costs tens of
microseconds, so no KD-tree is needed.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Per-detection arrays (D rows) plus the label of every kept return.

    `points` are the returns kept (canonical rows: x, y, z, radial_velocity, rcs, ...), and
    `labels[i]` is the detection `points[i]` belongs to.
    """

    position: np.ndarray  # (D, 2) centroid x, y [m]
    doppler: np.ndarray  # (D,) mean radial velocity [m/s], negative closes
    spread: np.ndarray  # (D, 2) standard deviation of the returns in x, y [m]
    near_x: np.ndarray  # (D,) smallest x of its returns [m]
    y_low: np.ndarray  # (D,) lateral extent of its returns [m]
    y_high: np.ndarray
    count: np.ndarray  # (D,) returns
    points: np.ndarray  # (N, F) the returns kept
    labels: np.ndarray  # (N,) detection index of each kept return

    def __len__(self) -> int:
        return len(self.count)

    def returns_of(self, detection: int) -> np.ndarray:
        return self.points[self.labels == detection]


def empty_detections(num_features: int = 5) -> Detections:
    z = np.zeros(0)
    return Detections(np.zeros((0, 2)), z, np.zeros((0, 2)), z, z, z, np.zeros(0, np.int64),
                      np.zeros((0, num_features), np.float32), np.zeros(0, np.int64))


def valid_returns(points: np.ndarray | None, min_range: float, max_range: float,
                  max_height: float) -> np.ndarray:
    """Finite returns between `min_range` and `max_range` ahead, no higher than `max_height`.

    Returns above `max_height` (vehicle frame z) are overhead structure the ego passes under
    (sign gantries, bridges): never an obstacle in its path.
    """
    if points is None or len(points) == 0:
        return np.zeros((0, 5 if points is None else points.shape[1]), np.float32)
    x, y, z, vr = points[:, 0], points[:, 1], points[:, 2], points[:, 3]
    with np.errstate(invalid='ignore', over='ignore'):
        rng = np.hypot(x, y)
        keep = (np.isfinite(rng) & np.isfinite(vr) & np.isfinite(z) & (x > min_range)
                & (rng <= max_range) & (z <= max_height))
    return points[keep]


def cluster_returns(points: np.ndarray, dx: float, dy: float, dv: float) -> Detections:
    """Connected components of returns within (dx, dy, dv) of each other, as detections."""
    n = len(points)
    if n == 0:
        return empty_detections(points.shape[1] if points.ndim == 2 else 5)
    p = points.astype(np.float64)
    x, y, vr = p[:, 0], p[:, 1], p[:, 3]
    xyv = p[:, (0, 1, 3)]
    adjacent = (np.abs(xyv[:, None, :] - xyv[None, :, :]) <= (dx, dy, dv)).all(axis=2)
    labels = np.arange(n)
    big = n  # larger than any label: where two returns are not adjacent
    while True:  # each pass lowers every label to its neighbours' smallest; ends in <= n passes
        new = np.where(adjacent, labels[None, :], big).min(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    # every label is now its component's smallest index: number the components in that order
    roots = labels == np.arange(n)
    labels = (np.cumsum(roots) - 1)[labels]
    count = np.bincount(labels)
    d = len(count)

    def mean(v: np.ndarray) -> np.ndarray:
        return np.bincount(labels, weights=v, minlength=d) / count

    mx, my = mean(x), mean(y)
    sx = np.sqrt(np.maximum(mean(x * x) - mx * mx, 0.0))
    sy = np.sqrt(np.maximum(mean(y * y) - my * my, 0.0))
    near_x = np.full(d, np.inf)
    np.minimum.at(near_x, labels, x)
    y_low = np.full(d, np.inf)
    np.minimum.at(y_low, labels, y)
    y_high = np.full(d, -np.inf)
    np.maximum.at(y_high, labels, y)
    return Detections(np.stack([mx, my], axis=1), mean(vr), np.stack([sx, sy], axis=1),
                      near_x, y_low, y_high, count, points, labels)
