"""The last T radar frames ending at a camera stamp, padded and masked for the model."""

import bisect
from dataclasses import dataclass

import numpy as np

from mm_fusion_ros.sensors.radar_features import CANONICAL_RADAR_FEATURES, NUM_RADAR_FEATURES

RCS_INDEX = CANONICAL_RADAR_FEATURES.index('rcs')


@dataclass(frozen=True)
class RadarSequence:
    """Padded radar history for one camera frame (oldest frame first).

    points:       (T, N, F) float32 canonical features (see `radar_features`), zero where padded.
    point_mask:   (T, N) bool, True for real points.
    frame_mask:   (T,) bool, True where a radar frame exists for that slot.
    time_offsets: (T,) float32 [s], radar stamp minus camera stamp (<= 0 for past frames),
                  0 for missing frames.
    """

    points: np.ndarray
    point_mask: np.ndarray
    frame_mask: np.ndarray
    time_offsets: np.ndarray

    @classmethod
    def empty(cls, num_frames: int, max_points: int, num_features: int) -> 'RadarSequence':
        """A sequence with no radar at all (every frame missing)."""
        return cls(
            points=np.zeros((num_frames, max_points, num_features), np.float32),
            point_mask=np.zeros((num_frames, max_points), bool),
            frame_mask=np.zeros((num_frames,), bool),
            time_offsets=np.zeros((num_frames,), np.float32),
        )


@dataclass(frozen=True)
class RadarSequenceConfig:
    """History window for the radar encoder; times in seconds."""

    num_frames: int = 8            # T
    max_points: int = 256          # N, points per frame after padding/capping
    num_features: int = NUM_RADAR_FEATURES
    capacity: int = 0              # frames kept; 0 -> 2 * num_frames (room for late cameras)
    max_age: float = 2.0           # [s] frames older than camera stamp - max_age are ignored
    future_tolerance: float = 0.05  # [s] radar up to this much after the camera still counts
    reset_jump: float = 1.0        # [s] a stamp this far behind the newest clears the buffer

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.max_points < 1 or self.num_features < 1:
            raise ValueError('num_frames, max_points and num_features must be >= 1')
        if self.capacity < 0 or (self.capacity and self.capacity < self.num_frames):
            raise ValueError('capacity must be 0 or >= num_frames')
        if self.max_age <= 0 or self.future_tolerance < 0 or self.reset_jump <= 0:
            raise ValueError('max_age and reset_jump must be > 0, future_tolerance >= 0')


class RadarSequenceBuffer:
    """Recent radar frames by stamp; `sequence(camera_stamp)` gives the model's padded window.

    Frames are canonical (N, F) float32 arrays with integer-nanosecond stamps, kept sorted, so
    out-of-order arrivals land in place and a duplicate stamp replaces the earlier frame. A
    stamp more than `reset_jump` behind the newest one (bag loop, sim clock reset) clears the
    buffer first: the old future frames would otherwise pose as history forever. Frames with
    more than `max_points` points keep the strongest rcs (column `rcs_index`). Not thread-safe:
    one owner (the sync callback or the inference thread) pushes and reads.
    """

    def __init__(
        self, config: RadarSequenceConfig | None = None, rcs_index: int = RCS_INDEX,
    ) -> None:
        self.config = config or RadarSequenceConfig()
        self.rcs_index = rcs_index
        self._capacity = self.config.capacity or 2 * self.config.num_frames
        self._stamps: list[int] = []
        self._frames: list[np.ndarray] = []
        self.resets = 0

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def stamps(self) -> tuple[int, ...]:
        return tuple(self._stamps)

    def clear(self) -> None:
        self._stamps.clear()
        self._frames.clear()

    def push(self, stamp_ns: int, points: np.ndarray) -> None:
        """Add one frame (stamp in integer nanoseconds); drops the oldest beyond capacity."""
        cfg = self.config
        points = np.asarray(points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != cfg.num_features:
            raise ValueError(
                f'radar frame must be (N, {cfg.num_features}), got {points.shape}')
        stamp_ns = int(stamp_ns)
        if self._stamps and self._stamps[-1] - stamp_ns > round(cfg.reset_jump * 1e9):
            self.clear()
            self.resets += 1
        if points.shape[0] > cfg.max_points:
            if cfg.num_features > self.rcs_index:
                top = np.argpartition(-points[:, self.rcs_index], cfg.max_points - 1)
                points = points[np.sort(top[:cfg.max_points])]
            else:
                points = points[:cfg.max_points]
        i = bisect.bisect_left(self._stamps, stamp_ns)
        if i < len(self._stamps) and self._stamps[i] == stamp_ns:
            self._frames[i] = points
        else:
            self._stamps.insert(i, stamp_ns)
            self._frames.insert(i, points)
        while len(self._stamps) > self._capacity:
            del self._stamps[0]
            del self._frames[0]

    def sequence(self, camera_stamp_ns: int) -> RadarSequence:
        """The last T frames within [camera - max_age, camera + future_tolerance], oldest first.

        Missing history sits in the oldest slots (frame_mask False), so the newest frame is
        always slot T-1 when there is one.
        """
        cfg = self.config
        camera_stamp_ns = int(camera_stamp_ns)
        hi = bisect.bisect_right(self._stamps, camera_stamp_ns + round(cfg.future_tolerance * 1e9))
        lo = bisect.bisect_left(self._stamps, camera_stamp_ns - round(cfg.max_age * 1e9))
        lo = max(lo, hi - cfg.num_frames)
        seq = RadarSequence.empty(cfg.num_frames, cfg.max_points, cfg.num_features)
        first_slot = cfg.num_frames - (hi - lo)
        for slot, i in enumerate(range(lo, hi), start=first_slot):
            pts = self._frames[i]
            seq.points[slot, :pts.shape[0]] = pts
            seq.point_mask[slot, :pts.shape[0]] = True
            seq.frame_mask[slot] = True
            seq.time_offsets[slot] = (self._stamps[i] - camera_stamp_ns) * 1e-9
        return seq
