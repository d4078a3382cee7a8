"""ONNX cache: hit, miss, damaged entries, key changes, and that cached graphs predict the same."""

import json
import logging
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch

from mm_fusion_ros.model import (
    FusionModel,
    FusionPredictor,
    onnx_cache,
    save_checkpoint,
    small_config,
)
from mm_fusion_ros.model import checkpoint as checkpoint_module
from mm_fusion_ros.model import export as export_module
from mm_fusion_ros.model.onnx_cache import OnnxCache, cache_root, settings_key
from mm_fusion_ros.model.predictor import validate_checkpoint
from mm_fusion_ros.sensors.radar_sequence import RadarSequence

pytest.importorskip('onnxruntime')
LOGGER = 'mm_fusion_ros.model.onnx_cache'


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    root = tmp_path / 'cache'
    monkeypatch.setenv(onnx_cache.ENV_VAR, str(root))
    return root


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp('ckpt') / 'small.pt'
    return save_checkpoint(FusionModel(small_config()), path, training_data_hash='h',
                           logit_offsets=[0.1, -0.2, 0.0, 0.3, 0.0, 0.05])


def _inputs(cfg, n=3):
    rng = np.random.default_rng(1)
    rgbs = [rng.integers(0, 256, (cfg.image_height, cfg.image_width, 3), np.uint8)
            for _ in range(n)]
    radars = []
    for i in range(n):
        seq = RadarSequence.empty(cfg.num_frames, cfg.max_points, cfg.num_features)
        seq.points[:] = rng.normal(size=seq.points.shape)
        seq.point_mask[:, :5 + i] = True
        seq.frame_mask[:] = True
        radars.append(seq)
    return rgbs, radars


def _predict(predictor, modality='fused'):
    rgbs, radars = _inputs(predictor.config)
    return predictor.predict_batch(rgbs, radars, modality, ego_speeds=[5.0, None, 12.0],
                                   previous_rgbs=[None, rgbs[0], rgbs[1]])


def _graphs(root):
    return sorted((root / 'onnx').glob('*/*.onnx'))


def _forbid(monkeypatch, what):
    def fail(*args, **kwargs):
        raise AssertionError(f'{what} called on a warm cache')
    return fail


def test_root_follows_env_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv(onnx_cache.ENV_VAR, str(tmp_path / 'x'))
    assert cache_root() == tmp_path / 'x'
    monkeypatch.delenv(onnx_cache.ENV_VAR)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert cache_root() == tmp_path / 'xdg' / 'mm_fusion_ros'
    monkeypatch.delenv('XDG_CACHE_HOME')
    assert cache_root() == Path.home() / '.cache' / 'mm_fusion_ros'


def test_miss_then_hit_without_checkpoint_load_or_export(cache_dir, checkpoint, monkeypatch):
    cold = FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime')
    want = _predict(cold)
    assert len(_graphs(cache_dir)) == 1  # the fused graph, exported on first use
    monkeypatch.setattr(checkpoint_module, 'load_checkpoint', _forbid(monkeypatch, 'load'))
    monkeypatch.setattr(export_module, 'export_onnx', _forbid(monkeypatch, 'export'))
    warm = FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime')
    got = _predict(warm)
    np.testing.assert_array_equal(got.probabilities, want.probabilities)  # the same graph
    np.testing.assert_array_equal(got.target_acceleration, want.target_acceleration)
    np.testing.assert_array_equal(got.ttc, want.ttc)
    assert warm.info == cold.info and warm.config == cold.config
    np.testing.assert_array_equal(warm.logit_offsets, cold.logit_offsets)


def test_cached_graph_matches_eager_torch(cache_dir, checkpoint):
    FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime').warmup()
    warm = FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime')
    eager = FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='torch')
    got, want = _predict(warm), _predict(eager)
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
    np.testing.assert_allclose(got.target_acceleration, want.target_acceleration, atol=1e-4)
    assert (got.actions == want.actions).all()


def test_warm_predictor_loads_weights_only_for_a_new_modality(cache_dir, checkpoint):
    FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime').warmup()
    warm = FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime')
    assert warm._model is None
    want = _predict(FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='torch'),
                    'radar')
    got = _predict(warm, 'radar')  # not cached: loads the checkpoint, exports, stores
    assert warm._model is not None and not warm.model.training
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
    assert len(_graphs(cache_dir)) == 2


def test_warm_start_does_not_import_torch(cache_dir, checkpoint):
    FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime').warmup()
    code = ('import sys\n'
            'from mm_fusion_ros.model.predictor import FusionPredictor\n'
            f'p = FusionPredictor.from_checkpoint({str(checkpoint)!r}, device="cpu")\n'
            'p.warmup()\n'
            'print(p.backend, p.device, "torch" in sys.modules)\n')
    env = dict(os.environ, **{onnx_cache.ENV_VAR: str(cache_dir)})
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ['onnxruntime', 'cpu', 'False'], out.stderr


