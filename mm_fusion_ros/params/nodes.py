"""The parameters of fusion_node, decision_node and sim_node (see `params.spec`).

Where a parameter sets a core config (`PipelineConfig`, `SafetyConfig`, `CameraConfig`), its
default is read from that config, and `pipeline_config()` / `safety_config()` build the core
config the same way for the live node and for offline replay.
"""

from dataclasses import dataclass, fields
import re

from mm_fusion_ros.params.spec import param, params_markdown, params_yaml
from mm_fusion_ros.pipeline import PipelineConfig
from mm_fusion_ros.safety import SafetyConfig
from mm_fusion_ros.sensors.extrinsics import Extrinsic
from mm_fusion_ros.sensors.front_end import SensorRig
from mm_fusion_ros.sensors.radar_merge import RadarSource, check_topics, radar_sources
from mm_fusion_ros.sensors.radar_preprocess import RadarPreprocessConfig
from mm_fusion_ros.sensors.radar_presets import load_preset
from mm_fusion_ros.sim.camera import CameraConfig
from mm_fusion_ros.sim.conditions import CONDITIONS
from mm_fusion_ros.sim.dynamics import DynamicsConfig
from mm_fusion_ros.sim.radar import RadarConfig
from mm_fusion_ros.sim.scenarios import SCENARIO_TYPES

_DEVICE = re.compile(r'auto|cpu|cuda(:\d+)?')
_SCENARIOS = tuple(t.value for t in SCENARIO_TYPES)
_CONDITIONS = tuple(c.value for c in CONDITIONS)


def _check_device(value: str) -> None:
    if not _DEVICE.fullmatch(value):
        raise ValueError('expected auto, cpu, cuda or cuda:N')


def _check_preset(value: str) -> None:
    load_preset(value)  # RadarPresetError (a ValueError) names what is available


def _check_names(allowed: tuple[str, ...], everything: str):
    def check(values: list[str]) -> None:
        if values == [everything]:
            return
        unknown = sorted(set(values) - set(allowed))
        if unknown or not values:
            raise ValueError(f'unknown {unknown or "empty list"}; choose from {list(allowed)}'
                             f' or [{everything}]')
    return check


RADAR_PRESET = param(
    'sim', 'Radar message layout: a preset of config/radar_presets or a preset YAML path.',
    check=_check_preset, choices_doc='sim | carla | nuscenes | PATH.yaml', shared=True)
CAMERA_TRANSPORT = param('raw', 'Camera message type: sensor_msgs/Image or CompressedImage.',
                         choices=('raw', 'compressed'), shared=True)


def _check_mount(values: list[float]) -> None:
    if len(values) != 6:
        raise ValueError('a mount is [x, y, z, roll, pitch, yaw]')


RADAR_MOUNT = param(RadarConfig().mount.values, 'Radar frame in the vehicle frame: x, y, z [m], '
                    "roll, pitch, yaw [rad] (default: the simulator's, the training rig's).",
                    check=_check_mount, shared=True)
CAMERA_MOUNT = param(CameraConfig().mount.values, 'Camera body frame (x forward) in the vehicle '
                     "frame: x, y, z [m], roll, pitch, yaw [rad] (default: the simulator's).",
                     check=_check_mount, shared=True)
RADAR_TYPE = param('pointcloud2', 'Radar message type: sensor_msgs/PointCloud2 (read through '
                   'radar_preset) or radar_msgs/RadarScan (needs radar_msgs: a ROS distro).',
                   choices=('pointcloud2', 'radar_scan'), shared=True)


RADAR_TOPICS = param(['~/input/radar'], 'Radar topics; several are merged in the vehicle frame '
                     "into one history at the first one's rate (docs/integration.md).",
                     check=check_topics, shared=True)
RADAR_MOUNTS = param(RadarConfig().mount.values, 'With several radar_topics: the mount of '
                     'each, 6 numbers per topic in order (x, y, z [m], roll, pitch, yaw [rad]); '
                     'one topic: radar_mount.', shared=True)


def _check_sign(value: int) -> None:
    if value not in (-1, 1):
        raise ValueError('1 or -1')


DOPPLER_SIGN = param(1, 'radar_scan: 1 when doppler_velocity is positive receding (the range '
                     'rate), -1 when positive approaching.', choices_doc='1 | -1',
                     check=_check_sign, shared=True)
# Parameters that more than one node declares are one field object each: one default.
CAMERA_FRAME_ID = param('camera', 'Frame of the camera messages.')
RADAR_FRAME_ID = param('radar', 'Frame of the radar messages.')


