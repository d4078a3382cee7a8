"""Malformed sensor messages for fuzzing: hypothesis strategies and the checks they go through.

Cases are message-like dataclasses (any value, negative or out of the ROS field ranges) and
convert to real `sensor_msgs` messages with `to_ros` where the message class can represent
them. `check_decode` runs one case through the pure decoders and the `FusionPipeline`;
`NodeFuzzer` (test/fuzz_nodes.py) runs it through the fusion node's and decision node's
callbacks. `check_decode` returns 'ok' or 'reject:<reason>' (the `SensorDecodeError.reason`
key), the node fuzzer 'ok' or 'reject'; both raise `FuzzCrashError` for anything else.

Besides messages built field by field, the cases mutate real encodings: a simulator camera frame
encoded by Pillow as PNG and JPEG (bytes flipped, inserted, deleted, truncated; PNG chunk
lengths, CRCs, types and IHDR fields; JPEG segment lengths, markers, SOF fields, scan data) and
valid PointCloud2 buffers of every preset layout in config/radar_presets (fields, offsets,
point_step, sizes and data mutated). `regressions()` lists the inputs that once crashed.
"""

import array
from dataclasses import dataclass, field
import functools
import io
import math
import os
import struct
from typing import Any
import zlib

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
import numpy as np

from mm_fusion_ros.sensors.errors import REASONS, SensorDecodeError
from mm_fusion_ros.sensors.image import ENCODINGS, image_to_rgb
from mm_fusion_ros.sensors.pointcloud import DATATYPES, PointFieldSpec
from mm_fusion_ros.sensors.radar_preprocess import preprocess_radar
from mm_fusion_ros.sensors.radar_presets import list_presets, load_preset

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
    origin: str = ''  # 'real_png' / 'real_jpeg': a mutated real encoding (reports only)


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
    preset: str = 'sim'  # the radar preset the cloud is decoded with
    origin: str = ''     # 'preset:<name>': a mutated valid cloud of that preset's layout


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


def png_with_ihdr_length(length: int) -> bytes:
    """A valid 4x4 PNG whose IHDR length field says `length` (13 is right).

    Below 13 Pillow raised a bare `ValueError: Truncated IHDR chunk` that escaped
    `image_to_rgb` and the fusion node's callback (`fuzz_run --cases 2500 --explore`).
    """
    png = _png(4, 4, b'\x00' * 64)
    return png[:8] + struct.pack('>I', length) + png[12:]


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
                                 'magic_only', 'huge_header', 'bad_ihdr', 'ihdr_length']))
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
    elif kind == 'ihdr_length':
        data = png_with_ihdr_length(draw(st.integers(0, 16) | st.sampled_from([2**31, U32])))
    else:
        data = _png(draw(st.integers(0, 4)), draw(st.integers(0, 4)),
                    draw(st.binary(max_size=64)), draw(st.sampled_from([0, 1, 2, 3, 5, 7])))
    return FakeCompressedImage(draw(stamps()), fmt, data)


# -- mutated real encodings (PNG, JPEG) ----------------------------------------------------
@functools.cache
def sim_frame() -> np.ndarray:
    """One simulator camera frame (256x128 rgb8, a lead vehicle on the road)."""
    from mm_fusion_ros.sim import ScenarioConfig, ScenarioType, run_episode
    from mm_fusion_ros.sim.conditions import Condition

    config = ScenarioConfig(scenario=ScenarioType.LEAD_BRAKE, condition=Condition.CLEAR,
                            seed=3, duration=0.2)
    return run_episode(config).frames[-1].rgb


# name -> (Pillow format, image mode, save options): what camera drivers and tools write.
REAL_ENCODINGS: dict[str, tuple[str, str, dict]] = {
    'png_rgb': ('PNG', 'RGB', {}),
    'png_rgba': ('PNG', 'RGBA', {}),
    'png_gray': ('PNG', 'L', {}),
    'png_palette': ('PNG', 'P', {}),
    'png_gray16': ('PNG', 'I;16', {}),
    'jpeg_420': ('JPEG', 'RGB', {'quality': 90}),
    'jpeg_444': ('JPEG', 'RGB', {'quality': 75, 'subsampling': 0}),
    'jpeg_progressive': ('JPEG', 'RGB', {'quality': 85, 'progressive': True}),
    'jpeg_gray': ('JPEG', 'L', {'quality': 90}),
}


