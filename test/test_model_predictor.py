"""Preprocessing and FusionPredictor on CPU (torch and onnxruntime), device fallback, CUDA."""

import gc
import logging

import numpy as np
import pytest
import torch

from mm_fusion_ros.actions import Action
from mm_fusion_ros.model import (
    FusionModel,
    FusionPredictor,
    Prediction,
    backend_table,
    prepare_batch,
    preprocess_image,
    resolve_device,
    save_checkpoint,
    small_config,
)
from mm_fusion_ros.model import preprocess as preprocess_module
from mm_fusion_ros.model.predictor import Device, choose_backend
from mm_fusion_ros.model.preprocess import (
    FrameInputCache,
    fit_radar,
    model_frame,
    normalise_frame,
    normalise_radar,
    resize_rgb,
)
from mm_fusion_ros.sensors.camera_history import CameraHistory
from mm_fusion_ros.sensors.radar_sequence import RadarSequence

NS = 1_000_000_000

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason='no CUDA device on this machine')
needs_no_cuda = pytest.mark.skipif(CUDA, reason='CUDA present: the fallback path cannot run')


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return FusionModel(small_config())


def _radar(cfg, seed=0, frames=None):
    rng = np.random.default_rng(seed)
    t, n, f = cfg.num_frames, cfg.max_points, cfg.num_features
    seq = RadarSequence.empty(t, n, f)
    for slot in range(t if frames is None else frames):
        k = int(rng.integers(1, n))
        seq.points[t - 1 - slot, :k] = rng.normal(size=(k, f)) * [10, 3, 0.5, 5, 5]
        seq.point_mask[t - 1 - slot, :k] = True
        seq.frame_mask[t - 1 - slot] = True
        seq.time_offsets[t - 1 - slot] = -0.05 * slot
    return seq


def _rgb(cfg, seed=0, scale=1):
    rng = np.random.default_rng(seed)
    shape = (cfg.image_height * scale, cfg.image_width * scale, 3)
    return rng.integers(0, 256, shape, dtype=np.uint8)


# -- preprocessing ----------------------------------------------------------------------------
def test_image_normalisation(model):
    cfg = model.config
    rgb = _rgb(cfg)
    out = preprocess_image(rgb, cfg)
    assert out.shape == (3, cfg.image_height, cfg.image_width) and out.dtype == np.float32
    want = (rgb[..., 1] / 255.0 - cfg.image_mean[1]) / cfg.image_std[1]
    np.testing.assert_allclose(out[1], want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        preprocess_image(rgb[..., 0], cfg)
    with pytest.raises(ValueError):
        preprocess_image(rgb.astype(np.float32), cfg)


def test_resize():
    flat = np.full((100, 300, 3), 77, np.uint8)
    out = resize_rgb(flat, 64, 128)
    assert out.shape == (64, 128, 3) and out.dtype == np.uint8
    assert np.all(out == 77)
    ramp = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :, None], (8, 256, 3))
    half = resize_rgb(ramp, 4, 128).astype(int)
    assert np.all(np.diff(half[0, :, 0]) >= 0)
    assert abs(half.mean() - ramp.mean()) < 1.0
    assert resize_rgb(flat[:10, :10], 20, 30).shape == (20, 30, 3)


def test_fovea_frame():
    cfg = small_config(fovea_height=32)   # view 64x128, fovea box of a 2x camera: 128x32 px
    rgb = _rgb(cfg, scale=2)               # 128x256 camera
    frame = model_frame(rgb, cfg)
    assert frame.shape == (64 + 32, 128, 3)
    np.testing.assert_array_equal(frame[:64], resize_rgb(rgb, 64, 128))
    np.testing.assert_array_equal(frame[64:], rgb[56:88, 64:192])  # pixel for pixel
    assert model_frame(_rgb(cfg, scale=5), cfg).shape == frame.shape  # any camera size
    # A composed frame passes through; a model without a fovea reads the view rows.
    np.testing.assert_array_equal(model_frame(frame, cfg, composed=True), frame)
    np.testing.assert_array_equal(model_frame(frame, small_config(), composed=True), frame[:64])
    with pytest.raises(ValueError, match='composed'):
        model_frame(frame[:80], cfg, composed=True)
    with pytest.raises(ValueError, match='fovea'):
        small_config(fovea_box=(0.5, 0.2, 0.4, 0.8))


