"""view_node: the graph's public topics -> the live view (a Rerun server, browser viewer).

Thin adapter: callbacks decode their message into the core types (rgb, canonical radar
points, `Decision`, K) and hand them to `view.live.LiveView`, whose thread builds the view's
entities (`view.scene`) and logs them to the server (`view.server`). `mm-fusion up --view`
and `mm-fusion demo --view` add this node to the in-process graph (`attached_view`).
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

from mm_fusion_ros.graph import (
    CAMERA_COMPRESSED,
    CAMERA_IMAGE,
    CAMERA_INFO,
    DECISION,
    FUSION_MARKERS,
    RADAR_POINTS,
    RAW_DECISION,
    NodeSpec,
    ros_args,
)
from mm_fusion_ros.params.nodes import ViewNodeParams
from mm_fusion_ros.params.spec import spec_fields
from mm_fusion_ros.paths import resolve_params_file
from mm_fusion_ros.ros.messages import DrivingDecision, msg_to_decision
from mm_fusion_ros.ros.params import declare_parameters
from mm_fusion_ros.sensors.errors import SensorDecodeError
from mm_fusion_ros.sensors.extrinsics import Extrinsic
from mm_fusion_ros.sensors.image import image_to_rgb
from mm_fusion_ros.sensors.radar_presets import load_preset
from mm_fusion_ros.sensors.sync import msg_stamp_ns
from mm_fusion_ros.view.options import (
    ViewOptions,
    exposure_warning,
)

VIEW_NODE = NodeSpec(
    name='view_node',
    executable='view_node',
    node_class='mm_fusion_ros.ros.view_node:ViewNode',
    remappings=(
        ('~/input/image', CAMERA_IMAGE),
        ('~/input/image/compressed', CAMERA_COMPRESSED),
        ('~/input/camera_info', CAMERA_INFO),
        ('~/input/radar', RADAR_POINTS),
        ('~/input/decision_raw', RAW_DECISION),
        ('~/input/decision', DECISION),
        ('~/input/markers', FUSION_MARKERS),
    ),
)
_POINT_MARKERS = (Marker.POINTS, Marker.SPHERE_LIST, Marker.CUBE_LIST)
RATE_BURST = 2.0  # frames a max_rate bucket holds


def _level(level: Any) -> int:
    """diagnostic_msgs level: a `byte` field arrives as bytes in rclpy."""
    return int.from_bytes(level, 'little') if isinstance(level, bytes) else int(level)


class ViewNode(Node):
    """Subscribes to the graph's public topics and forwards them to the live view."""

    def __init__(self, **kwargs) -> None:
        super().__init__('view_node', **kwargs)
        from mm_fusion_ros.view import require_rerun

        require_rerun()  # the clear error before anything starts
        from mm_fusion_ros.view.live import LiveView
        from mm_fusion_ros.view.scene import LiveScene, ViewConfig
        from mm_fusion_ros.view.server import ServerConfig, ViewServer

        p = self._params = declare_parameters(self, ViewNodeParams)
        self._radar = load_preset(p.radar_preset).converter()
        config = ViewConfig(
            camera=Extrinsic.from_values(p.camera_mount),
            radar=Extrinsic.from_values(p.radar_mount),
            ego_size=(p.ego_length, p.ego_width, p.ego_height),
            corridor_half_width=p.corridor_half_width,
            ttc_brake_threshold=p.ttc_brake_threshold, base_frame_id=p.base_frame_id,
            camera_frame_id=p.camera_frame_id, radar_frame_id=p.radar_frame_id)
        self.server = ViewServer(ServerConfig(p.address, p.port, memory_limit=p.memory_limit))
        try:
            self.view = LiveView(self.server.recording, LiveScene(config),
                                 sim_time=self.get_parameter('use_sim_time').value,
                                 on_error=self._on_view_error)
        except BaseException:
            self.server.close()
            raise
        self.rejected = 0
        self._max_rate = p.max_rate
        self._tokens = {'camera': [RATE_BURST, time.monotonic()],
                        'radar': [RATE_BURST, time.monotonic()]}  # [tokens, refilled at]
        qos = dict(qos_overriding_options=QoSOverridingOptions.with_default_policies())
        image_type, image_topic = ((Image, '~/input/image') if p.camera_transport == 'raw'
                                   else (CompressedImage, '~/input/image/compressed'))
        self.create_subscription(PointCloud2, '~/input/radar', self._on_radar,
                                 qos_profile_sensor_data, **qos)
        self.create_subscription(image_type, image_topic, self._on_image,
                                 qos_profile_sensor_data, **qos)
        self.create_subscription(CameraInfo, '~/input/camera_info', self._on_camera_info,
                                 qos_profile_sensor_data, **qos)
        self.create_subscription(DrivingDecision, '~/input/decision_raw',
                                 lambda m: self._on_decision(m, final=False), 10)
        self.create_subscription(DrivingDecision, '~/input/decision',
                                 lambda m: self._on_decision(m, final=True), 10)
        self.create_subscription(MarkerArray, '~/input/markers', self._on_markers, 1)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.get_logger().info(f'live view at {self.server.url}')

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        self.view.close()
        self.server.close()

    def _on_view_error(self, text: str) -> None:
        self.get_logger().warning(f'view: {text}', throttle_duration_sec=5.0)

    def _due(self, kind: str) -> bool:
        """Whether this camera / radar frame is drawn (max_rate per wall-clock second).

        A token bucket RATE_BURST deep, so a stream at the rate passes whole despite jitter.
        """
        if self._max_rate <= 0:
            return True
        bucket, now = self._tokens[kind], time.monotonic()
        bucket[0] = min(RATE_BURST, bucket[0] + (now - bucket[1]) * self._max_rate)
        bucket[1] = now
        if bucket[0] < 1.0:
            return False
        bucket[0] -= 1.0
        return True

    def _reject(self, what: str, exc: Exception) -> None:
        self.rejected += 1
        self.get_logger().warning(f'view: rejected {what}: {exc}', throttle_duration_sec=5.0)

    # -- callbacks: decode, submit ------------------------------------------------------------
    def _on_image(self, msg) -> None:
        if not self._due('camera'):
            return
        try:
            rgb = image_to_rgb(msg)
        except SensorDecodeError as exc:
            return self._reject('camera frame', exc)
        self.view.submit(msg_stamp_ns(msg), lambda scene: scene.camera(rgb))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        k, width, height = np.asarray(msg.k, np.float64), int(msg.width), int(msg.height)
        if k.size != 9 or k[8] == 0.0:
            return self._reject('camera info', ValueError(f'unusable K {k.tolist()}'))
        self.view.submit(None, lambda scene: scene.camera_info(k, width, height))

    def _on_radar(self, msg: PointCloud2) -> None:
        try:
            points = self._radar(msg)
        except SensorDecodeError as exc:
            return self._reject('radar cloud', exc)
        # Every frame updates what the camera projects and the TTC; drawn at most max_rate.
        draw = self._due('radar')
        self.view.submit(msg_stamp_ns(msg), lambda scene: scene.radar(points, draw))

    def _on_decision(self, msg: DrivingDecision, final: bool) -> None:
        try:
            decision = msg_to_decision(msg)
        except ValueError as exc:  # an action or source value the core does not know
            return self._reject('decision', exc)
        self.view.submit(decision.stamp_ns, lambda scene: scene.decision(decision, final))

    def _on_markers(self, msg: MarkerArray) -> None:
        from mm_fusion_ros.view.scene import MarkerPoints, marker_entities

        markers = []
        for m in msg.markers:
            offset = np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z])
            if m.type in _POINT_MARKERS and m.action == Marker.ADD:
                xyz = np.array([(q.x, q.y, q.z) for q in m.points], np.float64).reshape(-1, 3)
                rgba = np.array([(c.r, c.g, c.b, c.a) for c in m.colors], np.float64)
                markers.append(MarkerPoints(m.ns, m.id, m.header.frame_id, xyz + offset,
                                            rgba.reshape(-1, 4)))
            elif m.type == Marker.TEXT_VIEW_FACING and m.action == Marker.ADD:
                markers.append(MarkerPoints(m.ns, m.id, m.header.frame_id, offset[None],
                                            text=m.text))
        stamp = msg_stamp_ns(msg.markers[0]) if msg.markers else None
        self.view.submit(stamp, lambda scene: marker_entities(markers, scene.config))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        from mm_fusion_ros.view.scene import DiagnosticEntry, diagnostic_entities

        entries = [DiagnosticEntry(s.name, _level(s.level), s.message,
                                   {kv.key: kv.value for kv in s.values}) for s in msg.status]
        self.view.submit(msg_stamp_ns(msg), lambda scene: diagnostic_entities(entries))