@functools.cache
def real_encoding(name: str) -> bytes:
    """The simulator frame encoded as `REAL_ENCODINGS[name]` (cached: built once)."""
    from PIL import Image as PilImage

    fmt, mode, options = REAL_ENCODINGS[name]
    img = PilImage.fromarray(sim_frame())
    if mode == 'P':
        img = img.quantize(64)
    elif mode == 'I;16':  # 16-bit grey, as depth or HDR cameras write it
        img = PilImage.fromarray(np.asarray(img.convert('L')).astype(np.uint16) * 257)
    elif mode != 'RGB':
        img = img.convert(mode)
    out = io.BytesIO()
    img.save(out, format=fmt, **options)
    return out.getvalue()


def png_chunks(data: bytes) -> list[list[bytes]]:
    """[length, type, body, crc] byte strings of each chunk of a valid PNG (after the magic)."""
    chunks, pos = [], 8
    while pos + 12 <= len(data):
        (n,) = struct.unpack('>I', data[pos:pos + 4])
        chunks.append([data[pos:pos + 4], data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n],
                       data[pos + 8 + n:pos + 12 + n]])
        pos += 12 + n
    return chunks


def _png_chunk(kind: bytes, body: bytes) -> list[bytes]:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return [struct.pack('>I', len(body)), kind, body, struct.pack('>I', crc)]


def _png_join(chunks: list[list[bytes]]) -> bytes:
    return b'\x89PNG\r\n\x1a\n' + b''.join(b''.join(c) for c in chunks)


_LENGTHS = st.sampled_from([0, 1, 4, 12, 13, 14, 2**16, 2**31 - 1, 2**31, U32])
_ANCILLARY = [b'PLTE', b'tRNS', b'iCCP', b'zTXt', b'iTXt', b'tEXt', b'gAMA', b'sBIT',
              b'pHYs', b'acTL', b'fcTL', b'fdAT', b'eXIf', b'sRGB', b'cHRM', b'bKGD']


def _mutate_png(draw: st.DrawFn, data: bytes) -> bytes:
    """One structure-aware PNG mutation (CRCs recomputed unless the CRC is the target)."""
    chunks = png_chunks(data)
    if not chunks:  # an earlier mutation left no chunk to parse
        return _mutate_bytes(draw, data)
    i = draw(st.integers(0, len(chunks) - 1))
    how = draw(st.sampled_from(['length', 'crc', 'type', 'drop', 'dup', 'swap', 'ihdr',
                                'idat_flip', 'idat_truncate', 'idat_garbage', 'insert_chunk',
                                'split_idat']))
    if how == 'length':
        length = draw(_LENGTHS | st.integers(0, len(chunks[i][2]) + 8))
        chunks[i][0] = struct.pack('>I', length)
    elif how == 'crc':
        chunks[i][3] = struct.pack('>I', draw(st.integers(0, U32)))
    elif how == 'type':
        kind = draw(st.sampled_from([b'IEND', b'IHDR', b'IDAT', b'\x00\x00\x00\x00',
                                     b'ihdr', b'idat'] + _ANCILLARY))
        chunks[i] = _png_chunk(kind, chunks[i][2])
    elif how == 'drop':
        del chunks[i]
    elif how == 'dup':
        chunks.insert(i, list(chunks[i]))
    elif how == 'swap':
        j = draw(st.integers(0, len(chunks) - 1))
        chunks[i], chunks[j] = chunks[j], chunks[i]
    elif how == 'ihdr' and chunks[0][1] == b'IHDR' and len(chunks[0][2]) == 13:
        width, height, depth, colour, comp, filt, lace = struct.unpack('>IIBBBBB',
                                                                       chunks[0][2])
        field_ = draw(st.sampled_from(['size', 'depth', 'colour', 'method']))
        if field_ == 'size':
            # (a second 'ihdr' mutation starts from the first one's U32 or 0: stay in uint32)
            width = draw(st.sampled_from([0, 1, min(width + 1, U32), 2**16, 2**31 - 1, U32]))
            height = draw(st.sampled_from([0, 1, max(height - 1, 0), 2**16, 2**31 - 1, U32]))
        elif field_ == 'depth':
            depth = draw(st.sampled_from([0, 1, 2, 3, 4, 7, 16, 32, 255]))
        elif field_ == 'colour':
            colour = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 255]))
        else:
            comp, filt, lace = (draw(st.sampled_from([0, 1, 255])) for _ in range(3))
        chunks[0] = _png_chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, depth, colour,
                                                    comp, filt, lace))
    elif how.startswith('idat'):
        idat = [k for k, c in enumerate(chunks) if c[1] == b'IDAT'] or [i]
        k = draw(st.sampled_from(idat))
        body = bytearray(chunks[k][2])
        if how == 'idat_flip' and body:
            for _ in range(draw(st.integers(1, 16))):
                body[draw(st.integers(0, len(body) - 1))] ^= 1 << draw(st.integers(0, 7))
        elif how == 'idat_truncate':
            body = body[:draw(st.integers(0, len(body)))]
        else:
            body = bytearray(draw(st.binary(max_size=256)))
        chunks[k] = _png_chunk(b'IDAT', bytes(body))
    elif how == 'insert_chunk':
        body = draw(st.binary(max_size=64))
        if draw(st.booleans()):  # a compressed text/profile chunk whose stream inflates a lot
            body = b'key\x00\x00' + zlib.compress(b'\x00' * draw(st.sampled_from([16, 2**20])))
        chunks.insert(max(1, i), _png_chunk(draw(st.sampled_from(_ANCILLARY)), body))
    else:  # one IDAT split in two (valid), or split at a byte the decoder does not expect
        k = next((k for k, c in enumerate(chunks) if c[1] == b'IDAT'), i)
        body = chunks[k][2]
        cut = draw(st.integers(0, len(body)))
        chunks[k:k + 1] = [_png_chunk(b'IDAT', body[:cut]), _png_chunk(b'IDAT', body[cut:])]
    return _png_join(chunks)


