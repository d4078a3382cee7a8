"""`mm-fusion train` and `mm-fusion dagger` end to end on tiny caches and a tiny model.

Stage 1 trains on an expert-driven cache; its checkpoint then drives the same scenario
(`dagger`), and stage 2 starts from stage 1's weights on the union of both caches.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mm_fusion_ros.cli import main as cli_main
from mm_fusion_ros.data import CacheConfig, build_cache_from_sim
from mm_fusion_ros.data.cache import file_sha256
from mm_fusion_ros.data.dataset import FusionCacheDataset
from mm_fusion_ros.model import small_config
from mm_fusion_ros.model.checkpoint import load_checkpoint
from mm_fusion_ros.sim import ScenarioConfig, ScenarioType
from mm_fusion_ros.sim.conditions import Condition
from mm_fusion_ros.sim.scenarios import scenario_mix
from mm_fusion_ros.train.data import CacheSamples

SEED = 200_000  # the dagger command's training-side seeds
REPO_CONFIG = Path(__file__).resolve().parents[1] / 'config'  # training recipes: source tree
CONFIG = small_config()


@pytest.fixture(scope='module')
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp('train')
    cfg = CacheConfig(image_height=CONFIG.image_height, image_width=CONFIG.image_width,
                      num_frames=CONFIG.num_frames, max_points=CONFIG.max_points,
                      frame_stride=4)
    train = build_cache_from_sim(scenario_mix(1, seed=SEED, duration=2.0), root / 'train', cfg)
    val = build_cache_from_sim(
        [ScenarioConfig(scenario=ScenarioType.PEDESTRIAN_CROSSING, condition=Condition.NIGHT,
                        seed=500_000, duration=1.5)], root / 'val', cfg)
    return root, train, val


def _train(root, out, *extra, **options):
    config = out.parent / f'{out.name}.yaml'
    config.write_text(yaml.safe_dump({
        'train_cache': str(root / 'train'), 'val_cache': str(root / 'val'),
        'epochs': 1, 'batch_size': 8, 'num_threads': 1, 'model': CONFIG.to_dict(), **options,
    }))
    assert cli_main(['train', '--config', str(config), '--out-dir', str(out), *extra]) == 0
    return json.loads((out / 'metrics.json').read_text())


def test_dagger_round(caches, tmp_path, capsys):
    root, train, val = caches
    stage1 = _train(root, tmp_path / 'stage1')
    assert stage1['training_data_hash'] == train.data_hash
    best = tmp_path / 'stage1' / 'best.pt'

    dagger = tmp_path / 'dagger'
    assert cli_main(['dagger', '--checkpoint', str(best), '--out', str(dagger),
                     '--episodes', '1', '--seed', str(SEED), '--duration', '2.0',
                     '--num-threads', '1']) == 0
    assert 'dagger: ' in capsys.readouterr().out
    driven = FusionCacheDataset(dagger)
    expert = FusionCacheDataset(root / 'train')
    assert driven.manifest['driver'] == {'checkpoint': str(best), 'sha256': file_sha256(best)}
    assert driven.manifest['config'] == expert.manifest['config']
    assert len(driven) == len(expert) > 0
    # Same scenario, same sensors at t=0, but the untrained model drives it elsewhere.
    speeds = [np.array([c.arrays(i)['ego_speed'] for i in range(len(c))])
              for c in (driven, expert)]
    assert speeds[0][0] == speeds[1][0]
    assert not np.array_equal(*speeds)

    stage2 = _train(root, tmp_path / 'stage2', '--train-cache', str(root / 'train'),
                    str(dagger), '--init-checkpoint', str(best))
    union = CacheSamples([str(root / 'train'), str(dagger)])
    assert len(union) == 2 * len(expert)
    assert union[len(expert)]['stamp_ns'] == driven.arrays(0)['stamp_ns']
    assert stage2['training_data_hash'] == union.data_hash not in (train.data_hash,
                                                                     driven.data_hash)
    assert stage2['config']['init_checkpoint'] == str(best)
    model, info = load_checkpoint(tmp_path / 'stage2' / 'best.pt')
    assert info['metadata']['train_samples'] == len(union)
    assert model.config == CONFIG


def test_photometric_augmentation_reaches_the_training_step(caches, tmp_path):
    root = caches[0]
    plain = _train(root, tmp_path / 'plain')
    jittered = _train(root, tmp_path / 'jittered', augment={'probability': 1.0})
    assert jittered['config']['augment'] == {'probability': 1.0}
    # Same seed, same batches: only the jittered camera input can make the weights differ.
    weights = [load_checkpoint(tmp_path / name / 'best.pt')[0].state_dict()
               for name in ('plain', 'jittered')]
    image_stem = [k for k in weights[0] if k.startswith('image_branch.')][0]
    assert not torch.equal(weights[0][image_stem], weights[1][image_stem])
    radar_only = _train(root, tmp_path / 'radar', modality='radar', augment={'probability': 1.0})
    assert radar_only['history'] and plain['history']


def test_checkpoint_carries_the_prior_correction(caches, tmp_path, capsys):
    """Training writes the logit offsets it validated with; `logit-prior` adds them later."""
    from mm_fusion_ros.train.config import TrainConfig
    from mm_fusion_ros.train.data import cache_class_counts
    from mm_fusion_ros.train.trainer import class_weights

    root, _, _ = caches
    metrics = _train(root, tmp_path / 'prior')
    counts = np.maximum(cache_class_counts(str(root / 'train')), 1)
    target = np.maximum(cache_class_counts(str(root / 'val')), 1)
    want = np.log(target / counts)  # from the training data's prior to the validation split's
    np.testing.assert_allclose(metrics['logit_offsets'], want - want.mean(), atol=1e-5)
    accuracy = _train(root, tmp_path / 'accuracy', logit_prior='validation_accuracy')
    want -= np.log(class_weights(counts, 'sqrt_inverse').numpy())  # the costs removed as well
    np.testing.assert_allclose(accuracy['logit_offsets'], want - want.mean(), atol=1e-5)
    _, info = load_checkpoint(tmp_path / 'prior' / 'best.pt')
    np.testing.assert_allclose(info['logit_offsets'], metrics['logit_offsets'], atol=1e-6)

    raw = _train(root, tmp_path / 'raw', logit_prior='none')
    raw_best = tmp_path / 'raw' / 'best.pt'
    raw_model, raw_info = load_checkpoint(raw_best)
    assert raw['logit_offsets'] is None
    assert raw_info['logit_offsets'] == [0.0] * CONFIG.num_classes
    prior_config = tmp_path / 'prior.yaml'  # same caches as 'raw', logit_prior on
    assert TrainConfig.from_yaml(prior_config).logit_prior == 'validation'
    fixed = tmp_path / 'fixed.pt'
    assert cli_main(['logit-prior', '--config', str(prior_config), '--checkpoint',
                     str(raw_best), '--out', str(fixed)]) == 0
    assert 'logit offsets (validation)' in capsys.readouterr().out
    fixed_model, fixed_info = load_checkpoint(fixed)
    np.testing.assert_allclose(fixed_info['logit_offsets'], metrics['logit_offsets'], atol=1e-6)
    assert fixed_info['training_data_hash'] == info['training_data_hash']
    raw_metadata = raw_info['metadata']
    assert raw_metadata['logit_prior'] == 'none'
    assert fixed_info['metadata'] == {**raw_metadata, 'logit_prior': 'validation'}
    for a, b in zip(fixed_model.state_dict().values(),
                    raw_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # A config whose caches are not what the checkpoint was trained on is refused.
    other = tmp_path / 'other.yaml'
    other.write_text(yaml.safe_dump({'train_cache': str(root / 'val'),
                                     'val_cache': str(root / 'val')}))
    assert cli_main(['logit-prior', '--config', str(other), '--checkpoint', str(raw_best),
                     '--out', str(tmp_path / 'no.pt')]) == 2
    assert 'not on the caches' in capsys.readouterr().err
    assert not (tmp_path / 'no.pt').exists()
    with pytest.raises(ValueError, match='logit_prior'):
        TrainConfig(logit_prior='train')


def test_validation_decides_with_the_offsets(caches, tmp_path):
    from torch.utils.data import DataLoader

    from mm_fusion_ros.actions import Action
    from mm_fusion_ros.train.trainer import _Collate, evaluate

    root, _, _ = caches
    _train(root, tmp_path / 'stage1')
    model, _ = load_checkpoint(tmp_path / 'stage1' / 'best.pt')
    loader = DataLoader(CacheSamples(str(root / 'val')), batch_size=4,
                        collate_fn=_Collate(model.config))
    offsets = np.zeros(CONFIG.num_classes, np.float32)
    offsets[Action.STOP] = 1e3
    assert (evaluate(model, loader, torch.device('cpu'))['y_pred'] != Action.STOP).any()
    shifted = evaluate(model, loader, torch.device('cpu'), logit_offsets=offsets)
    assert (shifted['y_pred'] == Action.STOP).all()


def test_dagger_refuses_held_out_seeds(tmp_path, capsys):
    assert cli_main(['dagger', '--checkpoint', 'unused.pt', '--out', str(tmp_path / 'd'),
                     '--seed', '499_990', '--episodes', '20']) == 2
    assert 'held-out' in capsys.readouterr().err


def test_caches_with_different_camera_gaps_do_not_mix(caches, tmp_path):
    root, _, _ = caches
    other = build_cache_from_sim(
        scenario_mix(1, seed=SEED, duration=1.0), tmp_path / 'other',
        CacheConfig(image_height=CONFIG.image_height, image_width=CONFIG.image_width,
                    num_frames=CONFIG.num_frames, max_points=CONFIG.max_points,
                    camera_history=0.5))
    with pytest.raises(ValueError, match='different gaps'):
        CacheSamples([str(root / 'train'), str(other.out_dir)])


def test_a_model_refuses_a_cache_of_the_other_radar_frame(caches):
    """A radar history without the ego's acceleration and a raw one are different inputs."""
    from mm_fusion_ros.train.data import check_frames

    root, _, _ = caches
    data = CacheSamples(str(root / 'train'))
    check_frames(CONFIG, 'train', data)
    with pytest.raises(ValueError, match='radar_ego_motion'):
        check_frames(small_config(radar_ego_motion='ground'), 'train', data)
    with pytest.raises(ValueError, match='radar_ego_motion must be one of'):
        small_config(radar_ego_motion='compensated')


