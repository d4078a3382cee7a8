"""One frame through the fusion stack: the sensor front end, then the model.

The fusion node, offline bag evaluation and the closed loop run this class, and the training
cache runs its front end (`sensors.front_end`), so replaying a bag offline, through the live
node, and building training data go through the same geometry, sync and preprocessing.
Pure core: takes message-like objects, never imports rclpy.
"""

from dataclasses import dataclass, field, replace
import math
from typing import Any

import numpy as np

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.safety import SafetyConfig
from mm_fusion_ros.sensors.front_end import FrontEndConfig, SensorFrontEnd, SensorRig
from mm_fusion_ros.sensors.image import image_to_rgb
from mm_fusion_ros.sensors.odometry import EgoSpeedBuffer
from mm_fusion_ros.sensors.radar_preprocess import RadarPreprocessConfig
from mm_fusion_ros.sensors.radar_sequence import RadarSequence, RadarSequenceBuffer
from mm_fusion_ros.sensors.sync import msg_stamp_ns
from mm_fusion_ros.sim.camera import CameraConfig

NS = 1_000_000_000


@dataclass
class PipelineConfig:
    radar_preset: str = 'sim'
    # [s] the newest radar frame may be this far from the camera stamp and still count as
    # synchronised (the approximate-time slop); older means the radar slot is missing.
    sync_slop: float = FrontEndConfig.sync_slop
    preprocess: RadarPreprocessConfig = field(default_factory=RadarPreprocessConfig)
    fallback_acceleration: float = SafetyConfig.fallback_acceleration  # unusable camera frame
    # [s] odometry older than this at the camera stamp leaves the ego speed unknown (the model
    # then runs its trained no-speed path and the decision is marked degraded).
    odometry_max_age: float = FrontEndConfig.odometry_max_age
    rig: SensorRig = field(default_factory=SensorRig)  # mounts, camera (default: as trained)


class FusionPipeline:
    """The sensor front end of one stream plus the model: frames in, a Decision out."""

    def __init__(self, predictor: Any, config: PipelineConfig | None = None) -> None:
        self.config = config or PipelineConfig()
        self.predictor = predictor
        self.front = SensorFrontEnd(front_end_config(self.config, predictor.config))

    @property
    def radar(self) -> RadarSequenceBuffer:
        return self.front.radar

    @property
    def ego_speed(self) -> EgoSpeedBuffer:
        return self.front.ego_speed

    # -- radar ------------------------------------------------------------------------------
    def radar_points(self, cloud: Any) -> np.ndarray:
        """Cleaned (N, F) points of one cloud in the model radar frame (raises on bad ones)."""
        return self.front.radar_points(cloud)

    def add_radar(self, stamp_ns: int, points: np.ndarray) -> None:
        self.front.add_radar(stamp_ns, points)

    def add_radar_msg(self, cloud: Any) -> np.ndarray:
        points = self.radar_points(cloud)
        self.add_radar(msg_stamp_ns(cloud), points)
        return points

    def radar_ready(self, camera_stamp_ns: int) -> bool:
        """True when a radar frame within the slop of the camera stamp is buffered."""
        newest = self.front.newest_radar_ns()
        return newest is not None and newest >= camera_stamp_ns - self.config.sync_slop * NS

    # -- odometry -----------------------------------------------------------------------------
    def add_odometry(self, stamp_ns: int, speed: float) -> None:
        self.front.add_odometry(stamp_ns, speed)

    def set_odometry_max_age(self, seconds: float) -> None:
        self.config = replace(self.config, odometry_max_age=seconds)
        self.front.ego_speed.max_age_ns = round(seconds * NS)

    def speed_at(self, camera_stamp_ns: int) -> float | None:
        """Ego speed [m/s] for a camera frame (odometry up to the sync slop later counts)."""
        return self.front.speed_at(camera_stamp_ns)

    # -- camera + model ---------------------------------------------------------------------
    def camera_view(self, rgb: np.ndarray) -> np.ndarray:
        """A decoded frame in the training camera's view (CameraInfoError on a mismatch)."""
        return self.front.camera_view(rgb)

    def add_camera(self, stamp_ns: int, rgb: np.ndarray) -> np.ndarray | None:
        """Buffer a frame (from `camera_view`); returns the one `camera_history` s earlier."""
        return self.front.add_camera(stamp_ns, rgb)

    def sequence(self, camera_stamp_ns: int) -> RadarSequence:
        """The model's radar window, showing the ego's motion as the model was trained on."""
        return self.front.sequence(camera_stamp_ns)

    def radar_degraded_reason(self, seq: RadarSequence) -> str:
        if not seq.frame_mask.any():
            return 'no radar history'
        if not seq.frame_mask[-1] or seq.time_offsets[-1] < -self.config.sync_slop:
            return 'no radar frame at the camera stamp'
        return ''

    def degraded_reason(self, seq: RadarSequence | None, speed: float | None) -> str:
        """Why the model's inputs are incomplete ('' when they are not).

        `seq` None: no radar expected (camera-only runs).
        """
        reasons = [self.radar_degraded_reason(seq) if seq is not None else '',
                   'no odometry (ego speed unknown)' if speed is None else '']
        return '; '.join(r for r in reasons if r)

    def decide(self, camera_stamp_ns: int, rgb: np.ndarray) -> Decision:
        """Run the model on one camera frame (buffered as history) and the radar history."""
        rgb = self.camera_view(rgb)
        previous = self.add_camera(camera_stamp_ns, rgb)
        seq = self.sequence(camera_stamp_ns)
        speed = self.speed_at(camera_stamp_ns)
        prediction = self.predictor.predict(rgb, seq, ego_speed=speed, previous_rgb=previous)
        return self.to_decision(camera_stamp_ns, prediction, self.degraded_reason(seq, speed))

    def decide_msg(self, image_msg: Any) -> Decision:
        return self.decide(msg_stamp_ns(image_msg), image_to_rgb(image_msg))

    @staticmethod
    def to_decision(stamp_ns: int, prediction: Any, degraded_reason: str = '') -> Decision:
        action = Action(int(prediction.action))
        return Decision(
            stamp_ns=stamp_ns,
            action=action,
            target_acceleration=float(prediction.target_acceleration),
            target_speed=math.nan,
            probabilities=np.asarray(prediction.probabilities, np.float32),
            confidence=float(prediction.confidence),
            source=DecisionSource.MODEL,
            degraded=bool(degraded_reason),
            degraded_reason=degraded_reason,
            inference_latency=float(prediction.latency_s),
        )

    def fallback(self, stamp_ns: int, reason: str) -> Decision:
        """Safe decision for an input the model cannot use."""
        return Decision(
            stamp_ns=stamp_ns,
            action=Action.STOP,
            target_acceleration=self.config.fallback_acceleration,
            target_speed=0.0,
            confidence=0.0,
            source=DecisionSource.FALLBACK,
            degraded=True,
            degraded_reason=reason,
        )

    def reset(self) -> None:
        self.front.reset()


def front_end_config(config: PipelineConfig, model: Any) -> FrontEndConfig:
    """The front end a model with config `model` reads, on the rig `config` describes."""
    return FrontEndConfig(
        radar_preset=config.radar_preset, sync_slop=config.sync_slop,
        preprocess=config.preprocess, num_frames=model.num_frames, max_points=model.max_points,
        odometry_max_age=config.odometry_max_age, camera_history=model.camera_history,
        radar_ego_motion=model.radar_ego_motion, training_camera=CameraConfig.for_view(model),
        rig=config.rig)
