"""Sim episodes -> MCAP / SQLite3 bags -> the reader: values, layout and rosbag2 metadata."""

import json
import math
from pathlib import Path
import sys

import numpy as np
import pytest
import yaml

from mm_fusion_ros.actions import ACTION_LABELS
from mm_fusion_ros.bags import episode_from_bag, open_bag, write_episode_bag
from mm_fusion_ros.bags.typestore import DRIVING_DECISION, project_typestore
from mm_fusion_ros.bags.writer import (
    DEFAULT_BASE_TIME_NS,
    GROUND_TRUTH_TOPIC,
    IMAGE_TOPIC,
    RADAR_TOPIC,
    frame_stamp_ns,
)
from mm_fusion_ros.sensors.image import image_to_rgb
from mm_fusion_ros.sensors.radar_presets import load_preset
from mm_fusion_ros.sim import ScenarioConfig, ScenarioType, run_episode
from mm_fusion_ros.sim.conditions import Condition

CONFIG = ScenarioConfig(scenario=ScenarioType.LEAD_BRAKE, condition=Condition.RAIN, seed=3,
                        duration=1.5)


@pytest.fixture(scope='module')
def frames():
    return run_episode(CONFIG).frames


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_round_trip(tmp_path, frames, storage):
    stats = write_episode_bag(tmp_path / 'bag', frames, CONFIG, storage=storage)
    assert stats.frames == len(frames)
    ep = episode_from_bag(tmp_path / 'bag', 'sim', require_ground_truth=True)
    assert ep.info['scenario'] == 'lead_brake' and ep.info['condition'] == 'rain'
    assert ep.info['seed'] == 3 and ep.info['base_time_ns'] == DEFAULT_BASE_TIME_NS
    assert len(ep.images) == len(frames)
    for (stamp, rgb), frame in zip(ep.images, frames, strict=True):
        assert stamp == frame_stamp_ns(DEFAULT_BASE_TIME_NS, frame.stamp)
        np.testing.assert_array_equal(rgb, frame.rgb)
    with_radar = [f for f in frames if f.radar is not None]
    assert len(ep.radar) == len(with_radar)
    for (stamp, points), frame in zip(ep.radar, with_radar, strict=True):
        assert stamp == frame_stamp_ns(DEFAULT_BASE_TIME_NS, frame.radar_stamp)
        np.testing.assert_array_equal(points, frame.radar[:, :5])
    for frame in frames:
        stamp = frame_stamp_ns(DEFAULT_BASE_TIME_NS, frame.stamp)
        msg = ep.ground_truth[stamp]
        assert msg.action == int(frame.label.action)
        assert msg.action_label == ACTION_LABELS[msg.action]
        assert msg.target_acceleration == pytest.approx(frame.label.target_acceleration,
                                                        abs=1e-5)
        assert msg.target_speed == pytest.approx(frame.ego.speed, abs=1e-4)
        assert list(msg.class_labels) == list(ACTION_LABELS)
        assert np.argmax(msg.class_probabilities) == msg.action
        ttc = ep.ttc[stamp]
        assert ttc == frame.label.ttc or (math.isinf(ttc) and math.isinf(frame.label.ttc))
    assert ep.stats.rejected_count == 0


def test_log_time_order_and_decoders_on_rosbags_messages(tmp_path, frames):
    write_episode_bag(tmp_path / 'bag', frames, CONFIG)
    convert = load_preset('sim').converter()
    with open_bag(tmp_path / 'bag', 'sim') as bag:
        times = []
        for m in bag.messages():
            times.append(m.log_time_ns)
            if m.kind == 'image':
                assert isinstance(m.msg.data, np.ndarray)
                rgb = image_to_rgb(m.msg)  # zero-copy view of the rosbags numpy buffer
                assert rgb.shape == (128, 256, 3) and rgb.dtype == np.uint8
            elif m.kind == 'radar':
                assert isinstance(m.msg.data, np.ndarray)
                assert convert(m.msg).shape[1] == 5
        assert times == sorted(times)


def test_compressed_images(tmp_path, frames):
    write_episode_bag(tmp_path / 'bag', frames, CONFIG, compressed_images=True)
    ep = episode_from_bag(tmp_path / 'bag', 'sim_compressed')
    assert len(ep.images) == len(frames)
    err = np.abs(ep.images[5][1].astype(int) - frames[5].rgb.astype(int)).mean()
    assert err < 6.0  # JPEG q90
    with pytest.raises(Exception, match='missing image topic'):
        open_bag(tmp_path / 'bag', 'sim')


