"""fusion_node: camera + radar (+ odometry) -> model -> raw DrivingDecision at the camera stamp.

Callbacks only decode and enqueue; one worker thread runs the model, so a slow model never
blocks the executor. The camera queue is bounded and drops the oldest frame (counted and
reported): the model always works on the freshest frame the sensors have given.
"""

from collections import deque
import copy
import math
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from mm_fusion_ros.model.checkpoint import CheckpointError
from mm_fusion_ros.model.predictor import FusionPredictor
from mm_fusion_ros.paths import default_checkpoint
from mm_fusion_ros.pipeline import FusionPipeline, PipelineConfig
from mm_fusion_ros.ros import diagnostics
from mm_fusion_ros.ros.markers import decision_markers
from mm_fusion_ros.ros.messages import DrivingDecision, decision_to_msg
from mm_fusion_ros.ros.params import declare_choice, declare_float, declare_int, declare_value
from mm_fusion_ros.ros.runner import DEFAULT_EXECUTOR, make_executor, spin
from mm_fusion_ros.sensors.image import ImageDecodeError, image_to_rgb
from mm_fusion_ros.sensors.odometry import OdometryError, forward_speed
from mm_fusion_ros.sensors.radar_preprocess import RadarPreprocessConfig
from mm_fusion_ros.sensors.radar_presets import RadarPresetError, list_presets
from mm_fusion_ros.sensors.sync import msg_stamp_ns
from mm_fusion_ros.stats import LatencyStats, RateMeter

NS = 1_000_000_000
ODOMETRY_QUEUE_DEPTH = 50  # readings; covers a 0.5 s burst at 100 Hz


class FusionNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('fusion_node', **kwargs)
        self._lock = threading.Condition()
        self._stop = False
        self._worker: threading.Thread | None = None
        transport = declare_choice(
            self, 'camera_transport', 'raw', 'Camera message type.', ('raw', 'compressed')
        )
        preset = declare_choice(
            self, 'radar_preset', 'sim', 'Radar message layout.', tuple(list_presets())
        )
        checkpoint = declare_value(
            self, 'checkpoint', '', 'Model checkpoint (.pt); empty uses the shipped one.'
        )
        device = declare_value(self, 'device', 'auto', 'auto, cpu, cuda or cuda:N.')
        threads = declare_int(self, 'num_threads', 2, 'CPU inference threads.', 1, 256)
        self._sync_slop = declare_float(
            self, 'sync_slop', 0.06, 'Max camera-radar stamp difference [s].', 0.0, 1.0
        )
        self._radar_wait = declare_float(
            self,
            'radar_wait',
            0.03,
            'How long a camera frame waits for its radar frame before running without [s].',
            0.0,
            1.0,
        )
        odometry_max_age = declare_float(
            self, 'odometry_max_age', 0.2,
            'Odometry older than this at a camera stamp leaves the ego speed unknown [s].',
            0.0, 10.0,
        )
        self._queue_size = declare_int(
            self, 'queue_size', 1, 'Camera frames waiting for the model (drop oldest).', 1, 100
        )
        self._expected_rate = declare_float(
            self,
            'expected_camera_rate',
            20.0,
            'Publisher camera rate [Hz]; warn when far fewer frames arrive.',
            0.0,
            1000.0,
        )
        max_radar_points = declare_int(
            self, 'max_radar_points', 512, 'Radar points kept per frame.', 1, 100000
        )
        self._markers_every = declare_int(
            self, 'markers_every', 2, 'Publish markers every N decisions (0 = never).', 0, 1000
        )
        diag_period = declare_float(
            self, 'diagnostics_period', 1.0, 'Diagnostics publish period [s].', 0.1, 60.0
        )
        self._frame_id = declare_value(self, 'frame_id', 'base_link', 'Decision frame.')

        path = checkpoint or str(default_checkpoint())
        # A bad checkpoint is a configuration error: raise (main() exits non-zero).
        self._predictor = FusionPredictor.from_checkpoint(path, device=device, num_threads=threads)
        self._predictor.warmup()  # first-call costs (ONNX export, kernels) before real frames
        if self._predictor.device_fallback:
            self.get_logger().warning(
                f'device {device!r} unavailable, running on {self._predictor.device}'
            )
        self._pipeline = FusionPipeline(
            self._predictor,
            PipelineConfig(
                radar_preset=preset,
                sync_slop=self._sync_slop,
                preprocess=RadarPreprocessConfig(max_points=max_radar_points),
                odometry_max_age=odometry_max_age,
            ),
        )
        self.get_logger().info(
            f'model {path} on {self._predictor.device} ({self._predictor.backend}); '
            f'radar preset {preset!r}; '
            f'camera {transport}'
        )

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
            'degraded': 0,
            'clock_resets': 0,
            'no_camera_history': 0,  # frames run without the earlier frame (stream start, gap)
        }
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

        self._decision_pub = self.create_publisher(DrivingDecision, '~/output/decision', 10)
        self._marker_pub = self.create_publisher(MarkerArray, '~/output/markers', 1)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        qos = dict(qos_overriding_options=QoSOverridingOptions.with_default_policies())
        # Radar and odometry first: when a camera frame and its radar frame are ready in the
        # same wait, rclpy's wait-set executors run callbacks in creation order, so the radar
        # frame is buffered before the camera frame reaches the worker (the events executor
        # dispatches in arrival order, where the radar frame published first is first).
        self.create_subscription(
            PointCloud2, '~/input/radar', self._on_radar, qos_profile_sensor_data, **qos
        )
        # Odometry is small and may come in bursts (a bag player runs it ahead of the camera
        # frames it holds back for sync): a deeper queue than the sensor default of 5 keeps
        # the burst (measured: the first 5 of 61 readings were lost with depth 5).
        odometry_qos = copy.copy(qos_profile_sensor_data)
        odometry_qos.depth = ODOMETRY_QUEUE_DEPTH
        self.create_subscription(
            Odometry, '~/input/odom', self._on_odometry, odometry_qos, **qos
        )
        if transport == 'raw':
            self.create_subscription(
                Image, '~/input/image', self._on_image, qos_profile_sensor_data, **qos
            )
        else:
            self.create_subscription(
                CompressedImage,
                '~/input/image/compressed',
                self._on_image,
                qos_profile_sensor_data,
                **qos,
            )
        self.create_timer(diag_period, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._run_worker, name='fusion_inference')
        self._worker.start()

    # -- callbacks: decode, enqueue -----------------------------------------------------------
    def _on_image(self, msg) -> None:
        arrival = time.perf_counter()
        self._camera_rate.tick(arrival)
        self._counts['camera_frames'] += 1
        stamp = msg_stamp_ns(msg)
        if self._last_camera_stamp is not None and stamp < self._last_camera_stamp - NS:
            self._reset_history('camera stamp jumped backwards (bag loop or clock reset)')
        self._last_camera_stamp = stamp
        try:
            rgb = image_to_rgb(msg)
        except ImageDecodeError as exc:
            self._counts['image_rejected'] += 1
            self.get_logger().warning(f'rejected camera frame: {exc}', throttle_duration_sec=1.0)
            self._publish(self._pipeline.fallback(stamp, f'camera frame rejected: {exc}'))
            return
        with self._lock:
            previous = self._pipeline.add_camera(stamp, rgb)  # history even for dropped jobs
            self._counts['no_camera_history'] += previous is None
            if len(self._jobs) >= self._queue_size:
                self._jobs.popleft()
                self._counts['dropped'] += 1
            self._jobs.append((stamp, rgb, previous, arrival))
            self._lock.notify_all()

    def _on_radar(self, msg: PointCloud2) -> None:
        self._radar_rate.tick(time.perf_counter())
        self._counts['radar_frames'] += 1
        try:
            points = self._pipeline.radar_points(msg)
        except (ValueError, RadarPresetError) as exc:
            self._counts['radar_rejected'] += 1
            self.get_logger().warning(f'rejected radar cloud: {exc}', throttle_duration_sec=1.0)
            return
        with self._lock:
            self._pipeline.add_radar(msg_stamp_ns(msg), points)
            self._last_radar_points = points
            self._lock.notify_all()

    def _on_odometry(self, msg: Odometry) -> None:
        self._counts['odometry_frames'] += 1
        try:
            speed = forward_speed(msg)
        except OdometryError as exc:
            self._counts['odometry_rejected'] += 1
            self.get_logger().warning(f'rejected odometry: {exc}', throttle_duration_sec=1.0)
            return
        with self._lock:
            self._pipeline.add_odometry(msg_stamp_ns(msg), speed)

    def _reset_history(self, why: str) -> None:
        self.get_logger().warning(f'{why}: clearing radar history', throttle_duration_sec=1.0)
        self._counts['clock_resets'] += 1
        with self._lock:
            self._pipeline.reset()
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
                deadline = arrival + self._radar_wait
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
            if self._markers_every and self._counts['decisions'] % self._markers_every == 0:
                self._marker_pub.publish(
                    decision_markers(
                        decision,
                        self._last_radar_points,
                        self._frame_id,
                        self.get_clock().now().to_msg(),
                    )
                )

    def _publish(self, decision) -> None:
        self._counts['decisions'] += 1
        if decision.degraded:
            self._counts['degraded'] += 1
            self.get_logger().warning(
                f'degraded decision: {decision.degraded_reason}', throttle_duration_sec=2.0
            )
        self._degraded_reason = decision.degraded_reason
        self._decision_pub.publish(decision_to_msg(decision, self._frame_id))

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
            device=str(self._predictor.device),
        )

    def _publish_diagnostics(self) -> None:
        values = self.stats()
        level, message = diagnostics.OK, 'ok'
        rate = values['camera_rate_hz']
        if (
            self._expected_rate > 0
            and values['camera_frames'] > 0
            and not math.isnan(rate)
            and rate < 0.5 * self._expected_rate
        ):
            level = diagnostics.WARN
            message = (
                f'camera input {rate:.1f} Hz, far below the expected {self._expected_rate:.0f}'
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
    rclpy.init(args=args)
    node = None
    try:
        node = FusionNode()
        # The events executor hands frames to the inference worker fastest (see runner).
        executor = make_executor(DEFAULT_EXECUTOR, node.context)
        executor.add_node(node)
        spin(executor, node.context)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (CheckpointError, RadarPresetError, ValueError) as exc:
        rclpy.logging.get_logger('fusion_node').fatal(f'cannot start: {exc}')
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
