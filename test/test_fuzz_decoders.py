"""Fuzzed Image / CompressedImage / PointCloud2 through the decoders and the FusionPipeline.

Every input decodes or raises its module's ValueError subclass (ImageDecodeError,
PointCloudDecodeError, RadarPresetError), never anything else. The suite runs the
derandomised `fuzz-ci` profile (MM_FUZZ_EXAMPLES cases, default 300); `python -m
test.fuzz_run --cases 10000` is the long run.
"""

import os

from hypothesis import given
import numpy as np
import pytest

torch = pytest.importorskip('torch')

from mm_fusion_ros.model.fusion import FusionModel  # noqa: E402
from mm_fusion_ros.model.predictor import FusionPredictor  # noqa: E402
from mm_fusion_ros.pipeline import FusionPipeline  # noqa: E402
from mm_fusion_ros.sensors.image import ImageDecodeError, image_to_rgb  # noqa: E402
from mm_fusion_ros.sensors.pointcloud import (  # noqa: E402
    PointCloudDecodeError,
    PointFieldSpec,
    dtype_from_fields,
    read_points_numpy,
)
from test.fuzz_cases import (  # noqa: E402
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
    assert check_decode(case, pipeline) in (
        'ok', 'reject:ImageDecodeError', 'reject:PointCloudDecodeError',
        'reject:RadarPresetError', 'reject:MissingRadarFieldError')


@fuzz_settings(EXAMPLES // 3)
@given(images())
def test_raw_images(pipeline, case):
    check_decode(case, pipeline)


@fuzz_settings(EXAMPLES // 3)
@given(compressed_images())
def test_compressed_images(pipeline, case):
    check_decode(case, pipeline)


@fuzz_settings(EXAMPLES // 3)
@given(clouds())
def test_point_clouds(pipeline, case):
    check_decode(case, pipeline)


# -- regressions the fuzzer found ----------------------------------------------------------
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
    assert 'fuzz: 40 cases' in out and 'crashes: 0' in out


def test_non_finite_radar_points_never_trigger_the_ttc_override():
    from mm_fusion_ros.safety import radar_time_to_collision

    ghost = np.array([[20.0, 0.0, 0.5, -np.inf, 5.0], [np.nan, 0.0, 0.5, -5.0, 5.0],
                      [np.inf, 0.0, 0.5, -5.0, 5.0]], np.float32)
    assert radar_time_to_collision(ghost, 1.6) == np.inf  # -inf velocity read as TTC 0 before
    real = np.vstack([ghost, [[10.0, 0.0, 0.5, -5.0, 5.0]]]).astype(np.float32)
    assert radar_time_to_collision(real, 1.6) == pytest.approx(2.0)
