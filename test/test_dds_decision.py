"""Two processes exchange a DrivingDecision over real DDS."""

import os
from pathlib import Path
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
pytest.importorskip(
    'mm_fusion_msgs.msg', reason='the mm_fusion_msgs interface package is not built'
)

from mm_fusion_ros.actions import Action  # noqa: E402
from mm_fusion_ros.decision import DecisionSource  # noqa: E402
from mm_fusion_ros.ros.messages import DrivingDecision, msg_to_decision  # noqa: E402

HELPER = Path(__file__).parent / 'ros_helpers' / 'decision_publisher.py'


def test_decision_crosses_process_boundary():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('decision_subscriber', context=context)
    received = []
    node.create_subscription(DrivingDecision, 'test_decision', received.append, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    proc = subprocess.Popen([sys.executable, str(HELPER), '5'], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30.0
        while len(received) < 3 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert len(received) >= 3, 'no DrivingDecision arrived from the publisher process'
    decision = msg_to_decision(received[0])
    assert decision.action == Action.STOP
    assert received[0].action == DrivingDecision.ACTION_STOP
    assert received[0].action_label == 'stop'
    assert received[0].header.stamp.sec == 1_700_000_000
    assert received[0].header.stamp.nanosec >= 123_456_789
    assert decision.source == DecisionSource.MODEL
    np.testing.assert_allclose(decision.probabilities[2], 0.8, rtol=1e-6)
    assert decision.class_labels[2] == 'stop'
