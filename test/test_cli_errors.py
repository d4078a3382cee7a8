"""A user's broken file or bad value: one line `mm-fusion <command>: ...`, exit 2, no traceback.

Every command that reads a checkpoint, training config, cache, bag topics file or bag, or
writes an output, is run in-process (`cli.main`) with each broken input; the one line must name
the file or value. A subprocess run checks the real entry point on the cases issue 26 measured.
"""

import argparse
import json
from pathlib import Path
import subprocess
import sys

import pytest
import torch
import yaml

from mm_fusion_ros import cli
from mm_fusion_ros.cli import COMMANDS
from mm_fusion_ros.cli import main as cli_main
from mm_fusion_ros.data import CacheConfig, build_cache_from_sim
from mm_fusion_ros.model import FusionModel, small_config
from mm_fusion_ros.model.checkpoint import save_checkpoint
from mm_fusion_ros.sim import ScenarioConfig, ScenarioType
from mm_fusion_ros.sim.conditions import Condition
from mm_fusion_ros.train.data import cache_data_hash

CONFIG = small_config()
ROOT = Path(__file__).resolve().parents[1]


def _rewrite(src: Path, dst: Path, change) -> Path:
    payload = torch.load(src, weights_only=True)
    change(payload)
    torch.save(payload, dst)
    return dst


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A good tiny checkpoint and cache, and one broken file of each kind."""
    root = tmp_path_factory.mktemp('cli_errors')
    cfg = CacheConfig(image_height=CONFIG.image_height, image_width=CONFIG.image_width,
                      num_frames=CONFIG.num_frames, max_points=CONFIG.max_points,
                      frame_stride=4)
    scene = ScenarioConfig(scenario=ScenarioType.LEAD_BRAKE, condition=Condition.CLEAR,
                           seed=11, duration=1.0)
    build_cache_from_sim([scene], root / 'cache', cfg)
    build_cache_from_sim([], root / 'empty', cfg)
    torch.manual_seed(0)
    good = save_checkpoint(FusionModel(CONFIG), root / 'good.pt',
                           training_data_hash=cache_data_hash(str(root / 'cache')))
    raw = good.read_bytes()
    (root / 'random.pt').write_bytes(torch.randint(0, 256, (2**20,), dtype=torch.uint8)
                                     .numpy().tobytes())
    (root / 'truncated.pt').write_bytes(raw[:len(raw) // 2])
    (root / 'text.pt').write_text('not a checkpoint\n')
    torch.save({'format': 'mm_fusion_ros.fusion_model', 'x': argparse.Namespace(a=1)},
               root / 'pickled.pt')
    _rewrite(good, root / 'version.pt', lambda p: p.__setitem__('format_version', 99))
    _rewrite(good, root / 'shapes.pt',
             lambda p: p['state_dict'].__setitem__('logits_head.weight', torch.zeros(7, 3)))
    (root / 'a_file').write_text('x')
    return root


BROKEN_CHECKPOINTS = {  # file -> what the one line says
    'random.pt': 'not a PyTorch archive', 'missing.pt': 'not found',
    'truncated.pt': 'not a PyTorch archive', 'text.pt': 'not a PyTorch archive',
    'pickled.pt': 'pickled Python object (argparse.Namespace)',
    'version.pt': 'format_version 99', 'shapes.pt': 'logits_head.weight (7, 3)',
}


def refused(capsys, argv: list[str], *names) -> str:
    """Run `mm-fusion argv`; assert exit 2 and one line naming `names`; return that line."""
    rc = cli_main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, (argv, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f'mm-fusion {argv[0]}: '), lines[0]
    assert 'Traceback' not in err and 'weights_only=False' not in err, err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


@pytest.mark.parametrize('name', sorted(BROKEN_CHECKPOINTS))
def test_broken_checkpoint_every_command(files, tmp_path, capsys, name):
    ckpt = files / name
    why = BROKEN_CHECKPOINTS[name]
    refused(capsys, ['closed-loop', '--checkpoint', ckpt, '--episodes', '1',
                     '--drivers', 'fused'], ckpt, why)
    refused(capsys, ['ablation', '--checkpoint', ckpt, '--val-cache', files / 'cache'],
            ckpt, why)
    refused(capsys, ['eval', files / 'no_bag', '--checkpoint', ckpt, '--quiet',
                     '--out', tmp_path / 'report'], ckpt, why)
    refused(capsys, ['eval', files / 'no_bag', '--checkpoint', files / 'good.pt',
                     '--compare-checkpoint', ckpt, '--out', tmp_path / 'report'], ckpt, why)
    refused(capsys, ['dagger', '--checkpoint', ckpt, '--out', tmp_path / 'dagger',
                     '--episodes', '1'], ckpt, why)
    config = tmp_path / 'train.yaml'
    config.write_text(yaml.safe_dump({'train_cache': str(files / 'cache'),
                                      'val_cache': str(files / 'cache'), 'batch_size': 1,
                                      'epochs': 1, 'num_threads': 1}))
    refused(capsys, ['logit-prior', '--config', config, '--checkpoint', ckpt], ckpt, why)
    refused(capsys, ['train', '--config', config, '--init-checkpoint', ckpt,
                     '--out-dir', tmp_path / 'run'], ckpt, why)
    assert not (tmp_path / 'run' / 'best.pt').exists()


def _broken_configs(tmp: Path) -> dict[str, tuple[Path, str]]:
    cases = {
        'unknown key': ('batch_sise: 8\n', 'unknown training options', "['batch_sise']"),
        'not YAML': ('epochs: [1\n', 'is not YAML (line 2, column 1)', ''),
        'not a mapping': ('- 1\n- 2\n', 'must be a mapping of options', ''),
        'wrong type': ('epochs: ten\n', 'epochs must be an integer', "'ten'"),
        'out of range': ('batch_size: 0\n', 'batch_size must be >= 1', '0'),
        'bad choice': ('modality: lidar\n', 'modality must be one of', "'lidar'"),
        'model key': ('model: {tokn_dim: 8}\n', 'model: unknown FusionModelConfig keys',
                      "did you mean ['token_dim']"),
    }
    out = {}
    for i, (case, (text, why, value)) in enumerate(cases.items()):
        path = tmp / f'config{i}.yaml'
        path.write_text(text)
        out[case] = (path, why, value)
    out['missing'] = (tmp / 'missing.yaml', 'not found', '')
    out['directory'] = (tmp, 'is a directory', '')
    (tmp / 'binary.yaml').write_bytes(bytes(range(128, 256)))
    out['binary'] = (tmp / 'binary.yaml', 'not a text file', '')
    return out


def test_broken_training_config(files, tmp_path, capsys):
    cases = _broken_configs(tmp_path)
    for path, why, value in cases.values():
        refused(capsys, ['train', '--config', path], path, why, value)
    for case in ('unknown key', 'missing', 'not YAML'):
        path, why, _ = cases[case]
        refused(capsys, ['logit-prior', '--config', path, '--checkpoint', files / 'good.pt'],
                path, why)
    good = tmp_path / 'good.yaml'
    good.write_text('epochs: 1\n')
    refused(capsys, ['train', '--config', good, '--epochs', '0'], 'command line',
            'epochs must be >= 1')
    refused(capsys, ['train', '--config', good, '--device', 'gpu', '--train-cache',
                     files / 'cache', '--val-cache', files / 'cache', '--batch-size', '1'],
            'device', "'gpu'")


def _broken_caches(files: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    import shutil

    def copy(name: str) -> Path:
        shutil.copytree(files / 'cache', tmp / name)
        return tmp / name

    def manifest(name: str, change) -> Path:
        path = copy(name)
        data = json.loads((path / 'manifest.json').read_text())
        change(data)
        (path / 'manifest.json').write_text(json.dumps(data))
        return path

    out = {'missing': (tmp / 'nothing', 'not found'),
           'no manifest': (tmp, 'has no manifest.json'),
           'a file': (files / 'a_file', 'is a file')}
    path = copy('not_json')
    (path / 'manifest.json').write_text('{"format": ')
    out['manifest not JSON'] = (path, 'not JSON')
    out['old version'] = (manifest('old', lambda m: m.__setitem__('version', 1)),
                          'cache version 1')
    out['no shards'] = (manifest('no_shards', lambda m: m.pop('shards')), "'shards'")
    out['path in shard'] = (
        manifest('escape', lambda m: m['shards'][0].__setitem__('file', '../../etc/passwd')),
        'not a file of the cache directory')
    path = copy('corrupt')
    (path / 'shard-00000.npz').write_bytes(b'\x00' * 4096)
    out['corrupt shard'] = (path / 'shard-00000.npz', 'corrupt or truncated')
    path = copy('truncated')
    shard = path / 'shard-00000.npz'
    shard.write_bytes(shard.read_bytes()[:shard.stat().st_size // 3])
    out['truncated shard'] = (shard, 'corrupt or truncated')
    path = copy('no_shard')
    (path / 'shard-00000.npz').unlink()
    out['missing shard'] = (path / 'shard-00000.npz', 'No such file')
    return out


def test_broken_cache(files, tmp_path, capsys):
    config = tmp_path / 'c.yaml'
    config.write_text(yaml.safe_dump({'epochs': 1, 'batch_size': 1, 'num_threads': 1,
                                      'model': CONFIG.to_dict()}))
    for cache, why in _broken_caches(files, tmp_path / 'caches').values():
        where = cache.parent if cache.suffix == '.npz' else cache
        refused(capsys, ['train', '--config', config, '--train-cache', where,
                         '--val-cache', files / 'cache', '--out-dir', tmp_path / 'run'],
                cache, why)
        refused(capsys, ['train', '--config', config, '--train-cache', files / 'cache',
                         '--val-cache', where, '--out-dir', tmp_path / 'run'], cache, why)
        refused(capsys, ['ablation', '--checkpoint', files / 'good.pt', '--val-cache', where],
                cache, why)
    assert not (tmp_path / 'run' / 'best.pt').exists()


def test_broken_bag_topics_and_bags(files, tmp_path, capsys):
    bag = files / 'a_file'  # any file is taken for a bag; the topics file is read first
    cases = {'no_such_preset': 'unknown bag topics preset'}
    texts = {'missing.yaml': None, 'not_yaml.yaml': 'image_topic: [\n',
             'list.yaml': '- a\n', 'unknown.yaml': 'imag_topic: /x\n',
             'type.yaml': 'image_topic: 5\n', 'preset.yaml': 'radar_preset: no_such_radar\n'}
    whys = {'missing.yaml': 'No such file', 'not_yaml.yaml': 'not YAML (line 2',
            'list.yaml': 'expected a mapping', 'unknown.yaml': "unknown keys ['imag_topic']",
            'type.yaml': 'image_topic must be a string', 'preset.yaml': 'no_such_radar'}
    for name, text in texts.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        cases[str(tmp_path / name)] = whys[name]
    for topics, why in cases.items():
        refused(capsys, ['cache', bag, '--out', tmp_path / 'c', '--topics', topics],
                topics, why)
        refused(capsys, ['eval', bag, '--checkpoint', files / 'good.pt', '--topics', topics,
                         '--out', tmp_path / 'r'], topics, why)
    junk = tmp_path / 'junk.mcap'
    junk.write_bytes(b'not a bag' * 50)
    refused(capsys, ['cache', junk, '--out', tmp_path / 'c', '--topics', 'sim'], junk,
            'cannot open bag')
    refused(capsys, ['cache', tmp_path / 'nothing', '--out', tmp_path / 'c'], 'nothing',
            'no such bag')


def test_outputs_that_cannot_be_written(files, tmp_path, capsys):
    blocked = files / 'a_file' / 'sub'  # a path under a regular file
    good = files / 'good.pt'
    refused(capsys, ['closed-loop', '--checkpoint', good, '--episodes', '1',
                     '--json', blocked / 'x.json'], blocked, 'does not exist')
    refused(capsys, ['ablation', '--checkpoint', good, '--val-cache', files / 'cache',
                     '--json', blocked / 'x.json'], blocked, 'does not exist')
    refused(capsys, ['eval', files / 'no_bag', '--checkpoint', good, '--out', blocked],
            files / 'a_file', 'Not a directory')
    refused(capsys, ['cache', files / 'a_file', '--out', blocked, '--topics', 'sim'],
            files / 'a_file', 'Not a directory')
    refused(capsys, ['dataset', '--out', blocked, '--splits', 'val', '--val-episodes', '1',
                     '--duration', '0.2'], files / 'a_file', 'Not a directory')
    refused(capsys, ['dataset', '--out', files, '--splits', 'cache'],
            'unknown splits', 'cache')
    (tmp_path / 'val').mkdir()
    (tmp_path / 'val' / 'manifest.json').write_text('{}')
    refused(capsys, ['dataset', '--out', tmp_path, '--splits', 'train,val'],
            tmp_path / 'val', 'already holds a cache')
    refused(capsys, ['dagger', '--checkpoint', good, '--out', blocked, '--episodes', '1',
                     '--duration', '0.2'], files / 'a_file', 'Not a directory')
    config = tmp_path / 'c.yaml'
    config.write_text(yaml.safe_dump({'train_cache': str(files / 'cache'),
                                      'val_cache': str(files / 'cache'), 'epochs': 1,
                                      'batch_size': 1, 'num_threads': 1,
                                      'model': CONFIG.to_dict()}))
    refused(capsys, ['train', '--config', config, '--out-dir', blocked], files / 'a_file',
            'Not a directory')
    refused(capsys, ['logit-prior', '--config', config, '--checkpoint', good,
                     '--out', blocked / 'x.pt'], files / 'a_file', 'Not a directory')


def test_bad_values(files, tmp_path, capsys):
    good = files / 'good.pt'
    refused(capsys, ['closed-loop', '--checkpoint', good, '--drivers', 'fused,lidar',
                     '--episodes', '1', '--duration', '0.2'], "'fused,lidar'")
    refused(capsys, ['dagger', '--checkpoint', good, '--seed', '499990', '--episodes', '20',
                     '--out', tmp_path / 'd'], 'held-out seeds')
    refused(capsys, ['cache', files / 'a_file', '--out', tmp_path / 'c', '--topics', 'sim',
                     '--frame-stride', '0'], 'frame_stride')
    refused(capsys, ['dataset', '--out', tmp_path, '--splits', 'test_perturbed',
                     '--driving-noise', '0', '--reaction-delay', '0'], 'needs driving noise')
    # a score of nothing is no score
    refused(capsys, ['ablation', '--checkpoint', good, '--val-cache', files / 'empty'],
            files / 'empty', 'holds no samples')


def test_interrupt_is_130_quietly_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
    import mm_fusion_ros.commands.ablation as ablation

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ablation, 'run', interrupted)
    try:
        assert cli_main(['ablation']) == 130
    except KeyboardInterrupt:
        pytest.fail('KeyboardInterrupt escaped cli.main')
    assert capsys.readouterr().err == ''

    def bug(args):
        raise ValueError('a bug, not a user error')

    monkeypatch.setattr(ablation, 'run', bug)
    with pytest.raises(ValueError, match='a bug'):
        cli_main(['ablation'])


def test_module_doc_does_not_list_a_subset_of_the_commands():
    # It refers to the table `mm-fusion --help` is made from, or names every command.
    doc = cli.__doc__
    assert '`COMMANDS`' in doc or all(f'`{name}`' in doc for name in COMMANDS), doc
    help_text = cli.build_parser().format_help()
    assert all(name in help_text for name in COMMANDS)


@pytest.mark.slow
def test_entry_point_on_the_measured_cases(files, tmp_path):
    """Issue 26's cases through `python -m mm_fusion_ros.cli`: one line, exit 2."""
    unknown = tmp_path / 'unknown.yaml'
    unknown.write_text('bogus_key: 1\n')
    for argv, named in (
        (['closed-loop', '--checkpoint', files / 'random.pt', '--episodes', '1'],
         files / 'random.pt'),
        (['train', '--config', unknown], unknown),
        (['train', '--config', tmp_path / 'missing.yaml'], tmp_path / 'missing.yaml'),
    ):
        run = subprocess.run([sys.executable, '-m', 'mm_fusion_ros.cli', *map(str, argv)],
                             capture_output=True, text=True, timeout=300, cwd=ROOT)
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2, run.stderr
        assert len(lines) == 1 and lines[0].startswith(f'mm-fusion {argv[0]}: '), run.stderr
        assert str(named) in lines[0] and 'Traceback' not in run.stderr


