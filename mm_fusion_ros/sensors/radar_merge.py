"""Several radars, one history: frames of N radars merged in the vehicle frame (pure numpy).

nuScenes has five radars; a vehicle often has a front radar and corner radars. Each radar's
points go through its own mount into the vehicle frame and from there into the model radar
frame (`RadarToModel` / `RadarScanToModel`), where they meet. `RadarMerger` then builds one
history at the rate of the *first* radar: each frame of the first radar carries, besides its
own points, the newest unused frame of every other radar whose stamp lies within `max_age` of
it (one nominal radar period by default). A frame joins at most one merged frame, so the
tracker never sees a detection twice; a frame older than that is dropped (counted).

Stamps of the merged frames are the first radar's, so the camera-radar sync, the radar
timeouts and the TTC tracker work as with one radar. When the first radar stops, the history
stops: the safety layer's radar timeouts fire, whatever the other radars still send.
Ego motion between the radars' stamps (at most `max_age`) is not compensated.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mm_fusion_ros.sensors.extrinsics import Extrinsic, TransformError

MOUNT_SIZE = 6  # x, y, z, roll, pitch, yaw


@dataclass(frozen=True)
class RadarSource:
    """One radar input: its topic and its mount in the vehicle frame."""

    topic: str
    mount: Extrinsic


def check_topics(topics: Sequence[str]) -> list[str]:
    """radar_topics: one or more names, none twice (ValueError otherwise)."""
    topics = list(topics)
    if not topics or any(not t.strip() for t in topics):
        raise ValueError(f'radar_topics {topics}: give one or more topic names')
    if len(set(topics)) != len(topics):
        raise ValueError(f'radar_topics {topics}: a topic is listed twice')
    return topics


def radar_sources(topics: Sequence[str], mounts: Sequence[float],
                  single_mount: Sequence[float]) -> list[RadarSource]:
    """The radar inputs of the node parameters radar_topics, radar_mounts and radar_mount.

    One topic: its mount is `single_mount` (radar_mount, shared with the bag rig and the
    view). Several: `mounts` holds six numbers per topic, in topic order. Raises ValueError.
    """
    topics = check_topics(topics)
    try:
        if len(topics) == 1:
            return [RadarSource(topics[0], Extrinsic.from_values(single_mount))]
        if len(mounts) != MOUNT_SIZE * len(topics):
            raise ValueError(
                f'radar_mounts has {len(mounts)} numbers; {len(topics)} radar_topics need '
                f'{MOUNT_SIZE * len(topics)} (x, y, z, roll, pitch, yaw per topic)')
        return [RadarSource(t, Extrinsic.from_values(mounts[i * MOUNT_SIZE:(i + 1) * MOUNT_SIZE]))
                for i, t in enumerate(topics)]
    except TransformError as exc:
        raise ValueError(str(exc)) from None


class RadarMerger:
    """Frames of `count` radars (points already in one frame) -> frames at radar 0's rate."""

    def __init__(self, count: int, max_age_ns: int) -> None:
        if count < 1 or max_age_ns < 0:
            raise ValueError('count >= 1, max_age_ns >= 0')
        self.count = count
        self.max_age_ns = int(max_age_ns)
        self._pending: list[tuple[int, np.ndarray] | None] = [None] * count
        self.dropped = 0  # frames of radars 1.. that joined no frame of radar 0

    def push(self, index: int, stamp_ns: int, points: np.ndarray) -> tuple[int, np.ndarray] | None:
        """A radar frame; returns (stamp, merged points) when `index` is the first radar."""
        if not 0 <= index < self.count:
            raise IndexError(f'radar index {index} outside [0, {self.count})')
        if index:
            if self._pending[index] is not None:
                self.dropped += 1  # replaced before a frame of radar 0 took it
            self._pending[index] = (int(stamp_ns), points)
            return None
        parts = [points]
        for i in range(1, self.count):
            pending = self._pending[i]
            if pending is None:
                continue
            if abs(pending[0] - stamp_ns) <= self.max_age_ns:
                parts.append(pending[1])
                self._pending[i] = None
            elif pending[0] < stamp_ns:
                self.dropped += 1  # too old for this frame and every later one
                self._pending[i] = None
        if len(parts) == 1:
            return int(stamp_ns), points
        width = max(p.shape[1] for p in parts)
        if any(p.shape[1] != width for p in parts if len(p)):
            raise ValueError(f'radar frames with different columns: {[p.shape for p in parts]}')
        return int(stamp_ns), np.concatenate(
            [p if len(p) else np.zeros((0, width), np.float32) for p in parts]).astype(
                np.float32, copy=False)

    def reset(self) -> None:
        self._pending = [None] * self.count


__all__ = ['RadarMerger', 'RadarSource', 'check_topics', 'radar_sources']
