"""Malformed sensor messages for fuzzing: hypothesis strategies and the checks they go through.

Cases are message-like dataclasses (any value, negative or out of the ROS field ranges) and
convert to real `sensor_msgs` messages with `to_ros` where the message class can represent
them. `check_decode` runs one case through the pure decoders and the `FusionPipeline`;
`NodeFuzzer` runs it through the fusion node's and decision node's callbacks. Both return the
outcome ('ok' or 'reject:<Error>') and raise `FuzzCrashError` for anything else.
"""

import array
from dataclasses import dataclass, field
import io
import math
import os
import struct
from typing import Any
import zlib

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
import numpy as np

from mm_fusion_ros.sensors.image import ENCODINGS, ImageDecodeError, image_to_rgb
from mm_fusion_ros.sensors.pointcloud import PointCloudDecodeError, PointFieldSpec
from mm_fusion_ros.sensors.radar_presets import RadarPresetError

U32 = 2**32 - 1
NS = 1_000_000_000
# Caps that keep one case cheap: declared sizes may be huge, real buffers stay small
# (except the deliberate 100k-point clouds).
MAX_DATA = 256 * 1024
BIG_CLOUD = 100_000
SIM_FIELDS = ('x', 'y', 'z', 'radial_velocity', 'rcs')


class FuzzCrashError(AssertionError):
    """An input raised something other than its module's decode error."""


@dataclass
class Stamp:
    sec: int = 0
    nanosec: int = 0


@dataclass
class Header:
    stamp: Stamp = field(default_factory=Stamp)
    frame_id: str = ''


@dataclass
class FakeImage:
    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes


@dataclass
class FakeCompressedImage:
    header: Header
    format: str
    data: bytes


@dataclass
class FakeCloud:
    header: Header
    height: int
    width: int
    fields: list
    is_bigendian: bool
    point_step: int
    row_step: int
    data: bytes
    is_dense: bool


# -- stamps --------------------------------------------------------------------------------
NOW_SEC = 1_790_000_000


@st.composite
def stamps(draw: st.DrawFn) -> Header:
    """Zero, past, present, far future, out-of-range nanosec and (fake only) negative stamps."""
    sec = draw(st.sampled_from([0, 1, NOW_SEC - 3600, NOW_SEC, NOW_SEC + 86400 * 365,
                                2**31 - 1, -1]) | st.integers(0, 2**31 - 1))
    nanosec = draw(st.sampled_from([0, 500_000_000, NS - 1, NS, U32]) | st.integers(0, NS - 1))
    return Header(Stamp(sec, nanosec), draw(st.sampled_from(['camera', 'radar', ''])))


def _sized_bytes(draw: st.DrawFn, expected: int) -> bytes:
    """Exactly `expected` bytes (when affordable), or a little short/long, empty, or random."""
    choice = draw(st.sampled_from(['exact', 'exact', 'exact', 'short', 'long', 'empty',
                                   'random']))
    if expected < 0 or expected > MAX_DATA:
        choice = draw(st.sampled_from(['empty', 'random']))
    if choice == 'exact':
        n = expected
    elif choice == 'short':
        n = max(0, expected - draw(st.integers(1, 64)))
    elif choice == 'long':
        n = expected + draw(st.integers(1, 64))
    elif choice == 'empty':
        n = 0
    else:
        n = draw(st.integers(0, 4096))
    seed = draw(st.integers(0, 2**16))
    return np.random.default_rng(seed).integers(0, 256, n, np.uint8).tobytes()


# -- Image ---------------------------------------------------------------------------------
BAD_ENCODINGS = ['', 'RGB8', 'BGR8', '32FC1', '16SC1', 'bayer_rggb8', 'yuv422', 'rgb', '8UC3',
                 'mono8 ', '\x00', 'ünïcode']


IMAGE_MUTATIONS = ('encoding', 'height', 'width', 'step', 'data', 'bigendian', 'huge')
SIZES = st.integers(0, 48) | st.sampled_from([0, 1, 2**16, 2**31 - 1, U32, -1])


