"""fusion_node + decision_node over real DDS with a random-weight model (proof of life).

Publishes synthetic camera + radar at 20 Hz; the final decision carries the camera stamp. A
random-weight model with the real I/O shapes keeps this independent of training and GPUs.
"""

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
pytest.importorskip(
    'mm_fusion_msgs.msg', reason='the mm_fusion_msgs interface package is not built'
)
torch = pytest.importorskip('torch')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from mm_fusion_ros.graph import (  # noqa: E402
    CAMERA_IMAGE,
    DECISION,
    EGO_ODOMETRY,
    RADAR_POINTS,
    RAW_DECISION,
)
from mm_fusion_ros.model.checkpoint import save_checkpoint  # noqa: E402
from mm_fusion_ros.model.fusion import FusionModel  # noqa: E402
from mm_fusion_ros.ros.messages import DrivingDecision  # noqa: E402
from mm_fusion_ros.ros.runner import running_graph  # noqa: E402
from mm_fusion_ros.ros.time import stamp_to_ns  # noqa: E402
from test.ros_graph_utils import odometry, radar_cloud, rgb_image, spin_until  # noqa: E402


@pytest.fixture(scope='module')
def random_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'random.pt'
    return str(save_checkpoint(FusionModel(), path, training_data_hash='random-weights'))


def test_graph_publishes_decision_with_camera_stamp(random_checkpoint):
    overrides = {'fusion_node': {'checkpoint': random_checkpoint, 'device': 'cpu'}}
    with running_graph('fusion', overrides=overrides) as (executor, nodes):
        probe = rclpy.create_node('probe', context=nodes['fusion_node'].context)
        executor.add_node(probe)
        image_pub = probe.create_publisher(Image, CAMERA_IMAGE, qos_profile_sensor_data)
        radar_pub = probe.create_publisher(PointCloud2, RADAR_POINTS, qos_profile_sensor_data)
        odom_pub = probe.create_publisher(Odometry, EGO_ODOMETRY, qos_profile_sensor_data)
        raw, final, diags = [], [], []
        probe.create_subscription(DrivingDecision, RAW_DECISION, raw.append, 50)
        probe.create_subscription(DrivingDecision, DECISION, final.append, 50)
        probe.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 50)
        assert spin_until(
            executor,
            lambda: (
                image_pub.get_subscription_count() > 0 and radar_pub.get_subscription_count() > 0
            ),
            10.0,
        )
        sent = []

        def tick():
            now = probe.get_clock().now()
            radar_pub.publish(radar_cloud(now.to_msg()))
            odom_pub.publish(odometry(now.to_msg()))
            image = rgb_image(now.to_msg(), seed=len(sent))
            sent.append(now.nanoseconds)
            image_pub.publish(image)

        probe.create_timer(0.05, tick)
        assert spin_until(executor, lambda: len(raw) >= 10, 30.0), 'no fusion output'
        stamps = {stamp_to_ns(m.header.stamp) for m in raw}
        assert stamps <= set(sent), 'raw decisions must carry camera stamps'
        model_out = [m for m in raw if m.source == DrivingDecision.SOURCE_MODEL]
        assert model_out and all(len(m.class_probabilities) == 6 for m in model_out)
        assert abs(sum(model_out[-1].class_probabilities) - 1.0) < 1e-4
        assert any(not m.degraded for m in model_out[-5:]), [m.degraded_reason for m in raw]
        assert spin_until(
            executor,
            lambda: any(
                not m.degraded and stamp_to_ns(m.header.stamp) in set(sent) for m in final
            ),
            10.0,
        ), 'no healthy final decision'
        assert spin_until(
            executor,
            lambda: any(s.name == 'mm_fusion_ros: fusion_node' for d in diags for s in d.status),
            5.0,
        )
        stats = nodes['fusion_node'].stats()
        assert stats['decisions'] >= 10 and stats['image_rejected'] == 0
        assert stats['odometry_frames'] >= 10 and stats['odometry_rejected'] == 0
        executor.remove_node(probe)
        probe.destroy_node()


def test_bad_checkpoint_fails_at_configure(tmp_path):
    from mm_fusion_ros.ros.lifecycle import StartError

    bad = tmp_path / 'corrupt.pt'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(StartError, match='configure failed'):
        with running_graph(
            'fusion', overrides={'fusion_node': {'checkpoint': str(bad)}}, nodes=['fusion_node']
        ):
            pass
