"""decision_node: the safety layer between the fusion model and the vehicle stack.

Consumes the fusion node's raw decision and the radar, publishes the final DrivingDecision and
an AccelStamped command. A watchdog timer publishes a degraded fallback when the radar or the
fusion output goes stale, so a dead sensor is never silent.
"""

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import AccelStamped
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import PointCloud2

from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.ros import diagnostics
from mm_fusion_ros.ros.messages import DrivingDecision, decision_to_msg, msg_to_decision
from mm_fusion_ros.ros.params import declare_choice, declare_float, declare_int, declare_value
from mm_fusion_ros.ros.time import stamp_from_ns
from mm_fusion_ros.safety import DecisionLogic, SafetyConfig
from mm_fusion_ros.sensors.pointcloud import PointCloudDecodeError
from mm_fusion_ros.sensors.radar_presets import list_presets, load_preset


class DecisionNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('decision_node', **kwargs)
        defaults = SafetyConfig()
        config = SafetyConfig(
            radar_timeout=declare_float(
                self,
                'radar_timeout',
                defaults.radar_timeout,
                'No radar frame for this long [s] -> degraded fallback.',
                0.01,
                10.0,
            ),
            radar_lost_timeout=declare_float(
                self,
                'radar_lost_timeout',
                defaults.radar_lost_timeout,
                'No radar frame for this long [s] -> controlled stop.',
                0.01,
                60.0,
            ),
            degraded_max_acceleration=declare_float(
                self,
                'degraded_max_acceleration',
                defaults.degraded_max_acceleration,
                'Acceleration cap while the radar is briefly missing [m/s^2].',
                -10.0,
                5.0,
            ),
            decision_timeout=declare_float(
                self,
                'decision_timeout',
                defaults.decision_timeout,
                'No fusion output for this long [s] -> degraded fallback.',
                0.01,
                10.0,
            ),
            fallback_acceleration=declare_float(
                self,
                'fallback_acceleration',
                defaults.fallback_acceleration,
                'Deceleration while degraded [m/s^2].',
                -10.0,
                0.0,
            ),
            emergency_acceleration=declare_float(
                self,
                'emergency_acceleration',
                defaults.emergency_acceleration,
                'Deceleration of every EMERGENCY_BRAKE (model or radar TTC override) [m/s^2].',
                -15.0,
                0.0,
            ),
            ttc_brake_threshold=declare_float(
                self,
                'ttc_brake_threshold',
                defaults.ttc_brake_threshold,
                'Radar time-to-collision below which to brake [s].',
                0.0,
                10.0,
            ),
            ttc_confirm_frames=declare_int(
                self,
                'ttc_confirm_frames',
                defaults.ttc_confirm_frames,
                'Consecutive radar frames with a return below the TTC threshold.',
                1,
                20,
            ),
            ttc_track_gate=declare_float(
                self,
                'ttc_track_gate',
                defaults.ttc_track_gate,
                'Range and lateral gate around the threat predicted from the last radar frame; '
                'only a return inside it confirms the threat (0: any return does) [m].',
                0.0,
                10.0,
            ),
            corridor_half_width=declare_float(
                self,
                'corridor_half_width',
                defaults.corridor_half_width,
                'Half width of the ego path for the TTC check [m].',
                0.5,
                5.0,
            ),
            min_dwell=declare_float(
                self,
                'min_dwell',
                defaults.min_dwell,
                'A new, less cautious action must persist this long [s].',
                0.0,
                5.0,
            ),
            max_jerk=declare_float(
                self,
                'max_jerk',
                defaults.max_jerk,
                'Rate limit on the target acceleration [m/s^3].',
                0.1,
                100.0,
            ),
        )
        preset = declare_choice(
            self, 'radar_preset', 'sim', 'Radar message layout.', tuple(list_presets())
        )
        watchdog_rate = declare_float(
            self, 'watchdog_rate', 100.0, 'Staleness checks per second [Hz].', 1.0, 1000.0
        )
        self._frame_id = declare_value(self, 'frame_id', 'base_link', 'Frame of the command.')
        diag_period = declare_float(
            self, 'diagnostics_period', 1.0, 'Diagnostics publish period [s].', 0.1, 60.0
        )

        self._logic = DecisionLogic(config)
        self._safety = self._logic.safety
        self._radar_to_canonical = load_preset(preset).converter()
        self._last_now_ns = 0
        self._counts = {
            'published': 0,
            'fallback': 0,
            'override': 0,
            'radar_rejected': 0,
            'decision_rejected': 0,
        }

        self._decision_pub = self.create_publisher(DrivingDecision, '~/output/decision', 10)
        self._accel_pub = self.create_publisher(AccelStamped, '~/output/accel_cmd', 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(DrivingDecision, '~/input/decision', self._on_decision, 10)
        self.create_subscription(
            PointCloud2,
            '~/input/radar',
            self._on_radar,
            qos_profile_sensor_data,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        self.create_timer(1.0 / watchdog_rate, self._on_watchdog)
        self.create_timer(diag_period, self._publish_diagnostics)

    def _now_ns(self) -> int:
        now = self.get_clock().now().nanoseconds
        if now < self._last_now_ns:
            self.get_logger().warning(
                'clock jumped backwards (bag loop or sim reset): clearing safety history'
            )
            self._logic.reset()
        self._last_now_ns = now
        return now

    def _on_radar(self, msg: PointCloud2) -> None:
        now = self._now_ns()
        try:
            points = self._radar_to_canonical(msg)
        except (PointCloudDecodeError, ValueError) as exc:
            self._counts['radar_rejected'] += 1
            self.get_logger().warning(f'rejected radar cloud: {exc}', throttle_duration_sec=1.0)
            return
        decision = self._logic.on_radar(now, points)
        if decision is not None:
            self._publish(decision)

    def _on_decision(self, msg: DrivingDecision) -> None:
        now = self._now_ns()
        try:
            final = self._logic.on_model_decision(now, msg_to_decision(msg))
        except ValueError as exc:
            # Not taken as the model's output: the watchdog degrades if no valid one follows.
            self._counts['decision_rejected'] += 1
            self.get_logger().warning(f'rejected fusion output: {exc}', throttle_duration_sec=1.0)
            return
        self._publish(final)

    def _on_watchdog(self) -> None:
        decision = self._logic.on_watchdog(self._now_ns())
        if decision is not None:
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
        self._decision_pub.publish(decision_to_msg(decision, self._frame_id))
        cmd = AccelStamped()
        cmd.header.stamp = stamp_from_ns(decision.stamp_ns)
        cmd.header.frame_id = self._frame_id
        cmd.accel.linear.x = float(decision.target_acceleration)
        self._accel_pub.publish(cmd)

    def _publish_diagnostics(self) -> None:
        now = self._now_ns()
        reason = self._safety.stale_reason(now)
        level = diagnostics.WARN if reason else diagnostics.OK
        values = dict(self._counts, radar_ttc=self._safety.radar_ttc)
        status = diagnostics.status(
            'mm_fusion_ros: decision_node', 'decision_node', level, reason or 'ok', values
        )
        self._diag_pub.publish(
            diagnostics.diagnostic_array(self.get_clock().now().to_msg(), [status])
        )


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = DecisionNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