def test_fovea_model_predicts_camera_and_cached_frames_alike():
    torch.manual_seed(0)
    cfg = small_config(fovea_height=32)
    predictor = FusionPredictor(FusionModel(cfg).eval(), device='cpu', backend='torch')
    rgbs, radars = [_rgb(cfg, s, scale=2) for s in range(3)], [_radar(cfg, s) for s in range(3)]
    live = [predictor.predict(r, q).probabilities for r, q in zip(rgbs, radars, strict=True)]
    cached = predictor.predict_batch([model_frame(r, cfg) for r in rgbs], radars,
                                     composed=True)
    np.testing.assert_allclose(cached.probabilities, np.stack(live), rtol=1e-5, atol=1e-6)


def test_fit_radar_crops_pads_and_keeps_strongest(model):
    cfg = model.config
    t, n, f = cfg.num_frames + 2, cfg.max_points * 2, cfg.num_features
    seq = RadarSequence.empty(t, n, f)
    seq.points[-1, :, 4] = np.arange(n)  # rcs
    seq.point_mask[-1] = True
    seq.frame_mask[-1] = True
    seq.frame_mask[0] = True  # oldest frame falls out of the window
    out = fit_radar(seq, cfg)
    assert out.points.shape == (cfg.num_frames, cfg.max_points, f)
    assert set(out.points[-1, :, 4]) == set(range(n - cfg.max_points, n))
    assert out.frame_mask.sum() == 1
    short = fit_radar(RadarSequence.empty(2, 3, f), cfg)
    assert short.points.shape == (cfg.num_frames, cfg.max_points, f)
    with pytest.raises(ValueError, match='features'):
        fit_radar(RadarSequence.empty(2, 3, f + 1), cfg)


def test_radar_normalisation_zero_where_padded(model):
    cfg = model.config
    points = np.full((2, 3, cfg.num_features), np.nan, np.float32)
    points[0, 0] = [40, 0, 0.5, 0, 5]
    mask = np.zeros((2, 3), bool)
    mask[0, 0] = True
    out = normalise_radar(points, mask, cfg)
    assert np.all(out == 0)


def test_prepare_batch(model):
    cfg = model.config
    batch = prepare_batch([_rgb(cfg), _rgb(cfg, 1)], [_radar(cfg), _radar(cfg, 1, 0)], cfg)
    assert batch.image.shape == (2, 3, cfg.image_height, cfg.image_width)
    assert batch.radar_points.shape == (2, cfg.num_frames, cfg.max_points, cfg.num_features)
    assert batch.point_mask.dtype == bool and not batch.frame_mask[1].any()
    assert not batch.ego_speed_valid.any() and not batch.ego_speed.any()
    with pytest.raises(ValueError):
        prepare_batch([_rgb(cfg)], [], cfg)
    speeds = prepare_batch([_rgb(cfg)] * 3, [_radar(cfg)] * 3, cfg, [12.5, None, np.nan])
    np.testing.assert_array_equal(speeds.ego_speed, [12.5, 0.0, 0.0])
    np.testing.assert_array_equal(speeds.ego_speed_valid, [True, False, False])
    with pytest.raises(ValueError, match='ego speeds'):
        prepare_batch([_rgb(cfg)], [_radar(cfg)], cfg, [1.0, 2.0])