def test_damaged_graph_is_exported_again_with_one_warning(cache_dir, checkpoint, caplog):
    want = _predict(FusionPredictor.from_checkpoint(checkpoint, device='cpu',
                                                    backend='onnxruntime'))
    (graph,) = _graphs(cache_dir)
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the weights: still parses
    graph.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        again = FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime')
        got = _predict(again)
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and 'damaged' in warnings[0].getMessage()
    np.testing.assert_array_equal(got.probabilities, want.probabilities)
    (fresh,) = _graphs(cache_dir)
    assert fresh.read_bytes() != bytes(data)


def test_graph_onnxruntime_refuses_is_exported_again(cache_dir, checkpoint, caplog):
    FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime').warmup()
    (graph,) = _graphs(cache_dir)
    cache = OnnxCache.for_checkpoint(checkpoint)
    graph.unlink()
    cache.store_graph('fused', b'not an onnx graph')  # named by its own hash: passes the check
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        predictor = FusionPredictor.from_checkpoint(checkpoint, device='cpu',
                                                    backend='onnxruntime')
        assert np.isfinite(_predict(predictor).probabilities).all()
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and 'onnxruntime cannot load it' in warnings[0].getMessage()
    assert len(_graphs(cache_dir)) == 1 and cache.load_graph('fused') != b'not an onnx graph'


@pytest.mark.parametrize('damage', ['garbage', 'checksum', 'config'])
def test_damaged_info_reloads_the_checkpoint(cache_dir, checkpoint, caplog, damage):
    cold = FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime')
    cache = OnnxCache.for_checkpoint(checkpoint)
    if damage == 'garbage':
        cache.info_path.write_text('{"checksum": ')
    else:
        data = json.loads(cache.info_path.read_text())
        data['info']['model_config']['no_such_field'] = 1
        if damage == 'config':  # consistent checksum, config the code refuses
            data['checksum'] = onnx_cache.hashlib.sha256(
                onnx_cache._canonical(data['info']).encode()).hexdigest()
        cache.info_path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        again = FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime')
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1
    assert again._model is not None and again.info == cold.info  # read from the checkpoint
    assert cache.load_info() == cold.info  # and stored again


def test_key_changes_with_content_versions_and_settings(cache_dir, checkpoint, tmp_path,
                                                        monkeypatch):
    FusionPredictor.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime').warmup()
    assert OnnxCache.for_checkpoint(checkpoint).load_graph('fused') is not None
    assert settings_key('fused') != settings_key('camera')
    assert settings_key('fused') != settings_key('fused', opset=18)
    torch.manual_seed(4)
    other = save_checkpoint(FusionModel(small_config()), tmp_path / 'other.pt')
    assert OnnxCache.for_checkpoint(other).load_info() is None  # other weights: other entry
    real = onnx_cache._package_version
    monkeypatch.setattr(onnx_cache, '_package_version',
                        lambda name: '0.0-other' if name == 'torch' else real(name))
    assert OnnxCache.for_checkpoint(checkpoint).load_graph('fused') is None


def test_unwritable_cache_warns_and_still_predicts(tmp_path, checkpoint, monkeypatch, caplog):
    blocker = tmp_path / 'file'
    blocker.write_text('a file where the cache directory should be')
    monkeypatch.setenv(onnx_cache.ENV_VAR, str(blocker / 'cache'))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        predictor = FusionPredictor.from_checkpoint(checkpoint, device='cpu',
                                                    backend='onnxruntime')
        assert np.isfinite(_predict(predictor).probabilities).all()
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and 'cannot write' in warnings[0].getMessage()


def test_old_checkpoints_are_pruned(cache_dir, monkeypatch):
    monkeypatch.setattr(onnx_cache, 'MAX_CHECKPOINTS', 2)
    for i in range(4):
        cache = OnnxCache(f'{i:064x}')
        cache.store_info({'n': i})
        os.utime(cache.info_path, (1000 + i, 1000 + i))
    kept = sorted(p.name for p in (cache_dir / 'onnx').iterdir())
    assert kept == [f'{2:064x}', f'{3:064x}']


def test_changed_checkpoint_file_is_not_mixed_with_its_cache(cache_dir, checkpoint, tmp_path):
    path = tmp_path / 'm.pt'
    path.write_bytes(checkpoint.read_bytes())
    FusionPredictor.from_checkpoint(path, device='cpu', backend='onnxruntime').warmup()
    warm = FusionPredictor.from_checkpoint(path, device='cpu', backend='onnxruntime')
    torch.manual_seed(5)
    save_checkpoint(FusionModel(small_config()), path)  # replaced while the node runs
    with pytest.raises(checkpoint_module.CheckpointError, match='changed on disk'):
        _predict(warm, 'camera')  # needs the weights for a new export


def test_validate_checkpoint_reads_known_content_once(cache_dir, checkpoint, tmp_path,
                                                      monkeypatch):
    info = validate_checkpoint(checkpoint)  # cold: loaded and validated, then stored
    assert info['training_data_hash'] == 'h'
    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_module, 'load_checkpoint', _forbid(patch, 'load'))
        assert validate_checkpoint(checkpoint) == info
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(checkpoint_module.CheckpointError):
        validate_checkpoint(bad)
    with pytest.raises(checkpoint_module.CheckpointError):
        validate_checkpoint(tmp_path / 'missing.pt')
