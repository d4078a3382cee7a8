"""fusion_node: camera + radar (+ odometry) -> model -> raw DrivingDecision at the camera stamp.

Callbacks only decode and enqueue; one worker thread runs the model, so a slow model never
blocks the executor. The camera queue is bounded and drops the oldest frame (counted and
reported): the model always works on the freshest frame the sensors have given.
"""

from collections import Counter, deque
import copy
import functools
import math
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from mm_fusion_ros.model.checkpoint import CheckpointError
from mm_fusion_ros.model.predictor import FusionPredictor
from mm_fusion_ros.params.nodes import FusionNodeParams
from mm_fusion_ros.paths import resolve_checkpoint
from mm_fusion_ros.pipeline import FusionPipeline
from mm_fusion_ros.ros import diagnostics
from mm_fusion_ros.ros.lifecycle import node_main
from mm_fusion_ros.ros.markers import decision_markers
from mm_fusion_ros.ros.messages import DrivingDecision, decision_to_msg
from mm_fusion_ros.ros.params import declare_parameters, on_parameters_set
from mm_fusion_ros.ros.radar_inputs import radar_converters, radar_merger, radar_message_type
from mm_fusion_ros.sensors.camera_geometry import PinholeCamera
from mm_fusion_ros.sensors.errors import SensorDecodeError, reason_of
from mm_fusion_ros.sensors.front_end import MODEL_RADAR_MOUNT
from mm_fusion_ros.sensors.image import image_to_rgb
from mm_fusion_ros.sensors.odometry import forward_speed
from mm_fusion_ros.sensors.radar_preprocess import preprocess_radar
from mm_fusion_ros.sensors.radar_presets import RadarPresetError
from mm_fusion_ros.sensors.sync import msg_stamp_ns
from mm_fusion_ros.stats import LatencyStats, RateMeter

NS = 1_000_000_000
ODOMETRY_QUEUE_DEPTH = 50  # readings; covers a 0.5 s burst at 100 Hz


