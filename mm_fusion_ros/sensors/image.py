"""sensor_msgs Image / CompressedImage -> (H, W, 3) uint8 RGB, without cv_bridge.

Works on any object with the message's field names, so the core is testable without rclpy.
`data` is read through the buffer protocol (`array.array` in rclpy, `bytes` elsewhere), never
as a Python list. Any message content that cannot be decoded raises `ImageDecodeError` (a
`SensorDecodeError` with a `reason` key), never another exception.
"""

import array
from dataclasses import dataclass
import io
from typing import Any

import numpy as np

from mm_fusion_ros.sensors.buffers import uint8_view
from mm_fusion_ros.sensors.errors import SensorDecodeError


class ImageDecodeError(SensorDecodeError):
    """An image message that cannot be decoded (unknown encoding, bad size, corrupt bytes)."""


# A CompressedImage header may declare any size; larger frames are refused before decoding
# (a 4K frame is 8.3 MP), so a tiny forged PNG/JPEG never allocates gigabytes.
MAX_COMPRESSED_PIXELS = 64 * 1024 * 1024


@dataclass(frozen=True)
class _Encoding:
    channels: int
    depth: int          # bytes per channel
    rgb: tuple[int, ...]  # source channel of R, G, B (mono: all 0)


# Keys are lower case; lookups lower-case the message's encoding ('16UC1' -> '16uc1').
ENCODINGS: dict[str, _Encoding] = {
    'rgb8': _Encoding(3, 1, (0, 1, 2)),
    'bgr8': _Encoding(3, 1, (2, 1, 0)),
    'rgba8': _Encoding(4, 1, (0, 1, 2)),
    'bgra8': _Encoding(4, 1, (2, 1, 0)),
    'mono8': _Encoding(1, 1, (0, 0, 0)),
    '8uc1': _Encoding(1, 1, (0, 0, 0)),
    'mono16': _Encoding(1, 2, (0, 0, 0)),
    '16uc1': _Encoding(1, 2, (0, 0, 0)),
    'rgb16': _Encoding(3, 2, (0, 1, 2)),
    'bgr16': _Encoding(3, 2, (2, 1, 0)),
    'rgba16': _Encoding(4, 2, (0, 1, 2)),
    'bgra16': _Encoding(4, 2, (2, 1, 0)),
}


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit by keeping the high byte (v >> 8, i.e. floor(v * 255 / 65535) within 1).

    A fixed linear map of the full 16-bit range keeps frames comparable over time (per-image
    min/max normalisation would make brightness flicker); 16UC1 depth in mm therefore shows
    0..65 m as 0..255.
    """
    return (values >> 8).astype(np.uint8)


def image_to_rgb(msg: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an `Image` or `CompressedImage` (told apart by `format`).

    rgb8 returns a read-only view of `data` (strided over row padding when `step > width*3`):
    no copy. Other encodings return a new contiguous array: colour order swapped, alpha
    dropped, mono replicated to three channels, 16-bit scaled by `>> 8`.
    """
    if hasattr(msg, 'format') and not hasattr(msg, 'encoding'):
        return _decode_compressed(msg)
    try:  # fields of a message-like object may hold anything
        encoding = str(msg.encoding)
        height, width, step = int(msg.height), int(msg.width), int(msg.step)
        big_endian = bool(msg.is_bigendian)
        buf = uint8_view(msg.data)
    except (AttributeError, TypeError, ValueError, OverflowError) as e:
        raise ImageDecodeError(f'unreadable Image fields: {e}', 'bad_message') from e
    enc = ENCODINGS.get(encoding.lower())
    if enc is None:
        raise ImageDecodeError(
            f'unsupported image encoding {encoding!r} (supported: {sorted(ENCODINGS)})',
            'bad_encoding')
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f'empty image {height}x{width}', 'bad_size')
    row_bytes = width * enc.channels * enc.depth
    if step < row_bytes:
        raise ImageDecodeError(
            f'step {step} < width {width} * {enc.channels * enc.depth} bytes/pixel'
            f' for {encoding}', 'bad_size')
    if buf.size != step * height:
        raise ImageDecodeError(
            f'data has {buf.size} bytes, expected step {step} * height {height}'
            f' = {step * height}', 'size_mismatch')
    if enc.depth == 1:
        dtype = np.dtype(np.uint8)
    else:
        # numpy reads unaligned strides (odd step) correctly, so no realignment copy.
        dtype = np.dtype('>u2' if big_endian else '<u2')
    pixels = np.ndarray(
        (height, width, enc.channels), dtype, buf,
        strides=(step, enc.channels * enc.depth, enc.depth))
    if enc.depth == 2:
        pixels = _to_uint8(pixels)
    if enc.rgb == (0, 1, 2) and enc.channels == 3 and enc.depth == 1:
        return pixels
    out = np.empty((height, width, 3), np.uint8)
    if enc.channels == 1:
        out[...] = pixels
    else:
        for dst, src in enumerate(enc.rgb):
            out[..., dst] = pixels[..., src]
    return out


