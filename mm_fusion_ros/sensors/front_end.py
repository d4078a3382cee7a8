"""Messages -> model inputs, one class for serving and for training caches.

`SensorFrontEnd` holds everything between the sensor messages and the model: the radar preset's
conversion, the sensor geometry, radar preprocessing and history, ego speed from odometry, and
the camera's canonical view and history. `FusionPipeline` (nodes, replay, closed loop) and the
training cache builder both run it, so training and serving cannot drift apart.

Geometry. The model reads radar points in its *model radar frame*: the training rig's radar
mount (`sim.radar.RadarConfig`: on the front bumper, 2.3 m ahead of `base_link`, 0.5 m up,
facing forward). A rig's radar goes there through the vehicle frame: its mount (from
`/tf_static` or parameters) takes the points into `base_link`, the inverse of the training
mount into the model frame. For the simulator's radar both are the same and nothing moves.
The TTC corridor, the markers and the history all use these points. Cameras go through
`CanonicalView` into the training camera's view when their CameraInfo (or mount) differs.
Pure core: no rclpy.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mm_fusion_ros.sensors.camera_geometry import CanonicalView, PinholeCamera
from mm_fusion_ros.sensors.camera_history import CameraHistory
from mm_fusion_ros.sensors.ego_motion import ego_motion_sequence
from mm_fusion_ros.sensors.extrinsics import IDENTITY, Extrinsic, points_to_vehicle
from mm_fusion_ros.sensors.odometry import EgoSpeedBuffer
from mm_fusion_ros.sensors.radar_preprocess import RadarPreprocessConfig, preprocess_radar
from mm_fusion_ros.sensors.radar_presets import load_preset
from mm_fusion_ros.sensors.radar_sequence import (
    RadarSequence,
    RadarSequenceBuffer,
    RadarSequenceConfig,
)
from mm_fusion_ros.sim.camera import CameraConfig
from mm_fusion_ros.sim.radar import RadarConfig

NS = 1_000_000_000
MODEL_RADAR_MOUNT = RadarConfig().mount  # the training rig's radar: the model's radar frame
ODOMETRY_CAPACITY = 256  # readings kept: 2.5 s at 100 Hz, more than the radar history spans


@dataclass(frozen=True)
class SensorRig:
    """A vehicle's sensors: mounts in the vehicle frame, camera intrinsics (None: as trained)."""

    radar_mount: Extrinsic = MODEL_RADAR_MOUNT
    camera_mount: Extrinsic = CameraConfig().mount
    camera: PinholeCamera | None = None

    @property
    def radar_to_model(self) -> Extrinsic:
        """Pose of the rig's radar frame in the model radar frame."""
        inverse = Extrinsic.from_matrix(MODEL_RADAR_MOUNT.rotation.T,
                                        -MODEL_RADAR_MOUNT.rotation.T
                                        @ MODEL_RADAR_MOUNT.translation)
        pose = inverse.compose(self.radar_mount)
        return IDENTITY if np.allclose(pose.values, 0.0, atol=1e-9) else pose

    @property
    def camera_rotation(self) -> np.ndarray:
        """The rig camera's orientation against the training camera's (level, forward)."""
        return CameraConfig().mount.rotation.T @ self.camera_mount.rotation


class RadarToModel:
    """One cloud -> canonical points in the model radar frame: preset conversion, then mount.

    decision_node's safety layer reads the radar through this too, so its TTC corridor lies
    where the model's history does.
    """

    def __init__(self, preset: str, radar_mount: Extrinsic = MODEL_RADAR_MOUNT) -> None:
        self._convert = load_preset(preset).converter()
        self._velocity_columns = _velocity_columns(self._convert.features)
        self.set_mount(radar_mount)

    def set_mount(self, radar_mount: Extrinsic) -> None:
        self._pose = SensorRig(radar_mount=radar_mount).radar_to_model

    def __call__(self, cloud: Any) -> np.ndarray:
        return points_to_vehicle(self._convert(cloud), self._pose, self._velocity_columns)


