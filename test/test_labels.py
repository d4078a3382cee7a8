"""Labels from logged driving: each rule on synthetic odometry/radar, unlabelled frames, bags.

The synthetic drives are 20 Hz odometry integrated from per-step accelerations (what a
jerk-limited car does), and radar frames with a car's rear face as three points. The end-to-end
test records simulator episodes into tmp_path and scores the derived labels against the expert.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer

from mm_fusion_ros.actions import Action
from mm_fusion_ros.bags import project_typestore
from mm_fusion_ros.cli import main as cli_main
from mm_fusion_ros.labels import (
    UNLABELLED,
    UNLABELLED_REASONS,
    LabelConfig,
    OdometrySeries,
    derive_labels,
    label_config,
)
from mm_fusion_ros.labels.bag import MissingOdometryError, label_bag, read_label_inputs
from mm_fusion_ros.labels.odometry import commanded_accel, step_breaks
from mm_fusion_ros.params.spec import ParamError

NS = 1_000_000_000
DT = 0.05
T0 = 1_700_000_000 * NS
C = LabelConfig()
CRUISE, FOLLOW, STOP, EMERGENCY = (int(Action.CRUISE), int(Action.FOLLOW), int(Action.STOP),
                                   int(Action.EMERGENCY_BRAKE))
LEFT, RIGHT = int(Action.CHANGE_LANE_LEFT), int(Action.CHANGE_LANE_RIGHT)


def drive(accels, v0=14.0, lateral=None):
    """Odometry (and stamps) at 20 Hz from per-step accelerations; lateral: y per reading."""
    n = len(accels) + 1
    v = np.empty(n)
    v[0] = v0
    for k, a in enumerate(accels):
        v[k + 1] = max(0.0, v[k] + a * DT)
    x = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * DT)])
    y = np.zeros(n) if lateral is None else np.asarray(lateral, float)
    stamps = T0 + np.arange(n) * round(DT * NS)
    return OdometrySeries.from_arrays(stamps, x, y, v), stamps


def car_points(gap, dy, closing, rcs=10.0):
    """A car's rear face (three returns) `gap` metres ahead, `dy` to the left, closing [m/s]."""
    return np.array([[gap + 0.05 * k, dy + 0.8 * (k - 1), 0.3, -closing, rcs]
                     for k in range(3)], np.float32)


def radar(stamps, lead=None):
    """One radar frame per camera stamp, 5 ms late; `lead(i)` -> (gap, dy, closing) or None."""
    frames = []
    for i, t in enumerate(stamps):
        car = lead(i) if lead else None
        pts = car_points(*car) if car else np.zeros((0, 5), np.float32)
        frames.append((int(t) + 5_000_000, pts))
    return frames


def stopped_car(odo, gap0, dy=0.0):
    """A car standing `gap0` metres ahead of the ego's start, seen from the moving ego."""
    return lambda i: (gap0 - odo.x[i], dy, odo.speed[i])


def quintic(p):
    p = np.clip(p, 0.0, 1.0)
    return p ** 3 * (10.0 + p * (-15.0 + 6.0 * p))


# -- rules ------------------------------------------------------------------------------------
def test_cruise_on_a_free_road_and_the_ends_unlabelled():
    odo, stamps = drive(np.zeros(100))
    lab = derive_labels(odo, radar(stamps), stamps)
    assert lab.actions[0] == UNLABELLED and lab.actions[-1] == UNLABELLED
    assert UNLABELLED_REASONS[lab.reasons[0]] == 'before_odometry'
    assert UNLABELLED_REASONS[lab.reasons[-1]] == 'end_of_odometry'
    assert np.all(lab.actions[1:-1] == CRUISE)
    assert np.allclose(lab.accels[1:-1], 0.0, atol=1e-6) and np.isnan(lab.accels[-1])
    assert lab.reason_counts()['end_of_odometry'] == 1 and lab.class_counts()['cruise'] == 99
    assert lab.at(int(stamps[5])) == (CRUISE, 0.0, -1)  # what a cache looks up per frame
    with pytest.raises(KeyError):
        lab.at(int(stamps[5]) + 1)


