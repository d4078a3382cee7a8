"""One frame through the fusion stack: radar conversion, preprocessing, history, model.

The fusion node and offline bag evaluation both run this class, so replaying a bag offline
and through the live node goes through exactly the same sync, preprocessing and model path.
Pure core: takes message-like objects, never imports rclpy.
"""

from dataclasses import dataclass, field
import math
from typing import Any

import numpy as np

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.sensors.camera_history import CameraHistory
from mm_fusion_ros.sensors.ego_motion import ego_motion_sequence
from mm_fusion_ros.sensors.image import image_to_rgb
from mm_fusion_ros.sensors.odometry import EgoSpeedBuffer
from mm_fusion_ros.sensors.radar_preprocess import RadarPreprocessConfig, preprocess_radar
from mm_fusion_ros.sensors.radar_presets import load_preset
from mm_fusion_ros.sensors.radar_sequence import (
    RadarSequence,
    RadarSequenceBuffer,
    RadarSequenceConfig,
)
from mm_fusion_ros.sensors.sync import msg_stamp_ns

NS = 1_000_000_000


@dataclass
class PipelineConfig:
    radar_preset: str = 'sim'
    # [s] the newest radar frame may be this far from the camera stamp and still count as
    # synchronised (the approximate-time slop); older means the radar slot is missing.
    sync_slop: float = 0.06
    preprocess: RadarPreprocessConfig = field(default_factory=RadarPreprocessConfig)
    fallback_acceleration: float = -3.0  # [m/s^2] when the camera frame is unusable
    # [s] odometry older than this at the camera stamp leaves the ego speed unknown (the model
    # then runs its trained no-speed path and the decision is marked degraded).
    odometry_max_age: float = 0.2


class FusionPipeline:
    """Keeps the sensor histories and turns (camera frames, radar history) into a Decision."""

    def __init__(self, predictor: Any, config: PipelineConfig | None = None) -> None:
        self.config = config or PipelineConfig()
        self.predictor = predictor
        model_cfg = predictor.config
        self._to_canonical = load_preset(self.config.radar_preset).converter()
        self.radar = RadarSequenceBuffer(
            RadarSequenceConfig(
                num_frames=model_cfg.num_frames,
                max_points=model_cfg.max_points,
                future_tolerance=self.config.sync_slop,
            )
        )
        self.ego_speed = EgoSpeedBuffer(self.config.odometry_max_age)
        gap = model_cfg.camera_history
        self.camera = CameraHistory(gap) if gap > 0 else None

    # -- radar ------------------------------------------------------------------------------
    def radar_points(self, cloud: Any) -> np.ndarray:
        """Canonical, cleaned (N, F) points of one cloud (raises on a malformed cloud)."""
        return preprocess_radar(self._to_canonical(cloud), self.config.preprocess)

    def add_radar(self, stamp_ns: int, points: np.ndarray) -> None:
        self.radar.push(stamp_ns, points)

    def add_radar_msg(self, cloud: Any) -> np.ndarray:
        points = self.radar_points(cloud)
        self.add_radar(msg_stamp_ns(cloud), points)
        return points

    def newest_radar_ns(self) -> int | None:
        stamps = self.radar.stamps
        return stamps[-1] if stamps else None

    def radar_ready(self, camera_stamp_ns: int) -> bool:
        """True when a radar frame within the slop of the camera stamp is buffered."""
        newest = self.newest_radar_ns()
        return newest is not None and newest >= camera_stamp_ns - self.config.sync_slop * NS

    # -- odometry -----------------------------------------------------------------------------
    def add_odometry(self, stamp_ns: int, speed: float) -> None:
        self.ego_speed.push(stamp_ns, speed)

    def speed_at(self, camera_stamp_ns: int) -> float | None:
        """Ego speed [m/s] for a camera frame (odometry up to the sync slop later counts)."""
        return self.ego_speed.at(camera_stamp_ns, round(self.config.sync_slop * NS))

    # -- camera + model ---------------------------------------------------------------------
    def add_camera(self, stamp_ns: int, rgb: np.ndarray) -> np.ndarray | None:
        """Buffer a decoded frame; returns the one `camera_history` s earlier (None: none)."""
        return self.camera.push(stamp_ns, rgb) if self.camera is not None else None

    def sequence(self, camera_stamp_ns: int) -> RadarSequence:
        """The model's radar window, showing the ego's motion as the model was trained on."""
        return ego_motion_sequence(self.radar.sequence(camera_stamp_ns), camera_stamp_ns,
                                   self.ego_speed, self.speed_at(camera_stamp_ns),
                                   self.predictor.config.radar_ego_motion)

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
        self.radar.clear()
        self.ego_speed.clear()
        if self.camera is not None:
            self.camera.clear()