def test_model_grows_a_fovea_from_a_checkpoint(caches, tmp_path, monkeypatch, capsys):
    """A stage can add fovea rows to a checkpoint's model; every trained tensor carries over."""
    from mm_fusion_ros.train.trainer import _init_model

    root, _, _ = caches
    _train(root, tmp_path / 'stage1')
    best = tmp_path / 'stage1' / 'best.pt'
    old, _ = load_checkpoint(best)
    fovea = build_cache_from_sim(
        scenario_mix(1, seed=SEED, duration=1.0), tmp_path / 'fovea_cache',
        CacheConfig(image_height=CONFIG.image_height, image_width=CONFIG.image_width,
                    num_frames=CONFIG.num_frames, max_points=CONFIG.max_points,
                    fovea_height=64, frame_stride=4)).out_dir
    grown = _init_model(str(best), {'fovea_height': 64})
    assert grown.config.input_height == CONFIG.image_height + 64
    new_state = grown.state_dict()
    for name, value in old.state_dict().items():
        target = new_state[name]
        if name == 'image_branch.pos_embed':  # the view's tokens first, then the fovea's
            assert target.shape[1] > value.shape[1]
            target = target[:, :value.shape[1]]
        assert torch.equal(target, value), name

    config = root / 'fovea.yaml'
    config.write_text(yaml.safe_dump({
        'train_cache': str(fovea), 'val_cache': str(fovea), 'epochs': 1,
        'batch_size': 4, 'num_threads': 1, 'init_checkpoint': str(best),
        'model': {'fovea_height': 64}}))
    assert cli_main(['train', '--config', str(config), '--out-dir', str(tmp_path / 'f')]) == 0
    model, _ = load_checkpoint(tmp_path / 'f' / 'best.pt')
    assert model.config.fovea_height == 64 and model.config.image_width == CONFIG.image_width

    # The fovea model's DAgger round renders a camera twice its view and stores its frames.
    assert cli_main(['dagger', '--checkpoint', str(tmp_path / 'f' / 'best.pt'), '--out',
                     str(tmp_path / 'fovea_dagger'), '--episodes', '1', '--seed', str(SEED),
                     '--duration', '1.0', '--num-threads', '1']) == 0
    driven = CacheSamples(str(tmp_path / 'fovea_dagger'))
    assert driven.frame_layout == CacheSamples(str(fovea)).frame_layout
    np.testing.assert_array_equal(driven[0]['image'], CacheSamples(str(fovea))[0]['image'])

    # Closed loop drives it on the same camera (twice its view), the expert alike.
    import mm_fusion_ros.evaluation.closed_loop as closed_loop

    cameras, drive = [], closed_loop.drive
    monkeypatch.setattr(closed_loop, 'drive', lambda config, policy, camera, **kw: (
        cameras.append(camera.config), drive(config, policy, camera, **kw))[1])
    assert cli_main(['closed-loop', '--checkpoint', str(tmp_path / 'f' / 'best.pt'),
                     '--episodes', '1', '--duration', '0.5', '--drivers', 'fused,expert',
                     '--num-threads', '1']) == 0
    assert [(c.width, c.height) for c in cameras] == [
        (2 * CONFIG.image_width, 2 * CONFIG.image_height)] * 2

    # The cache's fovea is 64 rows of its box: a model wanting another fovea is refused.
    config.write_text(yaml.safe_dump({
        'train_cache': str(fovea), 'val_cache': str(fovea), 'epochs': 1, 'batch_size': 4,
        'model': {**CONFIG.to_dict(), 'fovea_height': 32}}))
    assert cli_main(['train', '--config', str(config), '--out-dir', str(tmp_path / 'g')]) == 2
    assert 'fovea' in capsys.readouterr().err


