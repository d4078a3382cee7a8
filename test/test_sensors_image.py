"""Image / CompressedImage decoding to (H, W, 3) uint8 RGB."""

import array
import io
from types import SimpleNamespace

import numpy as np
from PIL import Image as PilImage
import pytest

from mm_fusion_ros.sensors.errors import REASONS, SensorDecodeError
from mm_fusion_ros.sensors.image import ImageDecodeError, image_fields_from_rgb, image_to_rgb

H, W = 5, 7
RNG = np.random.default_rng(3)
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
MONO16 = RNG.integers(0, 65536, (H, W), dtype=np.uint16)


def make_image(pixels, encoding, *, pad=0, big=False, data_type=bytes):
    """Pack (H, W, C) or (H, W) pixels row by row with `pad` bytes after each row."""
    px = pixels if pixels.ndim == 3 else pixels[:, :, None]
    if px.dtype == np.uint16:
        px = px.astype('>u2' if big else '<u2')
    rows = px.reshape(px.shape[0], -1).view(np.uint8)
    step = rows.shape[1] + pad
    buf = np.full((px.shape[0], step), 0xEE, np.uint8)
    buf[:, :rows.shape[1]] = rows
    return SimpleNamespace(
        header=SimpleNamespace(stamp=SimpleNamespace(sec=0, nanosec=0), frame_id='cam'),
        height=px.shape[0], width=px.shape[1], encoding=encoding, is_bigendian=int(big),
        step=step, data=data_type(buf.tobytes()))


def expected_mono16():
    return np.repeat((MONO16 >> 8).astype(np.uint8)[:, :, None], 3, axis=2)


CASES = {
    'rgb8': (lambda: RGB, lambda: RGB),
    'bgr8': (lambda: RGB[..., ::-1], lambda: RGB),
    'rgba8': (lambda: np.dstack([RGB, np.full((H, W), 9, np.uint8)]), lambda: RGB),
    'bgra8': (lambda: np.dstack([RGB[..., ::-1], np.full((H, W), 9, np.uint8)]), lambda: RGB),
    'mono8': (lambda: RGB[..., 0], lambda: np.repeat(RGB[..., :1], 3, axis=2)),
    '8UC1': (lambda: RGB[..., 1], lambda: np.repeat(RGB[..., 1:2], 3, axis=2)),
    'mono16': (lambda: MONO16, expected_mono16),
    '16UC1': (lambda: MONO16, expected_mono16),
    'rgb16': (lambda: RGB.astype(np.uint16) * 257, lambda: RGB),
    'bgr16': (lambda: RGB[..., ::-1].astype(np.uint16) * 257, lambda: RGB),
    'rgba16': (lambda: np.dstack([RGB.astype(np.uint16) * 257, MONO16]), lambda: RGB),
    'bgra16': (lambda: np.dstack([RGB[..., ::-1].astype(np.uint16) * 257, MONO16]),
               lambda: RGB),
}


@pytest.mark.parametrize('big', [False, True])
@pytest.mark.parametrize('pad', [0, 3])
@pytest.mark.parametrize('encoding', sorted(CASES))
def test_encodings(encoding, pad, big):
    pixels, expected = CASES[encoding]
    out = image_to_rgb(make_image(pixels(), encoding, pad=pad, big=big))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected())


def test_mono16_scaling_is_high_byte():
    px = np.array([[0, 255, 256, 65535, 32768]], np.uint16)
    out = image_to_rgb(make_image(px, 'mono16'))
    assert out[0, :, 0].tolist() == [0, 0, 1, 255, 128]


def test_big_endian_flag_matters_for_16bit():
    px = np.array([[0x0102]], np.uint16)
    msg = make_image(px, '16UC1', big=True)
    assert image_to_rgb(msg)[0, 0, 0] == 0x01
    msg.is_bigendian = 0  # same bytes read little-endian: 0x0201
    assert image_to_rgb(msg)[0, 0, 0] == 0x02


