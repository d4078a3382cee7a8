"""Offline bag evaluation: MCAP / SQLite3 sim bags, a CARLA-layout bag, broken bags, the CLI.

A random-weight checkpoint keeps these independent of training; what is checked is the path
(sync, batching, safety layer, reports), not the model's skill.
"""

import json
import shutil

import numpy as np
import pytest

from mm_fusion_ros.actions import Action
from mm_fusion_ros.bags import load_bag_topics, open_bag
from mm_fusion_ros.bags.delivery import delivery_order
from mm_fusion_ros.cli import main
from mm_fusion_ros.evaluation.replay import (
    DecisionNodeLogic,
    OfflineJob,
    ReplayConfig,
    evaluate_bag_offline,
    load_predictor,
    merge_results,
    node_configs,
    run_offline_job,
)
from mm_fusion_ros.evaluation.replay_report import compute_metrics
from mm_fusion_ros.pipeline import FusionPipeline
from mm_fusion_ros.sensors.image import image_to_rgb
from mm_fusion_ros.sensors.odometry import forward_speed
from test.eval_fixtures import carla_bag, random_checkpoint, sim_bag

NS = 1_000_000_000


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp('eval')
    random_checkpoint(root / 'random.pt')
    sim_bag(root / 'mcap', storage='mcap')
    sim_bag(root / 'sqlite3', storage='sqlite3')
    return root


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_offline_eval_sim_bag(root, storage):
    topics = load_bag_topics('sim')
    result = run_offline_job(OfflineJob(str(root / storage), topics, str(root / 'random.pt'),
                                        replay=ReplayConfig(batch_size=8)))
    f = result.frames
    assert result.num_frames == 61 and result.counts['radar_frames'] == 61
    assert (f['action'] >= 0).all() and (f['truth_action'] >= 0).all()
    assert np.all(np.diff(f['stamp_ns']) > 0)
    assert result.duration_s == pytest.approx(3.05)
    m = compute_metrics(f, result.duration_s)
    assert m['frames_with_ground_truth'] == 61
    assert 0.0 <= m['ground_truth']['accuracy'] <= 1.0
    assert m['latency']['median_ms'] > 0


def test_storages_and_batch_sizes_give_the_same_decisions(root):
    topics = load_bag_topics('sim')
    ckpt = str(root / 'random.pt')
    a = run_offline_job(OfflineJob(str(root / 'mcap'), topics, ckpt,
                                   replay=ReplayConfig(batch_size=1)))
    b = run_offline_job(OfflineJob(str(root / 'sqlite3'), topics, ckpt,
                                   replay=ReplayConfig(batch_size=64)))
    np.testing.assert_array_equal(a.frames['stamp_ns'], b.frames['stamp_ns'])
    np.testing.assert_array_equal(a.frames['action'], b.frames['action'])
    np.testing.assert_allclose(a.frames['accel'], b.frames['accel'], atol=1e-4)


def test_offline_equals_per_frame_pipeline_and_safety(root):
    """Batched offline eval == the node path run frame by frame (predict, not predict_batch)."""
    topics = load_bag_topics('sim')
    predictor = load_predictor(str(root / 'random.pt'))
    configs = node_configs(topics)
    pipeline = FusionPipeline(predictor, configs.pipeline)
    decider = DecisionNodeLogic(configs.safety)
    from mm_fusion_ros.sensors.radar_presets import load_preset

    convert = load_preset('sim').converter()
    expected, accel = [], []
    with open_bag(root / 'mcap', topics) as bag:
        for ev in delivery_order(bag, configs.pipeline.sync_slop, 0.5, 0.02):
            if ev.kind == 'radar':
                pipeline.add_radar(ev.stamp_ns, pipeline.radar_points(ev.msg))
                decider.on_radar(ev.clock_ns, convert(ev.msg))
            elif ev.kind == 'odometry':
                pipeline.add_odometry(ev.stamp_ns, forward_speed(ev.msg))
            elif ev.kind == 'camera':
                assert pipeline.speed_at(ev.stamp_ns) is not None, 'odometry not delivered'
                raw = pipeline.decide(ev.stamp_ns, image_to_rgb(ev.msg))
                assert 'odometry' not in raw.degraded_reason
                final = decider.on_decision(ev.clock_ns, raw)
                expected.append(int(final.action))
                accel.append(final.target_acceleration)
    got = evaluate_bag_offline(root / 'mcap', topics, predictor, ReplayConfig(batch_size=16))
    np.testing.assert_array_equal(got.frames['action'], expected)
    np.testing.assert_allclose(got.frames['accel'], accel, atol=1e-4)


def test_delivery_order_pairs_radar_before_its_camera(root):
    with open_bag(root / 'mcap', 'sim') as bag:
        events = [e for e in delivery_order(bag, 0.06, 0.5, radar_lead=0.02)
                  if e.kind in ('camera', 'radar')]  # the others pass through in log order
    clocks = [e.clock_ns for e in events]
    assert clocks == sorted(clocks)
    cams = [e.stamp_ns for e in events if e.kind == 'camera']
    for i, e in enumerate(events):
        if e.kind != 'camera':
            continue
        before = [r.stamp_ns for r in events[:i] if r.kind == 'radar']
        # the radar frame nearest this camera frame is always delivered before it
        nearest = min(before + [r.stamp_ns for r in events[i:] if r.kind == 'radar'],
                      key=lambda s: abs(s - e.stamp_ns))
        assert nearest in before, (e.stamp_ns, nearest)
    assert len(cams) == 61


