"""Bring your own rig: foreign-rig bags through geometry, replay, scoring and the cache.

The bags have /tf_static, CameraInfo, the CARLA radar layout and no decision topic.
"""

import json
import logging
import math

import numpy as np
import pytest

from mm_fusion_ros.bags import load_bag_topics
from mm_fusion_ros.bags.rig import bag_geometry, camera_body_mount, optical_to_body
from mm_fusion_ros.commands.record import record_episode, write_rig_layout
from mm_fusion_ros.data.cache import build_cache_from_bags, load_manifest
from mm_fusion_ros.evaluation.recorded_driver import (
    add_recorded_driver,
    brake_onset_timing,
    recorded_driver_metrics,
)
from mm_fusion_ros.evaluation.replay import ReplayConfig, evaluate_bag_offline, load_predictor
from mm_fusion_ros.evaluation.replay_report import compute_metrics, markdown_summary
from mm_fusion_ros.sensors.extrinsics import Extrinsic
from mm_fusion_ros.sensors.front_end import RadarToModel
from mm_fusion_ros.sim import ScenarioConfig, ScenarioType
from mm_fusion_ros.sim.conditions import Condition
from mm_fusion_ros.sim.rig import FOREIGN_RIG, RigSensors
from mm_fusion_ros.sim.simulator import SimOptions, Simulator
from test.eval_fixtures import random_checkpoint, sim_bag

CONFIG = ScenarioConfig(scenario=ScenarioType.LEAD_BRAKE, condition=Condition.CLEAR, seed=5,
                        duration=4.0)


@pytest.fixture(scope='module')
def foreign(tmp_path_factory):
    """Two short foreign-rig bags, their topics.yaml and a random-weight checkpoint."""
    root = tmp_path_factory.mktemp('foreign')
    write_rig_layout(root, 'foreign', compressed=True)
    for i, seed in enumerate((5, 6)):
        config = ScenarioConfig(scenario=ScenarioType.LEAD_CRUISE, condition=Condition.CLEAR,
                                seed=seed, duration=4.0)  # no lane change cut by the ends
        record_episode(config, str(root / f'bag{i}'), 'mcap', True, 'foreign')
    random_checkpoint(root / 'random.pt')
    return root


def test_foreign_bag_has_no_decision_topic_and_hidden_labels(foreign):
    from rosbags.rosbag2 import Reader

    with Reader(foreign / 'bag0') as reader:
        topics = set(reader.topics)
    assert '/tf_static' in topics and '/sensors/camera/camera_info' in topics
    assert not any('ground_truth' in t for t in topics)
    hidden = json.loads((foreign / 'hidden_labels' / 'bag0.json').read_text())
    assert len(hidden['labels']) == 81  # 4 s at 20 Hz, plus the first frame


def test_geometry_comes_from_tf_static_and_camera_info(foreign):
    geometry = bag_geometry(foreign / 'bag0', load_bag_topics(foreign / 'topics.yaml'))
    assert geometry.radar_mount == 'tf_static' and geometry.camera_mount == 'tf_static'
    np.testing.assert_allclose(geometry.rig.radar_mount.values, FOREIGN_RIG.radar_mount.values,
                               atol=1e-9)
    # The image is in the optical frame: its pose is turned back into the body frame.
    np.testing.assert_allclose(geometry.rig.camera_mount.values,
                               FOREIGN_RIG.camera_mount.values, atol=1e-9)
    cam = geometry.rig.camera
    assert (cam.width, cam.height) == (640, 360)
    assert cam.fx == pytest.approx(320 / math.tan(math.radians(37.5)))
    assert not geometry.warning


def test_optical_frames_are_told_by_their_axes():
    body = Extrinsic(1.0, 0.2, 1.3, 0.0, 0.05, -0.02)
    optical = body.compose(Extrinsic.from_matrix(
        np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]), (0, 0, 0)))
    np.testing.assert_allclose(optical_to_body(optical).values, body.values, atol=1e-12)
    np.testing.assert_allclose(camera_body_mount(optical).values, body.values, atol=1e-12)
    assert camera_body_mount(body) == body