def test_follow_by_the_gap_rule_and_adjacent_lanes_ignored():
    odo, stamps = drive(np.zeros(80))
    mid = slice(1, -1)
    near = derive_labels(odo, radar(stamps, lambda i: (30.0, 0.2, 0.0)), stamps)
    assert np.all(near.actions[mid] == FOLLOW)
    assert np.allclose(near.lead.gap[mid], 30.0, atol=0.2)
    far = derive_labels(odo, radar(stamps, lambda i: (55.0, 0.0, 0.0)), stamps)
    assert np.all(far.actions[mid] == CRUISE)  # beyond follow_gap, not closing
    closing = derive_labels(odo, radar(stamps, lambda i: (60.0 - 3.0 * i * DT, 0.0, 3.0)),
                            stamps)
    assert np.all(closing.actions[mid] == FOLLOW)  # within follow_closing_gap, closing 3 m/s
    beside = derive_labels(odo, radar(stamps, lambda i: (20.0, 3.5, 0.0)), stamps)
    assert np.all(beside.actions[mid] == CRUISE)  # a car in the next lane is no lead
    weak = derive_labels(odo, radar(stamps, lambda i: (20.0, 0.0, 0.0, -8.0)), stamps)
    assert np.all(weak.actions[mid] == CRUISE)  # a weak reflector (clutter) is no vehicle


def test_without_rcs_a_vehicle_is_a_target_with_several_returns():
    """A radar without rcs (CARLA's preset: a constant 10 dBsm) cannot tell a weak reflector.

    A pedestrian or a clutter point (one return per detection) then counts as no vehicle,
    a car's rear face (three returns) does; with rcs the rcs decides as before.
    """
    odo, stamps = drive(np.zeros(80))
    mid = slice(1, -1)

    def single(i):  # one strong-looking return in the lane: what rcs-less clutter shows
        return [(int(t) + 5_000_000, np.array([[20.0, 0.1, 1.0, 0.0, 10.0]], np.float32))
                for t in stamps]

    assert np.all(derive_labels(odo, single(0), stamps).actions[mid] == FOLLOW)
    assert np.all(derive_labels(odo, single(0), stamps, radar_rcs=False).actions[mid] == CRUISE)
    car = radar(stamps, lambda i: (20.0, 0.0, 0.0))
    assert np.all(derive_labels(odo, car, stamps, radar_rcs=False).actions[mid] == FOLLOW)
    stricter = LabelConfig(vehicle_min_returns=4.0)
    assert np.all(derive_labels(odo, car, stamps, stricter, radar_rcs=False).actions[mid]
                  == CRUISE)


def test_returns_that_do_not_chain_make_no_lead():
    odo, stamps = drive(np.zeros(80))
    rng = np.random.default_rng(0)  # strong returns in a third of the frames, anywhere ahead
    spots = np.c_[rng.uniform(10.0, 80.0, 81), rng.uniform(-1.0, 1.0, 81),
                  rng.uniform(-10.0, 10.0, 81)]
    seen = rng.random(81) < 0.3
    ghost = derive_labels(odo, radar(stamps, lambda i: tuple(spots[i]) if seen[i] else None),
                          stamps)
    assert np.all(ghost.actions[1:-1] == CRUISE) and ghost.lead.tracks == 0


