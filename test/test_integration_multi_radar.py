"""Several radars merged in the vehicle frame into one history.

- `radar_sources` reads radar_topics / radar_mounts / radar_mount and refuses a mismatch;
- `RadarMerger` emits at the first radar's rate, joins the other radars' frames within the
  window once each, drops the stale ones;
- over real DDS: two radar publishers, a front radar that sees only far targets and a side
  radar (turned 90 degrees) that sees a close, approaching car straight ahead of the vehicle;
  fusion_node's history holds both radars' points in the model frame, and decision_node's TTC
  override brakes on the side radar's return: one decision from two radars.
"""

import numpy as np
import pytest

from mm_fusion_ros.params.nodes import DecisionNodeParams, FusionNodeParams
from mm_fusion_ros.params.spec import ParamError, build
from mm_fusion_ros.sensors.extrinsics import Extrinsic
from mm_fusion_ros.sensors.front_end import MODEL_RADAR_MOUNT
from mm_fusion_ros.sensors.radar_merge import RadarMerger, radar_sources

MS = 1_000_000
FRONT = [2.3, 0.0, 0.5, 0.0, 0.0, 0.0]  # the training rig's radar
LEFT = [2.3, 0.9, 0.5, 0.0, 0.0, float(np.pi / 2)]  # front-left corner, facing left


def _frame(n: int, value: float = 0.0) -> np.ndarray:
    return np.full((n, 5), value, np.float32)


def test_sources_from_the_parameters():
    one = radar_sources(['~/input/radar'], [], FRONT)
    assert one[0].mount == Extrinsic.from_values(FRONT)
    two = radar_sources(['a', 'b'], FRONT + LEFT, [0.0] * 6)
    assert [s.topic for s in two] == ['a', 'b'] and two[1].mount == Extrinsic.from_values(LEFT)
    for topics, mounts in ((['a', 'b'], FRONT), (['a', 'a'], FRONT + LEFT), ([], [])):
        with pytest.raises(ValueError):
            radar_sources(topics, mounts, FRONT)


def test_node_parameters_refuse_mounts_that_do_not_fit_the_topics():
    params = build(FusionNodeParams, 'fusion_node',
                   {'radar_topics': ['a', 'b'], 'radar_mounts': FRONT + LEFT})
    assert len(params.radars()) == 2
    for cls in (FusionNodeParams, DecisionNodeParams):
        with pytest.raises(ParamError, match='radar_mounts'):
            build(cls, 'node', {'radar_topics': ['a', 'b', 'c'], 'radar_mounts': FRONT + LEFT})
    with pytest.raises(ParamError):
        build(DecisionNodeParams, 'decision_node', {'radar_type': 'laserscan'})


def test_merger_emits_at_the_first_radars_rate():
    merger = RadarMerger(3, 50 * MS)
    assert merger.push(1, 10 * MS, _frame(2, 1)) is None
    assert merger.push(2, 20 * MS, _frame(3, 2)) is None
    stamp, points = merger.push(0, 40 * MS, _frame(1, 0))
    assert stamp == 40 * MS and points.shape == (6, 5)
    assert sorted(set(points[:, 0])) == [0.0, 1.0, 2.0]
    # each frame joins once: the next frame of radar 0 has only its own points
    assert merger.push(0, 90 * MS, _frame(1))[1].shape == (1, 5)


def test_merger_drops_stale_and_replaced_frames():
    merger = RadarMerger(2, 50 * MS)
    merger.push(1, 0, _frame(2))
    merger.push(1, 10 * MS, _frame(3))  # replaces the first, which is counted
    assert merger.dropped == 1
    stamp, points = merger.push(0, 200 * MS, _frame(1))  # 190 ms later: too old
    assert points.shape == (1, 5) and merger.dropped == 2
    merger.push(1, 260 * MS, _frame(4))  # a little after radar 0's frame: the next one takes it
    assert merger.push(0, 250 * MS, _frame(1))[1].shape == (5, 5)