def test_rgb8_is_read_only_zero_copy_view():
    msg = make_image(RGB, 'rgb8')
    out = image_to_rgb(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    assert not out.flags.writeable and out.flags.c_contiguous
    padded = make_image(RGB, 'rgb8', pad=5)
    view = image_to_rgb(padded)  # still a view, strided over the padding
    assert np.shares_memory(view, np.frombuffer(padded.data, np.uint8))
    assert view.strides[0] == W * 3 + 5


def test_rgb8_view_of_writable_array_data_is_read_only():
    msg = make_image(RGB, 'rgb8', data_type=lambda b: array.array('B', b))
    out = image_to_rgb(msg)
    assert not out.flags.writeable
    np.testing.assert_array_equal(out, RGB)


def test_conversions_return_contiguous_copies():
    for encoding in ('bgr8', 'rgba8', 'mono8'):
        pixels, _ = CASES[encoding]
        msg = make_image(pixels(), encoding)
        out = image_to_rgb(msg)
        assert out.flags.c_contiguous and out.flags.writeable
        assert not np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


def test_encoding_is_case_insensitive():
    np.testing.assert_array_equal(image_to_rgb(make_image(RGB, 'RGB8')), RGB)


@pytest.mark.parametrize('mutate, match, reason', [
    (lambda m: setattr(m, 'encoding', 'yuv422'), 'unsupported image encoding', 'bad_encoding'),
    (lambda m: setattr(m, 'encoding', ''), 'unsupported image encoding', 'bad_encoding'),
    (lambda m: setattr(m, 'step', W * 3 - 1), 'step', 'bad_size'),
    (lambda m: setattr(m, 'data', m.data[:-1]), 'data has', 'size_mismatch'),
    (lambda m: setattr(m, 'data', m.data + b'\0'), 'data has', 'size_mismatch'),
    (lambda m: setattr(m, 'height', H + 1), 'data has', 'size_mismatch'),
    (lambda m: setattr(m, 'height', 0), 'empty image', 'bad_size'),
    (lambda m: setattr(m, 'width', 0), 'empty image', 'bad_size'),
    (lambda m: setattr(m, 'encoding', 'rgba8'), 'step', 'bad_size'),
    (lambda m: setattr(m, 'height', 'many'), 'unreadable Image fields', 'bad_message'),
    (lambda m: setattr(m, 'data', [0] * len(m.data)), 'unreadable Image fields', 'bad_message'),
    (lambda m: delattr(m, 'step'), 'unreadable Image fields', 'bad_message'),
])
def test_bad_images_raise(mutate, match, reason):
    msg = make_image(RGB, 'rgb8')
    mutate(msg)
    with pytest.raises(ImageDecodeError, match=match) as err:
        image_to_rgb(msg)
    assert err.value.reason == reason
    assert issubclass(ImageDecodeError, SensorDecodeError)
    assert issubclass(ImageDecodeError, ValueError)


def compressed(pil_image, fmt, *, ros_format=None):
    buf = io.BytesIO()
    pil_image.save(buf, format=fmt)
    return SimpleNamespace(header=None, format=ros_format or fmt.lower(), data=buf.getvalue())


def test_compressed_png_is_lossless():
    out = image_to_rgb(compressed(PilImage.fromarray(RGB), 'PNG'))
    np.testing.assert_array_equal(out, RGB)


def test_compressed_jpeg_close():
    smooth = np.zeros((16, 16, 3), np.uint8)
    smooth[..., 0], smooth[..., 1], smooth[..., 2] = 200, 100, 30
    msg = compressed(PilImage.fromarray(smooth), 'JPEG', ros_format='bgr8; jpeg compressed bgr8')
    msg.data = array.array('B', msg.data)  # what rclpy hands over
    out = image_to_rgb(msg)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - smooth).max() <= 3


def test_compressed_mono_and_16bit_png():
    gray = RGB[..., 0]
    out = image_to_rgb(compressed(PilImage.fromarray(gray), 'PNG'))
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))
    out16 = image_to_rgb(compressed(PilImage.fromarray(MONO16), 'PNG'))
    np.testing.assert_array_equal(out16, expected_mono16())
    rgba = PilImage.fromarray(np.dstack([RGB, np.zeros((H, W), np.uint8)]))
    np.testing.assert_array_equal(image_to_rgb(compressed(rgba, 'PNG')), RGB)


def _png_with(chunk_edit) -> bytes:
    data = bytearray(compressed(PilImage.fromarray(RGB), 'PNG').data)
    chunk_edit(data)
    return bytes(data)


@pytest.mark.parametrize('data, fmt, match, reason', [
    (b'', 'jpeg', 'empty', 'empty'),
    (b'not an image at all', 'jpeg', 'cannot decode', 'corrupt_compressed'),
    (None, 'png', 'cannot decode', 'corrupt_compressed'),  # truncated PNG
    (b'\0' * 20, '16UC1; compressedDepth png', 'compressedDepth', 'bad_encoding'),
    # IHDR length 5: Pillow's bare ValueError('Truncated IHDR chunk')
    (_png_with(lambda d: d.__setitem__(slice(8, 12), b'\0\0\0\5')), 'png', 'ValueError',
     'corrupt_compressed'),
    # a bad IHDR CRC: SyntaxError('broken PNG file')
    (_png_with(lambda d: d.__setitem__(slice(29, 33), b'\0\0\0\0')), 'png', 'cannot decode',
     'corrupt_compressed'),
    # an IHDR that declares 0 x 0 pixels: nothing to decode
    (b'\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR' + b'\0' * 8 + b'\x08\x02\0\0\0' + b'\0' * 4, 'png',
     'cannot decode|declares', 'corrupt_compressed|bad_size'),
])
def test_bad_compressed_raise(data, fmt, match, reason):
    if data is None:
        data = compressed(PilImage.fromarray(RGB), 'PNG').data[:40]
    with pytest.raises(ImageDecodeError, match=match) as err:
        image_to_rgb(SimpleNamespace(header=None, format=fmt, data=data))
    assert err.value.reason in reason.split('|')
    assert err.value.reason in REASONS


def test_decode_error_reason_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(ImageDecodeError('x', 'corrupt_compressed')))
    assert type(err) is ImageDecodeError and err.reason == 'corrupt_compressed'
    assert str(err) == 'x'
    assert SensorDecodeError('y', 'no such reason').reason == 'bad_message'


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_image_fields_round_trip(encoding):
    fields = image_fields_from_rgb(RGB, encoding)
    assert fields['step'] == W * 3 and fields['encoding'] == encoding
    np.testing.assert_array_equal(image_to_rgb(SimpleNamespace(header=None, **fields)), RGB)


def test_image_fields_rejects_bad_input():
    with pytest.raises(ImageDecodeError):
        image_fields_from_rgb(RGB[..., 0])
    with pytest.raises(ImageDecodeError):
        image_fields_from_rgb(RGB.astype(np.float32))
    with pytest.raises(ImageDecodeError):
        image_fields_from_rgb(RGB, 'mono8')
