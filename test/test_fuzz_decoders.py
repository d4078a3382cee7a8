"""Fuzzed Image / CompressedImage / PointCloud2 through the decoders and the FusionPipeline.

Every input decodes or raises a `SensorDecodeError` (ImageDecodeError, PointCloudDecodeError,
RadarConversionError) with a known `reason`, never anything else. Inputs are built field by
field or are mutated real encodings (a simulator frame as PNG/JPEG, valid clouds of every
radar preset). The suite runs the derandomised `fuzz-ci` profile (MM_FUZZ_EXAMPLES cases,
default 300); `python -m test.fuzz_run --cases 100000 --explore` is the long run.
"""

import os

from hypothesis import given
import numpy as np
import pytest

torch = pytest.importorskip('torch')

from mm_fusion_ros.model.fusion import FusionModel  # noqa: E402
from mm_fusion_ros.model.predictor import FusionPredictor  # noqa: E402
from mm_fusion_ros.pipeline import FusionPipeline  # noqa: E402
from mm_fusion_ros.sensors.errors import REASONS, SensorDecodeError  # noqa: E402
from mm_fusion_ros.sensors.image import ImageDecodeError, image_to_rgb  # noqa: E402
from mm_fusion_ros.sensors.pointcloud import (  # noqa: E402
    PointCloudDecodeError,
    PointFieldSpec,
    dtype_from_fields,
    read_points_numpy,
)
from test.fuzz_cases import (  # noqa: E402
    REAL_ENCODINGS,
    U32,
    FakeCloud,
    FakeCompressedImage,
    Header,
    _png,
    cases,
    check_decode,
    clouds,
    compressed_images,
    fuzz_settings,
    images,
    png_with_ihdr_length,
    preset_clouds,
    preset_layout,
    preset_points,
    real_compressed_images,
    real_encoding,
    regressions,
)

EXAMPLES = int(os.environ.get('MM_FUZZ_EXAMPLES', '300'))


@pytest.fixture(scope='module')
def pipeline():
    torch.manual_seed(0)
    predictor = FusionPredictor(FusionModel(), device='cpu', num_threads=1)
    return FusionPipeline(predictor)


@fuzz_settings(EXAMPLES)
@given(cases())
def test_any_message_decodes_or_raises_its_decode_error(pipeline, case):
    outcome = check_decode(case, pipeline)
    assert outcome == 'ok' or outcome.removeprefix('reject:') in REASONS


