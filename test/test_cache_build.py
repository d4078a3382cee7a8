"""Training cache: sim -> bag -> cache equals sim -> cache; shapes, manifest, Dataset, CLI."""

import argparse
import json

import numpy as np
import pytest
import torch

from mm_fusion_ros.bags import write_episode_bag
from mm_fusion_ros.cli import main as cli_main
from mm_fusion_ros.data import CacheConfig, build_cache_from_bags, build_cache_from_sim
from mm_fusion_ros.data.cache import SAMPLE_KEYS, verify_cache, write_npz_deterministic
from mm_fusion_ros.data.dataset import FusionCacheDataset, ShardGroupedSampler, map_npz
from mm_fusion_ros.model.config import FusionModelConfig
from mm_fusion_ros.model.preprocess import model_frame
from mm_fusion_ros.pipeline import FusionPipeline, PipelineConfig
from mm_fusion_ros.sensors.image import image_to_rgb
from mm_fusion_ros.sensors.sync import msg_stamp_ns
from mm_fusion_ros.sim import ScenarioConfig, ScenarioType, run_episode
from mm_fusion_ros.sim.conditions import Condition

CONFIGS = [
    ScenarioConfig(scenario=ScenarioType.CUT_IN, condition=Condition.FOG, seed=21,
                   duration=2.0),
    # radar dropout: frames without radar must line up in both paths
    ScenarioConfig(scenario=ScenarioType.PEDESTRIAN_CROSSING,
                   condition=Condition.RADAR_DROPOUT, seed=22, duration=1.5),
]


@pytest.fixture(scope='module')
def bag_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('bags')
    for i, c in enumerate(CONFIGS):
        write_episode_bag(root / f'ep{i}', run_episode(c).frames, c,
                          storage='mcap' if i == 0 else 'sqlite3')
    return root


def _load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize('stride', [1, 3])
def test_bag_and_sim_paths_give_identical_caches(bag_dir, tmp_path, stride):
    cfg = CacheConfig(frame_stride=stride, shard_size=16)
    a = build_cache_from_bags([bag_dir / 'ep0', bag_dir / 'ep1'], tmp_path / 'a', config=cfg)
    b = build_cache_from_sim(CONFIGS, tmp_path / 'b', config=cfg)
    assert a.samples == b.samples > 0
    assert a.data_hash == b.data_hash
    assert [s['sha256'] for s in a.manifest['shards']] == [
        s['sha256'] for s in b.manifest['shards']]
    for shard in a.manifest['shards']:
        sa, sb = _load(a.out_dir / shard['file']), _load(b.out_dir / shard['file'])
        assert list(sa) == list(SAMPLE_KEYS)
        for k in SAMPLE_KEYS:
            np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    assert a.manifest['sources'][0]['unlabelled'] == 0
    assert a.manifest['sources'][0]['info']['scenario'] == 'cut_in'


MODEL_FRAME = FusionModelConfig()  # the cache's default frame layout


@pytest.mark.parametrize('ego_motion', ['raw', 'current_speed'])
def test_radar_sequences_match_the_fusion_pipeline(bag_dir, tmp_path, ego_motion):
    """The cache's radar history and earlier camera frame equal FusionPipeline's."""
    class _Predictor:
        class config:  # noqa: N801 - attribute shape of FusionModelConfig
            num_frames = 8
            max_points = 64
            camera_history = 0.25
            radar_ego_motion = ego_motion
            image_height, image_width, fovea_height = 128, 256, 0

    frames = run_episode(CONFIGS[0]).frames
    res = build_cache_from_sim(CONFIGS[:1], tmp_path / 'c',
                               CacheConfig(radar_ego_motion=ego_motion))
    assert res.manifest['config']['radar_ego_motion'] == ego_motion
    shard = _load(res.out_dir / res.manifest['shards'][0]['file'])
    pipe = FusionPipeline(_Predictor(), PipelineConfig())
    from mm_fusion_ros.bags.reader import open_bag
    from mm_fusion_ros.sensors.odometry import forward_speed

    i = changed = 0
    with open_bag(bag_dir / 'ep0', 'sim') as bag:
        # the 2 s episode's odometry up front: a camera frame is logged before its reading
        for m in bag.messages(('odometry',)):
            pipe.add_odometry(msg_stamp_ns(m.msg), forward_speed(m.msg))
        for m in bag.messages(('image', 'radar')):
            if m.kind == 'radar':
                pipe.add_radar_msg(m.msg)
                continue
            seq = pipe.sequence(msg_stamp_ns(m.msg))
            rgb = image_to_rgb(m.msg)
            previous = pipe.add_camera(msg_stamp_ns(m.msg), rgb)
            composed = model_frame(rgb, MODEL_FRAME)
            np.testing.assert_array_equal(shard['image'][i], composed)
            np.testing.assert_array_equal(shard['previous_image'][i], composed if previous is None
                                          else model_frame(previous, MODEL_FRAME))
            changed += previous is not None and not np.array_equal(previous, rgb)
            np.testing.assert_array_equal(shard['radar_points'][i], seq.points)
            np.testing.assert_array_equal(shard['point_mask'][i], seq.point_mask)
            np.testing.assert_array_equal(shard['frame_mask'][i], seq.frame_mask)
            np.testing.assert_array_equal(shard['time_offsets'][i], seq.time_offsets)
            i += 1
    assert i == len(frames) == res.samples
    assert changed >= i - 5  # 0.25 s of history at 20 Hz: all but the first 5 frames
    # Ego speed = the sim's odometry at each camera stamp; no driving noise on this cache.
    np.testing.assert_array_equal(shard['ego_speed'],
                                  np.float32([f.ego.speed for f in frames]))
    assert res.manifest['driving_noise'] is None