def view_parameter_overrides(options: ViewOptions, settings: Mapping[str, Any] | None = None,
                             use_sim_time: bool = False) -> list[Parameter]:
    """The view node's parameters from `--view-*` options and the graph's settings."""
    names = {f.name for f in spec_fields(ViewNodeParams)}
    values = {k: v for k, v in (settings or {}).items() if k in names}
    values.update(address=options.address, port=options.port, use_sim_time=use_sim_time)
    return [Parameter(k, value=v) for k, v in values.items()]


@contextmanager
def attached_view(
    options: ViewOptions | None,
    executor,
    context,
    *,
    namespace: str = '',
    params_file: str | None = None,
    settings: Mapping[str, Any] | None = None,
    use_sim_time: bool = False,
) -> Iterator[ViewNode | None]:
    """Add a view node to a running graph's executor (nothing when `options` is None).

    The node reads the graph's params file (the shared radar preset) and namespace; prints the
    viewer's address, and a warning when it listens on another address than loopback.
    """
    if options is None:
        yield None
        return
    warning = exposure_warning(options.address)
    if warning:
        print(warning, file=sys.stderr)
    node = ViewNode(
        context=context,
        cli_args=ros_args(VIEW_NODE, [str(resolve_params_file(params_file))], namespace),
        use_global_arguments=False,
        parameter_overrides=view_parameter_overrides(options, settings, use_sim_time))
    executor.add_node(node)
    print(f'live view: {node.url}', flush=True)
    try:
        yield node
    finally:
        executor.remove_node(node)
        node.close()
        node.destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    """`view_node` on its own, next to a graph started elsewhere (`view:=true` in launch)."""
    from mm_fusion_ros.errors import UserInputError

    rclpy.init(args=args)
    node = None
    try:
        node = ViewNode()
        print(f'live view: {node.url}', flush=True)
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except UserInputError as exc:  # rerun-sdk missing, a parameter refused
        rclpy.logging.get_logger('view_node').fatal(f'cannot start: {exc}')
        return 2
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
