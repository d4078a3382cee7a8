"""Bounded-memory latency and rate statistics for nodes and benchmarks."""

from collections import deque
import math

import numpy as np


class LatencyStats:
    """Keeps the last `window` samples [s]; percentiles over them."""

    def __init__(self, window: int = 2000) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self.count = 0

    def add(self, seconds: float) -> None:
        self._samples.append(float(seconds))
        self.count += 1

    def percentile(self, q: float) -> float:
        if not self._samples:
            return math.nan
        return float(np.percentile(np.fromiter(self._samples, float), q))

    def values(self) -> np.ndarray:
        return np.fromiter(self._samples, float)


class RateMeter:
    """Message rate [Hz] over the last `window` arrivals (monotonic seconds)."""

    def __init__(self, window: int = 50) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self, now: float) -> None:
        self._times.append(now)

    def rate(self) -> float:
        if len(self._times) < 2:
            return math.nan
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else math.nan