def test_driving_noise_is_recorded_and_changes_the_states(tmp_path):
    from mm_fusion_ros.sim.simulator import DrivingNoise

    noise = DrivingNoise(sigma=1.5, episode_share=1.0)
    plain = build_cache_from_sim(CONFIGS[:1], tmp_path / 'plain')
    noisy = build_cache_from_sim(CONFIGS[:1], tmp_path / 'noisy', noise=noise)
    assert noisy.manifest['driving_noise'] == {'sigma': 1.5, 'tau': 2.0, 'episode_share': 1.0,
                                               'reaction_delay': 2.0, 'brake_pulse_rate': 0.0,
                                               'brake_pulse_duration': 1.5}
    a = _load(plain.out_dir / plain.manifest['shards'][0]['file'])
    b = _load(noisy.out_dir / noisy.manifest['shards'][0]['file'])
    assert not np.array_equal(a['ego_speed'], b['ego_speed'])  # other states were visited
    assert plain.data_hash != noisy.data_hash


def test_a_driver_replaces_the_expert_and_excludes_noise(tmp_path):
    from mm_fusion_ros.actions import Action
    from mm_fusion_ros.sim.dynamics import Command
    from mm_fusion_ros.sim.simulator import DrivingNoise

    class Brake:
        """Brakes whatever the expert says (it cruises here): other states are visited."""

        resets = 0

        def reset(self):
            self.resets += 1

        def __call__(self, frame):
            return Command(Action.STOP, -3.0)

    driver = Brake()
    plain = build_cache_from_sim(CONFIGS[:1], tmp_path / 'plain')
    driven = build_cache_from_sim(CONFIGS[:1], tmp_path / 'driven', driver=driver,
                                  extra={'driver': 'brake'})
    assert driver.resets == 1 and driven.manifest['driver'] == 'brake'
    a = _load(plain.out_dir / plain.manifest['shards'][0]['file'])
    b = _load(driven.out_dir / driven.manifest['shards'][0]['file'])
    assert not np.array_equal(a['ego_speed'], b['ego_speed'])
    assert b['ego_speed'][-1] < a['ego_speed'][-1] - 3.0
    assert int(Action.STOP) not in b['action']  # labels stay the expert's
    with pytest.raises(ValueError, match='not both'):
        build_cache_from_sim(CONFIGS[:1], tmp_path / 'both', driver=driver,
                             noise=DrivingNoise())