def jpeg_segments(data: bytes) -> tuple[list[list[bytes]], bytes]:
    """([marker, length, body] of each segment up to and including SOS, scan data + EOI)."""
    segments, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos:pos + 2]
        (n,) = struct.unpack('>H', data[pos + 2:pos + 4])
        segments.append([marker, data[pos + 2:pos + 4], data[pos + 4:pos + 2 + n]])
        pos += 2 + n
        if marker == b'\xff\xda':
            break
    return segments, data[pos:]


def _jpeg_join(segments: list[list[bytes]], scan: bytes) -> bytes:
    return b'\xff\xd8' + b''.join(b''.join(s) for s in segments) + scan


_JPEG_MARKERS = [0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC8, 0xCC, 0xD0, 0xD8, 0xD9, 0xDA,
                 0xDB, 0xDD, 0xE0, 0xE1, 0xEE, 0xFE, 0x01, 0xFF, 0x00]


def _mutate_jpeg(draw: st.DrawFn, data: bytes) -> bytes:
    """One structure-aware JPEG mutation: segment lengths, markers, SOF/DQT/DHT fields, scan."""
    segments, scan = jpeg_segments(data)
    if not segments:  # an earlier mutation left no segment to parse
        return _mutate_bytes(draw, data)
    i = draw(st.integers(0, len(segments) - 1))
    how = draw(st.sampled_from(['length', 'marker', 'drop', 'dup', 'sof', 'table',
                                'scan_flip', 'scan_truncate', 'scan_markers', 'no_eoi']))
    if how == 'length':
        segments[i][1] = struct.pack('>H', draw(st.sampled_from(
            [0, 1, 2, 3, len(segments[i][2]) + 1, len(segments[i][2]) + 3, 0xFFFF])))
    elif how == 'marker':
        segments[i][0] = bytes([0xFF, draw(st.sampled_from(_JPEG_MARKERS))])
    elif how == 'drop':
        del segments[i]
        if not segments:
            return b'\xff\xd8' + scan
    elif how == 'dup':
        segments.insert(i, list(segments[i]))
    elif how == 'sof':
        k = next((k for k, s in enumerate(segments) if s[0] in (b'\xff\xc0', b'\xff\xc2')), i)
        body = bytearray(segments[k][2])
        if len(body) >= 6:
            what = draw(st.sampled_from(['precision', 'height', 'width', 'components',
                                         'sampling', 'table']))
            if what == 'precision':
                body[0] = draw(st.sampled_from([0, 1, 12, 16, 255]))
            elif what in ('height', 'width'):
                at = 1 if what == 'height' else 3
                body[at:at + 2] = struct.pack('>H', draw(st.sampled_from([0, 1, 0xFFFF])))
            elif what == 'components':
                body[5] = draw(st.sampled_from([0, 2, 4, 255]))
            elif len(body) >= 9:
                body[7 if what == 'sampling' else 8] = draw(st.sampled_from([0, 0x11, 0x44,
                                                                             0xFF, 3]))
        segments[k][2] = bytes(body)
    elif how == 'table':  # quantisation / Huffman table bytes
        tables = [k for k, s in enumerate(segments) if s[0] in (b'\xff\xdb', b'\xff\xc4')]
        k = draw(st.sampled_from(tables or [i]))
        body = bytearray(segments[k][2])
        for _ in range(draw(st.integers(1, 8))):
            if body:
                body[draw(st.integers(0, len(body) - 1))] = draw(st.integers(0, 255))
        segments[k][2] = bytes(body)
    elif how == 'scan_flip':
        buf = bytearray(scan)
        for _ in range(draw(st.integers(1, 16))):
            if buf:
                buf[draw(st.integers(0, len(buf) - 1))] ^= 1 << draw(st.integers(0, 7))
        scan = bytes(buf)
    elif how == 'scan_truncate':
        scan = scan[:draw(st.integers(0, len(scan)))]
    elif how == 'scan_markers':  # restart / stray markers inside the entropy-coded data
        at = draw(st.integers(0, len(scan)))
        marker = bytes([0xFF, draw(st.sampled_from([0xD0, 0xD7, 0xD9, 0xD8, 0xC4, 0xFF]))])
        scan = scan[:at] + marker + scan[at:]
    else:
        scan = scan[:-2] if scan.endswith(b'\xff\xd9') else scan + b'\xff\xd9\xff\xd9'
    return _jpeg_join(segments, scan)


