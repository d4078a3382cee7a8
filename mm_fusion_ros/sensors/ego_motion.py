"""The ego's own acceleration taken out of a radar history, from odometry.

Why: a raw radar history shows the ego's motion (static returns close in at the ego's speed,
their Doppler is minus its radial component), so a model reads the ego's braking from it, and
when the training labels come from the driver who braked, it learns the effect instead of the
cause (the copycat problem of behaviour cloning). Each frame `dt` s before the camera is moved
into the camera-time ego pose and then re-seen from an ego that drove at a reference speed
`v_ref` over the whole window (odometry here is the forward speed only, so motion is along x
and the ~1 m of lateral drift over a lane change is left in):

- position: `x + v_ref * dt - 0.5 * (v_frame + v_camera) * dt` (trapezoid of the odometry);
- radial velocity: `v_r + (v_frame - v_ref) * x / |p|`, with the point's measured direction.

Modes (`RADAR_EGO_MOTION`):
- 'raw': the radar as it measured;
- 'ground': `v_ref = 0`, the production form (nuScenes `vx_comp`, multi-sweep clouds moved into
  the newest ego frame): static returns stand still with zero Doppler. Measured: closing speed
  then needs the ego speed, which the model only meets after the fusion tokens;
- 'current_speed': `v_ref` = the speed at the camera stamp: the history as if the ego had held
  its present speed, so Doppler stays relative (closing speed as measured now) and a history at
  constant speed is unchanged, while braking and speeding up no longer show.
"""

import math

import numpy as np

from mm_fusion_ros.sensors.odometry import NS, EgoSpeedBuffer
from mm_fusion_ros.sensors.radar_features import CANONICAL_RADAR_FEATURES
from mm_fusion_ros.sensors.radar_sequence import RadarSequence

RADAR_EGO_MOTION: tuple[str, ...] = ('raw', 'ground', 'current_speed')

_X, _Y, _Z = (CANONICAL_RADAR_FEATURES.index(k) for k in ('x', 'y', 'z'))
_VR = CANONICAL_RADAR_FEATURES.index('radial_velocity')


def check_radar_ego_motion(mode: str) -> None:
    """Raise ValueError unless `mode` is one of `RADAR_EGO_MOTION`."""
    if mode not in RADAR_EGO_MOTION:
        raise ValueError(f'radar_ego_motion must be one of {RADAR_EGO_MOTION}, not {mode!r}')


def ego_motion_sequence(
    seq: RadarSequence, camera_stamp_ns: int, ego_speed: EgoSpeedBuffer,
    camera_speed: float | None, mode: str,
) -> RadarSequence:
    """`seq` in `mode`, the per-frame speeds read from `ego_speed` (cache builder and pipeline)."""
    if mode == 'raw':
        return seq
    return compensate_ego_motion(seq, frame_speeds(seq, camera_stamp_ns, ego_speed),
                                 camera_speed, mode)


def compensate_ego_motion(
    seq: RadarSequence, frame_speeds: np.ndarray, camera_speed: float | None,
    mode: str = 'current_speed',
) -> RadarSequence:
    """`seq` seen from an ego that held the reference speed of `mode` (see the module doc).

    frame_speeds: (T,) ego forward speed [m/s] at each slot's radar stamp, NaN where unknown
    (the camera-time speed stands in). 'raw', or no camera-time speed (no odometry: the model
    then runs its no-speed path anyway), returns `seq` itself.
    """
    check_radar_ego_motion(mode)
    if mode == 'raw' or camera_speed is None or not math.isfinite(camera_speed):
        return seq
    v_now = np.float32(camera_speed)
    v_ref = v_now if mode == 'current_speed' else np.float32(0.0)
    speeds = np.asarray(frame_speeds, np.float32)
    speeds = np.where(np.isfinite(speeds), speeds, v_now)
    ago = np.where(seq.frame_mask, -seq.time_offsets, 0.0).astype(np.float32)  # (T,) [s]
    shift = (v_ref - 0.5 * (speeds + v_now)) * ago                              # (T,) [m]
    points = seq.points.copy()
    xyz = points[..., [_X, _Y, _Z]]
    rng = np.linalg.norm(xyz, axis=-1)
    cos_x = np.divide(xyz[..., 0], rng, out=np.zeros_like(rng), where=rng > 0)
    mask = seq.point_mask
    points[..., _VR] += np.where(mask, (speeds - v_ref)[:, None] * cos_x, 0.0)
    points[..., _X] += np.where(mask, shift[:, None], 0.0)
    return RadarSequence(points, seq.point_mask, seq.frame_mask, seq.time_offsets)


def frame_speeds(
    seq: RadarSequence, camera_stamp_ns: int, ego_speed: EgoSpeedBuffer,
) -> np.ndarray:
    """(T,) odometry speed at each present frame's radar stamp, NaN where none (or no frame)."""
    out = np.full(seq.frame_mask.shape, np.nan, np.float32)
    for slot in np.flatnonzero(seq.frame_mask):
        speed = ego_speed.at(camera_stamp_ns + round(float(seq.time_offsets[slot]) * NS))
        if speed is not None:
            out[slot] = speed
    return out