def test_shapes_labels_and_manifest(bag_dir, tmp_path):
    cfg = CacheConfig(num_frames=4, max_points=32, shard_size=10, points_dtype='float16')
    res = build_cache_from_bags([bag_dir], tmp_path / 'c', config=cfg)
    m = json.loads((tmp_path / 'c' / 'manifest.json').read_text())
    assert m['num_samples'] == res.samples == 41 + 31
    assert [s['samples'] for s in m['shards']] == [10] * 7 + [2]
    assert sum(m['class_counts'].values()) == res.samples
    assert sum(m['condition_counts'].values()) == res.samples
    assert set(m['condition_counts']) == {CONFIGS[0].condition.value,
                                          CONFIGS[1].condition.value}
    assert verify_cache(tmp_path / 'c')
    shard = _load(tmp_path / 'c' / 'shard-00000.npz')
    assert shard['image'].shape == (10, 128, 256, 3) and shard['image'].dtype == np.uint8
    assert shard['radar_points'].shape == (10, 4, 32, 5)
    assert shard['radar_points'].dtype == np.float16
    assert shard['point_mask'].shape == (10, 4, 32) and shard['frame_mask'].shape == (10, 4)
    assert shard['action'].dtype == np.int64 and shard['ttc'].dtype == np.float32
    assert shard['scenario'][0] == 'cut_in'
    frames = run_episode(CONFIGS[0]).frames
    np.testing.assert_array_equal(shard['action'], [int(f.label.action) for f in frames[:10]])
    np.testing.assert_array_equal(shard['ttc'], [np.float32(f.label.ttc) for f in frames[:10]])

    ds = FusionCacheDataset(tmp_path / 'c')
    assert len(ds) == res.samples and ds.data_hash == m['data_hash']
    item = ds[len(ds) - 1]
    assert item['image'].shape == (3, 128, 256) and item['image'].dtype == torch.uint8
    assert item['radar_points'].dtype == torch.float32
    assert item['radar_points'].shape == (4, 32, 5)
    assert item['action'].dtype == torch.int64 and item['action'].ndim == 0
    hwc = FusionCacheDataset(tmp_path / 'c', layout='hwc', preload=True)
    torch.testing.assert_close(hwc[5]['image'].permute(2, 0, 1), ds[5]['image'])
    sampler = ShardGroupedSampler(ds, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(len(ds)))
    assert order[:10] != list(range(10))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, sampler=sampler)))
    assert batch['image'].shape == (4, 3, 128, 256)


def test_cached_frame_is_the_model_frame_of_the_camera_frame(bag_dir, tmp_path):
    """The cache stores exactly what the node's preprocessing composes from the camera frame."""
    cfg = CacheConfig(num_frames=4, max_points=32, fovea_height=64)
    build_cache_from_bags([bag_dir], tmp_path / 'c', config=cfg)
    shard = _load(tmp_path / 'c' / 'shard-00000.npz')
    from mm_fusion_ros.sensors.camera_geometry import CanonicalView, PinholeCamera
    from mm_fusion_ros.sim.camera import CameraConfig

    # The bag's CameraInfo (the 256x128 sim camera) is resampled into the fovea model's
    # training camera (512x256), as fusion_node does with it.
    view = CanonicalView(PinholeCamera.from_config(CameraConfig()),
                         PinholeCamera.from_config(CameraConfig.for_view(cfg)))
    rgb = view(run_episode(CONFIGS[0]).frames[0].rgb)
    assert shard['image'].shape[1:] == (128 + 64, 256, 3)
    np.testing.assert_array_equal(shard['image'][0],
                                  model_frame(rgb, FusionModelConfig(fovea_height=64)))
    # A model without a fovea reads the view rows, which are its own frame.
    np.testing.assert_array_equal(model_frame(shard['image'][0], FusionModelConfig(), True),
                                  model_frame(rgb, FusionModelConfig()))


def test_cli_record_then_cache(tmp_path, capsys):
    assert cli_main(['record', '--episodes', '2', '--seed', '7', '--duration', '0.5',
                     '--out', str(tmp_path / 'bags'), '--storage', 'sqlite3']) == 0
    bags = sorted(p.name for p in (tmp_path / 'bags').iterdir())
    assert len(bags) == 2 and bags[0].startswith('ep00000_') and bags[0].endswith('_s7')
    assert cli_main(['cache', str(tmp_path / 'bags'), '--out', str(tmp_path / 'cache'),
                     '--frame-stride', '2']) == 0
    out = capsys.readouterr().out
    assert 'cached 12 samples from 2 bags' in out and 'data hash:' in out
    # Recording into the same place again refuses instead of overwriting.
    assert cli_main(['record', '--episodes', '1', '--seed', '7', '--duration', '0.5',
                     '--out', str(tmp_path / 'bags')]) == 2
    assert cli_main(['cache', str(tmp_path / 'bags'), '--out', str(tmp_path / 'c2'),
                     '--topics', 'carla']) == 2
    assert 'the bag has:' in capsys.readouterr().err


def test_cli_ray_missing(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == 'ray':
            raise ImportError('no ray')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_ray)
    assert cli_main(['record', '--episodes', '1', '--out', str(tmp_path), '--ray']) == 2
    assert 'needs Ray' in capsys.readouterr().err