def _venv_type_hash(typename: str) -> str | None:
    """The RIHS01 hash rosidl generated for `typename`, if its JSON is installed here."""
    pkg, _, name = typename.split('/')
    for prefix in (Path(sys.prefix), *map(Path, __import__('os').environ.get(
            'AMENT_PREFIX_PATH', '').split(':'))):
        path = prefix / 'share' / pkg / 'msg' / f'{name}.json'
        if path.is_file():
            hashes = json.loads(path.read_text())['type_hashes']
            return next(h['hash_string'] for h in hashes if h['type_name'] == typename)
    return None


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_metadata_is_what_ros2_bag_play_reads(tmp_path, frames, storage):
    write_episode_bag(tmp_path / 'bag', frames, CONFIG, storage=storage)
    meta = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    info = meta['rosbag2_bagfile_information']
    assert info['version'] == 9
    assert info['storage_identifier'] == storage
    suffix = '.mcap' if storage == 'mcap' else '.db3'
    assert info['relative_file_paths'] == [f'bag{suffix}']
    assert (tmp_path / 'bag' / f'bag{suffix}').is_file()
    assert info['starting_time']['nanoseconds_since_epoch'] <= DEFAULT_BASE_TIME_NS
    topics = {t['topic_metadata']['name']: t for t in info['topics_with_message_count']}
    assert set(topics) >= {IMAGE_TOPIC, RADAR_TOPIC, GROUND_TRUTH_TOPIC, '/clock',
                           '/sensors/camera/camera_info', '/odom', '/sim/episode'}
    assert info['message_count'] == sum(t['message_count'] for t in topics.values())
    store = project_typestore()
    checked = 0
    for name, t in topics.items():
        md = t['topic_metadata']
        assert md['serialization_format'] == 'cdr'
        qos = md['offered_qos_profiles']
        assert isinstance(qos, list) and len(qos) == 1  # v9: a YAML list, not a string
        assert set(qos[0]) >= {'history', 'depth', 'reliability', 'durability', 'deadline',
                               'lifespan', 'liveliness', 'liveliness_lease_duration',
                               'avoid_ros_namespace_conventions'}
        sensor = name.startswith('/sensors/')  # qos_profile_sensor_data, as the sim node
        expected_rel = 'best_effort' if sensor else 'reliable'
        assert qos[0]['reliability'] == expected_rel
        assert md['type_description_hash'] == store.hash_rihs01(md['type'])
        rosidl = _venv_type_hash(md['type'])
        if rosidl is not None:  # rosidl's own hash, where the message wheels are installed
            assert md['type_description_hash'] == rosidl, md['type']
            checked += 1
    if _venv_type_hash(DRIVING_DECISION) is None:
        pytest.skip('no rosidl type description JSON installed to compare hashes with')
    assert checked == len(topics)


def test_cdr_bytes_deserialize_with_rclpy(tmp_path, frames):
    """What `ros2 bag play` publishes is the stored CDR: rclpy's typesupport must read it."""
    serialization = pytest.importorskip('rclpy.serialization')
    sensor_msgs = pytest.importorskip('sensor_msgs.msg')
    mm_msgs = pytest.importorskip('mm_fusion_msgs.msg')
    nav_msgs = pytest.importorskip('nav_msgs.msg')
    rosgraph_msgs = pytest.importorskip('rosgraph_msgs.msg')
    std_msgs = pytest.importorskip('std_msgs.msg')
    from rosbags.rosbag2 import Reader

    classes = {
        'sensor_msgs/msg/Image': sensor_msgs.Image,
        'sensor_msgs/msg/CameraInfo': sensor_msgs.CameraInfo,
        'sensor_msgs/msg/PointCloud2': sensor_msgs.PointCloud2,
        DRIVING_DECISION: mm_msgs.DrivingDecision,
        'nav_msgs/msg/Odometry': nav_msgs.Odometry,
        'rosgraph_msgs/msg/Clock': rosgraph_msgs.Clock,
        'std_msgs/msg/String': std_msgs.String,
    }
    write_episode_bag(tmp_path / 'bag', frames[:3], CONFIG)
    seen = set()
    with Reader(tmp_path / 'bag') as reader:
        for conn, _, raw in reader.messages():
            msg = serialization.deserialize_message(bytes(raw), classes[conn.msgtype])
            seen.add(conn.msgtype)
            if conn.msgtype == 'sensor_msgs/msg/Image':
                np.testing.assert_array_equal(image_to_rgb(msg), frames[0].rgb) if (
                    msg.header.stamp.nanosec == 0) else None
            if conn.msgtype == DRIVING_DECISION:
                assert msg.action_label == ACTION_LABELS[msg.action]
    assert seen == set(classes)