def test_stop_is_braking_or_standing_without_a_vehicle_ahead():
    accels = np.r_[np.zeros(20), np.full(140, -2.0), np.zeros(40), np.full(40, 1.5)]
    odo, stamps = drive(accels)
    lab = derive_labels(odo, radar(stamps), stamps)
    still = np.flatnonzero(odo.speed <= 1e-9)[0]
    assert np.all(lab.actions[1:20] == CRUISE)
    assert np.all(lab.actions[20:200] == STOP)  # braking, then standing at the line
    assert np.all(lab.actions[200:-1] == CRUISE)  # driving off
    assert np.allclose(lab.accels[21:still - 1], -2.0, atol=1e-6)
    behind = derive_labels(odo, radar(stamps, stopped_car(odo, 80.0)), stamps)
    assert not np.any(behind.actions[20:still] == STOP)  # the car ahead explains the braking
    assert np.all(behind.actions[40:still] == FOLLOW)


def test_emergency_brake_needs_a_radar_threat():
    # the car ahead stands 28 m away: ttc 2 s at 14 m/s, the ego brakes at 6 m/s^2
    accels = np.r_[np.zeros(10), -2.0, -4.0, np.full(40, -6.0)]
    odo, stamps = drive(accels)
    lab = derive_labels(odo, radar(stamps, stopped_car(odo, 30.0)), stamps)
    assert np.all(lab.actions[10:30] == EMERGENCY)
    assert np.allclose(lab.accels[10:30], -6.0, atol=1e-6)  # the ramp's end is the command
    assert lab.actions[9] != EMERGENCY  # braking starts after frame 9, not before
    blind = derive_labels(odo, radar(stamps), stamps)  # nothing the radar sees: a hard stop
    assert np.all(blind.actions[10:30] == STOP)


def test_a_released_brake_is_not_braking():
    # braking at 2 m/s^2, then the brake released at the comfort jerk (0.3 m/s^2 per step)
    release = np.linspace(-1.7, 1.3, 11)
    odo, stamps = drive(np.r_[np.full(30, -2.0), release, np.full(30, 1.3)])
    lab = derive_labels(odo, radar(stamps), stamps)
    assert np.all(lab.actions[1:30] == STOP)
    assert np.all(lab.actions[30:-1] == CRUISE)  # the ramp ends above zero: not braking
    assert np.allclose(lab.accels[30:-1], 1.3, atol=1e-5)


def test_commanded_acceleration_of_a_jerk_limited_onset():
    odo, stamps = drive(np.r_[np.zeros(5), -2.0, -4.0, -4.5, np.full(10, -4.5)])
    cmd = commanded_accel(odo, step_breaks(odo, C), stamps, C)
    assert cmd[4] == pytest.approx(0.0)
    assert np.allclose(cmd[5:15], -4.5)


@pytest.mark.parametrize('sign, action', [(1.0, LEFT), (-1.0, RIGHT)])
def test_lane_change_by_lateral_motion(sign, action):
    n, start, frames = 200, 60, 60  # a 3 s lane change from frame 60
    p = (np.arange(n + 1) - start) / frames
    odo, stamps = drive(np.zeros(n), lateral=sign * 3.5 * quintic(p))
    lab = derive_labels(odo, radar(stamps), stamps)
    assert len(lab.lane_changes) == 1
    assert np.all(lab.actions[start:start + frames] == action)
    assert np.all(lab.actions[1:start] == CRUISE)
    assert np.all(lab.actions[start + frames:-1] == CRUISE)
    drift, _ = drive(np.zeros(n), lateral=0.5 * quintic(p))  # drifting in the lane
    assert not derive_labels(drift, radar(stamps), stamps).lane_changes


def test_emergency_overrides_a_lane_change_and_braking_in_one_is_the_change():
    n, start = 160, 40
    p = (np.arange(n + 1) - start) / 60
    accels = np.r_[np.zeros(start), np.full(n - start, -1.0)]
    odo, stamps = drive(accels, lateral=3.5 * quintic(p))
    lab = derive_labels(odo, radar(stamps), stamps)
    assert np.all(lab.actions[start:start + 60] == LEFT)  # braking while changing lane
    assert np.all(lab.actions[start + 60:-1] == STOP)


