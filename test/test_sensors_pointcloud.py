"""PointCloud2 decoding: every datatype, both endiannesses, gaps, count>1, row padding, errors.

Reference bytes are packed with `struct`, independently of the decoder's dtype building.
"""

import struct
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from mm_fusion_ros.sensors import pointcloud as pc
from mm_fusion_ros.sensors.errors import SensorDecodeError
from mm_fusion_ros.sensors.pointcloud import (
    PointCloudDecodeError,
    PointCloudMsg,
    PointFieldSpec,
    create_cloud,
    dtype_from_fields,
    make_fields,
    read_points,
    read_points_numpy,
)

STRUCT = {pc.INT8: 'b', pc.UINT8: 'B', pc.INT16: 'h', pc.UINT16: 'H',
          pc.INT32: 'i', pc.UINT32: 'I', pc.FLOAT32: 'f', pc.FLOAT64: 'd'}
SIZE = {k: struct.calcsize(v) for k, v in STRUCT.items()}
SAMPLE = {pc.INT8: [-128, 127, -1], pc.UINT8: [0, 255, 7], pc.INT16: [-32768, 32767, -2],
          pc.UINT16: [0, 65535, 300], pc.INT32: [-(2**31), 2**31 - 1, -5],
          pc.UINT32: [0, 2**32 - 1, 70000], pc.FLOAT32: [1.5, -2.25, 1e30],
          pc.FLOAT64: [1e300, -0.125, 3.0]}


def pack_cloud(fields, values, point_step, *, big=False, height=1, row_step=None,
               is_dense=True, data_type=bytes):
    """values: list of points, each a dict name -> scalar or list (count>1)."""
    width = len(values) // height
    row_step = width * point_step if row_step is None else row_step
    data = bytearray(row_step * height)
    order = '>' if big else '<'
    for idx, point in enumerate(values):
        r, c = divmod(idx, width)
        base = r * row_step + c * point_step
        for f in fields:
            vals = point[f.name] if f.count > 1 else [point[f.name]]
            for k, v in enumerate(vals):
                struct.pack_into(order + STRUCT[f.datatype], data,
                                 base + f.offset + k * SIZE[f.datatype], v)
        # Fill gaps/padding with 0xAB so a misread would show.
    return SimpleNamespace(
        header=SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=2), frame_id='radar'),
        height=height, width=width, fields=fields, is_bigendian=big, point_step=point_step,
        row_step=row_step, data=data_type(data), is_dense=is_dense)


def _fill_padding(cloud, used):
    """Overwrite every byte not covered by a field with 0xAB."""
    data = bytearray(cloud.data)
    mask = np.zeros(len(data), bool)
    for r in range(cloud.height):
        for c in range(cloud.width):
            base = r * cloud.row_step + c * cloud.point_step
            for start, end in used:
                mask[base + start:base + end] = True
    arr = np.frombuffer(data, np.uint8).copy()
    arr[~mask] = 0xAB
    cloud.data = arr.tobytes()
    return cloud


@pytest.mark.parametrize('big', [False, True])
@pytest.mark.parametrize('datatype', sorted(STRUCT))
def test_every_datatype_both_endiannesses(datatype, big):
    fields = [PointFieldSpec('a', 1, datatype), PointFieldSpec('b', 1 + SIZE[datatype], pc.UINT8)]
    step = 2 + SIZE[datatype] + 3  # odd offset (unaligned) and trailing padding
    vals = [{'a': v, 'b': i} for i, v in enumerate(SAMPLE[datatype])]
    cloud = _fill_padding(pack_cloud(fields, vals, step, big=big),
                          [(1, 1 + SIZE[datatype] + 1)])
    pts = read_points(cloud)
    assert pts.dtype.isnative or pts.dtype['a'].itemsize == 1
    assert pts['a'].tolist() == pytest.approx(SAMPLE[datatype], rel=1e-6)
    assert pts['b'].tolist() == [0, 1, 2]
    arr = read_points_numpy(cloud, ['a', 'b'])
    assert arr.dtype == np.float32 and arr.shape == (3, 2)
    with np.errstate(over='ignore'):  # 1e300 -> inf in float32, as the decoder does
        np.testing.assert_allclose(arr[:, 0], np.array(SAMPLE[datatype]).astype(np.float32))