def test_missing_transform_falls_back_to_parameters_with_one_warning(tmp_path, caplog):
    """A layout that names /tf_static on a bag without it: the params mounts, one warning."""
    from dataclasses import replace

    bag = sim_bag(tmp_path / 'sim')
    topics = replace(load_bag_topics('sim'), tf_static_topic='/tf_static')
    with caplog.at_level(logging.WARNING, logger='mm_fusion_ros.bags.rig'):
        geometry = bag_geometry(bag, topics)
    assert geometry.radar_mount == 'params' and geometry.camera_mount == 'params'
    assert 'no /tf_static in the bag' in geometry.warning
    assert len([r for r in caplog.records if r.name == 'mm_fusion_ros.bags.rig']) == 1
    # The simulator's own layout names no TF: no warning, the training rig, CameraInfo read.
    quiet = bag_geometry(bag, load_bag_topics('sim'))
    assert not quiet.warning and quiet.rig.camera.width == 256


def test_foreign_radar_through_tf_gives_the_training_radars_points():
    """The offset, yawed radar, through its mount, gives the level radar's points.

    Up to the rig radar's own position (x, z) on the vehicle, which the model frame keeps.
    """
    rig = FOREIGN_RIG
    sim = Simulator(CONFIG, rig.sim_options())
    frame = next(f for f in (sim.reset(),) if f.radar is not None)
    foreign_pts = RigSensors(rig).radar(frame.radar)
    # Through the model front end: rig radar frame -> vehicle -> model radar frame.
    to_model = RadarToModel('sim', rig.radar_mount)
    from mm_fusion_ros.sensors.pointcloud import PointCloudMsg, create_cloud
    from mm_fusion_ros.sensors.radar_presets import load_preset

    cloud = create_cloud(None, load_preset('sim').layout_fields(),
                         np.asarray(foreign_pts[:, :5], np.float32), msg_type=PointCloudMsg)
    model_pts = to_model(cloud)
    expected = frame.radar[:, :3] + np.array([rig.radar_mount.x - 2.3, 0.0,
                                              rig.radar_mount.z - 0.5])
    np.testing.assert_allclose(model_pts[:, :3], expected, atol=1e-3)
    np.testing.assert_allclose(model_pts[:, 3], frame.radar[:, 3], atol=1e-6)


def test_radar_rate_gives_15_hz_stamps():
    from mm_fusion_ros.sim.simulator import expert_policy

    sim = Simulator(CONFIG, SimOptions(radar_rate=15.0, radar_jitter=0.0,
                                       render_camera=False))
    frames = [sim.reset()]
    while len(frames) < 60:
        frames.append(sim.step(expert_policy(frames[-1])))
    stamps = np.array([f.radar_stamp for f in frames if f.radar is not None])
    assert 40 <= len(stamps) <= 45  # 3 s at 15 Hz, minus frames the radar model drops
    np.testing.assert_allclose(np.median(np.diff(stamps)), 1 / 15, atol=2e-3)


def test_replay_uses_the_bags_geometry(foreign):
    topics = load_bag_topics(foreign / 'topics.yaml')
    predictor = load_predictor(str(foreign / 'random.pt'))
    with_tf = evaluate_bag_offline(foreign / 'bag0', topics, predictor, ReplayConfig())
    ignored = evaluate_bag_offline(foreign / 'bag0', topics, predictor,
                                   ReplayConfig(geometry='none'))
    assert 'radar mount: tf_static' in with_tf.info['geometry']
    assert 'CameraInfo 640x360' in with_tf.info['geometry']
    assert ignored.info['geometry'].startswith('training rig')
    assert with_tf.num_frames == ignored.num_frames == 81
    assert with_tf.counts['image_rejected'] == 0
    with pytest.raises(ValueError, match='geometry'):
        ReplayConfig(geometry='tf')


def test_recorded_driver_block_says_it_is_not_ground_truth(foreign):
    topics = load_bag_topics(foreign / 'topics.yaml')
    predictor = load_predictor(str(foreign / 'random.pt'))
    result = evaluate_bag_offline(foreign / 'bag0', topics, predictor, ReplayConfig())
    assert (result.frames['truth_action'] < 0).all()
    add_recorded_driver([result], [topics])
    assert (result.frames['driver_action'] >= 0).sum() > 60
    metrics = compute_metrics(result.frames, result.duration_s)
    block = metrics['recorded_driver']
    assert 'not ground truth' in block['meaning']
    assert set(block) >= {'macro_f1', 'per_class_f1', 'accel_mae', 'brake_onset'}
    assert 0.0 <= block['macro_f1'] <= 1.0 and block['accel_mae'] >= 0.0
    assert set(block['brake_onset']) >= {'median_s', 'mean_abs_s', 'missed', 'driver_onsets'}
    summary = markdown_summary(metrics, [result.summary()], 't')
    assert 'Not ground truth' in summary and 'accuracy figures omitted' not in summary
    assert 'ground_truth' not in metrics


