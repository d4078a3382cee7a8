"""Bags from other tools: CARLA ROS bridge and nuScenes-converter layouts, read via presets."""

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from mm_fusion_ros.bags import detect_topics, episode_from_bag, load_bag_topics, open_bag
from mm_fusion_ros.bags.typestore import project_typestore
from mm_fusion_ros.sensors.radar_presets import load_preset

NS = 1_000_000_000


def _header(t, stamp_ns, frame_id):
    time_t = t['builtin_interfaces/msg/Time'](sec=stamp_ns // NS, nanosec=stamp_ns % NS)
    return t['std_msgs/msg/Header'](stamp=time_t, frame_id=frame_id)


def _cloud(t, stamp_ns, preset_name, values):
    """A PointCloud2 in a preset's documented layout; `values` maps field -> (N,) array."""
    preset = load_preset(preset_name)
    fields = preset.layout_fields()
    from mm_fusion_ros.sensors.pointcloud import DATATYPES

    dtype = np.dtype({'names': [f.name for f in fields],
                      'formats': [DATATYPES[f.datatype] for f in fields],
                      'offsets': [f.offset for f in fields], 'itemsize': preset.point_step})
    n = len(next(iter(values.values())))
    arr = np.zeros(n, dtype)
    for k, v in values.items():
        arr[k] = v
    pf = [t['sensor_msgs/msg/PointField'](name=f.name, offset=f.offset, datatype=f.datatype,
                                          count=f.count) for f in fields]
    return t['sensor_msgs/msg/PointCloud2'](
        header=_header(t, stamp_ns, 'radar'), height=1, width=n, fields=pf,
        is_bigendian=False, point_step=preset.point_step, row_step=preset.point_step * n,
        data=np.frombuffer(arr.tobytes(), np.uint8), is_dense=True)


def test_carla_layout_bag(tmp_path):
    """CARLA bridge: bgra8 images, radar with a 4-byte gap before ElevationAngle, no rcs."""
    store = project_typestore()
    t = store.types
    rng = np.random.default_rng(0)
    bgra = rng.integers(0, 255, (4, 6, 4), dtype=np.uint8)
    xs = np.array([10.0, 20.0, 30.0], np.float32)
    vel = np.array([-3.0, 0.5, 1.0], np.float32)
    with Writer(tmp_path / 'carla', version=Writer.VERSION_LATEST,
                storage_plugin=StoragePlugin.MCAP) as w:
        cam = w.add_connection('/carla/ego_vehicle/rgb_front/image', 'sensor_msgs/msg/Image',
                               typestore=store)
        rad = w.add_connection('/carla/ego_vehicle/radar_front', 'sensor_msgs/msg/PointCloud2',
                               typestore=store)
        for i in range(3):
            stamp = 5 * NS + i * NS // 20
            img = t['sensor_msgs/msg/Image'](
                header=_header(t, stamp, 'rgb'), height=4, width=6, encoding='bgra8',
                is_bigendian=0, step=24, data=bgra.reshape(-1))
            w.write(cam, stamp, store.serialize_cdr(img, 'sensor_msgs/msg/Image'))
            cloud = _cloud(t, stamp + 1000, 'carla', {
                'x': xs, 'y': xs * 0.1, 'z': xs * 0.0, 'Range': xs, 'Velocity': vel,
                'AzimuthAngle': xs * 0.0, 'ElevationAngle': xs * 0.0 + 9.0})
            assert cloud.point_step == 32 and cloud.fields[-1].offset == 28  # the gap
            w.write(rad, stamp + 1000, store.serialize_cdr(cloud, 'sensor_msgs/msg/PointCloud2'))
    topics = load_bag_topics('carla')
    assert detect_topics(tmp_path / 'carla').name == 'carla'
    ep = episode_from_bag(tmp_path / 'carla', topics)
    assert len(ep.images) == 3 and len(ep.radar) == 3 and not ep.ground_truth
    np.testing.assert_array_equal(ep.images[0][1], bgra[..., 2::-1])
    pts = ep.radar[0][1]
    np.testing.assert_array_equal(pts[:, 0], xs)
    np.testing.assert_array_equal(pts[:, 3], vel)  # Velocity -> radial_velocity
    np.testing.assert_array_equal(pts[:, 4], 10.0)  # rcs constant from the preset
    with pytest.raises(Exception, match='names no ground_truth topic'):
        open_bag(tmp_path / 'carla', topics, require_ground_truth=True)


def test_nuscenes_layout_bag(tmp_path):
    """A nuScenes converter bag: JPEG CompressedImage, radar with packed int8/int16 fields."""
    import io

    from PIL import Image as PilImage

    store = project_typestore()
    t = store.types
    rgb = np.full((8, 16, 3), (200, 30, 60), np.uint8)
    buf = io.BytesIO()
    PilImage.fromarray(rgb).save(buf, format='JPEG', quality=95)
    with Writer(tmp_path / 'nus.db3'.replace('.db3', ''), version=Writer.VERSION_LATEST,
                storage_plugin=StoragePlugin.SQLITE3) as w:
        cam = w.add_connection('/CAM_FRONT/image_rect_compressed',
                               'sensor_msgs/msg/CompressedImage', typestore=store)
        rad = w.add_connection('/RADAR_FRONT', 'sensor_msgs/msg/PointCloud2', typestore=store)
        img = t['sensor_msgs/msg/CompressedImage'](
            header=_header(t, NS, 'cam'), format='jpeg',
            data=np.frombuffer(buf.getvalue(), np.uint8))
        w.write(cam, NS, store.serialize_cdr(img, 'sensor_msgs/msg/CompressedImage'))
        cloud = _cloud(t, NS, 'nuscenes', {
            'x': np.array([3.0], np.float32), 'y': np.array([4.0], np.float32),
            'rcs': np.array([7.5], np.float32), 'vx': np.array([3.0], np.float32),
            'vy': np.array([4.0], np.float32), 'id': np.array([300], np.int16)})
        w.write(rad, NS, store.serialize_cdr(cloud, 'sensor_msgs/msg/PointCloud2'))
    ep = episode_from_bag(tmp_path / 'nus', 'nuscenes')
    assert np.abs(ep.images[0][1].astype(int) - rgb).max() < 12
    np.testing.assert_allclose(ep.radar[0][1][0], [3.0, 4.0, 0.0, 5.0, 7.5], atol=1e-6)