def test_zero_copy_view_when_native():
    fields = make_fields(['x', 'y', 'z'])
    cloud = pack_cloud(fields, [{'x': i, 'y': 2 * i, 'z': 3 * i} for i in range(4)], 12)
    pts = read_points(cloud)
    assert np.shares_memory(pts, np.frombuffer(cloud.data, np.uint8))
    assert not pts.flags.writeable
    sub = read_points(cloud, ['z', 'x'])  # subset keeps the view, any order
    assert np.shares_memory(sub, np.frombuffer(cloud.data, np.uint8))
    assert sub.dtype.names == ('z', 'x') and sub['z'].tolist() == [0, 3, 6, 9]


def test_big_endian_is_swapped_into_native_copy():
    fields = make_fields(['x'])
    cloud = pack_cloud(fields, [{'x': 1.0}, {'x': -3.0}], 4, big=True)
    pts = read_points(cloud)
    assert pts.dtype['x'].isnative and pts['x'].tolist() == [1.0, -3.0]
    assert bytes(cloud.data) == struct.pack('>ff', 1.0, -3.0)  # message untouched


def test_any_field_order_gap_and_point_step_beyond_fields():
    # CARLA-like: ElevationAngle at 28 after a field ending at 24; fields listed out of order.
    fields = [PointFieldSpec('e', 28, pc.FLOAT32), PointFieldSpec('x', 0, pc.FLOAT32),
              PointFieldSpec('v', 16, pc.FLOAT32)]
    vals = [{'e': 0.5 * i, 'x': i, 'v': -i} for i in range(5)]
    cloud = _fill_padding(pack_cloud(fields, vals, 40), [(0, 4), (16, 20), (28, 32)])
    np.testing.assert_array_equal(
        read_points_numpy(cloud, ['x', 'v', 'e']),
        np.array([[i, -i, 0.5 * i] for i in range(5)], np.float32))
    assert read_points(cloud).dtype.itemsize == 40


def test_count_greater_than_one_expands_in_place():
    fields = [PointFieldSpec('id', 0, pc.UINT16), PointFieldSpec('rgb', 2, pc.UINT8, 3),
              PointFieldSpec('pos', 8, pc.FLOAT64, 2)]
    vals = [{'id': i, 'rgb': [i, i + 1, i + 2], 'pos': [i / 2, -i]} for i in range(3)]
    cloud = pack_cloud(fields, vals, 24, big=True)
    pts = read_points(cloud)
    assert pts['rgb'].shape == (3, 3) and pts['rgb'][2].tolist() == [2, 3, 4]
    arr = read_points_numpy(cloud, ['pos', 'id', 'rgb'])
    assert arr.shape == (3, 6)
    np.testing.assert_array_equal(arr[1], [0.5, -1, 1, 1, 2, 3])


@pytest.mark.parametrize('big', [False, True])
def test_height_and_row_padding(big):
    fields = make_fields(['x', 'y'])
    vals = [{'x': i, 'y': -i} for i in range(6)]
    cloud = _fill_padding(pack_cloud(fields, vals, 8, big=big, height=2, row_step=3 * 8 + 5),
                          [(0, 8)])
    pts = read_points(cloud)
    assert pts.shape == (6,) and pts['x'].tolist() == list(range(6))
    arr = read_points_numpy(cloud)
    np.testing.assert_array_equal(arr[:, 1], -np.arange(6))
    dense = pack_cloud(fields, vals, 8, height=3)  # height>1 without padding stays a view
    assert np.shares_memory(read_points(dense), np.frombuffer(dense.data, np.uint8))


def test_skip_nans_only_when_not_dense():
    fields = make_fields(['x', 'y']) + [PointFieldSpec('i', 8, pc.INT32)]
    vals = [{'x': 1.0, 'y': 2.0, 'i': 1}, {'x': float('nan'), 'y': 0.0, 'i': 2},
            {'x': 3.0, 'y': float('inf'), 'i': 3}]
    cloud = pack_cloud(fields, vals, 12, is_dense=False)
    assert read_points(cloud, skip_nans=True)['i'].tolist() == [1, 3]
    assert read_points_numpy(cloud, ['i', 'x'], skip_nans=True)[:, 0].tolist() == [1, 3]
    assert read_points_numpy(cloud, ['i'], skip_nans=True).shape == (3, 1)  # no float field
    assert len(read_points(cloud, skip_nans=False)) == 3
    cloud.is_dense = True  # trusted: nothing dropped
    assert len(read_points(cloud, skip_nans=True)) == 3