# -- predictor ----------------------------------------------------------------------------------
@pytest.mark.parametrize('backend', ['torch', 'onnxruntime'])
def test_predict_cpu(model, backend):
    pytest.importorskip('onnxruntime')
    predictor = FusionPredictor(model, device='cpu', backend=backend)
    assert predictor.backend == backend and predictor.device.type == 'cpu'
    cfg = predictor.config
    p = predictor.predict(_rgb(cfg), _radar(cfg))
    assert isinstance(p, Prediction) and isinstance(p.action, Action)
    assert p.probabilities.shape == (cfg.num_classes,) and p.probabilities.dtype == np.float32
    assert abs(p.probabilities.sum() - 1) < 1e-5
    assert p.confidence == pytest.approx(p.probabilities.max())
    assert p.action == int(np.argmax(p.probabilities))
    assert cfg.ttc_min <= p.ttc <= cfg.ttc_max and np.isfinite(p.target_acceleration)
    assert p.latency_s > 0
    predictor.warmup(('fused', 'camera'))
    for modality in ('camera', 'radar'):
        assert predictor.predict(_rgb(cfg), _radar(cfg), modality).modality == modality
    empty = predictor.predict(_rgb(cfg, scale=2), RadarSequence.empty(3, 5, cfg.num_features))
    assert np.isfinite(empty.probabilities).all()


def test_backends_agree_and_batch_matches_single(model):
    pytest.importorskip('onnxruntime')
    cfg = model.config
    eager = FusionPredictor(model, device='cpu', backend='torch')
    ort = FusionPredictor(model, device='cpu', backend='onnxruntime')
    rgbs = [_rgb(cfg, i) for i in range(3)]
    radars = [_radar(cfg, i, frames=i * 2) for i in range(3)]
    speeds = [3.0, None, 20.0]
    batch = eager.predict_batch(rgbs, radars, batch_size=2, ego_speeds=speeds)
    batch_ort = ort.predict_batch(rgbs, radars, ego_speeds=speeds)
    np.testing.assert_allclose(batch.probabilities, batch_ort.probabilities, atol=1e-5)
    np.testing.assert_allclose(batch.ttc, batch_ort.ttc, rtol=1e-4)
    np.testing.assert_allclose(batch.target_acceleration, batch_ort.target_acceleration,
                               atol=1e-4)
    for i in range(3):
        single = eager.predict(rgbs[i], radars[i], ego_speed=speeds[i])
        np.testing.assert_allclose(single.probabilities, batch.probabilities[i], atol=1e-5)
        assert single.action == batch.actions[i]
        assert single.target_acceleration == pytest.approx(
            batch.target_acceleration[i], abs=1e-5)


def test_from_checkpoint(model, tmp_path):
    path = save_checkpoint(model, tmp_path / 'm.pt', training_data_hash='h')
    predictor = FusionPredictor.from_checkpoint(path, device='cpu', backend='torch')
    assert predictor.info['training_data_hash'] == 'h'
    assert not predictor.device_fallback and not predictor.model.training
    cfg = predictor.config
    assert (cfg.num_frames, cfg.max_points) == (model.config.num_frames, model.config.max_points)


def test_bad_arguments(model):
    with pytest.raises(ValueError, match='device'):
        resolve_device('gpu')
    with pytest.raises(ValueError, match='backend'):
        FusionPredictor(model, device='cpu', backend='tensorrt')
    predictor = FusionPredictor(model, device='cpu', backend='torch')
    cfg = model.config
    with pytest.raises(ValueError, match='modality'):
        predictor.predict(_rgb(cfg), _radar(cfg), modality='lidar')


@needs_no_cuda
@pytest.mark.parametrize('spec', ['cuda', 'cuda:1'])
def test_cuda_requested_but_absent_falls_back(model, spec, caplog):
    with caplog.at_level(logging.WARNING, logger='mm_fusion_ros.model.predictor'):
        predictor = FusionPredictor(model, device=spec, backend='torch')
    assert predictor.device.type == 'cpu' and predictor.device_fallback
    assert any('CUDA is not available' in r.getMessage() for r in caplog.records)
    cfg = model.config
    assert np.isfinite(predictor.predict(_rgb(cfg), _radar(cfg)).probabilities).all()
    assert resolve_device('auto') == (torch.device('cpu'), False)


