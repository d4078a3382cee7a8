"""radar_msgs/RadarScan input: the pure conversion, bags through rosbags, the live nodes.

- returns (range, azimuth, elevation, doppler, amplitude) give the canonical columns of the
  presets (x, y, z, radial_velocity, rcs) in the radar frame, then the model radar frame
  through the radar's mount; malformed scans raise a SensorDecodeError with a reason key;
- bags with RadarScan topics are written with rosbags from the embedded message definition
  and read back (one radar and two merged);
- live: fusion_node and decision_node with radar_type radar_scan where radar_msgs is
  importable (a ROS distro); skipped with the reason elsewhere, and configure says why.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from mm_fusion_ros.sensors.errors import SensorDecodeError
from mm_fusion_ros.sensors.extrinsics import Extrinsic
from mm_fusion_ros.sensors.front_end import MODEL_RADAR_MOUNT, RadarToModel
from mm_fusion_ros.sensors.radar_features import CANONICAL_RADAR_FEATURES
from mm_fusion_ros.sensors.radar_scan import (
    RADAR_SCAN_MSGDEFS,
    RADAR_SCAN_TYPE,
    RadarScanToModel,
    points_to_returns,
    register_radar_scan,
    returns_to_points,
    scan_fields,
    scan_to_points,
)

POINTS = np.array([[30.0, 0.0, 0.0, -5.0, 12.0],
                   [20.0, 5.0, 1.0, 1.5, 3.0],
                   [10.0, -4.0, -0.5, 0.0, -2.0]], np.float32)


def _scan(rows, stamp_ns: int = 0):
    header = SimpleNamespace(stamp=SimpleNamespace(sec=stamp_ns // 10**9,
                                                   nanosec=stamp_ns % 10**9), frame_id='radar')
    return SimpleNamespace(header=header,
                           returns=[SimpleNamespace(**r) for r in scan_fields(rows)])


def test_returns_give_the_canonical_columns_of_the_presets():
    scan = _scan(points_to_returns(POINTS))
    points = scan_to_points(scan)
    assert points.dtype == np.float32 and points.shape == (3, len(CANONICAL_RADAR_FEATURES))
    np.testing.assert_allclose(points, POINTS, atol=1e-4)
    one = returns_to_points(np.array([[10.0, np.pi / 2, 0.0, 2.0, 7.0]]))[0]
    np.testing.assert_allclose(one, [0.0, 10.0, 0.0, 2.0, 7.0], atol=1e-5)  # azimuth: left
    up = returns_to_points(np.array([[10.0, 0.0, np.pi / 6, 0.0, 0.0]]))[0]
    np.testing.assert_allclose(up[:3], [10 * np.cos(np.pi / 6), 0.0, 5.0], atol=1e-5)


def test_doppler_sign_and_amplitude_offset():
    returns = points_to_returns(POINTS)
    flipped = returns_to_points(returns, doppler_sign=-1.0, amplitude_offset=10.0)
    np.testing.assert_allclose(flipped[:, 3], -POINTS[:, 3], atol=1e-5)
    np.testing.assert_allclose(flipped[:, 4], POINTS[:, 4] + 10.0, atol=1e-5)


def test_empty_scan_is_an_empty_frame():
    assert scan_to_points(_scan([])).shape == (0, 5)


@pytest.mark.parametrize('rows, reason', [
    ([[np.nan, 0, 0, 0, 0]], 'non_finite'),
    ([[10.0, np.inf, 0, 0, 0]], 'non_finite'),
    ([[-1.0, 0, 0, 0, 0]], 'out_of_range'),
    ([[1e6, 0, 0, 0, 0]], 'out_of_range'),
])
def test_bad_returns_are_decode_errors_with_a_reason(rows, reason):
    with pytest.raises(SensorDecodeError) as info:
        scan_to_points(_scan(rows))
    assert info.value.reason == reason


def test_not_a_scan_is_a_decode_error():
    with pytest.raises(SensorDecodeError):
        scan_to_points(SimpleNamespace(header=None))
    with pytest.raises(SensorDecodeError):
        scan_to_points(SimpleNamespace(returns=[SimpleNamespace(range=1.0)]))


def test_mount_takes_points_into_the_model_radar_frame_like_the_cloud_presets():
    """A RadarScan and a PointCloud2 of the same points, on the same mount, agree."""
    from mm_fusion_ros.sensors.pointcloud import create_cloud
    from mm_fusion_ros.sensors.radar_presets import load_preset

    mount = Extrinsic(x=3.5, y=0.8, z=0.6, yaw=np.radians(45.0))
    scan_points = RadarScanToModel(mount)(_scan(points_to_returns(POINTS)))
    header = SimpleNamespace(stamp=SimpleNamespace(sec=0, nanosec=0), frame_id='radar')
    cloud = create_cloud(header, load_preset('sim').layout_fields(), POINTS)
    np.testing.assert_allclose(scan_points, RadarToModel('sim', mount)(cloud), atol=1e-3)
    # the training mount: nothing moves
    same = RadarScanToModel(MODEL_RADAR_MOUNT)(_scan(points_to_returns(POINTS)))
    np.testing.assert_allclose(same, POINTS, atol=1e-4)
    with pytest.raises(ValueError):
        RadarScanToModel(mount, doppler_sign=0.5)


def _write_radar_bag(path, frames):
    """A rosbag2 (MCAP) bag with RadarScan topics: frames = [(topic, stamp_ns, returns)]."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = register_radar_scan(get_typestore(Stores.ROS2_HUMBLE))
    scan_t, return_t = store.types[RADAR_SCAN_TYPE], store.types['radar_msgs/msg/RadarReturn']
    header_t = store.types['std_msgs/msg/Header']
    time_t = store.types['builtin_interfaces/msg/Time']
    writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
    with writer:
        conns = {}
        for topic, stamp_ns, rows in frames:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, RADAR_SCAN_TYPE, typestore=store)
            msg = scan_t(
                header=header_t(stamp=time_t(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                                frame_id='radar'),
                returns=[return_t(**r) for r in scan_fields(rows)])
            writer.write(conns[topic], stamp_ns, store.serialize_cdr(msg, RADAR_SCAN_TYPE))


def test_registration_from_the_embedded_definition_is_idempotent():
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    register_radar_scan(register_radar_scan(store))
    for name in RADAR_SCAN_MSGDEFS:
        assert name in store.types


def test_bag_with_one_radar_scan_topic_reads_back(tmp_path):
    from mm_fusion_ros.bags.radar_scan import read_radar_scans

    returns = points_to_returns(POINTS)
    bag = tmp_path / 'scan'
    _write_radar_bag(bag, [('/radar/scan', k * 50_000_000, returns) for k in range(4)])
    frames = list(read_radar_scans(bag, ['/radar/scan']))
    assert [s for s, _ in frames] == [k * 50_000_000 for k in range(4)]
    for _, points in frames:
        np.testing.assert_allclose(points, POINTS, atol=1e-4)


def test_bag_with_two_radar_scan_topics_merges_them(tmp_path):
    from mm_fusion_ros.bags.radar_scan import read_radar_scans

    front, rear = points_to_returns(POINTS[:1]), points_to_returns(POINTS[1:])
    frames = []
    for k in range(3):
        frames.append(('/radar/front', k * 50_000_000, front))
        frames.append(('/radar/left', k * 50_000_000 + 10_000_000, rear))
    bag = tmp_path / 'two'
    _write_radar_bag(bag, frames)
    left_mount = Extrinsic(x=2.0, y=0.9, z=0.5, yaw=np.pi / 2)
    out = list(read_radar_scans(bag, ['/radar/front', '/radar/left'],
                                [MODEL_RADAR_MOUNT, left_mount]))
    assert [s for s, _ in out] == [0, 50_000_000, 100_000_000]
    assert len(out[0][1]) == 1  # the left frame of t=10 ms comes after the first front frame
    assert all(len(points) == 3 for _, points in out[1:])
    expected_left = RadarScanToModel(left_mount)(_scan(rear))
    np.testing.assert_allclose(out[1][1][1:], expected_left, atol=1e-4)


def test_bag_topic_of_another_type_is_refused(tmp_path):
    from mm_fusion_ros.bags.radar_scan import read_radar_scans

    bag = tmp_path / 'scan'
    _write_radar_bag(bag, [('/radar/scan', 0, points_to_returns(POINTS))])
    with pytest.raises(ValueError, match='missing'):
        list(read_radar_scans(bag, ['/radar/points']))


def test_live_nodes_without_radar_msgs_refuse_to_configure_with_the_reason():
    pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
    pytest.importorskip('mm_fusion_msgs.msg', reason='mm_fusion_msgs is not built')
    try:
        import radar_msgs.msg  # noqa: F401
        pytest.skip('radar_msgs is installed: the live test below runs instead')
    except ImportError:
        pass
    import rclpy
    from rclpy.parameter import Parameter

    from mm_fusion_ros.ros.decision_node import DecisionNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = DecisionNode(context=context, parameter_overrides=[
            Parameter('radar_type', value='radar_scan')])
        try:
            node.trigger_configure()
            assert 'radar_msgs' in node.configure_error
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_live_radar_scan_over_dds(tmp_path):
    """Where radar_msgs is importable: a RadarScan publisher drives both nodes."""
    pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
    pytest.importorskip('radar_msgs.msg', reason='radar_msgs is not installed (not among the '
                        'ROS wheels on PyPI; a ROS distro provides it): live RadarScan untested')
    from radar_msgs.msg import RadarReturn, RadarScan
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from mm_fusion_ros.graph import CAMERA_IMAGE, DECISION, RADAR_POINTS
    from mm_fusion_ros.ros.messages import DrivingDecision
    from mm_fusion_ros.ros.runner import running_graph
    from test.fuzz_nodes import random_checkpoint
    from test.ros_graph_utils import rgb_image, spin_until

    ckpt = random_checkpoint(tmp_path / 'random.pt')
    overrides = {'fusion_node': {'checkpoint': ckpt, 'device': 'cpu',
                                 'radar_type': 'radar_scan'},
                 'decision_node': {'radar_type': 'radar_scan'}}
    with running_graph('fusion', overrides=overrides) as (executor, nodes):
        probe = rclpy.create_node('radar_scan_probe', context=nodes['fusion_node'].context)
        executor.add_node(probe)
        radar_pub = probe.create_publisher(RadarScan, RADAR_POINTS, qos_profile_sensor_data)
        image_pub = probe.create_publisher(Image, CAMERA_IMAGE, qos_profile_sensor_data)
        got = []
        probe.create_subscription(DrivingDecision, DECISION, got.append, 10)
        for _ in range(20):
            stamp = probe.get_clock().now().to_msg()
            scan = RadarScan()
            scan.header.stamp = stamp
            scan.returns = [RadarReturn(**r) for r in scan_fields(points_to_returns(POINTS))]
            radar_pub.publish(scan)
            image_pub.publish(rgb_image(stamp))
            spin_until(executor, lambda: False, 0.05)
        assert spin_until(executor, lambda: any(m.source == 0 for m in got), 10.0)
        assert nodes['fusion_node'].stats()['radar_rejected'] == 0