def test_single_radar_passes_through():
    merger = RadarMerger(1, 0)
    frame = _frame(4)
    stamp, points = merger.push(0, 5, frame)
    assert stamp == 5 and points is frame


def test_two_radar_publishers_one_decision_over_dds(tmp_path):
    rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is missing')
    pytest.importorskip('mm_fusion_msgs.msg', reason='mm_fusion_msgs is not built')
    from nav_msgs.msg import Odometry
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, PointCloud2

    from mm_fusion_ros.actions import Action
    from mm_fusion_ros.decision import DecisionSource
    from mm_fusion_ros.graph import CAMERA_IMAGE, DECISION, EGO_ODOMETRY
    from mm_fusion_ros.ros.messages import DrivingDecision
    from mm_fusion_ros.ros.runner import running_graph
    from test.fuzz_nodes import random_checkpoint
    from test.ros_graph_utils import odometry, radar_cloud, rgb_image, spin_until

    # A car 9.7 m ahead of the front bumper closing at 10 m/s, seen by the left radar only:
    # in its frame (turned +90 degrees, 0.9 m left) it lies at x = -0.9, y = -9.7.
    left_mount = Extrinsic.from_values(LEFT)
    ahead = MODEL_RADAR_MOUNT.to_parent(np.array([[9.7, 0.0, 0.0]]))
    in_left = left_mount.from_parent(ahead)[0]
    threat = np.array([[*in_left, -10.0, 15.0]], np.float32)
    far = np.array([[80.0, 0.0, 0.0, 0.0, 10.0]], np.float32)
    settings = {'radar_topics': ['sensors/radar/front', 'sensors/radar/left'],
                'radar_mounts': FRONT + LEFT}
    overrides = {'fusion_node': {'checkpoint': random_checkpoint(tmp_path / 'r.pt'),
                                 'device': 'cpu'},
                 'decision_node': {'ttc_use_tracks': False, 'ttc_confirm_frames': 1}}
    with running_graph('fusion', settings=settings, overrides=overrides) as (executor, nodes):
        probe = rclpy.create_node('multi_radar_probe', context=nodes['fusion_node'].context)
        executor.add_node(probe)
        front_pub = probe.create_publisher(PointCloud2, 'sensors/radar/front',
                                           qos_profile_sensor_data)
        left_pub = probe.create_publisher(PointCloud2, 'sensors/radar/left',
                                          qos_profile_sensor_data)
        image_pub = probe.create_publisher(Image, CAMERA_IMAGE, qos_profile_sensor_data)
        odom_pub = probe.create_publisher(Odometry, EGO_ODOMETRY, qos_profile_sensor_data)
        finals = []
        probe.create_subscription(DrivingDecision, DECISION, finals.append, 100)
        assert spin_until(executor, lambda: front_pub.get_subscription_count() == 2
                          and left_pub.get_subscription_count() == 2, 10.0)

        def tick():
            stamp = probe.get_clock().now().to_msg()
            left_pub.publish(radar_cloud(stamp, threat))
            front_pub.publish(radar_cloud(stamp, far))
            odom_pub.publish(odometry(stamp, 10.0))
            image_pub.publish(rgb_image(stamp))

        probe.create_timer(0.05, tick)
        assert spin_until(executor, lambda: any(
            m.source == DecisionSource.SAFETY_OVERRIDE and m.action == Action.EMERGENCY_BRAKE
            for m in finals), 20.0), [(m.action, m.source) for m in finals[-5:]]
        fusion = nodes['fusion_node']
        assert fusion.stats()['radar_rejected'] == 0
        points = fusion._last_radar_points  # one merged frame in the model radar frame
        assert len(points) == 2
        np.testing.assert_allclose(points[np.argsort(points[:, 0])][:, :3],
                                   [[9.7, 0.0, 0.0], [80.0, 0.0, 0.0]], atol=1e-3)
        executor.remove_node(probe)
        probe.destroy_node()
