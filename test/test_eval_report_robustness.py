"""Bag evaluation with broken messages and no odometry: nothing is lost, everything is reported.

A simulator bag (JPEG camera) is rewritten with three undecodable camera frames (a PNG with a
truncated IHDR chunk, random bytes, empty data), one truncated radar cloud and no odometry.
The offline evaluation must keep every frame (fallback STOPs for the broken ones), count the
rejects by reason, and say at the top of summary.md and index.html what was rejected, which
decisions fell back or were degraded, and why. Latency figures must be per frame.
"""

import json

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer

from mm_fusion_ros.bags import load_bag_topics, write_episode_bag
from mm_fusion_ros.bags.typestore import project_typestore
from mm_fusion_ros.cli import main
from mm_fusion_ros.evaluation.metrics import (
    DEGRADED_REASONS,
    REJECT_REASONS,
    count_reasons,
    reason_labels,
    reason_mask,
)
from mm_fusion_ros.evaluation.replay import ReplayConfig, evaluate_bag_offline, load_predictor
from mm_fusion_ros.evaluation.replay_report import (
    ThumbnailSampler,
    draw_radar,
    project_radar,
)
from mm_fusion_ros.sim import run_episode
from test.eval_fixtures import CONFIGS, random_checkpoint, sim_bag
from test.fuzz_cases import png_with_ihdr_length

BAD_IMAGES = {5: png_with_ihdr_length(5), 12: b'\x17' * 300, 20: b''}  # frame index -> data
BAD_RADAR = 30  # this radar message loses half of its data


def rewrite_bag(src, dst, edit) -> None:
    """Copy a bag; `edit(topic, index_on_topic, msg)` returns the message to write, or None."""
    store = project_typestore()
    with Reader(src) as reader, Writer(dst, version=Writer.VERSION_LATEST) as writer:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=store)
                 for c in reader.connections}
        seen: dict[str, int] = {}
        for conn, stamp, raw in reader.messages():
            i = seen[conn.topic] = seen.get(conn.topic, -1) + 1
            msg = edit(conn.topic, i, store.deserialize_cdr(raw, conn.msgtype))
            if msg is not None:
                writer.write(conns[conn.id], stamp, store.serialize_cdr(msg, conn.msgtype))


