"""Simulator episodes -> rosbag2 (MCAP or SQLite3) with the topics the live sim publishes.

Written with rosbags (no ROS distro needed), bag format version `Writer.VERSION_LATEST`
(9: per-topic `type_description_hash` and QoS profiles as a YAML list, what `ros2 bag play`
of Jazzy and newer reads). Header stamps are `base_time_ns + sim stamp`, and every message is
logged at its own header stamp, so `ros2 bag play --clock` replays sim time exactly.

Episode metadata goes into the bag as messages, not as bag custom_data, so any tool that
replays or re-records the bag keeps it:
- `/sim/episode` (std_msgs/String, once at the start, transient-local): JSON with scenario,
  condition, seed, duration, dt, base_time_ns;
- `/sim/ground_truth/expert` (std_msgs/String, per frame): JSON with stamp_ns and the
  expert's ttc [s] (null when there is no threat, i.e. inf), since DrivingDecision has no ttc.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
import heapq
import json
import math
from pathlib import Path
import time
from typing import Any

import numpy as np
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer

from mm_fusion_ros import graph
from mm_fusion_ros.actions import ACTION_LABELS, NUM_ACTIONS, Action, lane_change_intent
from mm_fusion_ros.bags.typestore import DRIVING_DECISION, project_typestore
from mm_fusion_ros.sensors.extrinsics import matrix_to_quaternion
from mm_fusion_ros.sensors.radar_presets import layout_values, load_preset
from mm_fusion_ros.sim.camera import CameraConfig
from mm_fusion_ros.sim.scenarios import ScenarioConfig
from mm_fusion_ros.sim.simulator import SimFrame

NS = 1_000_000_000
# 2024-01-01T00:00:00Z: a fixed, non-zero epoch so bags are byte-reproducible and no tool
# mistakes stamp 0 for "unset".
DEFAULT_BASE_TIME_NS = 1_704_067_200 * NS

IMAGE_TOPIC = '/' + graph.CAMERA_IMAGE
COMPRESSED_IMAGE_TOPIC = '/' + graph.CAMERA_COMPRESSED
CAMERA_INFO_TOPIC = '/' + graph.CAMERA_INFO
RADAR_TOPIC = '/' + graph.RADAR_POINTS
GROUND_TRUTH_TOPIC = '/' + graph.GROUND_TRUTH_DECISION
ODOM_TOPIC = '/' + graph.EGO_ODOMETRY
CLOCK_TOPIC = '/clock'
EPISODE_TOPIC = '/sim/episode'
EXPERT_TOPIC = '/sim/ground_truth/expert'
TF_STATIC_TOPIC = '/tf_static'

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
POINT_CLOUD2 = 'sensor_msgs/msg/PointCloud2'
ODOMETRY = 'nav_msgs/msg/Odometry'
CLOCK = 'rosgraph_msgs/msg/Clock'
STRING = 'std_msgs/msg/String'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'

STORAGES = ('mcap', 'sqlite3')

_ZERO = QosTime(0, 0)  # rmw "unspecified": the publisher's default (infinite)
# What the sim node offers: qos_profile_sensor_data for sensors, the default profile
# (reliable, depth 10) for the rest; `ros2 bag play` republishes with these.
SENSOR_QOS = Qos(QosHistory.KEEP_LAST, 5, QosReliability.BEST_EFFORT, QosDurability.VOLATILE,
                 _ZERO, _ZERO, QosLiveliness.AUTOMATIC, _ZERO, False)
DEFAULT_QOS = Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE,
                  _ZERO, _ZERO, QosLiveliness.AUTOMATIC, _ZERO, False)
LATCHED_QOS = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE,
                  QosDurability.TRANSIENT_LOCAL, _ZERO, _ZERO, QosLiveliness.AUTOMATIC, _ZERO,
                  False)


class BagWriteError(RuntimeError):
    """A bag that cannot be written (bad arguments, existing path, encoder failure)."""


@dataclass(frozen=True)
class BagWriteOptions:
    """How an episode is laid out in the bag."""

    storage: str = 'mcap'            # 'mcap' | 'sqlite3'
    compressed_images: bool = False  # CompressedImage (JPEG) instead of raw rgb8
    jpeg_quality: int = 90
    base_time_ns: int = DEFAULT_BASE_TIME_NS  # header stamp of sim time 0 [ns]
    camera_frame_id: str = 'camera'
    radar_frame_id: str = 'radar'
    radar_preset: str = 'sim'        # PointCloud2 layout (the preset's documented fields)
    ground_truth: bool = True        # the expert's decision and ttc topics (False: a drive
    # as a user's vehicle logs it; the expert's labels then live elsewhere, if anywhere)
    # /tf_static, written once at the start: (parent, child, pose of child in parent)
    static_transforms: tuple[tuple[str, str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise BagWriteError(f'storage must be one of {STORAGES}, got {self.storage!r}')
        if not 1 <= self.jpeg_quality <= 100:
            raise BagWriteError(f'jpeg_quality must be in 1..100, got {self.jpeg_quality}')


@dataclass(frozen=True)
class BagWriteStats:
    path: Path
    frames: int
    messages: int
    bytes: int
    seconds: float  # wall time spent writing (encoding + storage)


def episode_info(config: ScenarioConfig, base_time_ns: int) -> dict[str, Any]:
    """The /sim/episode JSON payload."""
    return {
        'scenario': config.scenario.value, 'condition': config.condition.value,
        'seed': int(config.seed), 'duration': float(config.duration), 'dt': float(config.dt),
        'base_time_ns': int(base_time_ns),
    }


def frame_stamp_ns(base_time_ns: int, stamp: float) -> int:
    """Sim time [s] -> header stamp [ns]; the cache's sim fast path uses the same rounding."""
    return int(base_time_ns) + round(stamp * NS)


