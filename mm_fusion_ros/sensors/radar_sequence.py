"""The last T radar frames ending at a camera stamp, padded and masked for the model."""

from dataclasses import dataclass

import numpy as np


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