@needs_cuda
def test_cuda_predict_matches_cpu(model):
    cfg = model.config
    cpu = FusionPredictor(model, device='cpu', backend='torch')
    want = cpu.predict(_rgb(cfg), _radar(cfg))
    gpu = FusionPredictor(model, device='cuda', backend='torch')
    assert gpu.device.type == 'cuda' and gpu.amp_dtype is not None
    for _ in range(2):  # second call reuses the preallocated buffers
        got = gpu.predict(_rgb(cfg), _radar(cfg))
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=3e-2)
    fp32 = FusionPredictor(model, device='cuda', amp='fp32').predict(_rgb(cfg), _radar(cfg))
    np.testing.assert_allclose(fp32.probabilities, want.probabilities, atol=1e-3)
    batch = gpu.predict_batch([_rgb(cfg)] * 3, [_radar(cfg)] * 3)
    assert batch.probabilities.shape == (3, cfg.num_classes)


@needs_cuda
def test_cuda_out_of_range_index_falls_back(model):
    spec = f'cuda:{torch.cuda.device_count()}'
    predictor = FusionPredictor(model, device=spec, backend='torch')
    assert predictor.device.type == 'cpu' and predictor.device_fallback


@pytest.mark.parametrize('backend', ['torch', 'onnxruntime'])
def test_checkpoint_logit_offsets_move_the_decision(model, tmp_path, backend):
    if backend == 'onnxruntime':
        pytest.importorskip('onnxruntime')
    cfg = model.config
    rgbs, radars = [_rgb(cfg, i) for i in range(4)], [_radar(cfg, i) for i in range(4)]
    plain = FusionPredictor(model, device='cpu', backend=backend).predict_batch(rgbs, radars)
    offsets = np.zeros(cfg.num_classes, np.float32)
    offsets[Action.STOP] = 50.0
    path = save_checkpoint(model, tmp_path / 'm.pt', logit_offsets=offsets)
    shifted = FusionPredictor.from_checkpoint(path, device='cpu', backend=backend)
    for modality in ('fused', 'camera', 'radar'):
        batch = shifted.predict_batch(rgbs, radars, modality)
        assert (batch.actions == Action.STOP).all()
        assert shifted.predict(rgbs[0], radars[0], modality).action == Action.STOP
    # The probabilities are the softmax of the shifted logits, so ratios between the
    # other classes stay as they were.
    small = offsets / 25.0
    path = save_checkpoint(model, tmp_path / 'small.pt', logit_offsets=small)
    batch = FusionPredictor.from_checkpoint(path, device='cpu', backend=backend).predict_batch(
        rgbs, radars)
    want = plain.probabilities * np.exp(small)
    np.testing.assert_allclose(batch.probabilities, want / want.sum(1, keepdims=True),
                               atol=1e-5)


# -- per-frame work done once -------------------------------------------------------------------
def test_normalise_frame_is_bit_identical_to_normalising_before_the_transpose(model):
    cfg = model.config
    rgb = _rgb(cfg, 3)
    mean = np.asarray(cfg.image_mean, np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(cfg.image_std, np.float32) * 255.0)
    want = np.ascontiguousarray(((rgb.astype(np.float32) - mean) * inv_std).transpose(2, 0, 1))
    np.testing.assert_array_equal(preprocess_image(rgb, cfg), want)
    out = np.full_like(want, np.nan)
    assert normalise_frame(rgb, cfg, out=out) is out
    np.testing.assert_array_equal(out, want)
    wide = np.zeros((cfg.image_height, cfg.image_width + 7, 3), np.uint8)
    wide[:, 3:3 + cfg.image_width] = rgb
    np.testing.assert_array_equal(  # a strided view (a message's padded rows)
        preprocess_image(wide[:, 3:3 + cfg.image_width], cfg), want)


