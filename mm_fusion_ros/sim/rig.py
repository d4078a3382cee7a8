"""Sensor rigs for the simulator: the training rig, and a foreign one unlike it.

A `RigVariant` says where a vehicle's camera and radar sit and what they are: the camera's
resolution, field of view and mount (height, position, a few degrees of pitch), the radar's
mount (off-centre, yawed), rate and point layout. `RigSensors` turns the simulator's frames
into that rig's: the scene is rendered by a level camera at the rig camera's position with a
wider field of view (`render_camera`), then resampled into the rig camera with its rotation
(`sensors.camera_geometry.CanonicalView`, the inverse of what the front end does); radar points
are detected from the rig radar's position and moved into its (yawed, offset) frame. The
radial velocity keeps the value measured from the rig radar's x/z position (a lateral offset
of a few decimetres changes the ray direction by ~1 deg at 20 m).

`FOREIGN_RIG` is the benchmark's rig (`bench/foreign_rig.py`): camera 640x360 at 75 deg,
1.25 m high, 1.6 m ahead, pitched 3 deg down; radar 0.35 m right of the centre line, yawed 4
deg to the right, CARLA-bridge point layout (no rcs), 15 Hz.
"""

from dataclasses import dataclass, field, replace
import math
from typing import Any

import numpy as np

from mm_fusion_ros.sensors.camera_geometry import OPTICAL_IN_BODY, CanonicalView, PinholeCamera
from mm_fusion_ros.sensors.extrinsics import Extrinsic
from mm_fusion_ros.sensors.front_end import SensorRig
from mm_fusion_ros.sim.camera import CameraConfig
from mm_fusion_ros.sim.radar import RadarConfig
from mm_fusion_ros.sim.simulator import SimFrame, SimOptions

OPTICAL = Extrinsic.from_matrix(OPTICAL_IN_BODY, (0.0, 0.0, 0.0))  # optical in body frame


@dataclass(frozen=True)
class RigVariant:
    """A vehicle's camera and radar (mounts in `vehicle_frame`: x forward, y left, z up)."""

    name: str = 'training'
    camera_width: int = 256  # [px]
    camera_height: int = 128  # [px]
    camera_hfov: float = 60.0  # [deg]
    camera_mount: Extrinsic = field(default_factory=lambda: CameraConfig().mount)
    radar_mount: Extrinsic = field(default_factory=lambda: RadarConfig().mount)
    radar_rate: float = 0.0  # [Hz] 0: one radar frame per camera frame
    radar_preset: str = 'sim'  # the PointCloud2 layout written
    vehicle_frame: str = 'base_link'
    camera_frame: str = 'camera'  # the body frame (x forward); images are in its optical one
    radar_frame: str = 'radar'
    render_margin: float = 1.15  # render field of view / rig field of view (pitch headroom)

    @property
    def camera(self) -> CameraConfig:
        """The rig camera's intrinsics (what its CameraInfo says)."""
        return CameraConfig(width=self.camera_width, height=self.camera_height,
                            hfov=self.camera_hfov, mount_x=self.camera_mount.x,
                            mount_height=self.camera_mount.z)

    @property
    def is_training(self) -> bool:
        return self == RigVariant()

    @property
    def camera_is_training(self) -> bool:
        """The training rig's camera (intrinsics and mount): frames need no resampling."""
        base = RigVariant()
        return (self.camera == base.camera and self.camera_mount == base.camera_mount)

    def render_camera(self) -> CameraConfig:
        """The level camera the scene is drawn with before it is turned into the rig's."""
        if self.camera_is_training:
            return CameraConfig()
        cam = self.camera
        hfov = min(150.0, self.camera_hfov * self.render_margin)
        fx = 0.8 * cam.fx  # a little coarser than the rig: the model reads 256x128
        width = 2 * round(fx * math.tan(math.radians(0.5 * hfov)))
        vhalf = math.atan(0.5 * cam.height / cam.fy) + abs(self.camera_mount.pitch) + abs(
            self.camera_mount.roll) + math.radians(1.0)
        height = 2 * math.ceil(fx * math.tan(vhalf))
        return CameraConfig(width=width, height=height, hfov=hfov,
                            mount_x=self.camera_mount.x, mount_height=self.camera_mount.z)

    def sim_options(self, base: SimOptions | None = None) -> SimOptions:
        base = base or SimOptions()
        radar = replace(base.radar, mount_x=self.radar_mount.x, mount_z=self.radar_mount.z)
        return replace(base, camera=self.render_camera(), radar=radar,
                       radar_rate=self.radar_rate)

    def static_transforms(self) -> list[tuple[str, str, Extrinsic]]:
        """(parent, child, pose) of /tf_static: vehicle -> camera -> optical, vehicle -> radar."""
        return [(self.vehicle_frame, self.camera_frame, self.camera_mount),
                (self.camera_frame, self.optical_frame, OPTICAL),
                (self.vehicle_frame, self.radar_frame, self.radar_mount)]

    @property
    def optical_frame(self) -> str:
        return f'{self.camera_frame}_optical_frame'

    def sensor_rig(self) -> SensorRig:
        """The geometry the front end reads from this rig's /tf_static and CameraInfo."""
        return SensorRig(radar_mount=self.radar_mount, camera_mount=self.camera_mount,
                         camera=PinholeCamera.from_config(self.camera))


