"""Any camera into the model's canonical pinhole view, from CameraInfo and the mount.

The model was trained on one camera (`sim.camera.CameraConfig`: 256x128, 60 deg horizontal
field of view, principal point at the centre, level). `CanonicalView` resamples another
camera's frames into that view: for each canonical pixel the ray is rotated into the source
camera (undoing its known roll, pitch and yaw against the canonical, level mount), distorted
with the source's plumb_bob coefficients and projected with its intrinsics, then sampled
bilinearly. The map is computed once per camera and applied per frame with four gathers, so
another resolution, field of view, principal point or a few degrees of pitch feed the model the
same geometry. A mount at another height or position is not a rotation and stays visible (the
fine-tuning of `mm-fusion train` adapts to it). Pure numpy, no rclpy.
"""

from dataclasses import dataclass
import math
from typing import Any

import numpy as np
from PIL import Image

from mm_fusion_ros.sensors.errors import SensorDecodeError

# Camera optical frame (z forward, x right, y down) in a body frame (x forward, y left, z up).
OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class CameraInfoError(SensorDecodeError):
    """A CameraInfo that cannot describe its images (bad intrinsics, size mismatch)."""


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics [px] and plumb_bob distortion (k1, k2, p1, p2, k3; empty: none)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy, *self.distortion)
        if self.width <= 0 or self.height <= 0 or not all(math.isfinite(v) for v in values):
            raise CameraInfoError(f'camera {self.width}x{self.height} with intrinsics {values}'
                                  ' is not usable', 'bad_size')
        if self.fx <= 0 or self.fy <= 0:
            raise CameraInfoError(f'focal lengths fx={self.fx}, fy={self.fy} must be > 0',
                                  'out_of_range')

    @classmethod
    def from_camera_info(cls, msg: Any) -> 'PinholeCamera':
        """From a sensor_msgs/CameraInfo (rclpy or rosbags); `k` is row-major 3x3."""
        try:
            k = [float(v) for v in msg.k]
            d = tuple(float(v) for v in msg.d)
            width, height = int(msg.width), int(msg.height)
            model = str(msg.distortion_model or 'plumb_bob')
        except (AttributeError, TypeError, ValueError) as exc:
            raise CameraInfoError(f'CameraInfo is malformed: {exc}') from None
        if len(k) != 9:
            raise CameraInfoError(f'CameraInfo.k has {len(k)} values, not 9', 'bad_size')
        if any(d) and model not in ('plumb_bob', 'rational_polynomial'):
            raise CameraInfoError(f'distortion model {model!r} is not supported (plumb_bob)',
                                  'bad_encoding')
        return cls(width, height, k[0], k[4], k[2], k[5], tuple(d[:5]) if any(d) else ())

    @classmethod
    def from_config(cls, config: Any) -> 'PinholeCamera':
        """The simulator's camera (`sim.camera.CameraConfig`)."""
        return cls(config.width, config.height, config.fx, config.fy, config.cx, config.cy)

    def check_image(self, height: int, width: int) -> None:
        """CameraInfoError when an image does not have the size its CameraInfo says."""
        if (height, width) != (self.height, self.width):
            raise CameraInfoError(f'image {width}x{height} does not match its CameraInfo'
                                  f' {self.width}x{self.height}', 'size_mismatch')

    def project(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v, in front) pixel coordinates of (N, 3) optical-frame rays or points."""
        z = rays[:, 2]
        front = z > 1e-6
        safe = np.where(front, z, 1.0)
        x, y = rays[:, 0] / safe, rays[:, 1] / safe
        if self.distortion:
            k1, k2, p1, p2, k3 = (tuple(self.distortion) + (0.0,) * 5)[:5]
            r2 = x * x + y * y
            radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
            x, y = (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                    y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)
        return self.fx * x + self.cx, self.fy * y + self.cy, front

    def reduced(self, factor: int) -> 'PinholeCamera':
        """This camera's images box-reduced by an integer factor (PIL's `Image.reduce`)."""
        if factor == 1:
            return self
        return PinholeCamera(self.width // factor, self.height // factor, self.fx / factor,
                             self.fy / factor, self.cx / factor, self.cy / factor,
                             self.distortion)

    def rays(self) -> np.ndarray:
        """(H*W, 3) optical-frame rays through the pixel centres (undistorted pinhole)."""
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        x = (u.ravel() + 0.5 - self.cx) / self.fx
        y = (v.ravel() + 0.5 - self.cy) / self.fy
        return np.stack([x, y, np.ones_like(x)], axis=1)


class CanonicalView:
    """Resamples frames of `source` into the `target` view.

    `rotation` is the source camera's body orientation relative to the target's (e.g. its
    mount's roll/pitch/yaw against a level, forward-looking one): a target ray d reaches the
    source camera as R^T d in body axes. Pixels the source does not see come out black. A
    source of much finer pixels is box-reduced by an integer factor first, so the bilinear
    samples average its pixels instead of aliasing them.
    """

    def __init__(self, source: PinholeCamera, target: PinholeCamera,
                 rotation: np.ndarray | None = None) -> None:
        self.source, self.target = source, target
        rotation = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
        self.identity = source == target and np.allclose(rotation, np.eye(3))
        if self.identity:
            return
        self.reduce = max(1, int(min(source.fx / target.fx, source.fy / target.fy) / 1.5))
        source = source.reduced(self.reduce)
        self._sampled = source
        # Target optical ray -> body -> rotated into the source body -> source optical.
        to_source = OPTICAL_IN_BODY.T @ rotation.T @ OPTICAL_IN_BODY
        u, v, front = source.project(target.rays() @ to_source.T)
        u, v = u - 0.5, v - 0.5  # pixel centres at integer coordinates for the weights
        inside = front & (u >= 0) & (v >= 0) & (u <= source.width - 1) & (v <= source.height - 1)
        u = np.clip(u, 0, source.width - 1)
        v = np.clip(v, 0, source.height - 1)
        u0 = np.minimum(np.floor(u).astype(np.int64), source.width - 2 if source.width > 1 else 0)
        v0 = np.minimum(np.floor(v).astype(np.int64), source.height - 2 if source.height > 1
                        else 0)
        du, dv = (u - u0).astype(np.float32), (v - v0).astype(np.float32)
        u1 = np.minimum(u0 + 1, source.width - 1)
        v1 = np.minimum(v0 + 1, source.height - 1)
        w = source.width
        self._index = np.stack([v0 * w + u0, v0 * w + u1, v1 * w + u0, v1 * w + u1])
        weights = np.stack([(1 - du) * (1 - dv), du * (1 - dv), (1 - du) * dv, du * dv])
        self._weights = (weights * inside.astype(np.float32))[:, :, None]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 of the source camera -> the target view (the same array if equal)."""
        if self.identity:
            return rgb
        self.source.check_image(rgb.shape[0], rgb.shape[1])
        if self.reduce > 1:
            rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).reduce(self.reduce))
            rgb = rgb[:self._sampled.height, :self._sampled.width]
        flat = np.ascontiguousarray(rgb).reshape(-1, rgb.shape[2])
        out = np.zeros((self._index.shape[1], rgb.shape[2]), np.float32)
        for index, weight in zip(self._index, self._weights, strict=True):
            out += weight * flat[index]
        return (out + 0.5).astype(np.uint8).reshape(self.target.height, self.target.width, -1)