def _break(topic, i, msg):
    if topic == '/odom':
        return None
    if topic.endswith('/compressed') and i in BAD_IMAGES:
        msg.data = np.frombuffer(BAD_IMAGES[i], np.uint8)
    if topic == '/sensors/radar/points' and i == BAD_RADAR:
        msg.data = msg.data[:len(msg.data) // 2]
    return msg


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp('robust')
    random_checkpoint(root / 'random.pt')
    write_episode_bag(root / 'clean', run_episode(CONFIGS[0]).frames, CONFIGS[0],
                      compressed_images=True)
    rewrite_bag(root / 'clean', root / 'broken', _break)
    sim_bag(root / 'raw')
    return root


@pytest.fixture(scope='module')
def report(root):
    out = root / 'report'
    rc = main(['eval', str(root / 'broken'), '--topics', 'sim_compressed', '--checkpoint',
               str(root / 'random.pt'), '--out', str(out), '--quiet'])
    assert rc == 0
    return out


def test_bad_messages_are_counted_by_reason_and_become_fallbacks(report):
    data = json.loads((report / 'metrics.json').read_text())
    m, bag = data['metrics'], data['bags'][0]
    assert m['frames'] == m['frames_with_decision'] == 61  # no frame lost
    assert bag['counts']['image_rejected'] == 3 and bag['counts']['radar_rejected'] == 1
    assert bag['rejects'] == {'image': {'corrupt_compressed': 2, 'empty': 1},
                              'radar': {'size_mismatch': 1}}
    rb = m['robustness']
    assert rb['rejected_frames'] == 3
    assert rb['rejected_by_reason'] == {'corrupt_compressed': 2, 'empty': 1}
    assert rb['fallback_frames'] >= 3
    assert rb['fallback_by_reason']['camera frame rejected'] == 3
    # Without odometry every decision is degraded: the report says so, and why.
    assert rb['degraded_frames'] == 61
    assert rb['degraded_by_reason']['no odometry (ego speed unknown)'] == 58
    assert rb['degraded_by_reason']['camera frame rejected'] == 3
    frames = np.load(report / 'frames.npz')
    rejected = np.flatnonzero(frames['reject'] >= 0)
    np.testing.assert_array_equal(rejected, sorted(BAD_IMAGES))
    assert {REJECT_REASONS[c] for c in frames['reject'][rejected]} == {'corrupt_compressed',
                                                                       'empty'}
    assert (frames['model_action'][rejected] == -1).all()
    assert (frames['action'][rejected] == 2).all()  # the fallback: STOP


def test_summary_and_index_open_with_the_rejects_and_degraded_reasons(report):
    summary = (report / 'summary.md').read_text()
    top = summary.split('## Decisions')[0]
    assert '61 frames' in top and '61 with a decision (58 from the model, 3 fallback)' in top
    assert ('| camera frames rejected by the decoder | 3 of 61 |'
            ' corrupt_compressed: 2, empty: 1 |') \
        in top
    assert '| radar clouds rejected | 1 of 61 | size_mismatch: 1 |' in top
    assert 'no odometry (ego speed unknown): 58' in top and '| degraded decisions | 61 of 61 |' \
        in top
    page = (report / 'index.html').read_text()
    assert '<pre>' not in page and page.count('<table') >= 5
    first = page.index('Rejected inputs, fallbacks and degraded decisions')
    assert first < page.index('<h2>Decisions') < page.index('<h2>Latency')
    assert page.index('corrupt_compressed: 2, empty: 1') < page.index('<h2>Decisions')
    assert 'no odometry (ego speed unknown): 58' in page[:page.index('<h2>Decisions')]


def test_index_shows_model_and_final_side_by_side_and_bag_thumbnails(report):
    page = (report / 'index.html').read_text()
    assert 'Model vs expert' in page and 'Final vs expert' in page
    assert "Where the final decision differs from the model's" in page
    thumbs = sorted((report / 'bags').glob('bag000_thumb*.png'))
    assert 3 <= len(thumbs) <= 5
    assert (report / 'bags' / 'bag000_timeline.png').stat().st_size > 0
    for t in thumbs:
        assert f'src="bags/{t.name}"' in page
    m = json.loads((report / 'metrics.json').read_text())
    assert 'thumbnails' not in m['bags'][0]  # images go to PNGs, not into the JSON


def test_offline_latency_is_a_per_frame_figure(root):
    # One batch of 61 frames: the model time alone is one value spread over all of them; the
    # figure must come from each frame's own work, so it varies from frame to frame.
    predictor = load_predictor(str(root / 'random.pt'))
    result = evaluate_bag_offline(root / 'raw', load_bag_topics('sim'), predictor,
                                  ReplayConfig(batch_size=64))
    lat = result.frames['latency_s']
    assert result.num_frames == 61 and np.isfinite(lat).all() and (lat > 0).all()
    assert len(np.unique(lat)) == 61
    assert np.percentile(lat, 99) > np.median(lat)


def test_reason_codes_round_trip():
    both = 'no radar frame at the camera stamp; no odometry (ego speed unknown)'
    assert reason_labels(reason_mask(both)) == both.split('; ')
    # A decoder message may hold '; ' (a CompressedImage format does): still one reason.
    assert reason_labels(reason_mask("camera frame rejected: cannot decode ('rgb8; jpeg')")) \
        == ['camera frame rejected']
    assert reason_labels(reason_mask('radar stale (0.350 s); something new')) == [
        'radar stale', 'other']
    assert reason_mask('') == 0 and reason_labels(-1) == []
    masks = np.array([0, reason_mask(both), reason_mask('no radar history'), -1])
    assert count_reasons(masks) == {'no radar history': 1,
                                    'no radar frame at the camera stamp': 1,
                                    'no odometry (ego speed unknown)': 1}
    assert len(DEGRADED_REASONS) < 31  # fits the int32 mask


def test_thumbnail_sampler_stays_bounded_and_spread():
    sampler = ThumbnailSampler(capacity=8, period_s=0.5, max_width=128)
    rgb = np.zeros((128, 256, 3), np.uint8)
    for i in range(20 * 60):  # one minute at 20 Hz
        stamp = i * 50_000_000
        if sampler.due(stamp):
            sampler.add(stamp, rgb, None)
    thumbs = sampler.thumbnails
    assert 4 <= len(thumbs) < 8
    assert thumbs[0].rgb.shape == (64, 128, 3)
    gaps = np.diff([t.stamp_ns for t in thumbs])
    assert gaps.min() == gaps.max()  # evenly spaced over the whole minute
    assert thumbs[-1].stamp_ns > 40e9


def test_radar_points_project_where_the_simulator_camera_sees_them():
    from mm_fusion_ros.sim.camera import CameraConfig
    from mm_fusion_ros.sim.radar import RadarConfig

    cam, rad = CameraConfig(), RadarConfig()
    at_camera_height = cam.mount_height - rad.mount_z
    pts = np.array([[20.0, 0.0, at_camera_height, 0, 0],   # straight ahead: image centre
                    [20.0, 3.0, at_camera_height, 0, 0],   # 3 m to the left: left half
                    [-5.0, 0.0, 0.0, 0, 0],                # behind the camera: dropped
                    [40.0, 0.0, -rad.mount_z, 0, 0]],      # on the road: below the centre
                   np.float32)
    u, v, depth, idx = project_radar(pts, 256, 128)
    assert list(idx) == [3, 0, 1]  # far to near, the point behind is gone
    assert depth[1] == pytest.approx(20.0 + rad.mount_x - cam.mount_x)
    assert u[1] == pytest.approx(128.0) and v[1] == pytest.approx(64.0)
    assert u[2] < 128.0 and v[0] > 64.0
    img = draw_radar(np.full((128, 256, 3), 90, np.uint8), pts)
    assert (img[64, 128] != 90).any() and (img[5, 5] == 90).all()
