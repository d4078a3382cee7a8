"""sim_node over real DDS: the camera it renders is a parameter, and the demo sets it per model."""

import dataclasses

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
pytest.importorskip(
    'mm_fusion_msgs.msg', reason='the mm_fusion_msgs interface package is not built'
)

from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from mm_fusion_ros.graph import CAMERA_IMAGE, CAMERA_INFO  # noqa: E402
from mm_fusion_ros.model import small_config  # noqa: E402
from mm_fusion_ros.model.checkpoint import save_checkpoint  # noqa: E402
from mm_fusion_ros.model.fusion import FusionModel  # noqa: E402
from mm_fusion_ros.ros.closed_loop import model_camera  # noqa: E402
from mm_fusion_ros.ros.runner import running_graph  # noqa: E402
from test.ros_graph_utils import spin_until  # noqa: E402


def test_sim_node_renders_the_configured_camera():
    overrides = {'sim_node': {'camera_width': 320, 'camera_height': 160, 'episodes': 1,
                              'duration': 1.0}}
    with running_graph('sim', nodes=['sim_node'], overrides=overrides) as (executor, nodes):
        probe = rclpy.create_node('probe', context=nodes['sim_node'].context)
        executor.add_node(probe)
        images, infos = [], []
        probe.create_subscription(Image, CAMERA_IMAGE, images.append, qos_profile_sensor_data)
        probe.create_subscription(CameraInfo, CAMERA_INFO, infos.append, qos_profile_sensor_data)
        assert spin_until(executor, lambda: images and infos, timeout=20.0)
    assert (images[0].width, images[0].height) == (320, 160)
    assert (infos[0].width, infos[0].height) == (320, 160)
    assert infos[0].k[2] == 160.0 and infos[0].k[5] == 80.0  # principal point at the centre


def test_demo_camera_follows_the_model(tmp_path):
    config = small_config()
    plain = save_checkpoint(FusionModel(config), tmp_path / 'plain.pt')
    fovea = save_checkpoint(
        FusionModel(dataclasses.replace(config, fovea_height=32)), tmp_path / 'fovea.pt')
    assert (model_camera(str(plain)).width, model_camera(str(plain)).height) == (
        config.image_width, config.image_height)
    assert (model_camera(str(fovea)).width, model_camera(str(fovea)).height) == (
        2 * config.image_width, 2 * config.image_height)
