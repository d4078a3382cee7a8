"""radar_msgs/RadarScan -> canonical radar points, without radar_msgs (pure numpy).

`radar_msgs/RadarScan` (ros-perception/radar_msgs; Continental ARS408 drivers, Autoware's
radar pipeline) carries one `RadarReturn` per detection in the radar frame: range [m],
azimuth [rad] (anticlockwise, REP-103), elevation [rad] (negative below the sensor),
doppler_velocity [m/s] and amplitude [dB]. The conversion gives the canonical columns every
radar preset produces (`radar_features.CANONICAL_RADAR_FEATURES`):

    x = range cos(elevation) cos(azimuth)      y = range cos(elevation) sin(azimuth)
    z = range sin(elevation)                   radial_velocity = doppler_sign * doppler_velocity
    rcs = amplitude + amplitude_offset

radar_msgs does not fix the Doppler sign; the canonical one is positive when the target
recedes (the range rate, what ARS408 drivers and Autoware's radar_scan_to_pointcloud2
publish); a driver with the opposite sign sets `doppler_sign=-1`. The amplitude is a relative
dB figure that stands in for the rcs [dBsm] channel (it ranks points and is a model input).

The converter takes any object with the message's field names (an rclpy message, a rosbags
message, a test double), so it is tested everywhere; live subscriptions need radar_msgs (a ROS
distro) and bags need only rosbags, with the type registered from `RADAR_SCAN_MSGDEFS`.
"""

from collections.abc import Sequence
import math
from typing import Any

import numpy as np

from mm_fusion_ros.sensors.errors import SensorDecodeError
from mm_fusion_ros.sensors.extrinsics import Extrinsic, points_to_vehicle
from mm_fusion_ros.sensors.front_end import MODEL_RADAR_MOUNT, SensorRig
from mm_fusion_ros.sensors.radar_features import NUM_RADAR_FEATURES

RADAR_SCAN_TYPE = 'radar_msgs/msg/RadarScan'
RADAR_RETURN_TYPE = 'radar_msgs/msg/RadarReturn'

# The message definitions (ros-perception/radar_msgs, ros2 branch), for rosbags' type store:
# `register_radar_scan(typestore)` reads and writes bags with RadarScan without radar_msgs.
RADAR_RETURN_MSG = """\
float32 range
float32 azimuth
float32 elevation
float32 doppler_velocity
float32 amplitude
"""
RADAR_SCAN_MSG = """\
std_msgs/Header header
radar_msgs/RadarReturn[] returns
"""
RADAR_SCAN_MSGDEFS: dict[str, str] = {
    RADAR_RETURN_TYPE: RADAR_RETURN_MSG,
    RADAR_SCAN_TYPE: RADAR_SCAN_MSG,
}
RETURN_FIELDS = ('range', 'azimuth', 'elevation', 'doppler_velocity', 'amplitude')
MAX_RETURNS = 100_000  # a scan with more is refused ('too_large'): no radar reports that many
MAX_RANGE = 10_000.0  # [m] a finite range beyond this is refused ('out_of_range')


class RadarScanError(SensorDecodeError):
    """A RadarScan whose returns cannot be read (wrong type, non-finite, implausible)."""


def register_radar_scan(typestore: Any) -> Any:
    """Register RadarReturn and RadarScan in a rosbags typestore (no-op when present)."""
    from rosbags.typesys import get_types_from_msg

    types: dict = {}
    for name, text in RADAR_SCAN_MSGDEFS.items():
        if name not in typestore.types:
            types.update(get_types_from_msg(text, name))
    if types:
        typestore.register(types)
    return typestore