@fuzz_settings(EXAMPLES // 5)
@given(images())
def test_raw_images(pipeline, case):
    check_decode(case, pipeline)


@fuzz_settings(EXAMPLES // 5)
@given(compressed_images())
def test_compressed_images(pipeline, case):
    check_decode(case, pipeline)


@fuzz_settings(EXAMPLES // 5)
@given(real_compressed_images())
def test_mutated_real_png_and_jpeg_frames(pipeline, case):
    check_decode(case, pipeline)


@fuzz_settings(EXAMPLES // 5)
@given(clouds())
def test_point_clouds(pipeline, case):
    check_decode(case, pipeline)


@fuzz_settings(EXAMPLES // 5)
@given(preset_clouds())
def test_mutated_clouds_of_every_preset_layout(pipeline, case):
    check_decode(case, pipeline)


@pytest.mark.parametrize('name', sorted(REAL_ENCODINGS))
def test_unmutated_real_encodings_decode(name):
    # The mutation bases are valid: a reject of a mutated frame comes from the mutation.
    rgb = image_to_rgb(FakeCompressedImage(Header(), 'png', real_encoding(name)))
    assert rgb.shape == (128, 256, 3) and rgb.dtype == np.uint8 and rgb.std() > 10


@pytest.mark.parametrize('preset', ['sim', 'carla', 'nuscenes'])
def test_unmutated_preset_clouds_decode(pipeline, preset):
    fields, point_step, _ = preset_layout(preset)
    pts = preset_points(preset, 40, 0)
    cloud = FakeCloud(Header(), 1, 40, fields, False, point_step, point_step * 40,
                      pts.tobytes(), True, preset=preset)
    assert check_decode(cloud, pipeline) == 'ok'


def test_a_cloud_of_another_preset_is_a_decode_error(pipeline):
    # At run time a cloud that does not fit the configured preset is bad content, not a bad
    # preset file: the same error type as every other decode failure, counted by reason.
    fields, point_step, _ = preset_layout('carla')
    cloud = FakeCloud(Header(), 1, 3, fields, False, point_step, point_step * 3,
                      preset_points('carla', 3, 0).tobytes(), True)
    with pytest.raises(SensorDecodeError) as err:
        pipeline.radar_points(cloud)
    assert err.value.reason == 'missing_field'


# -- regressions the fuzzer found ----------------------------------------------------------
@pytest.mark.parametrize('length', [0, 5, 12])
def test_png_with_truncated_ihdr_length_is_an_image_decode_error(length):
    # `fuzz_run --cases 2500 --explore` found it: Pillow raised a bare
    # `ValueError: Truncated IHDR chunk`, which escaped image_to_rgb and fusion_node._on_image.
    msg = FakeCompressedImage(Header(), 'png', png_with_ihdr_length(length))
    with pytest.raises(ImageDecodeError) as err:
        image_to_rgb(msg)
    assert err.value.reason == 'corrupt_compressed'


@pytest.mark.parametrize('name,case', regressions(), ids=[n for n, _ in regressions()])
def test_regression_inputs_are_rejected_with_a_reason(pipeline, name, case):
    assert check_decode(case, pipeline).removeprefix('reject:') in REASONS


@pytest.mark.parametrize('side', [9000, 100_000])
def test_forged_png_header_is_refused_before_decoding(side):
    # 100000^2 px made Pillow raise DecompressionBombError (not an ImageDecodeError) and
    # 9000^2 px would have allocated 243 MB for 16 bytes of data.
    msg = FakeCompressedImage(Header(), 'png', _png(side, side, b'\x00' * 16))
    with pytest.raises(ImageDecodeError, match='declares|bomb|exceeds'):
        image_to_rgb(msg)


def test_offsets_numpy_cannot_represent_are_a_decode_error():
    # An offset past 2**31 with a point_step of 2**32-1 made numpy raise a bare ValueError.
    with pytest.raises(PointCloudDecodeError, match='unsupported point layout'):
        dtype_from_fields([PointFieldSpec('x', 2**31 - 1, 7, 1)], U32)


def test_big_cloud_with_nan_and_inf_is_cleaned(pipeline):
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 50, (100_000, 5)).astype(np.float32)
    pts[::7, 0] = np.nan
    pts[::11, 3] = -np.inf
    fields = [PointFieldSpec(n, 4 * i, 7) for i, n in
              enumerate(('x', 'y', 'z', 'radial_velocity', 'rcs'))]
    cloud = FakeCloud(Header(), 1, len(pts), fields, False, 20, 20 * len(pts), pts.tobytes(),
                      False)
    assert read_points_numpy(cloud).shape == (100_000, 5)
    out = pipeline.radar_points(cloud)
    assert out.shape[1] == 5 and 0 < len(out) <= pipeline.config.preprocess.max_points
    assert np.isfinite(out).all()


def test_huge_declared_cloud_with_tiny_data_is_refused():
    fields = [PointFieldSpec('x', 0, 7)]
    cloud = FakeCloud(Header(), U32, U32, fields, False, 4, 4 * U32, b'\x00' * 16, False)
    with pytest.raises(PointCloudDecodeError, match='data has 16 bytes'):
        read_points_numpy(cloud)


def test_fuzz_run_command(capsys):
    from test.fuzz_run import main

    assert main(['--cases', '40', '--no-nodes']) == 0
    out = capsys.readouterr().out
    assert f'fuzz: {40 + len(regressions())} cases' in out and 'crashes: 0' in out
    assert 'decode rejects by reason:' in out and 'compressed: corrupt_compressed' in out


def test_fuzz_run_in_batches_reports_progress(capsys):
    # The long run draws its cases in batches with a progress line each (cases, crashes, RSS).
    from test.fuzz_run import main

    assert main(['--cases', '30', '--batch', '10', '--no-nodes', '--explore']) == 0
    captured = capsys.readouterr()
    assert f'fuzz: {30 + len(regressions())} cases' in captured.out
    assert 'crashes: 0; peak RSS' in captured.out
    batches = [line for line in captured.err.splitlines() if line.strip().startswith('batch ')]
    assert len(batches) == 3 and '30 cases, 0 crashes' in batches[-1], captured.err



def test_non_finite_radar_points_never_trigger_the_ttc_override():
    from mm_fusion_ros.safety import radar_time_to_collision

    ghost = np.array([[20.0, 0.0, 0.5, -np.inf, 5.0], [np.nan, 0.0, 0.5, -5.0, 5.0],
                      [np.inf, 0.0, 0.5, -5.0, 5.0]], np.float32)
    assert radar_time_to_collision(ghost, 1.6) == np.inf  # -inf velocity read as TTC 0 before
    real = np.vstack([ghost, [[10.0, 0.0, 0.5, -5.0, 5.0]]]).astype(np.float32)
    assert radar_time_to_collision(real, 1.6) == pytest.approx(2.0)


def test_odometry_and_preset_conversion_errors_carry_reasons():
    from types import SimpleNamespace

    from mm_fusion_ros.sensors.odometry import OdometryError, forward_speed
    from mm_fusion_ros.sensors.radar_presets import (
        MissingRadarFieldError,
        RadarConversionError,
        RadarPresetError,
        load_preset,
    )

    def odom(x):
        return SimpleNamespace(twist=SimpleNamespace(twist=SimpleNamespace(
            linear=SimpleNamespace(x=x))))

    for value, reason in ((float('nan'), 'non_finite'), (float('-inf'), 'non_finite'),
                          (1e9, 'out_of_range'), ('fast', 'bad_message'),
                          (None, 'bad_message'), (10**400, 'bad_message')):
        with pytest.raises(OdometryError) as err:
            forward_speed(odom(value))
        assert err.value.reason == reason and isinstance(err.value, SensorDecodeError)
    with pytest.raises(OdometryError):
        forward_speed(object())
    # A cloud that does not fit the preset is a decode error, and still a RadarPresetError for
    # callers that configure a converter from a declared field list.
    convert = load_preset('sim').converter()
    fields = [PointFieldSpec(n, 4 * i, 7, 2 if n == 'rcs' else 1)
              for i, n in enumerate(('x', 'y', 'z', 'radial_velocity', 'rcs'))]
    cloud = FakeCloud(Header(), 1, 2, fields, False, 24, 48, bytes(48), True)
    with pytest.raises(RadarConversionError, match='count > 1') as err:
        convert(cloud)
    assert err.value.reason == 'bad_layout' and isinstance(err.value, RadarPresetError)
    assert issubclass(MissingRadarFieldError, SensorDecodeError)
    assert issubclass(MissingRadarFieldError, RadarPresetError)
    with pytest.raises(RadarConversionError) as err:
        convert(FakeCloud(Header(), 1, 0, [1, 2], False, 4, 0, b'', True))
    assert err.value.reason == 'bad_message'