# -- unlabelled frames: counted, never guessed ------------------------------------------------
def test_odometry_gap_and_jump_frames_are_unlabelled_and_counted():
    odo, stamps = drive(np.zeros(200))
    keep = np.r_[0:80, 100:201]  # 1 s of odometry missing
    x = odo.x.copy()
    x[150:] += 4.0  # a relocalisation: the pose jumps 4 m
    broken = OdometrySeries.from_arrays(stamps[keep], x[keep], odo.y[keep], odo.speed[keep])
    lab = derive_labels(broken, radar(stamps), stamps)
    gap = [int(i) for i in np.flatnonzero(lab.reasons == UNLABELLED_REASONS.index('odometry_gap'))]
    jump = np.flatnonzero(lab.reasons == UNLABELLED_REASONS.index('odometry_jump'))
    assert gap == list(range(79, 101))  # every frame whose window touches the missing second
    assert list(jump) == [149, 150]
    assert np.all(lab.actions[gap] == UNLABELLED) and np.all(np.isnan(lab.accels[jump]))
    counts = lab.reason_counts()
    assert counts['odometry_gap'] == 22 and counts['odometry_jump'] == 2
    labelled = lab.actions >= 0
    assert np.all(lab.actions[labelled] == CRUISE)
    assert labelled.sum() + sum(counts.values()) == len(stamps)