def test_caches_are_memory_mapped_and_larger_ones_are_announced(caches, monkeypatch, caplog):
    import mm_fusion_ros.train.data as data

    root = caches[0]
    samples = CacheSamples(str(root / 'train'))
    assert 'disk' not in caplog.text
    image = samples[0]['image']
    assert not image.flags.writeable and not image.flags.owndata  # a view of the map
    np.testing.assert_array_equal(image, FusionCacheDataset(root / 'train').arrays(0)['image'])
    monkeypatch.setattr(data, 'available_memory', lambda: 1024)
    assert len(CacheSamples(str(root / 'train'))) == len(samples)
    assert 'read them from disk' in caplog.text


# (config, init checkpoint, output, caches): each stage continues from the previous one's output;
# stage 5 adds the corrected scenario mix (its own train and val caches); the fovea stages
# (an experiment on stage 4) grow a fovea and read the 512x256 renders.
STAGES = [
    ('training/train.yaml', '', 'runs/fusion', 'data/cache', 1),
    ('training/train_dagger.yaml', 'runs/fusion/best.pt', 'runs/fusion_dagger', 'data/cache', 2),
    ('training/train_dagger2.yaml', 'runs/fusion_dagger/best.pt', 'runs/fusion_dagger2',
     'data/cache', 3),
    ('training/train_dagger3.yaml', 'runs/fusion_dagger2/best.pt', 'runs/fusion_dagger3',
     'data/cache', 4),
    ('training/train_mix2.yaml', 'runs/fusion_dagger3/best.pt', 'runs/fusion_mix2',
     'data/cache', 5),
    ('experiments/train_fovea.yaml', 'runs/fusion_dagger3/best.pt', 'runs/fusion_fovea',
     'data/cache_fovea', 1),
    ('experiments/train_fovea_dagger.yaml', 'runs/fusion_fovea/best.pt',
     'runs/fusion_fovea_dagger', 'data/cache_fovea', 2),
]