@pytest.mark.parametrize('data_type', [bytes, bytearray, memoryview])
def test_buffer_types(data_type):
    import array
    cloud = pack_cloud(make_fields(['x']), [{'x': 2.0}], 4)
    for data in (data_type(cloud.data), array.array('B', cloud.data),
                 np.frombuffer(cloud.data, np.uint8).copy()):
        cloud.data = data
        assert read_points_numpy(cloud).tolist() == [[2.0]]


def test_empty_cloud():
    cloud = pack_cloud(make_fields(['x', 'y']), [], 8)
    assert read_points(cloud).shape == (0,)
    assert read_points_numpy(cloud).shape == (0, 2)


def _good():
    return pack_cloud(make_fields(['x', 'y']), [{'x': 1, 'y': 2}] * 4, 8)


@pytest.mark.parametrize('mutate, match, reason', [
    (lambda c: setattr(c, 'data', c.data[:-1]), 'truncated', 'size_mismatch'),
    (lambda c: setattr(c, 'data', c.data + b'\0'), 'inconsistent', 'size_mismatch'),
    (lambda c: setattr(c, 'width', 5), 'row_step 32 < width 5', 'bad_size'),
    (lambda c: setattr(c, 'row_step', 7), 'row_step', 'bad_size'),
    (lambda c: setattr(c, 'point_step', 4), 'past point_step', 'bad_layout'),
    (lambda c: setattr(c, 'point_step', 0), 'point_step must be positive', 'bad_size'),
    (lambda c: setattr(c, 'height', 2), 'expected row_step', 'size_mismatch'),
    (lambda c: setattr(c, 'height', -1), 'negative size', 'bad_size'),
    (lambda c: setattr(c, 'fields', [PointFieldSpec('x', 0, 9)]), 'unknown PointField datatype',
     'bad_layout'),
    (lambda c: setattr(c, 'fields', [PointFieldSpec('x', 0, 7), PointFieldSpec('y', 2, 7)]),
     'overlap', 'bad_layout'),
    (lambda c: setattr(c, 'fields', [PointFieldSpec('x', 0, 7), PointFieldSpec('x', 4, 7)]),
     'duplicate', 'bad_layout'),
    (lambda c: setattr(c, 'fields', [PointFieldSpec('x', -4, 7)]), 'negative offset',
     'bad_layout'),
    (lambda c: setattr(c, 'fields', [PointFieldSpec('x', 0, 7, -1)]), 'negative count',
     'bad_layout'),
    (lambda c: setattr(c, 'fields', [PointFieldSpec('x', 0, 7, 3)]), 'past point_step',
     'bad_layout'),
    # message-like objects whose fields hold what no PointCloud2 can
    (lambda c: setattr(c, 'width', None), 'unreadable', 'bad_message'),
    (lambda c: setattr(c, 'data', [0] * 32), 'unreadable', 'bad_message'),
    (lambda c: setattr(c, 'fields', [SimpleNamespace(name='x', offset=0, datatype=7)]),
     'unreadable', 'bad_message'),
    (lambda c: setattr(c, 'fields', [PointFieldSpec(['x'], 0, 7)]), 'unreadable',
     'bad_message'),
    (lambda c: setattr(c, 'fields', [PointFieldSpec('x', 'zero', 7)]), 'unreadable',
     'bad_message'),
])
def test_bad_clouds_raise(mutate, match, reason):
    cloud = _good()
    mutate(cloud)
    for reader in (read_points, read_points_numpy):
        with pytest.raises(PointCloudDecodeError, match=match) as err:
            reader(cloud)
        assert err.value.reason == reason


def test_missing_field_name_raises():
    with pytest.raises(PointCloudDecodeError, match="'rcs' not in cloud") as err:
        read_points_numpy(_good(), ['x', 'rcs'])
    assert err.value.reason == 'missing_field'
    assert issubclass(PointCloudDecodeError, SensorDecodeError)
    assert issubclass(PointCloudDecodeError, ValueError)