def test_brake_onset_timing_is_signed_and_matched_per_bag():
    n = 40
    frames = {'bag': np.r_[np.zeros(20), np.ones(20)].astype(np.int32),
              'stamp_ns': np.arange(n, dtype=np.int64) * 50_000_000,
              'driver_action': np.zeros(n, np.int64), 'action': np.zeros(n, np.int64)}
    frames['driver_action'][5:10] = 3   # onset at 0.25 s in bag 0
    frames['action'][7:12] = 2          # the model 0.1 s later
    frames['driver_action'][25:30] = 2  # an onset in bag 1 the model never answers
    timing = brake_onset_timing(frames)
    assert timing['driver_onsets'] == 2 and timing['matched'] == 1 and timing['missed'] == 1
    assert timing['median_s'] == pytest.approx(0.1)
    frames['driver_accel'] = np.zeros(n, np.float32)
    frames['accel'] = np.ones(n, np.float32)
    frames['model_action'] = frames['action']
    assert recorded_driver_metrics(frames)['accel_mae'] == pytest.approx(1.0)


def test_labels_know_the_carla_layout_has_no_rcs(foreign):
    """Its rcs is the preset's constant: the lead rule counts returns instead (labels.lead)."""
    from mm_fusion_ros.labels.bag import read_label_inputs

    topics = load_bag_topics(str(foreign / 'topics.yaml'))
    assert read_label_inputs(foreign / 'bag0', topics).radar_rcs is False


def test_cache_takes_bags_without_a_label_topic(foreign, tmp_path):
    topics = load_bag_topics(foreign / 'topics.yaml')
    result = build_cache_from_bags([foreign / 'bag0'], tmp_path / 'cache', topics,
                                   labels='auto')
    manifest = load_manifest(tmp_path / 'cache')
    source = manifest['sources'][0]
    assert source['labels'] == 'derived' and 'tf_static' in source['geometry']
    assert result.samples == source['samples'] > 60
    assert source['unlabelled'] == 81 - result.samples
    assert sum(source['unlabelled_reasons'].values()) == source['unlabelled']
    with np.load(tmp_path / 'cache' / manifest['shards'][0]['file']) as shard:
        assert shard['image'].shape[1:] == (128, 256, 3)  # the canonical view
        assert np.isfinite(shard['target_accel']).all()
    from mm_fusion_ros.bags import BagLayoutError

    with pytest.raises(BagLayoutError, match='ground_truth'):
        build_cache_from_bags([foreign / 'bag1'], tmp_path / 'c2', topics, labels='topic')


def test_single_difference_rigs_change_one_thing_each():
    """`foreign-*` rigs: the training rig with one of the foreign rig's differences each."""
    from dataclasses import fields

    from mm_fusion_ros.sim.rig import RIGS, TRAINING_RIG

    groups = {'camera': {'camera_width', 'camera_height', 'camera_hfov', 'camera_mount'},
              'radar-mount': {'radar_mount'}, 'radar-rate': {'radar_rate'},
              'radar-layout': {'radar_preset'}}
    rgb = np.random.default_rng(0).integers(0, 255, (128, 256, 3), np.uint8)
    points = np.array([[20.0, 1.0, 0.0, -3.0, 5.0]], np.float32)
    for part, names in groups.items():
        rig = RIGS[f'foreign-{part}']
        changed = {f.name for f in fields(rig)
                   if getattr(rig, f.name) != getattr(TRAINING_RIG, f.name)} - {'name'}
        assert changed == names, (part, changed)
        assert not rig.is_training  # recorded without a decision topic, hidden labels
        sensors = RigSensors(rig)
        if part == 'camera':  # drawn by a wider level camera, resampled into the rig's
            render = rig.render_camera()
            out = sensors.image(np.zeros((render.height, render.width, 3), np.uint8))
            assert out.shape == (rig.camera_height, rig.camera_width, 3)
        else:
            assert sensors.image(rgb) is rgb
        assert (sensors.radar(points) is points) == (part != 'radar-mount')