def test_carla_layout_bag_without_ground_truth(root, tmp_path):
    bag = carla_bag(tmp_path / 'carla')
    out = tmp_path / 'report'
    rc = main(['eval', str(bag), '--topics', 'carla', '--checkpoint', str(root / 'random.pt'),
               '--compare-checkpoint', str(root / 'random.pt'), '--out', str(out), '--quiet'])
    assert rc == 0
    data = json.loads((out / 'metrics.json').read_text())
    m = data['metrics']
    assert m['frames'] == 30 and 'ground_truth' not in m
    assert m['compare']['agreement'] == 1.0  # same weights
    assert data['bags'][0]['topics'] == 'carla'
    for name in ('summary.md', 'index.html', 'latency.png', 'timeline.png'):
        assert (out / name).stat().st_size > 0


def test_cli_report_with_ground_truth_and_auto_topics(root, tmp_path, capsys):
    out = tmp_path / 'report'
    rc = main(['eval', str(root / 'mcap'), str(root / 'sqlite3'), '--checkpoint',
               str(root / 'random.pt'), '--out', str(out), '--quiet'])
    assert rc == 0
    m = json.loads((out / 'metrics.json').read_text())['metrics']
    assert m['frames'] == 122 and m['duration_s'] == pytest.approx(6.1)
    assert 'false_brake_per_hour' in m['ground_truth']
    assert (out / 'confusion.png').is_file()
    assert 'accuracy' in capsys.readouterr().out


def test_missing_topic_exits_2_listing_the_bag(root, tmp_path, capsys):
    layout = tmp_path / 'layout.yaml'
    layout.write_text('name: mine\nimage_topic: /front/image\nradar_topic: /sensors/radar/points\n'
                      'radar_preset: sim\nground_truth_topic: null\nexpert_topic: null\n'
                      'episode_topic: null\n')
    rc = main(['eval', str(root / 'mcap'), '--topics', str(layout), '--checkpoint',
               str(root / 'random.pt'), '--out', str(tmp_path / 'r'), '--quiet'])
    err = capsys.readouterr().err
    assert rc == 2
    assert 'missing image topic /front/image' in err
    assert '/sensors/camera/image_raw  [sensor_msgs/msg/Image]' in err  # what the bag has


def test_type_mismatch_exits_2(root, tmp_path, capsys):
    layout = tmp_path / 'layout.yaml'
    layout.write_text('name: swapped\nimage_topic: /sensors/camera/camera_info\n'
                      'radar_topic: /sensors/radar/points\nradar_preset: sim\n'
                      'ground_truth_topic: null\nexpert_topic: null\nepisode_topic: null\n')
    rc = main(['eval', str(root / 'mcap'), '--topics', str(layout), '--checkpoint',
               str(root / 'random.pt'), '--quiet', '--out', str(tmp_path / 'r')])
    assert rc == 2
    assert 'has type sensor_msgs/msg/CameraInfo' in capsys.readouterr().err


def test_corrupt_and_truncated_bags_exit_2(root, tmp_path, capsys):
    junk = tmp_path / 'junk.mcap'
    junk.write_bytes(b'not a bag' * 50)
    args = ['--checkpoint', str(root / 'random.pt'), '--quiet', '--out', str(tmp_path / 'r')]
    assert main(['eval', str(junk), '--topics', 'sim'] + args) == 2
    assert 'cannot open bag' in capsys.readouterr().err
    dst = tmp_path / 'trunc'
    shutil.copytree(root / 'mcap', dst)
    data = dst / 'mcap.mcap'
    raw = bytearray(data.read_bytes())
    lo, hi = int(len(raw) * 0.3), int(len(raw) * 0.6)
    raw[lo:hi] = b'\xa5' * (hi - lo)
    data.write_bytes(bytes(raw))
    assert main(['eval', str(dst), '--topics', 'sim'] + args) == 2
    assert 'corrupt' in capsys.readouterr().err
    assert main(['eval', str(tmp_path / 'nothing')] + args) == 2


def test_merge_concatenates_in_bag_order(root):
    topics = load_bag_topics('sim')
    ckpt = str(root / 'random.pt')
    a = run_offline_job(OfflineJob(str(root / 'mcap'), topics, ckpt))
    b = run_offline_job(OfflineJob(str(root / 'sqlite3'), topics, ckpt, bag_index=5))
    frames, duration = merge_results([a, b])
    assert duration == pytest.approx(a.duration_s + b.duration_s)
    np.testing.assert_array_equal(frames['bag'], [0] * 61 + [1] * 61)
    np.testing.assert_array_equal(frames['action'][:61], a.frames['action'])
    assert int(Action.STOP) in (2,)  # class order the metrics rely on