def test_graph_commands_refuse_bad_parameters_and_files(files, tmp_path, capfd):
    """`up` and `demo` check node parameters and files before any node runs.

    capfd, not capsys: rclpy's executors need a real stderr, and a node's own log line of a
    failed configure may come before the command's one line.
    """
    pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
    params = tmp_path / 'params.yaml'
    params.write_text('/**/fusion_node:\n  ros__parameters:\n    sync_slopp: 0.05\n')
    cases = [
        (['up', 'fusion', '--params-file', params], (params, 'sync_slopp')),
        (['up', 'fusion', '--params-file', tmp_path / 'none.yaml'], ('none.yaml',)),
        (['up', 'fusion', '--device', 'gpu'], ("device='gpu'",)),
        (['up', 'fusion', '--checkpoint', files / 'random.pt'],
         (files / 'random.pt', 'configure failed')),
        (['demo', '--duration', '0.5'], ('duration=0.5',)),
    ]
    for argv, names in cases:
        rc = cli_main([str(a) for a in argv])
        err = capfd.readouterr().err
        line = err.strip().splitlines()[-1]
        assert rc == 2 and 'Traceback' not in err, (argv, err)
        assert line.startswith(f'mm-fusion {argv[0]}: '), line
        for name in names:
            assert str(name) in line, (name, line)