class FusionNode(LifecycleNode):
    """Managed node: configure loads and warms up the model, activate starts publishing."""

    def __init__(self, **kwargs) -> None:
        super().__init__('fusion_node', **kwargs)
        self._lock = threading.Condition()
        self._stop = True
        self._worker: threading.Thread | None = None
        self._predictor = None
        self._pipeline: FusionPipeline | None = None
        self._entities: list = []  # what configure created and cleanup destroys
        self.configure_error = ''  # why the last configure failed (StartError says it)
        self._params = declare_parameters(self, FusionNodeParams)
        on_parameters_set(self, lambda: self._params, self._apply)
        self._reset_stats()

    def _apply(self, params: FusionNodeParams) -> None:
        """The run-time settable parameters (read-only ones never change after declare)."""
        self._params = params
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.set_odometry_max_age(params.odometry_max_age)
            while len(self._jobs) > params.queue_size:
                self._jobs.popleft()
                self._counts['dropped'] += 1

    def _reset_stats(self) -> None:
        self._jobs: deque = deque()
        self._counts = {
            'camera_frames': 0,
            'radar_frames': 0,
            'decisions': 0,
            'dropped': 0,
            'image_rejected': 0,
            'radar_rejected': 0,
            'odometry_frames': 0,
            'odometry_rejected': 0,
            'camera_info_rejected': 0,
            'degraded': 0,
            'clock_resets': 0,
            'no_camera_history': 0,  # frames run without the earlier frame (stream start, gap)
        }
        self._rejects: Counter = Counter()  # 'kind:reason' -> messages the decoders refused
        self._latency = LatencyStats()
        self._forward = LatencyStats()
        self._sync_wait = LatencyStats()  # camera arrival -> inference start (queue + radar sync)
        self._pickup = LatencyStats()  # camera arrival -> the worker holds the frame (handoff)
        self._post = LatencyStats()  # inference end -> decision published
        self._camera_rate = RateMeter()
        self._radar_rate = RateMeter()
        self._last_camera_stamp = None
        self._last_radar_points = np.zeros((0, 5), np.float32)
        self._degraded_reason = ''

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self._params
        path = resolve_checkpoint(p.checkpoint)
        try:
            self._predictor = FusionPredictor.from_checkpoint(
                path, device=p.device, num_threads=p.num_threads)
            self._predictor.warmup()  # first-call costs (ONNX export, kernels) before frames
            self._pipeline = FusionPipeline(self._predictor, p.pipeline_config())
            radar_type = radar_message_type(p.radar_type)
            self._radar_convert = radar_converters(p)
            self._radar_merger = radar_merger(p)
        except (CheckpointError, RadarPresetError, ValueError) as exc:
            self.configure_error = str(exc)
            self.get_logger().error(f'configure failed: {exc}')
            self._predictor = self._pipeline = None
            return TransitionCallbackReturn.FAILURE
        if self._predictor.device_fallback:
            self.get_logger().warning(
                f'device {p.device!r} unavailable, running on {self._predictor.device}')
        self.get_logger().info(
            f'model {path} on {self._predictor.device} ({self._predictor.backend}); '
            f'radar {p.radar_type} {p.radar_topics} (preset {p.radar_preset!r}); '
            f'camera {p.camera_transport}')
        self._reset_stats()
        self._decision_pub = self.create_lifecycle_publisher(
            DrivingDecision, '~/output/decision', 10)
        self._marker_pub = self.create_lifecycle_publisher(MarkerArray, '~/output/markers', 1)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        qos = dict(qos_overriding_options=QoSOverridingOptions.with_default_policies())
        # Radar and odometry first: when a camera frame and its radar frame are ready in the
        # same wait, rclpy's wait-set executors run callbacks in creation order, so the radar
        # frame is buffered before the camera frame reaches the worker (the events executor
        # dispatches in arrival order, where the radar frame published first is first).
        radar_subs = [
            self.create_subscription(radar_type, topic, functools.partial(self._on_radar, index=i),
                                     qos_profile_sensor_data, **qos)
            for i, topic in enumerate(p.radar_topics)]
        # Odometry is small and may come in bursts (a bag player runs it ahead of the camera
        # frames it holds back for sync): a deeper queue than the sensor default of 5 keeps
        # the burst (measured: the first 5 of 61 readings were lost with depth 5).
        odometry_qos = copy.copy(qos_profile_sensor_data)
        odometry_qos.depth = ODOMETRY_QUEUE_DEPTH
        odom_sub = self.create_subscription(
            Odometry, '~/input/odom', self._on_odometry, odometry_qos, **qos)
        image_type, image_topic = ((Image, '~/input/image') if p.camera_transport == 'raw'
                                   else (CompressedImage, '~/input/image/compressed'))
        image_sub = self.create_subscription(
            image_type, image_topic, self._on_image, qos_profile_sensor_data, **qos)
        entities = []
        if p.use_camera_info:
            entities.append(self.create_subscription(
                CameraInfo, '~/input/camera_info', self._on_camera_info,
                qos_profile_sensor_data, **qos))
        timer = self.create_timer(p.diagnostics_period, self._publish_diagnostics)
        self._entities = [self._decision_pub, self._marker_pub, self._diag_pub, *radar_subs,
                          odom_sub, image_sub, timer, *entities]
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._lock:
            self._stop = False
            self._jobs.clear()
        self._worker = threading.Thread(target=self._run_worker, name='fusion_inference')
        self._worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        for entity in self._entities:
            if entity in self._managed_entities:
                self.destroy_lifecycle_publisher(entity)
            elif hasattr(entity, 'cancel'):
                self.destroy_timer(entity)
            elif hasattr(entity, 'publish'):
                self.destroy_publisher(entity)
            else:
                self.destroy_subscription(entity)
        self._entities = []
        self._predictor = self._pipeline = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.on_cleanup(state)

    @property
    def active(self) -> bool:
        return not self._stop

    # -- callbacks: decode, enqueue -----------------------------------------------------------
    def _on_image(self, msg) -> None:
        if self._stop:
            return  # inactive: inputs are not taken
        arrival = time.perf_counter()
        self._camera_rate.tick(arrival)
        self._counts['camera_frames'] += 1
        stamp = msg_stamp_ns(msg)
        if self._last_camera_stamp is not None and stamp < self._last_camera_stamp - NS:
            self._reset_history('camera stamp jumped backwards (bag loop or clock reset)')
        self._last_camera_stamp = stamp
        try:
            rgb = self._pipeline.camera_view(image_to_rgb(msg))
        except SensorDecodeError as exc:
            self._reject('image', exc)
            self._publish(self._pipeline.fallback(stamp, f'camera frame rejected: {exc}'))
            return
        with self._lock:
            previous = self._pipeline.add_camera(stamp, rgb)  # history even for dropped jobs
            self._counts['no_camera_history'] += previous is None
            if len(self._jobs) >= self._params.queue_size:
                self._jobs.popleft()
                self._counts['dropped'] += 1
            self._jobs.append((stamp, rgb, previous, arrival))
            self._lock.notify_all()

    def _on_radar(self, msg, index: int = 0) -> None:
        """A frame of radar `index` (PointCloud2 or RadarScan); radars merge at radar 0's rate."""
        if self._stop:
            return
        if index == 0:
            self._radar_rate.tick(time.perf_counter())
        self._counts['radar_frames'] += 1
        try:
            points = self._radar_convert[index](msg)
            merged = self._radar_merger.push(index, msg_stamp_ns(msg), points)
            if merged is None:
                return  # joins the next frame of the first radar
            stamp, points = merged
            points = preprocess_radar(points, self._pipeline.front.config.preprocess)
        except (SensorDecodeError, RadarPresetError, ValueError) as exc:
            self._reject('radar', exc)
            return
        with self._lock:
            self._pipeline.add_radar(stamp, points)
            self._last_radar_points = points
            self._lock.notify_all()

    def _on_odometry(self, msg: Odometry) -> None:
        if self._stop:
            return
        self._counts['odometry_frames'] += 1
        try:
            speed = forward_speed(msg)
        except SensorDecodeError as exc:
            self._reject('odometry', exc)
            return
        with self._lock:
            self._pipeline.add_odometry(msg_stamp_ns(msg), speed)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        """The camera's intrinsics: frames are resampled into the training camera's view."""
        if self._stop:
            return
        try:
            camera = PinholeCamera.from_camera_info(msg)
        except SensorDecodeError as exc:
            self._reject('camera_info', exc)
            return
        with self._lock:
            self._pipeline.front.set_camera(camera)

    def _reject(self, kind: str, exc: Exception) -> None:
        """Count a message the decoders refused, by kind and reason; log it (throttled)."""
        self._counts[f'{kind}_rejected'] += 1
        self._rejects[f'{kind}:{reason_of(exc)}'] += 1
        self.get_logger().warning(f'rejected {kind.replace("_", " ")}: {exc}',
                                  throttle_duration_sec=1.0)

    def _reset_history(self, why: str) -> None:
        self.get_logger().warning(f'{why}: clearing radar history', throttle_duration_sec=1.0)
        self._counts['clock_resets'] += 1
        with self._lock:
            self._pipeline.reset()
            self._radar_merger.reset()
            self._jobs.clear()

    # -- worker: sync, model, publish ---------------------------------------------------------
    def _run_worker(self) -> None:
        while True:
            with self._lock:
                while not self._jobs and not self._stop:
                    self._lock.wait(timeout=0.1)
                if self._stop:
                    return
                stamp, rgb, previous, arrival = self._jobs[0]
                picked = time.perf_counter()
                # Approximate-time sync: wait (bounded) for the radar frame of this camera
                # frame; after radar_wait the model runs on the history it has.
                deadline = arrival + self._params.radar_wait
                while not self._pipeline.radar_ready(stamp) and not self._stop:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._lock.wait(timeout=remaining)
                if self._stop:
                    return
                if not self._jobs or self._jobs[0][0] != stamp:
                    continue  # replaced by a newer frame while waiting
                self._jobs.popleft()
                seq = self._pipeline.sequence(stamp)
                speed = self._pipeline.speed_at(stamp)
            self._pickup.add(picked - arrival)
            self._sync_wait.add(time.perf_counter() - arrival)
            try:
                prediction = self._predictor.predict(rgb, seq, ego_speed=speed,
                                                     previous_rgb=previous)
            except Exception as exc:  # noqa: BLE001 - never let the worker die silently
                self.get_logger().error(f'inference failed: {exc}', throttle_duration_sec=1.0)
                self._publish(self._pipeline.fallback(stamp, f'inference failed: {exc}'))
                continue
            reason = self._pipeline.degraded_reason(seq, speed)
            decision = self._pipeline.to_decision(stamp, prediction, reason)
            self._forward.add(prediction.latency_s)
            inferred = time.perf_counter()
            self._publish(decision)
            published = time.perf_counter()
            self._post.add(published - inferred)
            self._latency.add(published - arrival)
            every = self._params.markers_every
            if every and self._counts['decisions'] % every == 0:
                self._marker_pub.publish(decision_markers(
                    decision, self._markers_points(), self._params.frame_id,
                    self.get_clock().now().to_msg()))

    def _markers_points(self) -> np.ndarray:
        """The last radar frame in the vehicle frame (markers are stamped with `frame_id`)."""
        points = np.array(self._last_radar_points, np.float32, copy=True)
        if len(points):
            points[:, :3] = MODEL_RADAR_MOUNT.to_parent(points[:, :3])
        return points

    def _publish(self, decision) -> None:
        self._counts['decisions'] += 1
        if decision.degraded:
            self._counts['degraded'] += 1
            self.get_logger().warning(
                f'degraded decision: {decision.degraded_reason}', throttle_duration_sec=2.0
            )
        self._degraded_reason = decision.degraded_reason
        self._decision_pub.publish(decision_to_msg(decision, self._params.frame_id))

    # -- diagnostics --------------------------------------------------------------------------
    def stats(self) -> dict:
        """Counters and latency figures (also published as diagnostics)."""
        return dict(
            self._counts,
            camera_rate_hz=self._camera_rate.rate(),
            radar_rate_hz=self._radar_rate.rate(),
            latency_p50_ms=self._latency.percentile(50) * 1e3,
            latency_p99_ms=self._latency.percentile(99) * 1e3,
            forward_p50_ms=self._forward.percentile(50) * 1e3,
            forward_p99_ms=self._forward.percentile(99) * 1e3,
            sync_wait_p50_ms=self._sync_wait.percentile(50) * 1e3,
            sync_wait_p99_ms=self._sync_wait.percentile(99) * 1e3,
            pickup_p50_ms=self._pickup.percentile(50) * 1e3,
            publish_p50_ms=self._post.percentile(50) * 1e3,
            device=str(self._predictor.device) if self._predictor is not None else '',
            rejects=dict(self._rejects),
        )

    def _publish_diagnostics(self) -> None:
        values = self.stats()
        level, message = diagnostics.OK, 'ok' if self.active else 'inactive'
        rate = values['camera_rate_hz']
        expected = self._params.expected_camera_rate
        if (
            self.active
            and expected > 0
            and values['camera_frames'] > 0
            and not math.isnan(rate)
            and rate < 0.5 * expected
        ):
            level = diagnostics.WARN
            message = (
                f'camera input {rate:.1f} Hz, far below the expected {expected:.0f}'
                ' Hz: large frames may be dropped by DDS; set FASTDDS_BUILTIN_TRANSPORTS='
                "'SHM?max_msg_size=4MB&sockets_size=16MB' on every process (see README)"
            )
            self.get_logger().warning(message, throttle_duration_sec=10.0)
        elif self._degraded_reason:
            level, message = diagnostics.WARN, f'degraded: {self._degraded_reason}'
        status = diagnostics.status(
            'mm_fusion_ros: fusion_node', 'fusion_node', level, message, values
        )
        self._diag_pub.publish(
            diagnostics.diagnostic_array(self.get_clock().now().to_msg(), [status])
        )

    def close(self) -> None:
        """Stop the inference thread (call before destroy_node)."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(timeout=5.0)

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def main(args=None) -> int:
    return node_main(FusionNode, 'fusion_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