@st.composite
def images(draw: st.DrawFn) -> FakeImage:
    """Raw images: a valid frame with 0-3 of wrong step/height/width/encoding/data/endianness."""
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    enc = ENCODINGS[encoding]
    step = width * enc.channels * enc.depth + draw(st.sampled_from([0, 0, 0, 1, 3, 8]))
    is_bigendian = draw(st.sampled_from([0, 1]))
    data = None
    for how in draw(st.lists(st.sampled_from(IMAGE_MUTATIONS), max_size=3)):
        if how == 'encoding':
            encoding = draw(st.sampled_from(BAD_ENCODINGS) | st.text(max_size=8))
        elif how == 'height':
            height = draw(SIZES)
        elif how == 'width':
            width = draw(SIZES)
        elif how == 'step':
            step = draw(st.sampled_from([0, 1, step - 1, step | 1, step * 2, U32, -1]))
        elif how == 'data':
            data = _sized_bytes(draw, step * height)
        elif how == 'bigendian':
            is_bigendian = draw(st.sampled_from([2, 255, -1]))
        else:  # huge declared size, tiny data
            height, width, step = U32, 2**20, 3 * 2**20
    if data is None:
        n = step * height
        data = np.random.default_rng(draw(st.integers(0, 2**16))).integers(
            0, 256, n if 0 <= n <= MAX_DATA else 16, np.uint8).tobytes()
    return FakeImage(draw(stamps()), height, width, encoding, is_bigendian, step, data)


def _png(width: int, height: int, payload: bytes, color_type: int = 2) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', crc)

    header = struct.pack('>IIBBBBB', width, height, 8, color_type, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header)
            + chunk(b'IDAT', zlib.compress(payload)) + chunk(b'IEND', b''))


def _encoded(fmt: str, seed: int) -> bytes:
    from PIL import Image as PilImage

    rgb = np.random.default_rng(seed).integers(0, 255, (12, 16, 3), np.uint8)
    out = io.BytesIO()
    PilImage.fromarray(rgb).save(out, format=fmt)
    return out.getvalue()


_VALID = {fmt: _encoded(fmt, 0) for fmt in ('JPEG', 'PNG')}


@st.composite
def compressed_images(draw: st.DrawFn) -> FakeCompressedImage:
    """Garbage, truncated/bit-flipped JPEG/PNG, forged huge PNG headers, unknown formats."""
    fmt = draw(st.sampled_from(['jpeg', 'png', 'rgb8; jpeg compressed bgr8', 'compressedDepth',
                                '', 'tiff', 'h264', 'unknown']))
    kind = draw(st.sampled_from(['valid', 'truncated', 'flipped', 'garbage', 'empty',
                                 'magic_only', 'huge_header', 'bad_ihdr']))
    base = _VALID[draw(st.sampled_from(sorted(_VALID)))]
    if kind == 'valid':
        data = base
    elif kind == 'truncated':
        data = base[:draw(st.integers(0, len(base) - 1))]
    elif kind == 'flipped':
        buf = bytearray(base)
        for _ in range(draw(st.integers(1, 8))):
            buf[draw(st.integers(0, len(buf) - 1))] ^= 1 << draw(st.integers(0, 7))
        data = bytes(buf)
    elif kind == 'garbage':
        data = draw(st.binary(min_size=1, max_size=512))
    elif kind == 'empty':
        data = b''
    elif kind == 'magic_only':
        data = draw(st.sampled_from([b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'GIF89a',
                                     b'BM', b'II*\x00']))
        data += draw(st.binary(max_size=64))
    elif kind == 'huge_header':
        side = draw(st.sampled_from([9000, 20000, 100000, 2**31 - 1]))
        data = _png(side, side, b'\x00' * 16)
    else:
        data = _png(draw(st.integers(0, 4)), draw(st.integers(0, 4)),
                    draw(st.binary(max_size=64)), draw(st.sampled_from([0, 1, 2, 3, 5, 7])))
    return FakeCompressedImage(draw(stamps()), fmt, data)


# -- PointCloud2 ---------------------------------------------------------------------------
def _sim_fields() -> list[PointFieldSpec]:
    return [PointFieldSpec(n, 4 * i, 7, 1) for i, n in enumerate(SIM_FIELDS)]


@st.composite
def random_fields(draw: st.DrawFn) -> list[PointFieldSpec]:
    """Fields with overlaps, duplicates, unknown datatypes, odd counts and offsets."""
    names = st.sampled_from(list(SIM_FIELDS) + ['vx', 'intensity', '', 'x', 'ü'])
    offsets = st.integers(0, 40) | st.sampled_from([-4, 2**31 - 1, U32])
    datatypes = st.integers(0, 10) | st.just(255)
    counts = st.sampled_from([0, 1, 1, 1, 2, 3, 2**31, -1])
    return [PointFieldSpec(draw(names), draw(offsets), draw(datatypes), draw(counts))
            for _ in range(draw(st.integers(0, 7)))]


