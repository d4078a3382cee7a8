"""Publish DrivingDecision messages from a separate process until a subscriber has seen them."""

import sys
import time

import rclpy
from rclpy.node import Node

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.ros.messages import DrivingDecision, decision_to_msg


def main() -> None:
    count = int(sys.argv[1])
    rclpy.init()
    node = Node('decision_publisher')
    pub = node.create_publisher(DrivingDecision, 'test_decision', 10)
    deadline = time.monotonic() + 20.0
    i = 0
    while i < count and time.monotonic() < deadline:
        if pub.get_subscription_count() == 0:
            time.sleep(0.02)
            continue
        decision = Decision(
            stamp_ns=1_700_000_000_123_456_789 + i,
            action=Action.STOP,
            target_acceleration=-2.5,
            target_speed=0.0,
            probabilities=[0.05, 0.05, 0.8, 0.04, 0.03, 0.03],
            confidence=0.8,
            source=DecisionSource.MODEL,
            inference_latency=0.004,
        )
        pub.publish(decision_to_msg(decision))
        i += 1
        time.sleep(0.02)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == '__main__':
    main()
