"""PointCloud2 <-> numpy without sensor_msgs_py (which is not on PyPI), same call shape.

The decoders take any object with the PointCloud2 field names (`height`, `width`, `fields`,
`is_bigendian`, `point_step`, `row_step`, `data`, `is_dense`), so the core is testable without
rclpy. The buffer is validated against the layout before anything is read: a truncated or
inconsistent message raises `PointCloudDecodeError` (a `SensorDecodeError` with a `reason`
key) instead of returning garbage, and no other exception comes out of the readers.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
import functools
import sys
from typing import Any, NamedTuple

import numpy as np

from mm_fusion_ros.sensors.buffers import uint8_view
from mm_fusion_ros.sensors.errors import SensorDecodeError

# sensor_msgs/PointField datatype constants.
INT8 = 1
UINT8 = 2
INT16 = 3
UINT16 = 4
INT32 = 5
UINT32 = 6
FLOAT32 = 7
FLOAT64 = 8

# datatype -> numpy dtype (byte order added per cloud).
DATATYPES: dict[int, np.dtype] = {
    INT8: np.dtype('i1'),
    UINT8: np.dtype('u1'),
    INT16: np.dtype('i2'),
    UINT16: np.dtype('u2'),
    INT32: np.dtype('i4'),
    UINT32: np.dtype('u4'),
    FLOAT32: np.dtype('f4'),
    FLOAT64: np.dtype('f8'),
}

NATIVE_IS_BIGENDIAN = sys.byteorder == 'big'


class PointCloudDecodeError(SensorDecodeError):
    """A PointCloud2 whose layout or buffer cannot be read safely."""


@dataclass(frozen=True)
class PointFieldSpec:
    """A PointField without sensor_msgs (same attribute names), for tests and plain callers."""

    name: str
    offset: int
    datatype: int
    count: int = 1


@dataclass
class PointCloudMsg:
    """A message-like PointCloud2 returned by `create_cloud` when sensor_msgs is absent."""

    header: Any = None
    height: int = 1
    width: int = 0
    fields: list = field(default_factory=list)
    is_bigendian: bool = False
    point_step: int = 0
    row_step: int = 0
    data: bytes = b''
    is_dense: bool = False


def _byte_order(is_bigendian: bool) -> str:
    return '>' if is_bigendian else '<'


def _field_dtype(f: Any, is_bigendian: bool) -> np.dtype:
    try:
        base = DATATYPES[int(f.datatype)]
    except KeyError:
        raise PointCloudDecodeError(
            f'field {f.name!r} has unknown PointField datatype {f.datatype}'
            f' (expected one of {sorted(DATATYPES)})', 'bad_layout') from None
    return base.newbyteorder(_byte_order(is_bigendian))


def _field_count(f: Any) -> int:
    # count == 0 appears in the wild (some drivers) and means 1 in sensor_msgs_py too.
    count = int(f.count)
    if count < 0:
        raise PointCloudDecodeError(f'field {f.name!r} has negative count {count}',
                                    'bad_layout')
    return max(count, 1)


def dtype_from_fields(
    fields: Sequence[Any], point_step: int | None = None, is_bigendian: bool = False,
) -> np.dtype:
    """Structured dtype for one point; validated so that a view of the buffer is safe.

    Fields may come in any order, with gaps between them; `point_step` (when given) sets the
    itemsize so trailing padding is skipped. Overlapping fields, fields past `point_step`,
    duplicate names and unknown datatypes raise `PointCloudDecodeError`.
    """
    names, formats, offsets = [], [], []
    spans = []
    for f in fields:
        dt = _field_dtype(f, is_bigendian)
        count = _field_count(f)
        offset = int(f.offset)
        if offset < 0:
            raise PointCloudDecodeError(f'field {f.name!r} has negative offset {offset}',
                                        'bad_layout')
        if f.name in names:
            raise PointCloudDecodeError(f'duplicate field name {f.name!r}', 'bad_layout')
        end = offset + dt.itemsize * count
        if point_step is not None and end > point_step:
            raise PointCloudDecodeError(
                f'field {f.name!r} ends at byte {end}, past point_step {point_step}',
                'bad_layout')
        names.append(f.name)
        formats.append(dt if count == 1 else (dt, (count,)))
        offsets.append(offset)
        spans.append((offset, end, f.name))
    spans.sort()
    for (_, end_a, name_a), (start_b, _, name_b) in zip(spans, spans[1:], strict=False):
        if start_b < end_a:
            raise PointCloudDecodeError(f'fields {name_a!r} and {name_b!r} overlap',
                                        'bad_layout')
    spec: dict[str, Any] = {'names': names, 'formats': formats, 'offsets': offsets}
    if point_step is not None:
        spec['itemsize'] = int(point_step)
    try:
        return np.dtype(spec)
    except (ValueError, TypeError) as e:  # offsets/sizes numpy cannot represent (> C int)
        raise PointCloudDecodeError(f'unsupported point layout: {e}', 'bad_layout') from e


class _Layout(NamedTuple):
    buf: np.ndarray
    height: int
    width: int
    point_step: int
    row_step: int

    @property
    def num_points(self) -> int:
        return self.height * self.width

    @property
    def rows_dense(self) -> bool:
        return self.height <= 1 or self.row_step == self.width * self.point_step


def _layout(cloud: Any) -> _Layout:
    try:  # fields of a message-like object may hold anything
        height, width = int(cloud.height), int(cloud.width)
        point_step, row_step = int(cloud.point_step), int(cloud.row_step)
        buf = uint8_view(cloud.data)
    except (AttributeError, TypeError, ValueError, OverflowError) as e:
        raise PointCloudDecodeError(f'unreadable PointCloud2 fields: {e}', 'bad_message') from e
    if height < 0 or width < 0:
        raise PointCloudDecodeError(f'negative size {height}x{width}', 'bad_size')
    if height * width == 0:
        return _Layout(buf[:0], height, width, point_step, row_step)
    if point_step <= 0:
        raise PointCloudDecodeError(f'point_step must be positive, got {point_step}',
                                    'bad_size')
    if row_step < width * point_step:
        raise PointCloudDecodeError(
            f'row_step {row_step} < width {width} * point_step {point_step}', 'bad_size')
    if buf.size != row_step * height:
        raise PointCloudDecodeError(
            f'data has {buf.size} bytes, expected row_step {row_step} * height {height}'
            f' = {row_step * height} (truncated or inconsistent message)', 'size_mismatch')
    return _Layout(buf, height, width, point_step, row_step)


class _Field(NamedTuple):
    name: str
    offset: int
    datatype: int
    count: int


class _Plan(NamedTuple):
    dtype: np.dtype          # structured, the message's byte order, itemsize point_step
    native: np.dtype         # the same in host byte order
    runs: tuple[tuple[int, np.dtype, int], ...]  # (offset, scalar dtype, columns) copies
    width: int               # float32 columns out
    float_cols: tuple[int, ...]  # output columns that come from float fields


def _field_key(cloud: Any) -> tuple[tuple, ...]:
    # Plain tuples: this runs per message, the validated plan is cached behind it.
    return tuple([(f.name, f.offset, f.datatype, f.count) for f in cloud.fields])


@functools.lru_cache(maxsize=64)
def _plan(
    key: tuple[tuple, ...], names: tuple[str, ...] | None, point_step: int,
    is_bigendian: bool,
) -> _Plan:
    """Validated dtype and copy runs for one layout; cached since a topic keeps its layout."""
    try:
        fields = [_Field(str(n), int(o), int(d), int(c)) for n, o, d, c in key]
    except (TypeError, ValueError, OverflowError) as e:
        raise PointCloudDecodeError(f'unreadable PointField: {e}', 'bad_message') from e
    if names is None:
        selected = list(fields)
    else:
        by_name = {f.name: f for f in fields}
        selected = []
        for name in names:
            if name not in by_name:
                raise PointCloudDecodeError(
                    f'field {name!r} not in cloud (has {[f.name for f in fields]})',
                    'missing_field')
            selected.append(by_name[name])
    dtype = dtype_from_fields(selected, point_step, is_bigendian)
    native = dtype_from_fields(selected, point_step, NATIVE_IS_BIGENDIAN)
    # Consecutive output columns that are adjacent in memory with one dtype become one
    # strided copy (all of a densely packed float32 cloud is a single run).
    runs: list[list] = []
    float_cols = []
    col = 0
    for f in selected:
        dt = _field_dtype(f, is_bigendian)
        count = _field_count(f)
        if dt.kind == 'f':
            float_cols.extend(range(col, col + count))
        col += count
        last = runs[-1] if runs else None
        if last is not None and last[1] == dt and last[0] + last[2] * dt.itemsize == f.offset:
            last[2] += count
        else:
            runs.append([f.offset, dt, count])
    return _Plan(dtype, native, tuple(tuple(r) for r in runs), col, tuple(float_cols))


def _cloud_plan(cloud: Any, field_names: Iterable[str] | None, point_step: int) -> _Plan:
    try:
        return _plan(_field_key(cloud), _names(field_names), point_step,
                     bool(cloud.is_bigendian))
    except (AttributeError, TypeError) as e:  # fields missing attributes, unhashable values
        raise PointCloudDecodeError(f'unreadable PointCloud2 fields: {e}', 'bad_message') from e


def _names(field_names: Iterable[str] | None) -> tuple[str, ...] | None:
    if field_names is None:
        return None
    return (field_names,) if isinstance(field_names, str) else tuple(field_names)


def read_points(
    cloud: Any, field_names: Iterable[str] | None = None, skip_nans: bool = False,
) -> np.ndarray:
    """Structured (N,) array of the cloud's points, a read-only view of `data` when possible.

    A view needs rows without padding (`row_step == width * point_step` or height 1) and the
    host byte order; otherwise the points are copied once (row padding removed, bytes swapped
    into native order, so callers never see a non-native dtype). Unselected fields and gaps
    stay in the view's itemsize, so no field is moved. With `skip_nans` and `not is_dense`,
    points with a NaN in any selected float field are dropped (a copy).
    """
    layout = _layout(cloud)
    plan = _cloud_plan(cloud, field_names, layout.point_step)
    try:  # the layout is validated against the buffer: numpy refusing it is still bad content
        if layout.num_points == 0:
            points = np.zeros(0, plan.native)
        elif layout.rows_dense:
            points = np.ndarray((layout.num_points,), plan.dtype, layout.buf)
        else:
            rows = np.ndarray(
                (layout.height, layout.width), plan.dtype, layout.buf,
                strides=(layout.row_step, layout.point_step))
            points = rows.reshape(-1)  # copies: padded rows cannot be one strided dimension
    except (ValueError, TypeError, MemoryError) as e:
        raise PointCloudDecodeError(f'cannot view the cloud buffer: {e}', 'bad_layout') from e
    if points.dtype != plan.native:
        points = points.astype(plan.native)
    if skip_nans and not bool(getattr(cloud, 'is_dense', False)) and points.size:
        keep = np.ones(points.shape[0], bool)
        for name in plan.native.names:
            if plan.native[name].base.kind == 'f':
                col = points[name]
                keep &= ~np.isnan(col.reshape(len(col), -1)).any(1)
        points = points[keep]
    return points


def read_points_numpy(
    cloud: Any, field_names: Iterable[str] | None = None, skip_nans: bool = False,
) -> np.ndarray:
    """(N, k) float32 of the selected fields, in the order asked; count>1 fields expand in place.

    Fields are copied straight from the raw buffer through strided views into a preallocated
    float32 array, one copy per run of memory-adjacent same-type fields, with no structured
    intermediate (`structured_to_unstructured` needs one for gapped layouts). Integers above
    2**24 and float64 lose precision in float32, which is what the model consumes.
    """
    layout = _layout(cloud)
    plan = _cloud_plan(cloud, field_names, layout.point_step)
    out = np.empty((layout.num_points, plan.width), np.float32)
    if layout.num_points == 0:
        return out
    rows = out.reshape(layout.height, layout.width, plan.width)
    col = 0
    try:  # the layout is validated against the buffer: numpy refusing it is still bad content
        for offset, dt, count in plan.runs:
            src = np.ndarray(
                (layout.height, layout.width, count), dt, layout.buf, offset=offset,
                strides=(layout.row_step, layout.point_step, dt.itemsize))
            with np.errstate(over='ignore'):  # float64 beyond float32 range -> inf, no warning
                rows[:, :, col:col + count] = src
            col += count
    except (ValueError, TypeError) as e:
        raise PointCloudDecodeError(f'cannot view the cloud buffer: {e}', 'bad_layout') from e
    if skip_nans and plan.float_cols and not bool(getattr(cloud, 'is_dense', False)):
        out = out[~np.isnan(out[:, list(plan.float_cols)]).any(1)]
    return out


def make_fields(
    names: Sequence[str], datatype: int = FLOAT32, count: int = 1,
) -> list[PointFieldSpec]:
    """Densely packed fields of one datatype (what the simulator publishes)."""
    size = DATATYPES[datatype].itemsize * count
    return [PointFieldSpec(n, i * size, datatype, count) for i, n in enumerate(names)]


def _sensor_msgs_types() -> tuple[Any, Any] | None:
    try:
        from sensor_msgs.msg import PointCloud2, PointField
    except ImportError:
        return None
    return PointCloud2, PointField


def _convert_header(header: Any, msg_type: Any) -> Any:
    """Header as the real message class wants it (rosidl setters check types)."""
    header_type = type(msg_type().header)
    if header is None or isinstance(header, header_type):
        return header_type() if header is None else header
    out = header_type()
    out.frame_id = str(getattr(header, 'frame_id', ''))
    stamp = getattr(header, 'stamp', None)
    if stamp is not None:
        out.stamp.sec = int(stamp.sec)
        out.stamp.nanosec = int(stamp.nanosec)
    return out


def create_cloud(
    header: Any, fields: Sequence[Any], points: Any, msg_type: Any = None,
) -> Any:
    """Build a PointCloud2 (host byte order, height 1, point_step = end of the last field).

    `points` is a structured array (fields copied by name), an (N, k) array (columns in field
    order, count>1 fields take `count` columns) or an iterable of tuples. Returns a
    `sensor_msgs.msg.PointCloud2` when sensor_msgs is importable and `msg_type` is None,
    else `msg_type` (default `PointCloudMsg`) built with keyword arguments.
    """
    fields = list(fields)
    dtype = dtype_from_fields(fields, None, NATIVE_IS_BIGENDIAN)  # itemsize: end of last field
    point_step = dtype.itemsize
    arr = _points_to_structured(points, fields, dtype)
    real = _sensor_msgs_types()
    if msg_type is None:
        msg_type = real[0] if real else PointCloudMsg
    if real is not None and msg_type is real[0]:
        field_type = real[1]
        fields = [f if isinstance(f, field_type) else field_type(
            name=f.name, offset=int(f.offset), datatype=int(f.datatype), count=int(f.count))
            for f in fields]
        header = _convert_header(header, msg_type)
    msg = msg_type(
        header=header, height=1, width=int(arr.shape[0]), fields=fields,
        is_bigendian=NATIVE_IS_BIGENDIAN, point_step=point_step,
        row_step=point_step * int(arr.shape[0]), is_dense=False)
    msg.data = arr.tobytes()
    return msg


def _points_to_structured(points: Any, fields: Sequence[Any], dtype: np.dtype) -> np.ndarray:
    if isinstance(points, np.ndarray) and points.dtype.names is not None:
        arr = np.zeros(points.shape[0], dtype)
        for f in fields:
            if f.name not in points.dtype.names:
                raise PointCloudDecodeError(f'points have no field {f.name!r}',
                                            'missing_field')
            arr[f.name] = points[f.name]
        return arr
    if isinstance(points, np.ndarray):
        cols = sum(_field_count(f) for f in fields)
        pts = points.reshape(-1, cols) if points.ndim == 1 and points.size == 0 else points
        if pts.ndim != 2 or pts.shape[1] != cols:
            raise PointCloudDecodeError(
                f'points shape {points.shape} does not match {cols} field columns',
                'size_mismatch')
        arr = np.zeros(pts.shape[0], dtype)
        col = 0
        for f in fields:
            count = _field_count(f)
            arr[f.name] = pts[:, col] if count == 1 else pts[:, col:col + count]
            col += count
        return arr
    rows = [tuple(p) for p in points]
    try:
        return np.array(rows, dtype=dtype) if rows else np.zeros(0, dtype)
    except (TypeError, ValueError) as e:
        raise PointCloudDecodeError(f'points do not match the fields: {e}',
                                    'size_mismatch') from e