@pytest.mark.parametrize('backend', ['torch', 'onnxruntime'])
def test_each_frame_is_normalised_once_with_unchanged_results(model, monkeypatch, backend):
    if backend == 'onnxruntime':
        pytest.importorskip('onnxruntime')
    cfg = model.config
    cached = FusionPredictor(model, device='cpu', backend=backend)
    plain = FusionPredictor(model, device='cpu', backend=backend)
    calls = []
    real = preprocess_module.normalise_frame
    monkeypatch.setattr(preprocess_module, 'normalise_frame',
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    history = CameraHistory(cfg.camera_history)
    with_earlier = 0
    for i in range(16):  # 20 Hz: from frame 3 on, a frame within 0.125 s of 0.25 s back
        rgb, radar = _rgb(cfg, i), _radar(cfg, i)
        previous = history.push(i * NS // 20, rgb)
        with_earlier += previous is not None
        before = len(calls)
        got = cached.predict(rgb, radar, ego_speed=3.0, previous_rgb=previous)
        assert len(calls) - before == 1  # the current frame only
        inputs = prepare_batch([rgb], [radar], cfg, [3.0], [previous])  # no cache
        want = plain.forward_arrays(inputs)
        np.testing.assert_array_equal(got.probabilities, want[0][0])
        assert got.target_acceleration == want[1][0] and got.ttc == want[2][0]
    assert with_earlier == 13 and cached.frame_cache.hits == with_earlier
    assert len(cached.frame_cache) <= 8  # entries leave with the history's frames


def test_predict_batch_reuses_earlier_frames_across_chunks(model, monkeypatch):
    cfg = model.config
    predictor = FusionPredictor(model, device='cpu', backend='torch')
    rgbs = [_rgb(cfg, i) for i in range(7)]
    radars = [_radar(cfg, i) for i in range(7)]
    previous = [None, None, rgbs[0], rgbs[1], rgbs[2], rgbs[3], rgbs[4]]
    want = FusionPredictor(model, device='cpu', backend='torch').forward_arrays(
        prepare_batch(rgbs, radars, cfg, previous_rgbs=previous))
    calls = []
    real = preprocess_module.normalise_frame
    monkeypatch.setattr(preprocess_module, 'normalise_frame',
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    got = predictor.predict_batch(rgbs, radars, batch_size=3, previous_rgbs=previous)
    assert len(calls) == 7
    np.testing.assert_allclose(got.probabilities, want[0], atol=1e-6)


def test_frame_cache_is_keyed_by_the_array_and_lets_frames_go():
    cache = FrameInputCache(capacity=2)
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(3)]
    for i, frame in enumerate(frames):
        cache.put(frame, False, np.full((3, 2, 2), i, np.float32))
    assert len(cache) == 2 and cache.get(frames[0]) is None  # capacity: oldest out
    assert cache.get(frames[2])[0, 0, 0] == 2 and cache.get(frames[2], composed=True) is None
    assert cache.get(frames[2].copy()) is None  # equal pixels, another frame: not trusted
    del frames[2], frame
    gc.collect()
    assert len(cache) == 1  # freed frame, entry gone
    with pytest.raises(ValueError, match='capacity'):
        FrameInputCache(0)


def test_device_names_need_no_torch_but_compare_with_it():
    device = Device('cuda:1')
    assert (device.type, device.index) == ('cuda', 1) and Device('cpu').index is None
    assert Device('cpu') == torch.device('cpu') and Device('cpu') == 'cpu'
    assert torch.zeros(1).to(Device('cpu')).device.type == 'cpu'


def test_auto_backend_follows_the_measured_table():
    rows = [
        {'device_type': 'cuda', 'device_name': 'GPU A', 'batch': 1, 'backend': 'torch',
         'amp': 'bf16', 'p50_ms': 2.0},
        {'device_type': 'cuda', 'device_name': 'GPU A', 'batch': 64, 'backend': 'torchscript',
         'amp': 'fp32', 'p50_ms': 0.5},
        {'device_type': 'cuda', 'device_name': 'GPU B', 'batch': 1, 'backend': 'torchscript',
         'amp': 'fp32', 'p50_ms': 1.0},
        {'device_type': 'cuda', 'device_name': 'GPU A', 'batch': 1, 'backend': 'onnxruntime',
         'provider': 'TensorrtExecutionProvider', 'amp': 'fp32', 'p50_ms': 0.3},
    ]
    no_trt = lambda r: r.get('provider') != 'TensorrtExecutionProvider'  # noqa: E731
    assert backend_table.choose('cuda', 'GPU A', no_trt, rows=rows)['backend'] == 'torch'
    assert backend_table.choose('cuda', 'GPU A', lambda r: True, rows=rows)['p50_ms'] == 0.3
    assert backend_table.choose('cuda', 'GPU C', no_trt, rows=rows)['device_name'] == 'GPU B'
    assert backend_table.choose('cpu', None, no_trt, rows=rows) is None


@needs_cuda
def test_cuda_auto_backend_is_the_measured_choice_and_agrees(model):
    cfg = model.config
    want = FusionPredictor(model, device='cpu', backend='torch').predict(_rgb(cfg), _radar(cfg))
    choice = choose_backend(Device('cuda'))
    auto = FusionPredictor(model, device='cuda')
    assert (auto.backend, auto.ort_provider) == (choice.backend, choice.provider)
    got = auto.predict(_rgb(cfg), _radar(cfg))
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=3e-2)


@needs_cuda
@pytest.mark.parametrize('amp', ['fp32', 'bf16'])
def test_cuda_torchscript_matches_cpu(model, amp):
    cfg = model.config
    want = FusionPredictor(model, device='cpu', backend='torch').predict(_rgb(cfg), _radar(cfg))
    scripted = FusionPredictor(model, device='cuda', backend='torchscript', amp=amp)
    got = scripted.predict(_rgb(cfg), _radar(cfg))
    np.testing.assert_allclose(got.probabilities, want.probabilities,
                               atol=1e-3 if amp == 'fp32' else 3e-2)


@needs_cuda
def test_cuda_onnxruntime_provider_matches_cpu(model):
    ort = pytest.importorskip('onnxruntime')
    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        pytest.skip('this onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu has it)')
    cfg = model.config
    want = FusionPredictor(model, device='cpu', backend='torch').predict(_rgb(cfg), _radar(cfg))
    gpu = FusionPredictor(model, device='cuda', backend='onnxruntime')
    assert gpu.ort_provider == 'CUDAExecutionProvider'
    got = gpu.predict(_rgb(cfg), _radar(cfg))
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-3)


