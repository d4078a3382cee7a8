"""Training refuses data it cannot take a step or choose a checkpoint from, before it starts.

Before: a cache smaller than one batch trained 0 steps (`drop_last`), exited 0 with
`train_loss 0.0`, `val_macro_f1 1.0` and a best.pt of untrained weights; an empty validation
split crashed after the first epoch. Now both exit 2 with one line; a one-class validation
split trains, with a warning in the log and in metrics.json.
"""

import json
import logging

import pytest
import yaml

from mm_fusion_ros.actions import ACTION_LABELS
from mm_fusion_ros.cli import main as cli_main
from mm_fusion_ros.data import CacheConfig, build_cache_from_sim
from mm_fusion_ros.model import small_config
from mm_fusion_ros.sim import ScenarioConfig, ScenarioType
from mm_fusion_ros.sim.conditions import Condition
from mm_fusion_ros.train.data import (
    CacheSamples,
    TrainingDataError,
    check_trainable,
    full_batches,
)

CONFIG = small_config()


@pytest.fixture(scope='module')
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp('refusals')
    cfg = CacheConfig(image_height=CONFIG.image_height, image_width=CONFIG.image_width,
                      num_frames=CONFIG.num_frames, max_points=CONFIG.max_points,
                      frame_stride=4)
    for name, seed in (('train', 11), ('val', 500_011)):
        build_cache_from_sim([ScenarioConfig(scenario=ScenarioType.LEAD_BRAKE,
                                             condition=Condition.CLEAR, seed=seed,
                                             duration=1.0)], root / name, cfg)
    build_cache_from_sim([], root / 'empty', cfg)
    return root


def _train(caches, tmp_path, capsys, val='val', **options):
    config = tmp_path / 'train.yaml'
    config.write_text(yaml.safe_dump({
        'train_cache': str(caches / 'train'), 'val_cache': str(caches / val), 'epochs': 1,
        'num_threads': 1, 'model': CONFIG.to_dict(), **options}))
    rc = cli_main(['train', '--config', str(config), '--out-dir', str(tmp_path / 'run')])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return rc, err


def test_cache_smaller_than_a_batch_is_refused(caches, tmp_path, capsys):
    samples = len(CacheSamples(str(caches / 'train')))
    assert 0 < samples < 64
    rc, err = _train(caches, tmp_path, capsys, batch_size=64)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith('mm-fusion train: training cache ')
    assert str(caches / 'train') in err[0] and f'{samples} samples' in err[0]
    assert 'no full batch of batch_size 64' in err[0]
    assert not (tmp_path / 'run' / 'best.pt').exists()
    assert not (tmp_path / 'run' / 'metrics.json').exists()
    # max_train_samples is what the loader sees
    rc, err = _train(caches, tmp_path, capsys, batch_size=4, max_train_samples=3)
    assert rc == 2 and '3 samples' in err[0], err


def test_one_batch_per_rank_under_ddp(caches, tmp_path, capsys, monkeypatch):
    # DistributedSampler pads each rank to ceil(n / world); the last partial batch is dropped.
    assert full_batches(15, 8, world=2) == 1
    assert full_batches(14, 8, world=2) == 0
    assert full_batches(16, 8) == 2 and full_batches(0, 1) == 0
    with pytest.raises(TrainingDataError, match=r'7 per rank of 2\) make no full batch'):
        check_trainable('t', 14, 'v', 5, batch_size=8, world=2)
    samples = len(CacheSamples(str(caches / 'train')))
    batch = -(-samples // 2) + 1  # one process takes a step, each of two ranks none
    assert full_batches(samples, batch) == 1
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('RANK', '0')
    monkeypatch.delenv('MASTER_ADDR', raising=False)
    rc, err = _train(caches, tmp_path, capsys, batch_size=batch, device='cpu')
    assert rc == 2 and len(err) == 1, err  # refused before any process group is made
    assert 'per rank of 2' in err[0]


def test_empty_validation_is_refused(caches, tmp_path, capsys):
    rc, err = _train(caches, tmp_path, capsys, val='empty', batch_size=2)
    assert rc == 2 and len(err) == 1, err
    assert str(caches / 'empty') in err[0] and 'holds no samples' in err[0]
    assert not (tmp_path / 'run' / 'best.pt').exists()


def test_one_class_validation_trains_with_a_warning(caches, tmp_path, capsys, caplog):
    counts = CacheSamples(str(caches / 'val')).class_counts()
    assert (counts > 0).sum() == 1  # 1 s of one scene: one decision throughout
    only = ACTION_LABELS[int(counts.argmax())]
    with caplog.at_level(logging.WARNING):
        rc, _ = _train(caches, tmp_path, capsys, batch_size=2)
    assert rc == 0
    metrics = json.loads((tmp_path / 'run' / 'metrics.json').read_text())
    warned = [w for w in metrics['warnings'] if w.startswith('validation cache')]
    assert len(warned) == 1 and f'one class only ({only})' in warned[0], warned
    assert any('one class only' in r.getMessage() for r in caplog.records)
    loss = metrics['history'][0]['train_loss']
    assert isinstance(loss, float) and loss > 0  # a loss of steps taken, never 0.0 of none
