"""Closed loop on another sensor rig: the simulator renders the rig, the front end undoes it.

`mm-fusion closed-loop --rig NAME` drives the simulator with a rig of `sim.rig.RIGS`: the
scene is rendered as that rig's camera and radar see it (`sim.rig.RigSensors`, what
`mm-fusion record --rig` writes into bags), and the policy turns those frames back into the
model's canonical inputs with the rig's geometry, the way the nodes do with its /tf_static and
CameraInfo: the radar points go out in the rig preset's PointCloud2 layout
(`radar_presets.layout_cloud`, the bag writer's fields) and through `front_end.RadarToModel`
(preset converter, then mount), the camera frame through the front end's canonical view. The
wrapped `ModelPolicy` then sees what it sees on the training rig, so its pipeline, model and
safety layer (TTC corridor in the model radar frame) run unchanged.
"""

from dataclasses import replace
from typing import Any

from mm_fusion_ros.decision import Decision
from mm_fusion_ros.safety import SafetyConfig
from mm_fusion_ros.sensors.front_end import FrontEndConfig, RadarToModel, SensorFrontEnd
from mm_fusion_ros.sensors.radar_presets import layout_cloud, load_preset
from mm_fusion_ros.sim.camera import CameraConfig
from mm_fusion_ros.sim.rig import RigVariant
from mm_fusion_ros.sim.simulator import SimFrame


class RigInputs:
    """A rig's SimFrame (its camera image, its radar points) -> the model's canonical one."""

    def __init__(self, rig: RigVariant, training_camera: CameraConfig) -> None:
        self.rig = rig
        self._preset = load_preset(rig.radar_preset)
        self._radar = RadarToModel(rig.radar_preset, rig.radar_mount)
        self._front = SensorFrontEnd(FrontEndConfig(
            radar_preset=rig.radar_preset, training_camera=training_camera,
            rig=rig.sensor_rig()))

    def __call__(self, frame: SimFrame) -> SimFrame:
        rgb = None if frame.rgb is None else self._front.camera_view(frame.rgb)
        radar = None
        if frame.radar is not None:
            radar = self._radar(layout_cloud(self._preset, frame.radar[:, :5]))
        return replace(frame, rgb=rgb, radar=radar)


class RigPolicy:
    """`policy` (a `ModelPolicy`) fed through `RigInputs`; its `model_decision` shows through."""

    def __init__(self, policy: Any, inputs: RigInputs) -> None:
        self.policy = policy
        self.inputs = inputs

    @property
    def model_decision(self) -> Decision | None:
        return getattr(self.policy, 'model_decision', None)

    def __call__(self, frame: SimFrame) -> Decision:
        return self.policy(self.inputs(frame))


def rig_safety_config(rig: RigVariant, config: SafetyConfig) -> SafetyConfig:
    """The safety layer on `rig`: radar timeouts from its rate, as its preset file states it."""
    rate = rig.radar_rate or load_preset(rig.radar_preset).rate_hz
    return replace(config, radar_rate_hz=rate)


__all__ = ['RigInputs', 'RigPolicy', 'rig_safety_config']