def test_torchscript_backend_on_cpu_matches_eager(model):
    cfg = model.config
    rgbs, radars = [_rgb(cfg, i) for i in range(3)], [_radar(cfg, i) for i in range(3)]
    eager = FusionPredictor(model, device='cpu', backend='torch').predict_batch(rgbs, radars)
    for modality in ('fused', 'radar'):
        scripted = FusionPredictor(model, device='cpu', backend='torchscript')
        got = scripted.predict_batch(rgbs, radars, modality)
        want = eager if modality == 'fused' else FusionPredictor(
            model, device='cpu', backend='torch').predict_batch(rgbs, radars, modality)
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)


def test_cpu_auto_without_a_measured_row_keeps_the_built_in_rule(model, monkeypatch):
    pytest.importorskip('onnxruntime')
    monkeypatch.setattr(backend_table, 'MEASUREMENTS', [])
    predictor = FusionPredictor(model, device='cpu')
    assert predictor.backend == 'onnxruntime' and predictor.backend_reason == 'built-in rule'
    monkeypatch.setattr(backend_table, 'MEASUREMENTS', [
        {'device_type': 'cpu', 'device_name': 'any', 'batch': 1, 'backend': 'torchscript',
         'amp': 'fp32', 'p50_ms': 0.1}])
    assert FusionPredictor(model, device='cpu').backend == 'torchscript'