def _mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """Format-blind: flip bits, overwrite, insert, delete, duplicate a range, truncate."""
    buf = bytearray(data)
    how = draw(st.sampled_from(['flip', 'overwrite', 'insert', 'delete', 'duplicate',
                                'truncate']))
    at = draw(st.integers(0, max(len(buf) - 1, 0)))
    if how == 'flip':
        for _ in range(draw(st.integers(1, 32))):
            buf[draw(st.integers(0, len(buf) - 1))] ^= 1 << draw(st.integers(0, 7))
    elif how == 'overwrite':
        chunk = draw(st.binary(min_size=1, max_size=16) | st.sampled_from(
            [b'\xff' * 4, b'\x00' * 4, b'\x7f\xff\xff\xff', b'\x80\x00\x00\x00']))
        buf[at:at + len(chunk)] = chunk
    elif how == 'insert':
        buf[at:at] = draw(st.binary(min_size=1, max_size=64))
    elif how == 'delete':
        del buf[at:at + draw(st.integers(1, 256))]
    elif how == 'duplicate':
        n = draw(st.integers(1, 512))
        buf[at:at] = buf[at:at + n]
    else:
        del buf[at:]
    return bytes(buf)


@st.composite
def real_compressed_images(draw: st.DrawFn) -> FakeCompressedImage:
    """A simulator frame encoded as PNG or JPEG, then 1-3 structural or byte mutations."""
    name = draw(st.sampled_from(sorted(REAL_ENCODINGS)))
    data = real_encoding(name)
    png = name.startswith('png')
    for _ in range(draw(st.integers(1, 3))):
        if data[:8] == b'\x89PNG\r\n\x1a\n' and png and draw(st.booleans()):
            data = _mutate_png(draw, data)
        elif data[:2] == b'\xff\xd8' and not png and draw(st.booleans()):
            data = _mutate_jpeg(draw, data)
        elif data:
            data = _mutate_bytes(draw, data)
    fmt = draw(st.sampled_from(['png' if png else 'jpeg', 'rgb8; jpeg compressed bgr8', '']))
    return FakeCompressedImage(draw(stamps()), fmt, data,
                               origin='real_png' if png else 'real_jpeg')


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


# -- mutated valid clouds of each preset layout --------------------------------------------
@functools.cache
def preset_layout(name: str) -> tuple[list[PointFieldSpec], int, np.dtype]:
    """(fields, point_step, structured dtype) of a preset's documented publisher layout."""
    preset = load_preset(name)
    fields = preset.layout_fields()
    dtype = np.dtype({'names': [f.name for f in fields],
                      'formats': [DATATYPES[f.datatype] if f.count == 1
                                  else (DATATYPES[f.datatype], (f.count,)) for f in fields],
                      'offsets': [f.offset for f in fields], 'itemsize': preset.point_step})
    return fields, int(preset.point_step), dtype