@st.composite
def mutated_sim_fields(draw: st.DrawFn) -> list[PointFieldSpec]:
    """The sim layout with one field broken (offset past point_step, type, count, name)."""
    fields = _sim_fields()
    i = draw(st.integers(0, len(fields) - 1))
    f = fields[i]
    how = draw(st.sampled_from(['offset', 'datatype', 'count', 'name', 'drop', 'dup', 'none']))
    if how == 'offset':
        fields[i] = PointFieldSpec(f.name, draw(st.sampled_from([17, 18, 20, 64, U32])), 7, 1)
    elif how == 'datatype':
        fields[i] = PointFieldSpec(f.name, f.offset, draw(st.sampled_from([0, 1, 2, 8, 9, 255])))
    elif how == 'count':
        fields[i] = PointFieldSpec(f.name, f.offset, 7, draw(st.sampled_from([0, 2, 2**31])))
    elif how == 'name':
        fields[i] = PointFieldSpec('bogus', f.offset, 7, 1)
    elif how == 'drop':
        del fields[i]
    elif how == 'dup':
        fields.append(PointFieldSpec(f.name, f.offset, f.datatype, f.count))
    return fields


_SPECIAL_FLOATS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e38, -1e38, 1e-45],
                           np.float32)


def _cloud_values(draw: st.DrawFn, n_bytes: int, special: bool) -> bytes:
    """Plausible radar floats sprinkled with NaN/inf/extremes (when the buffer is 4-aligned)."""
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if n_bytes % 4:
        return rng.integers(0, 256, n_bytes, np.uint8).tobytes()
    values = rng.uniform(-50, 120, n_bytes // 4).astype(np.float32)
    share = draw(st.sampled_from([0.01, 0.3, 1.0])) if special else 0.0
    mask = rng.random(values.size) < share
    values[mask] = rng.choice(_SPECIAL_FLOATS, int(mask.sum()))
    return values.tobytes()


CLOUD_MUTATIONS = ('fields', 'random_fields', 'point_step', 'height', 'width', 'row_step',
                   'data', 'values')


@st.composite
def clouds(draw: st.DrawFn) -> FakeCloud:
    """A sim-layout cloud with 0-3 broken layouts/sizes/counts/values; some 100k points."""
    fields = _sim_fields()
    point_step, height = 20, 1
    width = draw(st.integers(0, 64) | st.just(BIG_CLOUD))
    row_step, data, special = None, None, False
    for how in draw(st.lists(st.sampled_from(CLOUD_MUTATIONS), max_size=3)):
        if how == 'fields':
            fields = draw(mutated_sim_fields())
        elif how == 'random_fields':
            fields = draw(random_fields())
        elif how == 'point_step':
            point_step = draw(st.sampled_from([0, 16, 19, 24, 32, U32, -1]))
        elif how == 'height':
            height = draw(st.sampled_from([0, 2, 3, U32, -1]))
        elif how == 'width':
            width = draw(st.sampled_from([0, 2**20, U32, -1]))
        elif how == 'row_step':
            row_step = draw(st.sampled_from([0, -1, 1])) + width * point_step + draw(
                st.sampled_from([-8, -1, 1, 8, 0]))
        elif how == 'data':
            data = _sized_bytes(draw, (width * point_step if row_step is None else row_step)
                                * height)
        else:
            special = True
    if row_step is None:
        row_step = width * point_step
    if data is None:
        n = row_step * height
        data = (_cloud_values(draw, n, special) if 0 <= n <= BIG_CLOUD * 32
                else b'\x00' * 16)
    return FakeCloud(draw(stamps()), height, width, fields, draw(st.booleans()), point_step,
                     row_step, data, draw(st.booleans()))


def cases() -> st.SearchStrategy:
    """Any malformed or valid sensor message (image, compressed image or cloud)."""
    return st.one_of(images(), compressed_images(), clouds())


# -- real messages -------------------------------------------------------------------------
def _u32(*values: int) -> bool:
    return all(0 <= int(v) <= U32 for v in values)


def _bytes_array(data: bytes) -> array.array:
    out = array.array('B')
    out.frombytes(data)
    return out


def _ros_header(header: Header) -> Any:
    from std_msgs.msg import Header as RosHeader

    out = RosHeader(frame_id=header.frame_id)
    out.stamp.sec = header.stamp.sec
    out.stamp.nanosec = header.stamp.nanosec
    return out


def to_ros(case: Any) -> Any | None:
    """The `sensor_msgs` message for `case`, or None when its fields cannot hold the values."""
    stamp = case.header.stamp
    if not (-(2**31) <= stamp.sec < 2**31 and _u32(stamp.nanosec)):
        return None
    if isinstance(case, FakeImage):
        from sensor_msgs.msg import Image

        if not (_u32(case.height, case.width, case.step)
                and 0 <= case.is_bigendian <= 255):
            return None
        return Image(header=_ros_header(case.header), height=case.height, width=case.width,
                     encoding=case.encoding, is_bigendian=case.is_bigendian, step=case.step,
                     data=_bytes_array(case.data))
    if isinstance(case, FakeCompressedImage):
        from sensor_msgs.msg import CompressedImage

        return CompressedImage(header=_ros_header(case.header), format=case.format,
                               data=_bytes_array(case.data))
    from sensor_msgs.msg import PointCloud2, PointField

    if not (_u32(case.height, case.width, case.point_step, case.row_step)
            and all(_u32(f.offset, f.count) and 0 <= f.datatype <= 255 for f in case.fields)):
        return None
    fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
              for f in case.fields]
    return PointCloud2(header=_ros_header(case.header), height=case.height, width=case.width,
                       fields=fields, is_bigendian=bool(case.is_bigendian),
                       point_step=case.point_step, row_step=case.row_step,
                       data=_bytes_array(case.data), is_dense=bool(case.is_dense))