def test_speed_jump_and_radar_gap_are_unlabelled():
    odo, stamps = drive(np.zeros(200))
    v = odo.speed.copy()
    v[120:] += 3.0  # 60 m/s^2 in one step: a reset, not a car
    x = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * DT)])
    jumpy = OdometrySeries.from_arrays(stamps, x, odo.y, v)
    frames = [f for f in radar(stamps) if not T0 + 40 * NS // 20 <= f[0] < T0 + 120 * NS // 20]
    lab = derive_labels(jumpy, frames, stamps)
    reason = [UNLABELLED_REASONS[r] if r >= 0 else '' for r in lab.reasons]
    assert reason[119] == reason[120] == 'odometry_jump'
    assert 'radar_gap' in reason and lab.reason_counts()['radar_gap'] > 0
    assert all(lab.actions[i] == UNLABELLED for i, r in enumerate(reason) if r)


def test_a_lateral_move_cut_by_the_end_of_the_bag_is_unlabelled():
    n = 100
    p = (np.arange(n + 1) - 70) / 60  # starts 1.5 s before the end
    odo, stamps = drive(np.zeros(n), lateral=3.5 * quintic(p))
    lab = derive_labels(odo, radar(stamps), stamps)
    cut = lab.reasons == UNLABELLED_REASONS.index('lateral_move_cut')
    assert cut[80:-1].all() and not cut[:65].any()
    assert not np.any(np.isin(lab.actions, (LEFT, RIGHT)))


def test_config_is_checked():
    assert label_config({'follow_gap': 30}).follow_gap == 30.0
    with pytest.raises(ParamError, match='follow_gap'):
        label_config({'follow_gap': -1.0})
    with pytest.raises(ParamError, match='unknown'):
        label_config({'no_such_threshold': 1.0})


# -- bags ------------------------------------------------------------------------------------
def _record(root: Path, scenarios, duration=10.0):
    from mm_fusion_ros.commands.record import record_episode
    from mm_fusion_ros.sim.conditions import Condition
    from mm_fusion_ros.sim.scenarios import ScenarioConfig

    paths = []
    for i, (kind, seed) in enumerate(scenarios):
        cfg = ScenarioConfig(scenario=kind, condition=Condition.CLEAR, seed=seed,
                             duration=duration)
        paths.append(record_episode(cfg, str(root / f'ep{i}'), 'mcap', False)['path'])
    return paths


def _copy_without(src: str, dst: Path, topic: str, keep_topic: bool = False) -> Path:
    """The bag with one topic's messages left out (and the topic too unless `keep_topic`)."""
    store = project_typestore()
    with Reader(src) as reader, Writer(dst, version=Writer.VERSION_LATEST) as writer:
        conns = {}
        for c in reader.connections:
            if c.topic != topic or keep_topic:
                conns[c.id] = writer.add_connection(
                    c.topic, c.msgtype, typestore=store,
                    offered_qos_profiles=c.ext.offered_qos_profiles)
        for c, t, raw in reader.messages([c for c in reader.connections if c.topic != topic]):
            writer.write(conns[c.id], t, raw)
    return dst


@pytest.fixture(scope='module')
def sim_bags(tmp_path_factory):
    from mm_fusion_ros.sim.scenarios import ScenarioType

    root = tmp_path_factory.mktemp('label_bags')
    return _record(root, [(ScenarioType.SLOW_LEAD, 3), (ScenarioType.RED_LIGHT, 4),
                          (ScenarioType.CUT_OUT, 5)])


def test_derived_labels_agree_with_the_expert_on_simulator_bags(sim_bags, tmp_path, capsys):
    out = tmp_path / 'labels.json'
    assert cli_main(['label', *sim_bags, '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'against the expert' in printed and 'unlabelled' in printed
    doc = json.loads(out.read_text())
    score = doc['summary']['expert']
    counts = doc['summary']['class_counts']
    # the three episodes hold a lane change, a stop at a red light and an emergency brake
    assert counts['change_lane_left'] + counts['change_lane_right'] > 0
    assert counts['stop'] > 0 and counts['emergency_brake'] > 0
    # measured on these three episodes: macro-F1 0.993, accuracy 0.997, MAE 0.032 m/s^2
    assert score['macro_f1'] >= 0.95 and score['accuracy'] >= 0.98
    assert score['accel_mae'] < 0.1
    assert doc['summary']['unlabelled']['end_of_odometry'] == 3
    bag = doc['bags'][0]
    assert len(bag['action']) == len(bag['stamp_ns']) == len(bag['reason'])
    npz = tmp_path / 'labels.npz'
    assert cli_main(['label', sim_bags[0], '--quiet', '--out', str(npz)]) == 0
    with np.load(npz) as arrays:
        assert arrays['action'].tolist() == bag['action']


def test_labels_never_read_the_expert_topic(sim_bags, tmp_path):
    with_expert = label_bag(sim_bags[2], 'sim')
    bare = _copy_without(sim_bags[2], tmp_path / 'bare', '/sim/ground_truth/decision')
    without = label_bag(bare, 'sim')
    assert without.expert_actions is None and with_expert.expert_actions is not None
    assert np.array_equal(with_expert.labels.actions, without.labels.actions)
    assert np.array_equal(with_expert.labels.accels, without.labels.accels, equal_nan=True)


def test_a_bag_without_odometry_is_refused_naming_the_topic(sim_bags, tmp_path, capsys):
    bare = _copy_without(sim_bags[0], tmp_path / 'no_odom', '/odom')
    with pytest.raises(MissingOdometryError, match='/odom'):
        read_label_inputs(bare, 'sim')
    assert cli_main(['label', str(bare)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('mm-fusion label: ')
    assert '/odom [nav_msgs/msg/Odometry]' in err[0] and '/sensors/radar/points' in err[0]
    silent = _copy_without(sim_bags[0], tmp_path / 'silent_odom', '/odom', keep_topic=True)
    with pytest.raises(MissingOdometryError, match='/odom has 0 usable messages'):
        read_label_inputs(silent, 'sim')
    assert cli_main(['label', sim_bags[0], '--set', 'follow_gap=-3']) == 2
    assert 'follow_gap' in capsys.readouterr().err


def test_simulator_bag_odometry_is_what_the_ego_did(sim_bags):
    inputs = read_label_inputs(sim_bags[1], 'sim')
    assert len(inputs.odometry) == len(inputs.camera_stamps_ns) == 201
    assert inputs.odometry.dropped == 0 and len(inputs.radar) > 150
    assert math.isclose(inputs.odometry.nominal_period_ns / NS, DT)