def preset_points(name: str, n: int, seed: int) -> np.ndarray:
    """`n` plausible radar returns in the preset's layout (host byte order)."""
    _, _, dtype = preset_layout(name)
    rng = np.random.default_rng(seed)
    pts = np.zeros(n, dtype)
    for field_name in dtype.names:
        kind = dtype[field_name].base
        if kind.kind == 'f':
            pts[field_name] = rng.uniform(-20, 80, pts[field_name].shape)
        else:
            info = np.iinfo(kind)
            pts[field_name] = rng.integers(max(info.min, -100), min(info.max, 100) + 1,
                                           pts[field_name].shape)
    pts['x'] = rng.uniform(1, 90, n)
    pts['y'] = rng.uniform(-15, 15, n)
    pts['z'] = rng.uniform(-1, 3, n)
    return pts


PRESET_CLOUD_MUTATIONS = ('offset', 'datatype', 'count', 'rename', 'drop', 'dup', 'reorder',
                          'point_step', 'row_step', 'size', 'data_truncate', 'data_extend',
                          'data_flip', 'non_finite', 'endianness', 'wrong_preset')


@st.composite
def preset_clouds(draw: st.DrawFn) -> FakeCloud:
    """A valid cloud in one preset's layout (sim, carla, nuscenes) with 0-3 mutations.

    Without mutations it must decode; mutations break one field (offset, datatype, count,
    name), the sizes (point_step, row_step with matching row padding, width/height), the data
    (truncated, extended, bit flips, NaN/inf in float fields), the byte order, or decode it
    with another preset than the one it was built for.
    """
    presets = list_presets()
    name = draw(st.sampled_from(presets))
    fields, point_step, _ = preset_layout(name)
    fields = list(fields)
    n = draw(st.integers(0, 48) | st.just(2000))
    pts = preset_points(name, n, draw(st.integers(0, 2**16)))
    data = bytearray(pts.tobytes())
    height, width, row_step = 1, n, point_step * n
    is_bigendian, preset = False, name
    for how in draw(st.lists(st.sampled_from(PRESET_CLOUD_MUTATIONS), max_size=3)):
        i = draw(st.integers(0, len(fields) - 1)) if fields else 0
        if how == 'offset' and fields:
            f = fields[i]
            offset = draw(st.sampled_from([f.offset + 1, f.offset - 1, f.offset + 2,
                                           point_step - 1, point_step, 2**31 - 1, U32]))
            fields[i] = PointFieldSpec(f.name, max(offset, 0), f.datatype, f.count)
        elif how == 'datatype' and fields:
            f = fields[i]
            fields[i] = PointFieldSpec(f.name, f.offset, draw(st.sampled_from(
                [1, 2, 3, 4, 5, 6, 7, 8, 0, 9, 255])), f.count)
        elif how == 'count' and fields:
            f = fields[i]
            fields[i] = PointFieldSpec(f.name, f.offset, f.datatype,
                                       draw(st.sampled_from([0, 2, 3, 2**31, U32])))
        elif how == 'rename' and fields:
            f = fields[i]
            new = draw(st.sampled_from(['', 'X', f.name + ' ', 'rcs', 'vx_comp', 'Velocity']))
            fields[i] = PointFieldSpec(new, f.offset, f.datatype, f.count)
        elif how == 'drop' and fields:
            del fields[i]
        elif how == 'dup' and fields:
            fields.append(fields[i])
        elif how == 'reorder':
            fields = draw(st.permutations(fields))
        elif how == 'point_step':
            point_step = draw(st.sampled_from([0, point_step - 1, point_step + 1,
                                               point_step * 2, 4, U32]))
        elif how == 'row_step':
            pad = draw(st.sampled_from([-1, 1, 3, 8]))
            row_step = max(row_step + pad, 0)
            if pad > 0 and draw(st.booleans()):  # padded rows with data that matches
                # only the rows the data holds: after 'size' the height may be 2**32 - 1
                rows = min(height, 1 + len(data) // max(point_step * width, 1))
                data = bytearray(b''.join(bytes(data[r * point_step * width:
                                                     (r + 1) * point_step * width])
                                          + bytes(pad) for r in range(rows)))
        elif how == 'size':
            height, width = draw(st.sampled_from([(2, max(width // 2, 1)), (width, 1),
                                                  (0, width), (1, width + 1),
                                                  (1, max(width - 1, 0)), (U32, U32)]))
            row_step = point_step * width
        elif how == 'data_truncate':
            del data[draw(st.integers(0, max(len(data) - 1, 0))):]
        elif how == 'data_extend':
            data += bytes(draw(st.integers(1, 64)))
        elif how == 'data_flip' and data:
            for _ in range(draw(st.integers(1, 32))):
                data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        elif how == 'non_finite' and n:
            bad = pts.copy()
            value = draw(st.sampled_from([np.nan, np.inf, -np.inf, 3.0e38, -3.0e38]))
            for field_name in draw(st.lists(st.sampled_from(['x', 'y', 'z'] + [
                    f for f in pts.dtype.names if pts.dtype[f].kind == 'f']), min_size=1,
                    max_size=3)):
                rows = draw(st.sampled_from([slice(None), slice(0, 1), slice(None, None, 3)]))
                bad[field_name][rows] = value
            data = bytearray(bad.tobytes())
        elif how == 'endianness':
            is_bigendian = True  # host-order bytes read byte-swapped: huge, tiny or NaN
        elif how == 'wrong_preset':
            preset = draw(st.sampled_from(presets))
    return FakeCloud(draw(stamps()), height, width, fields, is_bigendian, point_step,
                     row_step, bytes(data), draw(st.booleans()), preset=preset,
                     origin=f'preset:{name}')


def cases() -> st.SearchStrategy:
    """Any malformed or valid sensor message: built field by field, or a mutated real one."""
    return st.one_of(images(), compressed_images(), real_compressed_images(), clouds(),
                     preset_clouds())


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


def label_of(case: Any) -> str:
    """kind_of plus where a mutated real input came from ('compressed/real_png', ...)."""
    origin = getattr(case, 'origin', '')
    return f'{kind_of(case)}/{origin}' if origin else kind_of(case)


# -- regressions: inputs that once escaped the decoders ------------------------------------
def regressions() -> list[tuple[str, Any]]:
    """(name, case) of every input a fuzz run found crashing; each must now be rejected."""
    return [
        *((f'png_ihdr_length_{n}', FakeCompressedImage(Header(), 'png',
                                                       png_with_ihdr_length(n)))
          for n in (0, 5, 12)),
        *((f'png_declares_{side}px', FakeCompressedImage(Header(), 'png',
                                                         _png(side, side, b'\x00' * 16)))
          for side in (9000, 100_000)),
    ]


# -- the pure decode path ------------------------------------------------------------------
def _stamp_ns(case: Any) -> int:
    return int(case.header.stamp.sec) * NS + int(case.header.stamp.nanosec)


@functools.cache
def _converter(preset: str) -> Any:
    return load_preset(preset).converter()


def _reject(exc: SensorDecodeError) -> str:
    if exc.reason not in REASONS:
        raise FuzzCrashError(f'{type(exc).__name__} with unknown reason {exc.reason!r}')
    return f'reject:{exc.reason}'


def check_decode(case: Any, pipeline: Any) -> str:
    """Decode `case` and push it through `pipeline` (radar_points/add_radar or decide).

    A cloud is converted with its `preset` (the pipeline's own for 'sim', so its cleanup and
    history run as in the node). Returns 'ok' or 'reject:<reason>'; raises FuzzCrashError for
    any exception that is not a SensorDecodeError and for a decode result of the wrong shape.
    """
    try:
        if kind_of(case) == 'cloud':
            try:
                if case.preset == pipeline.config.radar_preset:
                    points = pipeline.radar_points(case)
                else:
                    points = preprocess_radar(_converter(case.preset)(case),
                                              pipeline.config.preprocess)
            except SensorDecodeError as exc:
                return _reject(exc)
            if points.ndim != 2 or points.shape[1] != 5 or not np.isfinite(points).all():
                raise FuzzCrashError(f'radar_points gave {points.shape} (finite: '
                                f'{np.isfinite(points).all()})')
            pipeline.add_radar(_stamp_ns(case), points)
            return 'ok'
        try:
            rgb = image_to_rgb(case)
        except SensorDecodeError as exc:
            return _reject(exc)
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