@dataclass(frozen=True)
class FusionNodeParams:
    """fusion_node: camera + radar (+ odometry) -> model -> raw decision."""

    camera_transport: str = CAMERA_TRANSPORT
    radar_preset: str = RADAR_PRESET
    checkpoint: str = param('', 'Model checkpoint (.pt); empty: the one shipped in the package.')
    device: str = param('auto', 'Inference device; auto takes CUDA when there is one.',
                        check=_check_device, choices_doc='auto | cpu | cuda | cuda:N')
    num_threads: int = param(1, 'CPU inference threads (1 beat 2 on a 2-core machine: '
                             'p99 5.9 vs 7.9 ms).', low=1, high=256)
    sync_slop: float = param(PipelineConfig.sync_slop, 'Max camera-radar stamp difference of '
                             'a synchronised pair.', unit='[s]', low=0.0, high=1.0)
    radar_wait: float = param(0.03, 'How long a camera frame waits for its radar frame '
                              'before the model runs without it.', unit='[s]', low=0.0,
                              high=1.0, read_only=False)
    odometry_max_age: float = param(PipelineConfig.odometry_max_age, 'Older odometry leaves '
                                    'the ego speed unknown and the decision degraded.',
                                    unit='[s]', low=0.0, high=10.0, read_only=False)
    queue_size: int = param(1, 'Camera frames waiting for the model; the oldest is dropped.',
                            low=1, high=100, read_only=False)
    expected_camera_rate: float = param(20.0, 'Warn when far fewer camera frames arrive (DDS '
                                        'transport limits); 0: never.', unit='[Hz]', low=0.0,
                                        high=1000.0, read_only=False)
    max_radar_points: int = param(RadarPreprocessConfig.max_points, 'Radar points kept per '
                                  'frame (strongest rcs).', low=1, high=100000)
    markers_every: int = param(2, 'Publish RViz markers every N decisions; 0: never.', low=0,
                               high=1000, read_only=False)
    diagnostics_period: float = param(1.0, 'Diagnostics publish period.', unit='[s]', low=0.1,
                                      high=60.0)
    frame_id: str = param('base_link', 'Frame of the decision and markers.', read_only=False)
    radar_mount: list = RADAR_MOUNT
    camera_mount: list = CAMERA_MOUNT
    use_camera_info: bool = param(True, "Resample camera frames into the training camera's view "
                                  'from their CameraInfo; false: frames as they come.')
    radar_type: str = RADAR_TYPE
    radar_topics: list = RADAR_TOPICS
    radar_mounts: list = RADAR_MOUNTS
    radar_doppler_sign: int = DOPPLER_SIGN

    def __post_init__(self) -> None:
        self.radars()

    def radars(self) -> list[RadarSource]:
        """Each radar input with its mount (radar_topics, radar_mounts, radar_mount)."""
        return radar_sources(self.radar_topics, self.radar_mounts, self.radar_mount)

    def rig(self) -> SensorRig:
        return SensorRig(Extrinsic.from_values(self.radar_mount),
                         Extrinsic.from_values(self.camera_mount))

    def pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(
            radar_preset=self.radar_preset,
            sync_slop=self.sync_slop,
            preprocess=RadarPreprocessConfig(max_points=self.max_radar_points),
            odometry_max_age=self.odometry_max_age,
            rig=self.rig(),
        )