def single_differences(rig: RigVariant) -> dict[str, RigVariant]:
    """The training rig with one of `rig`'s differences each: which of them costs accuracy.

    `<name>-camera` (resolution, field of view, mount, pitch), `<name>-radar-mount`,
    `<name>-radar-rate`, `<name>-radar-layout` (the point layout, e.g. no rcs).
    """
    base = RigVariant()
    return {f'{rig.name}-{part}': replace(base, name=f'{rig.name}-{part}', **changes)
            for part, changes in (
                ('camera', {'camera_width': rig.camera_width,
                            'camera_height': rig.camera_height,
                            'camera_hfov': rig.camera_hfov, 'camera_mount': rig.camera_mount}),
                ('radar-mount', {'radar_mount': rig.radar_mount}),
                ('radar-rate', {'radar_rate': rig.radar_rate}),
                ('radar-layout', {'radar_preset': rig.radar_preset}))}


TRAINING_RIG = RigVariant()
FOREIGN_RIG = RigVariant(
    name='foreign', camera_width=640, camera_height=360, camera_hfov=75.0,
    camera_mount=Extrinsic(x=1.6, y=0.0, z=1.25, pitch=math.radians(3.0)),
    radar_mount=Extrinsic(x=2.1, y=-0.35, z=0.45, yaw=math.radians(-4.0)),
    radar_rate=15.0, radar_preset='carla', camera_frame='front_camera',
    radar_frame='front_radar')
RIGS = {'training': TRAINING_RIG, 'foreign': FOREIGN_RIG, **single_differences(FOREIGN_RIG)}


class RigSensors:
    """Simulator frames (rendered with `rig.sim_options()`) -> the rig's camera and radar."""

    def __init__(self, rig: RigVariant) -> None:
        self.rig = rig
        self.identity = rig.is_training
        self._view = None
        if not rig.camera_is_training:
            render = PinholeCamera.from_config(rig.render_camera())
            target = PinholeCamera.from_config(rig.camera)
            # The render camera is level: relative to the rig camera it is turned by R_rig^T.
            self._view = CanonicalView(render, target, rig.camera_mount.rotation.T)
        self._radar_moved = rig.radar_mount != RigVariant().radar_mount
        self._render_mount = Extrinsic(x=rig.radar_mount.x, z=rig.radar_mount.z)

    def image(self, rgb: np.ndarray | None) -> np.ndarray | None:
        return rgb if rgb is None or self._view is None else self._view(rgb)

    def radar(self, points: np.ndarray | None) -> np.ndarray | None:
        """(N, 5|7) points of the level radar at the rig radar's x/z -> the rig radar frame."""
        if points is None or not self._radar_moved or len(points) == 0:
            return points
        out = np.array(points, np.float32, copy=True)
        vehicle = self._render_mount.to_parent(points[:, :3])
        out[:, :3] = self.rig.radar_mount.from_parent(vehicle)
        if points.shape[1] >= 7:  # over-ground velocity columns turn with the frame
            planar = np.zeros((len(points), 3))
            planar[:, :2] = points[:, 5:7]
            out[:, 5:7] = (planar @ self.rig.radar_mount.rotation)[:, :2]
        return out

    def frame(self, frame: SimFrame) -> SimFrame:
        if self.identity:
            return frame
        return replace(frame, rgb=self.image(frame.rgb), radar=self.radar(frame.radar))


def rig_frames(frames: Any, sensors: RigSensors) -> Any:
    """A frame stream seen through `sensors` (lazy)."""
    for frame in frames:
        yield sensors.frame(frame)


__all__ = ['FOREIGN_RIG', 'RIGS', 'TRAINING_RIG', 'RigSensors', 'RigVariant', 'rig_frames',
           'single_differences']