def test_mapped_shards_equal_loaded_ones(tmp_path):
    arrays = {'image': np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3),
              'ttc': np.array([np.inf, 1.5], np.float32), 'condition': np.array(['fog', 'night']),
              'empty': np.zeros((0, 5), np.float32),
              'fortran': np.asfortranarray(np.arange(12.0).reshape(3, 4))}
    path = tmp_path / 'shard.npz'
    write_npz_deterministic(path, arrays)
    np.savez_compressed(tmp_path / 'compressed.npz', **arrays)
    for file in (path, tmp_path / 'compressed.npz'):
        mapped = map_npz(file)
        assert mapped.keys() == arrays.keys()
        for key, value in arrays.items():
            assert mapped[key].dtype == value.dtype
            np.testing.assert_array_equal(mapped[key], value)
    assert not map_npz(path)['image'].flags.writeable


def test_dataset_command_renders_the_camera_a_fovea_needs(tmp_path, capsys):
    from mm_fusion_ros.commands.dataset import camera_size

    out = tmp_path / 'fovea'
    assert cli_main(['dataset', '--out', str(out), '--splits', 'train', '--train-episodes', '1',
                     '--duration', '0.5', '--frame-stride', '1', '--fovea-height', '16']) == 0
    assert '(512x256 camera)' in capsys.readouterr().out
    manifest = json.loads((out / 'train' / 'manifest.json').read_text())
    assert manifest['config']['fovea_height'] == 16
    assert manifest['image_shape'] == [128 + 16, 256, 3]
    assert camera_size('640X320') == (640, 320)
    for bad in ('640', '0x10', 'axb'):
        with pytest.raises(argparse.ArgumentTypeError):
            camera_size(bad)


def test_dataset_command_keeps_chosen_scenario_types(tmp_path, capsys):
    from mm_fusion_ros.commands.dataset import scenario_types
    from mm_fusion_ros.sim.scenarios import MIX_WEIGHTS, ScenarioType

    out = tmp_path / 'ped'
    cycle = sum(MIX_WEIGHTS.values())
    assert cli_main(['dataset', '--out', str(out), '--splits', 'train', '--train-episodes',
                     str(cycle), '--duration', '0.5', '--scenarios', 'pedestrian_crossing',
                     '--driving-noise', '0', '--reaction-delay', '0']) == 0
    episodes = MIX_WEIGHTS[ScenarioType.PEDESTRIAN_CROSSING]
    assert f'from {episodes} episodes' in capsys.readouterr().out
    manifest = json.loads((out / 'train' / 'manifest.json').read_text())
    assert {k for k, v in manifest['scenario_counts'].items() if v} == {'pedestrian_crossing'}
    assert scenario_types(' red_light,pedestrian_crossing ') == {'red_light',
                                                                  'pedestrian_crossing'}
    for bad in ('', 'pedestrian', 'red_light,nope'):
        with pytest.raises(argparse.ArgumentTypeError, match='unknown scenario types'):
            scenario_types(bad)


def test_dataset_command_perturbed_test_split_drives_the_test_seeds_with_noise(tmp_path, capsys):
    out = tmp_path / 'cache'
    args = ['dataset', '--out', str(out), '--test-episodes', '2', '--duration', '3',
            '--frame-stride', '1']
    assert cli_main([*args, '--splits', 'test,test_perturbed']) == 0
    plain = json.loads((out / 'test' / 'manifest.json').read_text())
    perturbed = json.loads((out / 'test_perturbed' / 'manifest.json').read_text())
    assert plain['driving_noise'] is None
    assert perturbed['driving_noise']['episode_share'] == 1.0
    assert perturbed['driving_noise']['sigma'] == 1.5
    assert [s['info']['seed'] for s in perturbed['sources']] == \
        [s['info']['seed'] for s in plain['sources']]
    # same scenes, but the ego is not driven as the expert drove it
    speeds = [np.array([s['ego_speed'] for s in FusionCacheDataset(out / split)])
              for split in ('test', 'test_perturbed')]
    n = min(map(len, speeds))
    assert np.abs(speeds[0][:n] - speeds[1][:n]).max() > 0.1
    assert cli_main([*args, '--splits', 'test,holdout']) == 2
    assert 'unknown splits' in capsys.readouterr().err
    assert cli_main([*args, '--splits', 'test_perturbed', '--driving-noise', '0',
                     '--reaction-delay', '0']) == 2
    assert 'needs driving noise' in capsys.readouterr().err
