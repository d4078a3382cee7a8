"""Broken and mismatched bags give clear errors, and oversize messages are counted, not fatal."""

import shutil

import pytest

from mm_fusion_ros.bags import (
    BagLayoutError,
    BagReadError,
    BagTopics,
    OversizeMessageError,
    open_bag,
    write_episode_bag,
)
from mm_fusion_ros.sim import ScenarioConfig, run_episode

CONFIG = ScenarioConfig(seed=1, duration=0.5)


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('bags')
    frames = run_episode(CONFIG).frames
    write_episode_bag(root / 'mcap', frames, CONFIG, storage='mcap')
    write_episode_bag(root / 'sqlite3', frames, CONFIG, storage='sqlite3')
    return root


def test_missing_topic_lists_what_the_bag_has(bags):
    topics = BagTopics(name='custom', image_topic='/front/image')
    with pytest.raises(BagLayoutError) as err:
        open_bag(bags / 'mcap', topics)
    text = str(err.value)
    assert 'missing image topic /front/image' in text
    for line in ('/sensors/camera/image_raw  [sensor_msgs/msg/Image]',
                 '/sensors/radar/points  [sensor_msgs/msg/PointCloud2]',
                 '/sim/ground_truth/decision  [mm_fusion_msgs/msg/DrivingDecision]',
                 '/clock  [rosgraph_msgs/msg/Clock]'):
        assert line in text


def test_type_mismatch(bags):
    topics = BagTopics(name='wrong', radar_topic='/clock')
    with pytest.raises(BagLayoutError, match='radar topic /clock has type'
                                             ' rosgraph_msgs/msg/Clock, expected'):
        open_bag(bags / 'sqlite3', topics)
    with pytest.raises(BagLayoutError, match='has type sensor_msgs/msg/Image, expected'
                                             ' sensor_msgs/msg/CompressedImage'):
        open_bag(bags / 'mcap', BagTopics(image_kind='compressed'))
    with pytest.raises(ValueError, match='one topic in two roles'):
        BagTopics(name='wrong', radar_topic='/odom')


def test_missing_ground_truth_only_when_required(bags):
    topics = BagTopics(ground_truth_topic='/nope')
    with open_bag(bags / 'mcap', topics) as bag:
        assert not bag.has_ground_truth
    with pytest.raises(BagLayoutError, match='missing ground_truth topic /nope'):
        open_bag(bags / 'mcap', topics, require_ground_truth=True)


@pytest.mark.parametrize('storage, suffix', [('mcap', '.mcap'), ('sqlite3', '.db3')])
def test_truncated_file(bags, tmp_path, storage, suffix):
    dst = tmp_path / storage
    shutil.copytree(bags / storage, dst)
    data = dst / f'{storage}{suffix}'
    raw = data.read_bytes()
    data.write_bytes(raw[:len(raw) // 2])
    with pytest.raises(BagReadError, match='corrupt'):
        with open_bag(dst, 'sim') as bag:
            list(bag.messages())


def test_corrupt_chunk_fails_while_streaming(bags, tmp_path):
    """Intact header and summary, garbage over the middle of the data: fails mid-stream."""
    dst = tmp_path / 'mcap'
    shutil.copytree(bags / 'mcap', dst)
    data = dst / 'mcap.mcap'
    raw = bytearray(data.read_bytes())
    lo, hi = int(len(raw) * 0.3), int(len(raw) * 0.6)
    raw[lo:hi] = b'\xa5' * (hi - lo)
    data.write_bytes(bytes(raw))
    with open_bag(dst, 'sim') as bag:
        with pytest.raises(BagReadError, match='truncated or corrupt'):
            list(bag.messages())


def test_garbage_and_missing_paths(tmp_path):
    junk = tmp_path / 'junk.mcap'
    junk.write_bytes(b'not a bag at all' * 10)
    with pytest.raises(BagReadError, match='cannot open bag'):
        open_bag(junk)
    with pytest.raises(BagReadError, match='does not exist'):
        open_bag(tmp_path / 'nothing')
    (tmp_path / 'emptydir').mkdir()
    with pytest.raises(BagReadError):
        open_bag(tmp_path / 'emptydir')


def test_oversize_messages_are_rejected_and_counted(bags):
    with open_bag(bags / 'mcap', 'sim', max_message_bytes=50_000) as bag:
        kinds = [m.kind for m in bag.messages()]
        assert 'image' not in kinds and 'radar' in kinds  # a 98 kB rgb8 frame > 50 kB
        images = bag.stats.rejected_count
        assert images == 11
        assert all('> limit 50000' in r.reason for r in bag.stats.rejected)
        assert bag.stats.rejected[0].topic == '/sensors/camera/image_raw'
    with open_bag(bags / 'mcap', 'sim', max_message_bytes=50_000, strict=True) as bag:
        with pytest.raises(OversizeMessageError, match='rejected'):
            list(bag.messages())