def returns_array(scan: Any) -> np.ndarray:
    """(N, 5) float64 of range, azimuth, elevation, doppler_velocity, amplitude."""
    try:
        returns = scan.returns
        n = len(returns)
    except (AttributeError, TypeError) as exc:
        raise RadarScanError(f'not a RadarScan: {exc}') from None
    if n > MAX_RETURNS:
        raise RadarScanError(f'{n} returns, over the limit of {MAX_RETURNS}', 'too_large')
    try:
        values = np.array([[getattr(r, f) for f in RETURN_FIELDS] for r in returns],
                          np.float64).reshape(n, len(RETURN_FIELDS))
    except (AttributeError, TypeError, ValueError) as exc:
        raise RadarScanError(f'unreadable RadarReturn: {exc}') from None
    if not np.isfinite(values).all():
        raise RadarScanError('RadarReturn with a NaN or infinite value', 'non_finite')
    if (values[:, 0] < 0).any() or (values[:, 0] > MAX_RANGE).any():
        raise RadarScanError(f'RadarReturn range outside [0, {MAX_RANGE:g}] m', 'out_of_range')
    return values


def scan_to_points(scan: Any, doppler_sign: float = 1.0,
                   amplitude_offset: float = 0.0) -> np.ndarray:
    """Canonical (N, 5) float32 points (x, y, z, radial_velocity, rcs) in the radar frame."""
    return returns_to_points(returns_array(scan), doppler_sign, amplitude_offset)


def returns_to_points(values: np.ndarray, doppler_sign: float = 1.0,
                      amplitude_offset: float = 0.0) -> np.ndarray:
    """(N, 5) range, azimuth, elevation, doppler, amplitude -> canonical (N, 5) float32."""
    values = np.asarray(values, np.float64).reshape(-1, len(RETURN_FIELDS))
    rng, azimuth, elevation, doppler, amplitude = values.T
    planar = rng * np.cos(elevation)
    out = np.empty((len(values), NUM_RADAR_FEATURES), np.float32)
    out[:, 0] = planar * np.cos(azimuth)
    out[:, 1] = planar * np.sin(azimuth)
    out[:, 2] = rng * np.sin(elevation)
    out[:, 3] = doppler_sign * doppler
    out[:, 4] = amplitude + amplitude_offset
    return out


def points_to_returns(points: np.ndarray) -> np.ndarray:
    """Canonical (N, >=5) points -> (N, 5) returns (the inverse; builds test scans)."""
    points = np.asarray(points, np.float64)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    rng = np.sqrt(x * x + y * y + z * z)
    with np.errstate(invalid='ignore', divide='ignore'):
        elevation = np.where(rng > 0, np.arcsin(np.clip(z / np.where(rng > 0, rng, 1.0),
                                                        -1.0, 1.0)), 0.0)
    return np.stack([rng, np.arctan2(y, x), elevation, points[:, 3], points[:, 4]], axis=1)


class RadarScanToModel:
    """One RadarScan -> canonical points in the model radar frame, through its mount.

    What `RadarToModel` does for a PointCloud2 preset.
    """

    def __init__(self, radar_mount: Extrinsic = MODEL_RADAR_MOUNT, doppler_sign: float = 1.0,
                 amplitude_offset: float = 0.0) -> None:
        if doppler_sign not in (1.0, -1.0) or not math.isfinite(amplitude_offset):
            raise ValueError('doppler_sign is 1 or -1; amplitude_offset is finite')
        self.doppler_sign = float(doppler_sign)
        self.amplitude_offset = float(amplitude_offset)
        self.set_mount(radar_mount)

    def set_mount(self, radar_mount: Extrinsic) -> None:
        self._pose = SensorRig(radar_mount=radar_mount).radar_to_model

    def __call__(self, scan: Any) -> np.ndarray:
        return points_to_vehicle(scan_to_points(scan, self.doppler_sign, self.amplitude_offset),
                                 self._pose)


def scan_fields(values: Sequence[Sequence[float]]) -> list[dict[str, float]]:
    """Rows of (range, azimuth, elevation, doppler_velocity, amplitude) as field dicts."""
    return [dict(zip(RETURN_FIELDS, map(float, row), strict=True)) for row in values]


__all__ = ['RADAR_SCAN_MSGDEFS', 'RADAR_SCAN_TYPE', 'RadarScanError', 'RadarScanToModel',
           'points_to_returns', 'register_radar_scan', 'returns_array', 'returns_to_points',
           'scan_fields', 'scan_to_points']