@dataclass(frozen=True)
class FrontEndConfig:
    """What the model reads (`for_model`) and how the rig delivers it."""

    radar_preset: str = 'sim'
    sync_slop: float = 0.06  # [s] radar up to this much after the camera stamp still counts
    preprocess: RadarPreprocessConfig = field(default_factory=RadarPreprocessConfig)
    num_frames: int = 8  # radar history frames (the model's)
    max_points: int = 64  # points per history frame (the model's)
    odometry_max_age: float = 0.2  # [s]
    camera_history: float = 0.25  # [s] the earlier frame's age (0: none)
    radar_ego_motion: str = 'raw'  # FusionModelConfig.radar_ego_motion
    training_camera: CameraConfig = field(default_factory=CameraConfig)
    rig: SensorRig = field(default_factory=SensorRig)

    def sequence_config(self) -> RadarSequenceConfig:
        return RadarSequenceConfig(num_frames=self.num_frames, max_points=self.max_points,
                                   future_tolerance=self.sync_slop)


class SensorFrontEnd:
    """Sensor histories of one stream: radar, ego speed, camera (see the module doc)."""

    def __init__(self, config: FrontEndConfig) -> None:
        self.config = config
        self._to_model = RadarToModel(config.radar_preset)
        self.radar = RadarSequenceBuffer(config.sequence_config())
        self.ego_speed = EgoSpeedBuffer(config.odometry_max_age, ODOMETRY_CAPACITY)
        gap = config.camera_history
        self.camera = CameraHistory(gap) if gap > 0 else None
        self.set_rig(config.rig)

    # -- geometry ---------------------------------------------------------------------------
    def set_rig(self, rig: SensorRig) -> None:
        """New mounts or intrinsics (a CameraInfo, a transform): later frames use them."""
        self.rig = rig
        self._to_model.set_mount(rig.radar_mount)
        target = PinholeCamera.from_config(self.config.training_camera)
        rotation = rig.camera_rotation
        source = rig.camera if rig.camera is not None else (
            None if np.allclose(rotation, np.eye(3)) else target)
        self._view = None if source is None else CanonicalView(source, target, rotation)

    def set_camera(self, camera: PinholeCamera) -> None:
        if camera != self.rig.camera:
            self.set_rig(SensorRig(self.rig.radar_mount, self.rig.camera_mount, camera))

    # -- radar ------------------------------------------------------------------------------
    def radar_points(self, cloud: Any) -> np.ndarray:
        """Cleaned (N, F) points of one cloud in the model radar frame (raises on bad ones)."""
        return preprocess_radar(self._to_model(cloud), self.config.preprocess)

    def add_radar(self, stamp_ns: int, points: np.ndarray) -> None:
        self.radar.push(stamp_ns, points)

    def newest_radar_ns(self) -> int | None:
        stamps = self.radar.stamps
        return stamps[-1] if stamps else None

    # -- odometry -----------------------------------------------------------------------------
    def add_odometry(self, stamp_ns: int, speed: float) -> None:
        self.ego_speed.push(stamp_ns, speed)

    def speed_at(self, camera_stamp_ns: int) -> float | None:
        """Ego speed [m/s] for a camera frame (odometry up to the sync slop later counts)."""
        return self.ego_speed.at(camera_stamp_ns, round(self.config.sync_slop * NS))

    # -- camera -----------------------------------------------------------------------------
    def camera_view(self, rgb: np.ndarray) -> np.ndarray:
        """A decoded frame in the training camera's view.

        Raises CameraInfoError for a frame whose size does not match its CameraInfo.
        """
        return rgb if self._view is None else self._view(rgb)

    def add_camera(self, stamp_ns: int, frame: np.ndarray) -> np.ndarray | None:
        """Buffer a frame (from `camera_view`); returns the one `camera_history` s earlier."""
        return self.camera.push(stamp_ns, frame) if self.camera is not None else None

    def sequence(self, camera_stamp_ns: int) -> RadarSequence:
        """The model's radar window, showing the ego's motion as the model was trained on."""
        return ego_motion_sequence(self.radar.sequence(camera_stamp_ns), camera_stamp_ns,
                                   self.ego_speed, self.speed_at(camera_stamp_ns),
                                   self.config.radar_ego_motion)

    def reset(self) -> None:
        self.radar.clear()
        self.ego_speed.clear()
        if self.camera is not None:
            self.camera.clear()


def _velocity_columns(features: tuple[str, ...]) -> tuple[int, ...]:
    """Columns of the (vx, vy) over-ground velocity pair, when the preset provides it."""
    if 'vx' in features and 'vy' in features:
        vx = features.index('vx')
        if features.index('vy') == vx + 1:
            return (vx,)
    return ()


__all__ = ['MODEL_RADAR_MOUNT', 'FrontEndConfig', 'RadarToModel', 'SensorFrontEnd',
           'SensorRig']