def _broken_presets(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Radar preset files a user could write: file -> what the one line says."""
    texts = {
        'not_yaml.yaml': ('features: [x\n', 'cannot read radar preset'),
        'no_features.yaml': ('name: mine\n', 'a "features" mapping'),
        'two_sources.yaml': ('features:\n  x: {field: x, constant: 1}\n',
                             'give exactly one of field/constant/radial_from'),
        'missing_feature.yaml': ('features:\n  x: {field: x}\n', 'has no source for'),
        'bad_rate.yaml': ('rate_hz: 0\nfeatures: {x: {field: x}, y: {field: y}, '
                          'z: {field: z}, radial_velocity: {field: v}, rcs: {field: r}}\n',
                          'rate_hz must be in'),
        'bad_step.yaml': ('point_step: many\nlayout: [{name: x, offset: 0}]\nfeatures: '
                          '{x: {field: x}, y: {field: y}, z: {field: z}, '
                          'radial_velocity: {field: v}, rcs: {field: r}}\n',
                          "point_step 'many' is not an integer"),
    }
    out = {}
    for name, (text, why) in texts.items():
        (tmp / name).write_text(text)
        out[name] = (tmp / name, why)
    (tmp / 'binary.yaml').write_bytes(bytes(range(128, 256)))
    out['binary.yaml'] = (tmp / 'binary.yaml', 'cannot read radar preset')
    out['missing.yaml'] = (tmp / 'missing.yaml', 'No such file')
    return out


def test_broken_radar_preset_file(files, tmp_path, capsys):
    """A preset file that cannot be used: one line naming that file, exit 2 (issue 26 item 4)."""
    from mm_fusion_ros.errors import UserInputError
    from mm_fusion_ros.sensors.radar_presets import (
        RadarConversionError,
        RadarPresetError,
        load_preset,
    )

    assert issubclass(RadarPresetError, UserInputError) and issubclass(RadarPresetError,
                                                                       ValueError)
    assert issubclass(RadarConversionError, ValueError)
    (tmp_path / 'presets').mkdir()
    for preset, why in _broken_presets(tmp_path / 'presets').values():
        with pytest.raises(RadarPresetError) as err:
            load_preset(preset)
        assert str(preset) in str(err.value) and why in str(err.value), err.value
        topics = tmp_path / f'topics_{preset.stem}.yaml'
        topics.write_text(yaml.safe_dump({'radar_preset': str(preset)}))
        for argv in (['eval', files / 'a_file', '--checkpoint', files / 'good.pt',
                      '--topics', topics, '--out', tmp_path / 'r'],
                     ['cache', files / 'a_file', '--topics', topics, '--out', tmp_path / 'c'],
                     ['label', files / 'a_file', '--topics', topics]):
            refused(capsys, argv, topics, preset, why)


def test_up_refuses_a_broken_radar_preset_file(tmp_path, capfd):
    pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
    (tmp_path / 'presets').mkdir()
    presets = _broken_presets(tmp_path / 'presets')
    for name in ('two_sources.yaml', 'binary.yaml'):
        preset, why = presets[name]
        rc = cli_main(['up', 'fusion', '--radar-preset', str(preset)])
        err = capfd.readouterr().err
        line = err.strip().splitlines()[-1]
        assert rc == 2 and 'Traceback' not in err, err
        assert line.startswith('mm-fusion up: ') and str(preset) in line and why in line, line
