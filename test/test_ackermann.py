"""Decision -> ackermann_msgs/AckermannDriveStamped: the pure mapping, and the live publisher.

The mapping is tested everywhere; the live publisher of decision_node
(`ackermann_output: true`) only where ackermann_msgs is importable (a ROS distro: it is not
among the ROS wheels on PyPI); elsewhere configure refuses with the reason.
"""

import math

import pytest

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.ros.ackermann import MIN_ACCELERATION, ackermann_command


def _decision(action=Action.CRUISE, accel=0.0):
    return Decision(stamp_ns=1_500_000_000, action=action, target_acceleration=accel,
                    target_speed=math.nan, source=DecisionSource.MODEL)


def test_accelerating_targets_speed_ahead_by_the_horizon():
    cmd = ackermann_command(_decision(accel=1.5), ego_speed=10.0, horizon=1.0, max_jerk=4.0)
    assert cmd.stamp_ns == 1_500_000_000
    assert cmd.speed == pytest.approx(11.5)
    assert cmd.acceleration == pytest.approx(1.5) and cmd.jerk == pytest.approx(4.0)
    assert cmd.steering_angle == 0.0 and cmd.steering_angle_velocity == 0.0


def test_braking_is_a_lower_speed_with_the_deceleration_as_its_magnitude():
    cmd = ackermann_command(_decision(Action.FOLLOW, -3.0), 8.0, horizon=2.0, max_jerk=10.0)
    assert cmd.speed == pytest.approx(2.0) and cmd.acceleration == pytest.approx(3.0)
    assert ackermann_command(_decision(Action.FOLLOW, -3.0), 2.0, 2.0, 10.0).speed == 0.0


def test_hold_never_reads_as_as_quickly_as_possible():
    cmd = ackermann_command(_decision(accel=0.0), 12.0, horizon=1.0, max_jerk=10.0)
    assert cmd.speed == pytest.approx(12.0) and cmd.acceleration == MIN_ACCELERATION > 0


def test_stop_and_emergency_brake_aim_at_zero():
    stop = ackermann_command(_decision(Action.STOP, -2.0), 10.0, 1.0, 10.0)
    assert stop.speed == 0.0 and stop.acceleration == pytest.approx(2.0) and stop.jerk == 10.0
    brake = ackermann_command(_decision(Action.EMERGENCY_BRAKE, -8.0), 10.0, 1.0, 10.0)
    assert brake.speed == 0.0 and brake.acceleration == pytest.approx(8.0)
    assert brake.jerk == 0.0  # full braking: change acceleration as quickly as possible


@pytest.mark.parametrize('speed', [None, math.nan])
def test_unknown_ego_speed_aims_at_zero(speed):
    cmd = ackermann_command(_decision(accel=1.0), speed, 1.0, 10.0)
    assert cmd.speed == 0.0 and cmd.acceleration == pytest.approx(1.0)


def test_non_finite_acceleration_is_refused():
    with pytest.raises(ValueError):
        ackermann_command(_decision(accel=math.inf), 1.0, 1.0, 10.0)


def test_without_ackermann_msgs_configure_says_why():
    pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
    pytest.importorskip('mm_fusion_msgs.msg', reason='mm_fusion_msgs is not built')
    try:
        import ackermann_msgs.msg  # noqa: F401
        pytest.skip('ackermann_msgs is installed: the live test below runs instead')
    except ImportError:
        pass
    import rclpy
    from rclpy.parameter import Parameter

    from mm_fusion_ros.ros.decision_node import DecisionNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = DecisionNode(context=context, parameter_overrides=[
            Parameter('ackermann_output', value=True)])
        try:
            node.trigger_configure()
            assert 'ackermann_msgs' in node.configure_error
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_live_ackermann_publisher_over_dds():
    pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
    pytest.importorskip('ackermann_msgs.msg', reason='ackermann_msgs is not installed (not '
                        'among the ROS wheels on PyPI; a ROS distro provides it): the live '
                        'Ackermann publisher is untested here')
    from ackermann_msgs.msg import AckermannDriveStamped
    from nav_msgs.msg import Odometry
    import rclpy
    from rclpy.qos import qos_profile_sensor_data

    from mm_fusion_ros.graph import RAW_DECISION
    from mm_fusion_ros.ros.messages import DrivingDecision, decision_to_msg
    from mm_fusion_ros.ros.runner import running_graph
    from test.ros_graph_utils import odometry, spin_until

    # graph.py remaps the node's ~/input/odom and ~/output/ackermann_cmd (odom,
    # decision/ackermann_cmd) once it lists them; the fully qualified names work either way.
    with running_graph('fusion', nodes=['decision_node'],
                       overrides={'decision_node': {'ackermann_output': True}}) as (ex, nodes):
        node = nodes['decision_node']
        probe = rclpy.create_node('ackermann_probe', context=node.context)
        ex.add_node(probe)
        raw_pub = probe.create_publisher(DrivingDecision, RAW_DECISION, 10)
        odom_topic = node.resolve_topic_name('~/input/odom')
        out_topic = node.resolve_topic_name('~/output/ackermann_cmd')
        odom_pub = probe.create_publisher(Odometry, odom_topic, qos_profile_sensor_data)
        got = []
        probe.create_subscription(AckermannDriveStamped, out_topic, got.append, 10)

        def tick():
            now = probe.get_clock().now()
            odom_pub.publish(odometry(now.to_msg(), 10.0))
            raw_pub.publish(decision_to_msg(Decision(
                stamp_ns=now.nanoseconds, action=Action.CRUISE, target_acceleration=0.0,
                confidence=0.9, source=DecisionSource.MODEL)))

        probe.create_timer(0.05, tick)
        assert spin_until(ex, lambda: any(m.drive.speed > 5.0 for m in got), 10.0)
        ex.remove_node(probe)
        probe.destroy_node()