def test_count_zero_means_one():
    cloud = _good()
    cloud.fields = [PointFieldSpec('x', 0, pc.FLOAT32, 0), PointFieldSpec('y', 4, pc.FLOAT32, 0)]
    assert read_points_numpy(cloud).tolist() == [[1, 2]] * 4


def test_create_cloud_round_trip_plain_type():
    fields = [PointFieldSpec('x', 0, pc.FLOAT32), PointFieldSpec('n', 4, pc.UINT16),
              PointFieldSpec('v', 8, pc.FLOAT64, 2)]
    src = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float64)
    header = SimpleNamespace(frame_id='f')
    msg = create_cloud(header, fields, src, msg_type=PointCloudMsg)
    assert isinstance(msg, PointCloudMsg) and msg.header is header
    assert msg.point_step == 24 and msg.row_step == 48 and msg.height == 1
    np.testing.assert_array_equal(read_points_numpy(msg), src)
    from_tuples = create_cloud(header, fields, [(1, 2, (3, 4)), (5, 6, (7, 8))], PointCloudMsg)
    assert from_tuples.data == msg.data
    structured = read_points(msg)
    again = create_cloud(header, fields, structured, msg_type=PointCloudMsg)
    assert again.data == msg.data
    empty = create_cloud(header, fields, np.zeros((0, 4)), msg_type=PointCloudMsg)
    assert empty.width == 0 and read_points_numpy(empty).shape == (0, 4)


def test_create_cloud_bad_points():
    fields = make_fields(['x', 'y'])
    with pytest.raises(PointCloudDecodeError, match='does not match'):
        create_cloud(None, fields, np.zeros((3, 3)), PointCloudMsg)
    with pytest.raises(PointCloudDecodeError, match='no field'):
        create_cloud(None, fields, np.zeros(2, [('x', 'f4')]), PointCloudMsg)
    with pytest.raises(PointCloudDecodeError, match='do not match'):
        create_cloud(None, fields, [(1.0,)], PointCloudMsg)
    with pytest.raises(PointCloudDecodeError, match='unknown PointField datatype'):
        create_cloud(None, [PointFieldSpec('x', 0, 0)], np.zeros((1, 1)), PointCloudMsg)


def test_dtype_from_fields_itemsize():
    dt = dtype_from_fields(make_fields(['a', 'b']), point_step=16, is_bigendian=True)
    assert dt.itemsize == 16 and dt['a'] == np.dtype('>f4')


layouts = st.lists(
    st.tuples(st.sampled_from(sorted(STRUCT)), st.integers(1, 3), st.integers(0, 3)),
    min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(layout=layouts, big=st.booleans(), height=st.integers(1, 3), width=st.integers(0, 4),
       row_pad=st.integers(0, 5), tail=st.integers(0, 6), seed=st.integers(0, 2**16))
def test_random_layouts_match_struct(layout, big, height, width, row_pad, tail, seed):
    rng = np.random.default_rng(seed)
    fields, offset = [], 0
    for i, (datatype, count, gap) in enumerate(layout):
        offset += gap
        fields.append(PointFieldSpec(f'f{i}', offset, datatype, count))
        offset += SIZE[datatype] * count
    point_step = offset + tail
    values = []
    for _ in range(height * width):
        point = {}
        for f in fields:
            vals = [int(rng.integers(0, 100)) for _ in range(f.count)]
            point[f.name] = vals if f.count > 1 else vals[0]
        values.append(point)
    cloud = pack_cloud(fields, values, point_step, big=big, height=height,
                       row_step=width * point_step + row_pad)
    order = list(reversed(fields))
    arr = read_points_numpy(cloud, [f.name for f in order])
    expected = [[v for f in order for v in (p[f.name] if f.count > 1 else [p[f.name]])]
                for p in values]
    assert arr.shape == (height * width, sum(f.count for f in fields))
    np.testing.assert_array_equal(arr, np.array(expected, np.float32).reshape(arr.shape))
    pts = read_points(cloud)
    assert pts.shape == (len(values),)
    for f in fields if values else []:
        got = pts[f.name].reshape(len(values), -1).tolist()
        assert got == [p[f.name] if f.count > 1 else [p[f.name]] for p in values]