@dataclass(frozen=True)
class DecisionNodeParams(SafetyConfig):
    """decision_node: the safety layer's settings (`SafetyConfig`) plus the node's own."""

    radar_preset: str = RADAR_PRESET
    radar_mount: list = RADAR_MOUNT
    watchdog_rate: float = param(100.0, 'Staleness checks per second.', unit='[Hz]', low=1.0,
                                 high=1000.0)
    fallback_rate: float = param(20.0, 'While an input is stale (or before the first fusion '
                                 'output) the fallback is republished at this rate; its onset '
                                 'goes out at once.', unit='[Hz]', low=0.1, high=1000.0)
    diagnostics_period: float = param(1.0, 'Diagnostics publish period.', unit='[s]', low=0.1,
                                      high=60.0)
    frame_id: str = param('base_link', 'Frame of the decision and the command.',
                          read_only=False)
    radar_type: str = RADAR_TYPE
    radar_topics: list = RADAR_TOPICS
    radar_mounts: list = RADAR_MOUNTS
    radar_doppler_sign: int = DOPPLER_SIGN
    ackermann_output: bool = param(False, 'Also publish ackermann_msgs/AckermannDriveStamped on '
                                   'decision/ackermann_cmd (needs ackermann_msgs: a ROS distro; '
                                   'configure fails without it).')
    ackermann_horizon: float = param(1.0, 'Ackermann speed target: ego speed + target '
                                     'acceleration times this, so the controller keeps '
                                     'accelerating at the target between decisions.',
                                     unit='[s]', low=0.05, high=10.0, read_only=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.radars()

    def radars(self) -> list[RadarSource]:
        """Each radar input with its mount (radar_topics, radar_mounts, radar_mount)."""
        return radar_sources(self.radar_topics, self.radar_mounts, self.radar_mount)

    def safety_config(self) -> SafetyConfig:
        values = {f.name: getattr(self, f.name) for f in fields(SafetyConfig)}
        values['radar_rate_hz'] = load_preset(self.radar_preset).rate_hz
        return SafetyConfig(**values)


@dataclass(frozen=True)
class SimNodeParams:
    """sim_node: the scenario simulator on ROS topics."""

    scenarios: list = param(['mix'], 'Scenario types, or [mix]: the training mix of all types.',
                            check=_check_names(_SCENARIOS, 'mix'),
                            choices_doc=f'[mix] | a list of {", ".join(_SCENARIOS)}')
    conditions: list = param(['all'], 'Conditions, or [all].',
                             check=_check_names(_CONDITIONS, 'all'),
                             choices_doc=f'[all] | a list of {", ".join(_CONDITIONS)}')
    episodes: int = param(12, 'Episodes to run; 0: forever.', low=0, high=1000000)
    seed: int = param(900000, 'Seed of the first episode (training uses 0.., validation '
                      '500000.., held-out 900000..).', low=0, high=2**31 - 1)
    duration: float = param(15.0, 'Episode length.', unit='[s]', low=1.0, high=3600.0)
    lockstep: bool = param(False, "Wait for each frame's decision before stepping (with "
                           'publish_clock).')
    publish_clock: bool = param(False, 'Publish /clock; the other nodes then use_sim_time.')
    decision_timeout: float = param(1.0, 'Lockstep: wall time to wait for a decision.',
                                    unit='[s]', low=0.01, high=60.0)
    camera_width: int = param(CameraConfig.width, "Camera width: the model's view (twice it "
                              'for a model with a fovea).', unit='[px]', low=16, high=4096)
    camera_height: int = param(CameraConfig.height, 'Camera height.', unit='[px]', low=16,
                               high=4096)
    camera_frame_id: str = CAMERA_FRAME_ID
    radar_frame_id: str = RADAR_FRAME_ID


def _check_address(value: str) -> None:
    if not value.strip():
        raise ValueError('empty; 127.0.0.1 (loopback) keeps the view on this machine')


@dataclass(frozen=True)
class ViewNodeParams:
    """view_node (`--view`): where the live view is served and what it draws."""

    address: str = param('127.0.0.1', 'Bind address of the view server (web viewer and data '
                         'port); any other than loopback shows the camera frames to everyone '
                         'who reaches it.', check=_check_address)
    port: int = param(9090, 'Web viewer port (HTTP); the data (gRPC) port is the next one.',
                      low=1, high=65534)
    memory_limit: str = param('1GiB', 'Log data the server keeps for viewers that connect '
                              'late; the oldest goes first.')
    radar_preset: str = RADAR_PRESET
    camera_transport: str = CAMERA_TRANSPORT
    max_rate: float = param(25.0, 'Camera and radar frames drawn per second of wall time '
                            '(bursts of 2 pass); a faster stream is thinned. 0: every frame.',
                            unit='[Hz]', low=0.0, high=1000.0)
    ego_length: float = param(DynamicsConfig.length, 'Drawn ego box length.', unit='[m]',
                              low=0.1, high=50.0)
    ego_width: float = param(DynamicsConfig.width, 'Drawn ego box width.', unit='[m]', low=0.1,
                             high=10.0)
    ego_height: float = param(1.5, 'Drawn ego box height.', unit='[m]', low=0.1, high=10.0)
    corridor_half_width: float = param(
        SafetyConfig.corridor_half_width, "The TTC corridor drawn (keep decision_node's "
        'value).', unit='[m]', low=0.5, high=5.0)
    ttc_brake_threshold: float = param(
        SafetyConfig.ttc_brake_threshold, "The TTC override threshold drawn (keep "
        "decision_node's value).", unit='[s]', low=0.1, high=10.0)
    camera_mount: list = CAMERA_MOUNT
    radar_mount: list = RADAR_MOUNT
    base_frame_id: str = param('base_link', 'Vehicle frame.')
    camera_frame_id: str = CAMERA_FRAME_ID
    radar_frame_id: str = RADAR_FRAME_ID


NODE_PARAMS: dict[str, type] = {
    'sim_node': SimNodeParams,
    'fusion_node': FusionNodeParams,
    'decision_node': DecisionNodeParams,
    'view_node': ViewNodeParams,
}

PARAMS_HEADER = """mm_fusion_ros node parameters: graph-wide settings in /**, a block per node.
Written from the nodes' parameter specs (mm_fusion_ros/params/nodes.py) by
`mm-fusion params --write config/params.yaml`; a test keeps the two equal. For your vehicle,
copy this file, change what you need, and pass it as the launch argument params_file
(or `mm-fusion up --params-file`). Units in brackets; '(settable at run time)' parameters
take `ros2 param set`, the others are read when the node starts."""


def params_doc() -> str:
    """docs/parameters.md: one table per node (`mm-fusion params --markdown`)."""
    parts = ['# Node parameters', '',
             'Written from the parameter specs (`mm_fusion_ros/params/nodes.py`) by',
             '`mm-fusion params --markdown`; a test keeps this file equal to it. Defaults are the',
             "shipped `config/params.yaml`'s; shared parameters sit in its `/**` block.", '']
    for node, cls in NODE_PARAMS.items():
        parts += [f'## {node}', '', params_markdown(cls), '']
    return '\n'.join(parts)


def shipped_params_yaml() -> str:
    """The text of config/params.yaml: every node's parameters with their defaults."""
    return params_yaml(NODE_PARAMS, PARAMS_HEADER)