@pytest.mark.parametrize(('name', 'init', 'out', 'data', 'n_caches'), STAGES)
def test_shipped_training_configs_load(name, init, out, data, n_caches):
    from mm_fusion_ros.train.config import TrainConfig

    config = TrainConfig.from_yaml(REPO_CONFIG / name)
    caches = [config.train_cache] if isinstance(config.train_cache, str) else config.train_cache
    mix2 = name == 'training/train_mix2.yaml'
    assert caches[0] == f'{data}/train'
    assert config.val_cache == ('data/cache_mix2/val' if mix2 else f'{data}/val')
    assert (config.init_checkpoint, config.out_dir, len(caches)) == (init, out, n_caches)
    assert all(c.startswith(f'{data}/') for c in caches[:4 if mix2 else None])
    assert not mix2 or caches[4] == 'data/cache_mix2/train'
    assert config.model == (
        {'fovea_height': 64} if name == 'experiments/train_fovea.yaml' else {})
    # Stages 1-3 drove the DAgger rounds with raw logits; stages 4 and 5 have the offsets.
    assert config.logit_prior == (
        'validation' if name in ('training/train_dagger3.yaml', 'training/train_mix2.yaml')
        else 'none')
    # Photometric augmentation from stage 4 on.
    assert bool(config.augment.get('probability')) == (
        name not in ('training/train.yaml', 'training/train_dagger.yaml',
                     'training/train_dagger2.yaml'))


def test_brake_pulse_experiment_config_continues_from_stage_5():
    from mm_fusion_ros.train.config import TrainConfig

    config = TrainConfig.from_yaml(REPO_CONFIG / 'experiments' / 'train_pulse.yaml')
    assert config.init_checkpoint == 'runs/fusion_mix2/best.pt'
    assert 'data/cache_pulse/train' in config.train_cache
    assert config.val_cache == 'data/cache_mix2/val' and config.logit_prior == 'validation'
