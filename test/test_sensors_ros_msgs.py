"""The decoders on real rclpy messages, where `data` is an `array.array` (no rclpy.init)."""

import array

import numpy as np
import pytest

sensor_msgs = pytest.importorskip('sensor_msgs.msg')

from mm_fusion_ros.sensors.image import image_fields_from_rgb, image_to_rgb  # noqa: E402
from mm_fusion_ros.sensors.pointcloud import (  # noqa: E402
    PointFieldSpec,
    create_cloud,
    make_fields,
    read_points,
    read_points_numpy,
)
from mm_fusion_ros.sensors.radar_presets import load_preset  # noqa: E402

Image, CompressedImage = sensor_msgs.Image, sensor_msgs.CompressedImage
PointCloud2, PointField = sensor_msgs.PointCloud2, sensor_msgs.PointField


def test_point_field_constants_match():
    from mm_fusion_ros.sensors import pointcloud as pc
    for name in ('INT8', 'UINT8', 'INT16', 'UINT16', 'INT32', 'UINT32', 'FLOAT32', 'FLOAT64'):
        assert getattr(pc, name) == getattr(PointField, name)


def test_image_rgb8_and_bgr8_from_real_message():
    rgb = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    for encoding in ('rgb8', 'bgr8'):
        msg = Image(**image_fields_from_rgb(rgb, encoding))
        assert isinstance(msg.data, array.array)
        np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    msg = Image(**image_fields_from_rgb(rgb))
    out = image_to_rgb(msg)
    assert np.shares_memory(out, np.frombuffer(memoryview(msg.data), np.uint8))
    assert not out.flags.writeable


def test_image_mono16_padded_real_message():
    px = np.array([[0x1234, 0xFF00], [0x0001, 0x8000]], np.uint16)
    rows = np.zeros((2, 6), np.uint8)
    rows[:, :4] = px.astype('>u2').view(np.uint8).reshape(2, 4)
    msg = Image(height=2, width=2, encoding='mono16', is_bigendian=1, step=6,
                data=rows.tobytes())
    assert image_to_rgb(msg)[..., 0].tolist() == [[0x12, 0xFF], [0x00, 0x80]]


def test_compressed_image_real_message():
    import io

    from PIL import Image as PilImage
    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PilImage.fromarray(rgb).save(buf, format='PNG')
    msg = CompressedImage(format='png', data=buf.getvalue())
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_create_cloud_returns_real_message_and_round_trips():
    fields = [PointField(name='x', offset=0, datatype=PointField.FLOAT32, count=1),
              PointField(name='i', offset=8, datatype=PointField.UINT16, count=1),
              PointField(name='d', offset=12, datatype=PointField.FLOAT64, count=2)]
    pts = np.array([[1.5, 7, 2.0, -3.0], [-1.0, 65535, 0.25, 4.0]])
    header = PointCloud2().header
    header.frame_id = 'radar'
    msg = create_cloud(header, fields, pts)
    assert isinstance(msg, PointCloud2) and isinstance(msg.data, array.array)
    assert msg.point_step == 28 and msg.header.frame_id == 'radar'
    np.testing.assert_array_equal(read_points_numpy(msg, ['x', 'i', 'd']), pts)
    assert read_points(msg)['i'].tolist() == [7, 65535]
    # A structured view straight over the message's array.array.
    view = read_points(msg)
    assert np.shares_memory(view, np.frombuffer(memoryview(msg.data), np.uint8))


def test_create_cloud_converts_plain_fields_and_header():
    from types import SimpleNamespace
    header = SimpleNamespace(stamp=SimpleNamespace(sec=3, nanosec=4), frame_id='r')
    msg = create_cloud(header, make_fields(['x', 'y']) + [PointFieldSpec('n', 8, 2, 3)],
                       np.array([[1, 2, 3, 4, 5]], np.float32))
    assert isinstance(msg.fields[0], PointField)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (3, 4, 'r')
    assert read_points_numpy(msg).tolist() == [[1, 2, 3, 4, 5]]


def test_presets_on_real_carla_and_nuscenes_clouds():
    carla = load_preset('carla')
    pts = np.zeros((2, 7), np.float32)
    pts[:, 0], pts[:, 4] = [5, 6], [-1.0, 2.0]
    msg = create_cloud(None, carla.layout_fields(), pts)
    out = carla.converter()(msg)
    assert out[:, 0].tolist() == [5, 6] and out[:, 3].tolist() == [-1.0, 2.0]
    nus = load_preset('nuscenes')
    cols = np.zeros((1, 18), np.float32)
    cols[0, [0, 1, 5, 6, 7]] = [3, 4, 12, 3, 4]  # x, y, rcs, vx, vy (relative)
    out = nus.converter()(create_cloud(None, nus.layout_fields(), cols))
    np.testing.assert_allclose(out[0], [3, 4, 0, 5, 12])