def kind_of(case: Any) -> str:
    """'image', 'compressed' or 'cloud'."""
    if isinstance(case, FakeImage):
        return 'image'
    return 'compressed' if isinstance(case, FakeCompressedImage) else 'cloud'


# -- the pure decode path ------------------------------------------------------------------
CLOUD_ERRORS = (PointCloudDecodeError, RadarPresetError)


def _stamp_ns(case: Any) -> int:
    return int(case.header.stamp.sec) * NS + int(case.header.stamp.nanosec)


def check_decode(case: Any, pipeline: Any) -> str:
    """Decode `case` and push it through `pipeline` (radar_points/add_radar or decide).

    Returns 'ok' or 'reject:<ErrorName>'; raises FuzzCrashError for any other exception or for a
    decode result of the wrong shape.
    """
    try:
        if kind_of(case) == 'cloud':
            try:
                points = pipeline.radar_points(case)
            except CLOUD_ERRORS as exc:
                return f'reject:{type(exc).__name__}'
            if points.ndim != 2 or points.shape[1] != 5 or not np.isfinite(points).all():
                raise FuzzCrashError(f'radar_points gave {points.shape} (finite: '
                                f'{np.isfinite(points).all()})')
            pipeline.add_radar(_stamp_ns(case), points)
            return 'ok'
        try:
            rgb = image_to_rgb(case)
        except ImageDecodeError as exc:
            return f'reject:{type(exc).__name__}'
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or not rgb.size:
            raise FuzzCrashError(f'image_to_rgb gave {rgb.shape} {rgb.dtype}')
        decision = pipeline.decide(_stamp_ns(case), rgb)
        if not math.isfinite(decision.target_acceleration):
            raise FuzzCrashError(f'non-finite acceleration {decision.target_acceleration}')
        return 'ok'
    except FuzzCrashError:
        raise
    except Exception as exc:  # noqa: BLE001 - the point: anything else is a crash
        raise FuzzCrashError(f'{kind_of(case)} raised {type(exc).__name__}: {exc}') from exc


# -- hypothesis profiles -------------------------------------------------------------------
_BASE = dict(deadline=None, database=None, phases=[Phase.generate],
             suppress_health_check=list(HealthCheck))
# 'fuzz-ci' replays the same cases every run (CI, the test suite); 'fuzz-explore' draws new
# ones (set MM_FUZZ_PROFILE=fuzz-explore, or pass --explore to the runner).
settings.register_profile('fuzz-ci', derandomize=True, **_BASE)
settings.register_profile('fuzz-explore', derandomize=False, **_BASE)


def fuzz_settings(max_examples: int, profile: str | None = None) -> settings:
    """Settings for a fuzz run of `max_examples` cases under the chosen profile."""
    name = profile or os.environ.get('MM_FUZZ_PROFILE', 'fuzz-ci')
    return settings(settings.get_profile(name), max_examples=max_examples)
