"""Recent camera frames, so the model can see motion: the frame `gap` seconds before this one.

A single frame cannot show which way a pedestrian on the road is walking (into the ego's
path or out of it); the same scene 0.25 s earlier can. The training cache, the fusion node,
replay evaluation and the closed loop all pick the earlier frame with this class, so they
pair the same frames.
"""

from bisect import bisect_left
from collections import deque

import numpy as np

NS = 1_000_000_000


class CameraHistory:
    """(stamp, frame) pairs of the last `gap + gap / 2` seconds, pushed in stamp order.

    `push` returns the buffered frame nearest to `stamp - gap`, accepted when it lies within
    `gap / 2` of it (so 10, 12, 20 and 30 Hz cameras all find one), else None.
    """

    def __init__(self, gap: float = 0.25, capacity: int = 64) -> None:
        if gap <= 0:
            raise ValueError(f'gap must be > 0 s, got {gap}')
        self.gap_ns = round(gap * NS)
        self._stamps: deque[int] = deque(maxlen=capacity)
        self._frames: deque[np.ndarray] = deque(maxlen=capacity)

    def earlier(self, stamp_ns: int) -> np.ndarray | None:
        """The frame nearest to `stamp_ns - gap` (within gap / 2), or None."""
        target = stamp_ns - self.gap_ns
        i = bisect_left(self._stamps, target)
        best: int | None = None
        for j in (i - 1, i):
            if 0 <= j < len(self._stamps) and self._stamps[j] < stamp_ns and (
                    best is None
                    or abs(self._stamps[j] - target) < abs(self._stamps[best] - target)):
                best = j
        if best is None or 2 * abs(self._stamps[best] - target) > self.gap_ns:
            return None
        return self._frames[best]

    def push(self, stamp_ns: int, frame: np.ndarray) -> np.ndarray | None:
        """Buffer a frame; returns `earlier(stamp_ns)`. A stamp going back clears the history."""
        if self._stamps and stamp_ns == self._stamps[-1]:
            return self.earlier(stamp_ns)  # the same frame again: keep the first copy
        if self._stamps and stamp_ns < self._stamps[-1]:
            self.clear()  # backwards stamp (bag loop, clock reset)
        previous = self.earlier(stamp_ns)
        horizon = stamp_ns - self.gap_ns - self.gap_ns // 2
        while self._stamps and self._stamps[0] < horizon:
            self._stamps.popleft()
            self._frames.popleft()
        self._stamps.append(stamp_ns)
        self._frames.append(frame)
        return previous

    def clear(self) -> None:
        self._stamps.clear()
        self._frames.clear()

    def __len__(self) -> int:
        return len(self._stamps)