def _decode_compressed(msg: Any) -> np.ndarray:
    """JPEG/PNG via Pillow; `format` is informative only, the bytes' magic decides."""
    try:
        fmt = str(msg.format)
        buf = uint8_view(msg.data)
    except (AttributeError, TypeError, ValueError) as e:
        raise ImageDecodeError(f'unreadable CompressedImage fields: {e}', 'bad_message') from e
    if 'compresseddepth' in fmt.lower():
        raise ImageDecodeError(f'compressedDepth images are not supported (format {fmt!r})',
                               'bad_encoding')
    if buf.size == 0:
        raise ImageDecodeError('empty CompressedImage data', 'empty')
    from PIL import Image as PilImage  # lazy: only compressed streams need Pillow
    try:
        with PilImage.open(io.BytesIO(buf.tobytes())) as img:
            if img.width <= 0 or img.height <= 0:
                raise ImageDecodeError(
                    f'CompressedImage ({fmt!r}) declares {img.width}x{img.height} pixels',
                    'bad_size')
            if img.width * img.height > MAX_COMPRESSED_PIXELS:
                raise ImageDecodeError(
                    f'CompressedImage ({fmt!r}) declares {img.width}x{img.height} pixels,'
                    f' over the limit of {MAX_COMPRESSED_PIXELS}', 'too_large')
            img.load()
            if img.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
                mono = _to_uint8(np.asarray(img).astype(np.uint16))
                rgb = np.repeat(mono[:, :, None], 3, axis=2)
            else:
                rgb = np.asarray(img.convert('RGB'))
    except ImageDecodeError:
        raise
    except PilImage.DecompressionBombError as e:
        raise ImageDecodeError(f'CompressedImage ({fmt!r}): {e}', 'too_large') from e
    except Exception as e:  # noqa: BLE001 - Pillow's plugins raise OSError, SyntaxError,
        # ValueError ('Truncated IHDR chunk'), struct.error, EOFError, IndexError, ... for bad
        # bytes; none of them is documented as the one, so all of them are bad content here.
        raise ImageDecodeError(
            f'cannot decode CompressedImage ({fmt!r}): {type(e).__name__}: {e}',
            'corrupt_compressed') from e
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or not rgb.size:
        raise ImageDecodeError(f'CompressedImage ({fmt!r}) decoded to {rgb.shape} {rgb.dtype}',
                               'corrupt_compressed')
    return rgb


def image_fields_from_rgb(rgb: np.ndarray, encoding: str = 'rgb8') -> dict[str, Any]:
    """Keyword arguments for `sensor_msgs.msg.Image(header=..., **fields)` from RGB pixels.

    Kept message-free so publishers and tests share one encoder; `encoding` is 'rgb8' or
    'bgr8'. `data` is an `array.array('B')`: passed to the rclpy constructor it is taken as is,
    the fastest way to build a large Image (setting it afterwards is orders slower).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageDecodeError(f'expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}',
                               'bad_size')
    if encoding == 'bgr8':
        rgb = rgb[..., ::-1]
    elif encoding != 'rgb8':
        raise ImageDecodeError(f'cannot encode to {encoding!r} (rgb8 or bgr8)', 'bad_encoding')
    height, width = rgb.shape[:2]
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(rgb).tobytes())
    return {
        'height': int(height), 'width': int(width), 'encoding': encoding,
        'is_bigendian': 0, 'step': int(width) * 3,
        'data': data,
    }
