"""Checkpoint round trip and every way a checkpoint can be unusable."""

import argparse

import numpy as np
import pytest
import torch

from mm_fusion_ros.model import (
    CheckpointError,
    FusionModel,
    load_checkpoint,
    save_checkpoint,
    small_config,
)
from mm_fusion_ros.model.checkpoint import FORMAT_VERSION, read_checkpoint
from mm_fusion_ros.model.export import example_inputs


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = FusionModel(small_config()).eval()
    path = save_checkpoint(model, tmp_path_factory.mktemp('ckpt') / 'model.pt',
                           training_data_hash='sha256:abc', metadata={'epoch': 3})
    return model, path


def _rewrite(src, dst, change):
    payload = torch.load(src, weights_only=True)
    change(payload)
    torch.save(payload, dst)
    return dst


def test_round_trip(saved):
    model, path = saved
    loaded, info = load_checkpoint(path)
    assert not loaded.training
    assert loaded.config == model.config
    assert info['training_data_hash'] == 'sha256:abc' and info['metadata'] == {'epoch': 3}
    assert info['format_version'] == FORMAT_VERSION
    assert info['radar_features'] == list(model.config.radar_features)
    assert info['input_normalisation']['image_mean'] == list(model.config.image_mean)
    args = example_inputs(model, batch_size=2)
    with torch.no_grad():
        torch.testing.assert_close(model(*args).logits, loaded(*args).logits, rtol=0, atol=0)


def test_only_tensors_and_plain_values(saved):
    payload = torch.load(saved[1], weights_only=True)  # would raise on any pickled object

    def plain(v):
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        if isinstance(v, (list, tuple)):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, (str, int, float, bool, torch.Tensor))

    assert plain(payload)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        load_checkpoint(tmp_path / 'nope.pt')


@pytest.mark.parametrize('content', [b'', b'not a checkpoint at all', bytes(range(256)) * 8])
def test_corrupt_bytes(tmp_path, content):
    path = tmp_path / 'bad.pt'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match='cannot read'):
        load_checkpoint(path)


def test_truncated(saved, tmp_path):
    data = saved[1].read_bytes()
    path = tmp_path / 'trunc.pt'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='cannot read'):
        load_checkpoint(path)


def test_pickled_objects_refused(tmp_path):
    path = tmp_path / 'obj.pt'
    torch.save({'format': 'mm_fusion_ros.fusion_model', 'x': argparse.Namespace(a=1)}, path)
    with pytest.raises(CheckpointError, match='cannot read'):
        load_checkpoint(path)


def test_not_our_format(saved, tmp_path):
    path = tmp_path / 'plain.pt'
    torch.save(saved[0].state_dict(), path)
    with pytest.raises(CheckpointError, match='not a mm_fusion_ros.fusion_model'):
        load_checkpoint(path)


def test_wrong_version(saved, tmp_path):
    path = _rewrite(saved[1], tmp_path / 'v.pt',
                    lambda p: p.__setitem__('format_version', FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match='format_version'):
        read_checkpoint(path)


def test_wrong_class_names(saved, tmp_path):
    def change(p):
        p['class_names'] = list(reversed(p['class_names']))
    with pytest.raises(CheckpointError, match='class names'):
        load_checkpoint(_rewrite(saved[1], tmp_path / 'c.pt', change))


def test_wrong_shapes(saved, tmp_path):
    def change(p):
        p['state_dict']['logits_head.weight'] = torch.zeros(7, 3)
    with pytest.raises(CheckpointError, match='do not fit'):
        load_checkpoint(_rewrite(saved[1], tmp_path / 's.pt', change))


def test_config_disagrees_with_weights(saved, tmp_path):
    def change(p):
        p['model_config']['token_dim'] = 64
        p['model_config']['point_mlp'] = [16, 64]
    with pytest.raises(CheckpointError, match='do not fit'):
        load_checkpoint(_rewrite(saved[1], tmp_path / 'cfg.pt', change))


def test_missing_and_unexpected_keys(saved, tmp_path):
    def drop(p):
        del p['state_dict']['ttc_head.bias']
    with pytest.raises(CheckpointError, match='ttc_head.bias'):
        load_checkpoint(_rewrite(saved[1], tmp_path / 'm.pt', drop))

    def extra(p):
        p['state_dict']['extra.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match='extra.weight'):
        load_checkpoint(_rewrite(saved[1], tmp_path / 'u.pt', extra))


def test_bad_config_and_missing_fields(saved, tmp_path):
    def bad_cfg(p):
        p['model_config']['no_such_field'] = 1
    with pytest.raises(CheckpointError, match='model_config'):
        load_checkpoint(_rewrite(saved[1], tmp_path / 'b.pt', bad_cfg))

    def no_weights(p):
        del p['state_dict']
    with pytest.raises(CheckpointError, match='state_dict'):
        load_checkpoint(_rewrite(saved[1], tmp_path / 'n.pt', no_weights))

    def norm(p):
        p['input_normalisation']['image_std'] = [1.0, 1.0, 1.0]
    with pytest.raises(CheckpointError, match='input_normalisation'):
        load_checkpoint(_rewrite(saved[1], tmp_path / 'z.pt', norm))


def test_metadata_made_plain_or_refused(tmp_path):
    model = FusionModel(small_config())
    path = save_checkpoint(model, tmp_path / 'm.pt', metadata={
        'f1': np.float64(0.5), 'n': np.int64(3), 'shape': (1, 2), 'nested': {'ok': True}})
    _, info = load_checkpoint(path)
    assert info['metadata'] == {'f1': 0.5, 'n': 3, 'shape': [1, 2], 'nested': {'ok': True}}
    with pytest.raises(ValueError, match='not plain'):
        save_checkpoint(model, tmp_path / 'bad.pt', metadata={'x': object()})
    assert not (tmp_path / 'bad.pt').exists()


def test_logit_offsets_saved_defaulted_and_checked(saved, tmp_path):
    model, path = saved
    assert load_checkpoint(path)[1]['logit_offsets'] == [0.0] * model.config.num_classes
    offsets = np.linspace(-1, 1, model.config.num_classes, dtype=np.float32)
    with_offsets = save_checkpoint(model, tmp_path / 'o.pt', logit_offsets=offsets)
    np.testing.assert_allclose(load_checkpoint(with_offsets)[1]['logit_offsets'], offsets)
    # A checkpoint written before the offsets existed reads as zeros.
    older = _rewrite(with_offsets, tmp_path / 'old.pt', lambda p: p.pop('logit_offsets'))
    assert load_checkpoint(older)[1]['logit_offsets'] == [0.0] * model.config.num_classes
    short = _rewrite(with_offsets, tmp_path / 's.pt',
                     lambda p: p.__setitem__('logit_offsets', [0.0]))
    with pytest.raises(CheckpointError, match='logit_offsets'):
        load_checkpoint(short)
    with pytest.raises(ValueError, match='finite'):
        save_checkpoint(model, tmp_path / 'nan.pt',
                        logit_offsets=[float('nan')] * model.config.num_classes)
