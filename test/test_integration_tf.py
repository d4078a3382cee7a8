"""Static transforms of the sensor frames (sim_node's /tf_static).

The builder and the TransformStamped messages are tested everywhere: read back through the
project's own /tf_static lookup (`sensors.extrinsics.StaticTransforms`), they give the mounts
they were built from. sim_node's broadcast is tested where tf2_ros is importable (a ROS
distro; tf2_ros and tf2_msgs are not among the ROS wheels on PyPI).
"""

import math

import numpy as np
import pytest

from mm_fusion_ros.ros.tf_static import optical_frame, sensor_transforms
from mm_fusion_ros.sensors.camera_geometry import OPTICAL_IN_BODY
from mm_fusion_ros.sensors.extrinsics import Extrinsic, matrix_to_quaternion, static_transforms
from mm_fusion_ros.sim.camera import CameraConfig
from mm_fusion_ros.sim.radar import RadarConfig

RADAR_LEFT = Extrinsic(x=2.0, y=0.9, z=0.5, yaw=math.pi / 2)


def _assert_same(a: Extrinsic, b: Extrinsic) -> None:
    np.testing.assert_allclose(a.translation, b.translation, atol=1e-9)
    np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-9)


@pytest.mark.parametrize('rpy', [(0, 0, 0), (0.1, -0.2, 0.3), (math.pi, 0, 0), (0, 0, math.pi),
                                 (0.0, math.pi / 2 - 1e-6, 0.0), (-3.0, 1.0, 2.5)])
def test_quaternion_of_a_rotation_round_trips(rpy):
    from mm_fusion_ros.sensors.extrinsics import quaternion_to_matrix, rpy_to_matrix

    rotation = rpy_to_matrix(*rpy)
    q = matrix_to_quaternion(rotation)
    assert q[3] >= 0 and math.isclose(sum(c * c for c in q), 1.0, abs_tol=1e-9)
    np.testing.assert_allclose(quaternion_to_matrix(*q), rotation, atol=1e-9)


def test_sensor_frames_round_trip_through_a_tf_lookup():
    pytest.importorskip('geometry_msgs.msg', reason='geometry_msgs (ROS wheels) is missing')
    from builtin_interfaces.msg import Time

    from mm_fusion_ros.ros.tf_static import to_msgs

    camera = CameraConfig().mount
    built = sensor_transforms('base_link', 'camera', camera,
                              [('radar', RadarConfig().mount), ('radar_left', RADAR_LEFT)])
    assert [(t.parent, t.child) for t in built] == [
        ('base_link', 'camera'), ('camera', optical_frame('camera')),
        ('base_link', 'radar'), ('base_link', 'radar_left')]
    msgs = to_msgs(built, Time(sec=3))
    assert all(m.header.stamp.sec == 3 for m in msgs)
    tree = static_transforms([type('TF', (), {'transforms': msgs})()])
    assert tree.rejected == 0
    _assert_same(tree.lookup('base_link', 'radar'), RadarConfig().mount)
    _assert_same(tree.lookup('base_link', 'radar_left'), RADAR_LEFT)
    _assert_same(tree.lookup('base_link', 'camera'), camera)
    optical = tree.lookup('camera', 'camera_optical_frame')
    np.testing.assert_allclose(optical.rotation, OPTICAL_IN_BODY, atol=1e-9)
    # a point 10 m ahead of the camera lies on the optical frame's +z axis
    ahead = tree.lookup('camera_optical_frame', 'base_link').to_parent(
        camera.to_parent(np.array([[10.0, 0.0, 0.0]])))
    np.testing.assert_allclose(ahead, [[0.0, 0.0, 10.0]], atol=1e-9)


def test_sim_node_publishes_its_sensor_frames_on_tf_static():
    rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is missing')
    pytest.importorskip('tf2_ros', reason='tf2_ros is not installed (not among the ROS wheels on '
                        'PyPI; a ROS distro provides it): /tf_static of sim_node untested here')
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from tf2_msgs.msg import TFMessage

    from mm_fusion_ros.ros.runner import running_graph
    from test.ros_graph_utils import spin_until

    with running_graph('sim', nodes=['sim_node'], overrides={
            'sim_node': {'episodes': 1, 'duration': 2.0}}) as (executor, nodes):
        probe = rclpy.create_node('tf_probe', context=nodes['sim_node'].context)
        executor.add_node(probe)
        got = []
        qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        probe.create_subscription(TFMessage, '/tf_static', got.append, qos)
        assert spin_until(executor, lambda: got, 10.0)
        tree = static_transforms(got)
        _assert_same(tree.lookup('base_link', 'radar'), RadarConfig().mount)
        executor.remove_node(probe)
        probe.destroy_node()