class _Encoder:
    """Builds and CDR-serialises the messages of one frame (rosbags message classes)."""

    def __init__(self, options: BagWriteOptions, camera: CameraConfig) -> None:
        self.opt = options
        self.store = project_typestore()
        t = self.store.types
        self.T = t
        self.k = np.asarray(camera.K, np.float64).ravel()
        p = np.zeros((3, 4))
        p[:, :3] = camera.K
        self.p = p.ravel()
        preset = load_preset(options.radar_preset)
        fields = preset.layout_fields()
        if not fields:
            raise BagWriteError(f'radar preset {options.radar_preset!r} documents no layout')
        self.point_step = preset.point_step or max(
            f.offset + 4 * f.count for f in fields)
        self.fields = [t['sensor_msgs/msg/PointField'](
            name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in fields]
        self.radar_dtype = np.dtype({
            'names': [f.name for f in fields],
            'formats': [_np_type(f.datatype) for f in fields],
            'offsets': [f.offset for f in fields],
            'itemsize': self.point_step,
        })
        self.radar_names = [f.name for f in fields]
        self.radar_sources = preset.sources
        self.labels = list(ACTION_LABELS)

    def ser(self, msg: Any, typename: str) -> memoryview:
        return self.store.serialize_cdr(msg, typename)

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        time_t = self.T['builtin_interfaces/msg/Time']
        stamp = time_t(sec=stamp_ns // NS, nanosec=stamp_ns % NS)
        return self.T['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)

    def image(self, stamp_ns: int, rgb: np.ndarray) -> tuple[str, memoryview]:
        hdr = self.header(stamp_ns, self.opt.camera_frame_id)
        rgb = np.ascontiguousarray(rgb, np.uint8)
        if self.opt.compressed_images:
            msg = self.T[COMPRESSED_IMAGE](header=hdr, format='rgb8; jpeg compressed bgr8',
                                            data=_jpeg(rgb, self.opt.jpeg_quality))
            return COMPRESSED_IMAGE, self.ser(msg, COMPRESSED_IMAGE)
        h, w = rgb.shape[:2]
        msg = self.T[IMAGE](header=hdr, height=h, width=w, encoding='rgb8', is_bigendian=0,
                            step=w * 3, data=rgb.reshape(-1))
        return IMAGE, self.ser(msg, IMAGE)

    def camera_info(self, stamp_ns: int, shape: tuple[int, ...]) -> memoryview:
        roi = self.T['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        msg = self.T[CAMERA_INFO](
            header=self.header(stamp_ns, self.opt.camera_frame_id), height=shape[0],
            width=shape[1], distortion_model='plumb_bob', d=np.zeros(5), k=self.k,
            r=np.eye(3).ravel(), p=self.p, binning_x=0, binning_y=0, roi=roi)
        return self.ser(msg, CAMERA_INFO)

    def radar(self, stamp_ns: int, points: np.ndarray) -> memoryview:
        points = np.asarray(points, np.float32)
        arr = np.zeros(points.shape[0], self.radar_dtype)
        for name, values in layout_values(points, self.radar_sources).items():
            if name in self.radar_names:
                arr[name] = values
        n = int(arr.shape[0])
        msg = self.T[POINT_CLOUD2](
            header=self.header(stamp_ns, self.opt.radar_frame_id), height=1, width=n,
            fields=self.fields, is_bigendian=False, point_step=self.point_step,
            row_step=self.point_step * n, data=np.frombuffer(arr.tobytes(), np.uint8),
            is_dense=False)
        return self.ser(msg, POINT_CLOUD2)

    def truth(self, stamp_ns: int, frame: SimFrame) -> memoryview:
        action = Action(int(frame.label.action))
        probs = np.zeros(NUM_ACTIONS, np.float32)
        probs[int(action)] = 1.0
        msg = self.T[DRIVING_DECISION](
            header=self.header(stamp_ns, 'base_link'), action=int(action),
            action_label=action.label, class_labels=self.labels, class_probabilities=probs,
            confidence=1.0, target_acceleration=float(frame.label.target_acceleration),
            target_speed=float(frame.ego.speed),
            lane_change_intent=int(lane_change_intent(action)), source=0, degraded=False,
            degraded_reason='', inference_latency=0.0)
        return self.ser(msg, DRIVING_DECISION)

    def odom(self, stamp_ns: int, frame: SimFrame) -> memoryview:
        t = self.T
        pose = t['geometry_msgs/msg/Pose'](
            position=t['geometry_msgs/msg/Point'](x=float(frame.ego.x), y=float(frame.ego.y),
                                                  z=0.0),
            orientation=t['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0))
        twist = t['geometry_msgs/msg/Twist'](
            linear=t['geometry_msgs/msg/Vector3'](x=float(frame.ego.speed), y=0.0, z=0.0),
            angular=t['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0))
        msg = t[ODOMETRY](
            header=self.header(stamp_ns, 'map'), child_frame_id='base_link',
            pose=t['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=np.zeros(36)),
            twist=t['geometry_msgs/msg/TwistWithCovariance'](twist=twist,
                                                             covariance=np.zeros(36)))
        return self.ser(msg, ODOMETRY)

    def tf_static(self, stamp_ns: int) -> memoryview:
        t = self.T
        transforms = []
        for parent, child, pose in self.opt.static_transforms:
            qx, qy, qz, qw = matrix_to_quaternion(pose.rotation)
            transforms.append(t['geometry_msgs/msg/TransformStamped'](
                header=self.header(stamp_ns, parent), child_frame_id=child,
                transform=t['geometry_msgs/msg/Transform'](
                    translation=t['geometry_msgs/msg/Vector3'](
                        x=float(pose.x), y=float(pose.y), z=float(pose.z)),
                    rotation=t['geometry_msgs/msg/Quaternion'](x=qx, y=qy, z=qz, w=qw))))
        return self.ser(t[TF_MESSAGE](transforms=transforms), TF_MESSAGE)

    def clock(self, stamp_ns: int) -> memoryview:
        stamp = self.T['builtin_interfaces/msg/Time'](sec=stamp_ns // NS, nanosec=stamp_ns % NS)
        return self.ser(self.T[CLOCK](clock=stamp), CLOCK)

    def string(self, text: str) -> memoryview:
        return self.ser(self.T[STRING](data=text), STRING)


def _np_type(datatype: int) -> str:
    from mm_fusion_ros.sensors.pointcloud import DATATYPES

    return DATATYPES[datatype].str


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image as PilImage

    buf = io.BytesIO()
    PilImage.fromarray(rgb, 'RGB').save(buf, format='JPEG', quality=quality)
    return np.frombuffer(buf.getvalue(), np.uint8)


def write_episode_bag(
    path: str | Path,
    frames: Iterable[SimFrame],
    config: ScenarioConfig,
    storage: str = 'mcap',
    compressed_images: bool = False,
    options: BagWriteOptions | None = None,
    camera: CameraConfig | None = None,
) -> BagWriteStats:
    """Write one episode (frames may be a generator: nothing is held beyond one frame).

    `options` overrides `storage`/`compressed_images` when given. `camera` gives CameraInfo's
    intrinsics (default: the simulator's default camera).
    """
    opt = options or BagWriteOptions(storage=storage, compressed_images=compressed_images)
    path = Path(path)
    enc = _Encoder(opt, camera or CameraConfig())
    plugin = StoragePlugin.MCAP if opt.storage == 'mcap' else StoragePlugin.SQLITE3
    writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugin)
    t0 = time.perf_counter()
    image_topic = COMPRESSED_IMAGE_TOPIC if opt.compressed_images else IMAGE_TOPIC
    image_type = COMPRESSED_IMAGE if opt.compressed_images else IMAGE
    count = nframes = 0
    try:
        writer.open()
        store = enc.store

        def conn(topic: str, typename: str, qos: Qos) -> Any:
            return writer.add_connection(topic, typename, typestore=store,
                                         offered_qos_profiles=[qos])

        conns = {
            'episode': conn(EPISODE_TOPIC, STRING, LATCHED_QOS),
            'clock': conn(CLOCK_TOPIC, CLOCK, DEFAULT_QOS),
            'image': conn(image_topic, image_type, SENSOR_QOS),
            'info': conn(CAMERA_INFO_TOPIC, CAMERA_INFO, SENSOR_QOS),
            'radar': conn(RADAR_TOPIC, POINT_CLOUD2, SENSOR_QOS),
            'odom': conn(ODOM_TOPIC, ODOMETRY, DEFAULT_QOS),
        }
        if opt.ground_truth:
            conns['truth'] = conn(GROUND_TRUTH_TOPIC, DRIVING_DECISION, DEFAULT_QOS)
            conns['expert'] = conn(EXPERT_TOPIC, STRING, DEFAULT_QOS)
        if opt.static_transforms:
            conns['tf_static'] = conn(TF_STATIC_TOPIC, TF_MESSAGE, LATCHED_QOS)
        info = json.dumps(episode_info(config, opt.base_time_ns), sort_keys=True)
        # Radar stamps may precede their camera stamp: a small heap keeps log times ordered.
        heap: list[tuple[int, int, str, memoryview]] = []
        seq = 0
        first = True
        for frame in frames:
            stamp_ns = frame_stamp_ns(opt.base_time_ns, frame.stamp)
            items = list(_frame_messages(enc, frame, stamp_ns, opt))
            if first:
                start = min([stamp_ns] + [t for t, _, _ in items])
                items.append((start, 'episode', enc.string(info)))
                if opt.static_transforms:
                    items.append((start, 'tf_static', enc.tf_static(start)))
                first = False
            for t, key, data in items:
                heapq.heappush(heap, (t, seq, key, data))
                seq += 1
            # Everything older than this frame's camera minus 1 s can no longer be preceded.
            while heap and heap[0][0] < stamp_ns - NS:
                t, _, key, data = heapq.heappop(heap)
                writer.write(conns[key], t, data)
                count += 1
            nframes += 1
        while heap:
            t, _, key, data = heapq.heappop(heap)
            writer.write(conns[key], t, data)
            count += 1
        writer.close()
    except BaseException:
        if writer.storage is not None:
            writer.abort()
        raise
    seconds = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return BagWriteStats(path, nframes, count, size, seconds)


def _frame_messages(
    enc: _Encoder, frame: SimFrame, stamp_ns: int, opt: BagWriteOptions,
) -> Iterator[tuple[int, str, memoryview]]:
    yield stamp_ns, 'clock', enc.clock(stamp_ns)
    if frame.rgb is not None:
        _, data = enc.image(stamp_ns, frame.rgb)
        yield stamp_ns, 'image', data
        yield stamp_ns, 'info', enc.camera_info(stamp_ns, frame.rgb.shape)
    if frame.radar is not None:
        radar_ns = frame_stamp_ns(opt.base_time_ns, frame.radar_stamp)
        yield radar_ns, 'radar', enc.radar(radar_ns, frame.radar[:, :5])
    if opt.ground_truth:
        yield stamp_ns, 'truth', enc.truth(stamp_ns, frame)
        ttc = float(frame.label.ttc)
        expert = {'stamp_ns': stamp_ns, 'ttc': ttc if math.isfinite(ttc) else None}
        yield stamp_ns, 'expert', enc.string(json.dumps(expert))
    yield stamp_ns, 'odom', enc.odom(stamp_ns, frame)
