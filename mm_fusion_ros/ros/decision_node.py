"""decision_node: the safety layer between the fusion model and the vehicle stack.

Consumes the fusion node's raw decision and the radar, publishes the final DrivingDecision and
an AccelStamped command, and the confirmed radar tracks the TTC override reads as markers (at
the radar rate, while someone subscribes); diagnostics carry the tracks and the per-frame cost
of the radar step (tracker + TTC). Output rate: one decision per fusion output (the camera rate), a
radar TTC override at once, and while an input is stale (or before the first fusion output)
the degraded fallback: its onset at once, then at `fallback_rate`. A dead sensor is never
silent, and a graph that has not started yet does not flood the stack.

A managed node: configure builds the safety layer and the topics, activate starts publishing.
"""

import functools
import math
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import AccelStamped
from nav_msgs.msg import Odometry
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from visualization_msgs.msg import MarkerArray

from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.params.nodes import DecisionNodeParams
from mm_fusion_ros.ros import ackermann, diagnostics
from mm_fusion_ros.ros.lifecycle import node_main
from mm_fusion_ros.ros.markers import track_markers
from mm_fusion_ros.ros.messages import DrivingDecision, decision_to_msg, msg_to_decision
from mm_fusion_ros.ros.params import declare_parameters, on_parameters_set
from mm_fusion_ros.ros.radar_inputs import radar_converters, radar_merger, radar_message_type
from mm_fusion_ros.ros.time import stamp_from_ns
from mm_fusion_ros.safety import DecisionLogic
from mm_fusion_ros.sensors.errors import SensorDecodeError
from mm_fusion_ros.sensors.odometry import forward_speed
from mm_fusion_ros.sensors.radar_presets import RadarPresetError
from mm_fusion_ros.sensors.sync import msg_stamp_ns
from mm_fusion_ros.stats import LatencyStats

NS = 1_000_000_000
ODOMETRY_MAX_AGE_NS = NS // 2  # older odometry: the Ackermann speed target is 0 (stop)


class DecisionNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__('decision_node', **kwargs)
        self._params = declare_parameters(self, DecisionNodeParams)
        on_parameters_set(self, lambda: self._params, self._apply)
        self._logic: DecisionLogic | None = None
        self._active = False
        self._entities: list = []
        self.configure_error = ''  # why the last configure failed (StartError says it)
        self._counts = self._zero_counts()

    @staticmethod
    def _zero_counts() -> dict[str, int]:
        return {'published': 0, 'fallback': 0, 'override': 0, 'radar_rejected': 0,
                'decision_rejected': 0}

    def _apply(self, params: DecisionNodeParams) -> None:
        self._params = params
        if self._logic is not None:
            self._logic.safety.config = params.safety_config()

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self._params
        try:
            radar_type = radar_message_type(p.radar_type)
            self._radar_convert = radar_converters(p)
            self._radar_merger = radar_merger(p)
            ackermann_type = ackermann.message_type() if p.ackermann_output else None
            self._logic = DecisionLogic(p.safety_config())
        except (RadarPresetError, ValueError) as exc:
            self.configure_error = str(exc)
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        self._counts = self._zero_counts()
        self._radar_step = LatencyStats(window=1000)  # [s] SafetyLayer.on_radar per frame
        self._last_now_ns = 0
        self._last_fallback_ns: int | None = None
        self._decision_pub = self.create_lifecycle_publisher(
            DrivingDecision, '~/output/decision', 10)
        self._accel_pub = self.create_lifecycle_publisher(AccelStamped, '~/output/accel_cmd', 10)
        self._tracks_pub = self.create_lifecycle_publisher(MarkerArray, '~/output/tracks', 1)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        qos = dict(qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self._entities = [
            self._decision_pub, self._accel_pub, self._tracks_pub, self._diag_pub,
            self.create_subscription(DrivingDecision, '~/input/decision', self._on_decision, 10),
            *(self.create_subscription(radar_type, topic, functools.partial(self._on_radar,
                                                                            index=i),
                                       qos_profile_sensor_data, **qos)
              for i, topic in enumerate(p.radar_topics)),
            self.create_timer(1.0 / p.watchdog_rate, self._on_watchdog),
            self.create_timer(p.diagnostics_period, self._publish_diagnostics),
        ]
        self._ackermann_pub = None
        self._ego_speed: tuple[int, float] | None = None  # (receipt time [ns], speed [m/s])
        if ackermann_type is not None:
            self._ackermann_pub = self.create_lifecycle_publisher(
                ackermann_type, '~/output/ackermann_cmd', 10)
            self._entities += [self._ackermann_pub, self.create_subscription(
                Odometry, '~/input/odom', self._on_odometry, qos_profile_sensor_data, **qos)]
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._logic.reset()  # staleness counts from activation, not from configure
        self._last_fallback_ns = None
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
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
        self._logic = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.on_cleanup(state)

    # -- inputs -------------------------------------------------------------------------------
    def _now_ns(self) -> int:
        now = self.get_clock().now().nanoseconds
        if now < self._last_now_ns:
            self.get_logger().warning(
                'clock jumped backwards (bag loop or sim reset): clearing safety history'
            )
            self._logic.reset()
            self._radar_merger.reset()
            self._last_fallback_ns = None
        self._last_now_ns = now
        return now

    def _on_radar(self, msg, index: int = 0) -> None:
        """A frame of radar `index`; the radars merge into frames at radar 0's rate."""
        if not self._active:
            return
        now = self._now_ns()
        try:
            points = self._radar_convert[index](msg)
            merged = self._radar_merger.push(index, msg_stamp_ns(msg), points)
        except (SensorDecodeError, ValueError) as exc:
            self._counts['radar_rejected'] += 1
            self.get_logger().warning(f'rejected radar frame: {exc}', throttle_duration_sec=1.0)
            return
        if merged is None:
            return  # joins the next frame of the first radar
        start = time.perf_counter()
        decision = self._logic.on_radar(now, merged[1])
        self._radar_step.add(time.perf_counter() - start)
        if decision is not None:
            self._publish(decision)
        if self._tracks_pub.get_subscription_count():
            safety = self._logic.safety
            self._tracks_pub.publish(track_markers(
                safety.track_ttcs(), safety.config.ttc_brake_threshold, self._params.frame_id,
                stamp_from_ns(merged[0])))

    def _on_decision(self, msg: DrivingDecision) -> None:
        if not self._active:
            return
        now = self._now_ns()
        try:
            final = self._logic.on_model_decision(now, msg_to_decision(msg))
        except ValueError as exc:
            # Not taken as the model's output: the watchdog degrades if no valid one follows.
            self._counts['decision_rejected'] += 1
            self.get_logger().warning(f'rejected fusion output: {exc}', throttle_duration_sec=1.0)
            return
        self._last_fallback_ns = None
        self._publish(final)

    def _on_watchdog(self) -> None:
        if not self._active:
            return
        now = self._now_ns()
        decision = self._logic.on_watchdog(now)
        if decision is None:
            self._last_fallback_ns = None
            return
        period_ns = NS / self._params.fallback_rate
        if self._last_fallback_ns is not None and now - self._last_fallback_ns < period_ns:
            return  # the fallback stands; republished at fallback_rate, not watchdog_rate
        self._last_fallback_ns = now
        self.get_logger().warning(
            f'degraded: {decision.degraded_reason}', throttle_duration_sec=2.0
        )
        self._publish(decision)

    def _publish(self, decision: Decision) -> None:
        self._counts['published'] += 1
        if decision.source == DecisionSource.FALLBACK:
            self._counts['fallback'] += 1
        elif decision.source == DecisionSource.SAFETY_OVERRIDE:
            self._counts['override'] += 1
        frame_id = self._params.frame_id
        self._decision_pub.publish(decision_to_msg(decision, frame_id))
        cmd = AccelStamped()
        cmd.header.stamp = stamp_from_ns(decision.stamp_ns)
        cmd.header.frame_id = frame_id
        cmd.accel.linear.x = float(decision.target_acceleration)
        self._accel_pub.publish(cmd)
        if self._ackermann_pub is not None:
            self._ackermann_pub.publish(ackermann.to_msg(ackermann.ackermann_command(
                decision, self._fresh_ego_speed(), self._params.ackermann_horizon,
                self._params.max_jerk), frame_id))

    def _on_odometry(self, msg: Odometry) -> None:
        """Ego speed for the Ackermann speed target (only with ackermann_output)."""
        try:
            speed = forward_speed(msg)
        except SensorDecodeError:
            return
        self._ego_speed = (self.get_clock().now().nanoseconds, speed)

    def _fresh_ego_speed(self) -> float | None:
        if self._ego_speed is None:
            return None
        received, speed = self._ego_speed
        fresh = self.get_clock().now().nanoseconds - received <= ODOMETRY_MAX_AGE_NS
        return speed if fresh and math.isfinite(speed) else None

    # -- diagnostics --------------------------------------------------------------------------
    def readiness(self) -> tuple[int, str]:
        """(level, message): not ready until the first fusion output, then staleness."""
        if not self._active:
            return diagnostics.OK, 'inactive'
        if not self._logic.has_model_decision:
            return diagnostics.WARN, 'not ready: no fusion output received yet'
        reason = self._logic.safety.stale_reason(self._now_ns())
        return (diagnostics.WARN, reason) if reason else (diagnostics.OK, 'ok')

    def _publish_diagnostics(self) -> None:
        if self._logic is None:  # a timer tick racing cleanup: nothing to report
            return
        level, message = self.readiness()
        safety = self._logic.safety
        values = dict(self._counts, **safety.tracking_stats(),
                      radar_timeout_s=safety.config.radar_timeout_s,
                      radar_step_p50_ms=self._radar_step.percentile(50) * 1e3,
                      radar_step_p99_ms=self._radar_step.percentile(99) * 1e3)
        status = diagnostics.status(
            'mm_fusion_ros: decision_node', 'decision_node', level, message, values
        )
        self._diag_pub.publish(
            diagnostics.diagnostic_array(self.get_clock().now().to_msg(), [status])
        )


def main(args=None) -> int:
    return node_main(DecisionNode, 'decision_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
