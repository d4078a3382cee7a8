"""Bag-evaluation metrics on hand-built arrays: false-brake events per hour, EB recall."""

import numpy as np
import pytest

from mm_fusion_ros.actions import Action
from mm_fusion_ros.evaluation.replay import empty_frames
from mm_fusion_ros.evaluation.replay_report import (
    agreement,
    compute_metrics,
    false_brake_events,
    recall_of,
)

C, F, S, EB = (int(Action.CRUISE), int(Action.FOLLOW), int(Action.STOP),
               int(Action.EMERGENCY_BRAKE))


def test_false_brake_events_count_onsets():
    truth = np.array([C, C, C, C, F, F, S, C, C, C])
    pred = np.array([S, EB, C, S, S, F, S, EB, C, C])
    # runs of false brakes: frames 0-1, frames 3-4, frame 7 (frame 6 is a true stop)
    assert false_brake_events(pred, truth) == 3


def test_false_brake_runs_do_not_span_bags_or_unlabelled_frames():
    truth = np.array([C, C, C, -1, C])
    pred = np.array([S, S, S, S, S])
    assert false_brake_events(pred, truth, bag=np.array([0, 0, 1, 1, 1])) == 3


def test_metrics_per_hour_and_eb_recall():
    n = 20
    frames = empty_frames(n)
    frames['stamp_ns'][:] = np.arange(n) * 50_000_000
    frames['truth_action'][:] = C
    frames['truth_action'][10:14] = EB
    frames['action'][:] = C
    frames['action'][10:13] = EB   # 3 of 4 EB frames caught
    frames['action'][2:4] = S      # one false-brake event
    frames['action'][6] = EB       # another
    frames['latency_s'][:] = 0.01
    m = compute_metrics(frames, duration_s=36.0)  # 0.01 h
    gt = m['ground_truth']
    assert gt['emergency_brake_recall'] == pytest.approx(0.75)
    assert gt['false_brake_events'] == 2
    assert gt['false_brake_per_hour'] == pytest.approx(200.0)
    assert gt['accuracy'] == pytest.approx(16 / 20)
    assert gt['per_class']['emergency_brake']['precision'] == pytest.approx(3 / 4)
    assert m['latency']['median_ms'] == pytest.approx(10.0)
    assert recall_of(frames['action'], frames['truth_action'], S) is None


def test_agreement_matches_by_bag_and_stamp():
    a, b = empty_frames(4), empty_frames(3)
    a['stamp_ns'][:] = [1, 2, 3, 4]
    a['action'][:] = [C, F, S, EB]
    b['stamp_ns'][:] = [4, 2, 1]
    b['action'][:] = [EB, C, C]
    r = agreement(a, b)
    assert r == {'frames': 4, 'same': 2, 'missing': 1, 'agreement': 0.5}


def test_compare_checkpoint_agreement_without_truth():
    frames = empty_frames(4)
    frames['action'][:] = [C, C, F, S]
    frames['compare_action'][:] = [C, F, F, S]
    m = compute_metrics(frames, 1.0)
    assert 'ground_truth' not in m and m['compare']['agreement'] == pytest.approx(0.75)


def test_robustness_and_model_vs_final_count_by_reason():
    from mm_fusion_ros.decision import DecisionSource
    from mm_fusion_ros.evaluation.metrics import REJECT_REASONS, reason_mask

    frames = empty_frames(6)
    frames['model_action'][:] = [C, C, -1, S, C, F]
    frames['action'][:] = [C, S, S, EB, -1, F]
    frames['source'][:] = [0, 3, 2, 1, -1, 2]
    frames['degraded'][:] = [0, 0, 1, 1, -1, 1]
    frames['reason'][:] = [0, 0, reason_mask('camera frame rejected: x'),
                           reason_mask('no odometry (ego speed unknown)'), -1,
                           reason_mask('radar stale (0.3 s); no odometry (ego speed unknown)')]
    frames['reject'][2] = REJECT_REASONS.index('corrupt_compressed')
    m = compute_metrics(frames, 1.0)
    rb = m['robustness']
    assert rb['rejected_frames'] == 1 and rb['rejected_by_reason'] == {'corrupt_compressed': 1}
    assert rb['fallback_frames'] == 2 and rb['frames_without_decision'] == 1
    assert rb['fallback_by_reason'] == {'camera frame rejected': 1, 'radar stale': 1,
                                        'no odometry (ego speed unknown)': 1}
    assert rb['degraded_frames'] == 3
    assert rb['degraded_by_reason']['no odometry (ego speed unknown)'] == 2
    mvf = m['model_vs_final']
    assert (mvf['frames'], mvf['same'], mvf['different']) == (4, 2, 2)
    assert {(d['why'], d['model_to_final']) for d in mvf['differences']} == {
        ('held by the safety layer (min_dwell)', 'cruise -> stop'),
        ('safety override (radar time-to-collision)', 'stop -> emergency_brake')}
    assert int(DecisionSource.FALLBACK) == 2
    # a difference published under the model's own name is never passed off as a hold
    frames['source'][1] = int(DecisionSource.MODEL)
    frames['model_action'][5], frames['source'][5] = C, int(DecisionSource.RADAR_OUT_CAUTION)
    whys = {d['why'] for d in compute_metrics(frames, 1.0)['model_vs_final']['differences']}
    assert {'unaccounted (source 0)', 'radar-out caution (radar briefly missing)'} <= whys


def test_phantom_brakes_are_final_brakes_neither_model_nor_truth_calls():
    from mm_fusion_ros.evaluation.metrics import phantom_brake_frames

    frames = empty_frames(6)
    frames['truth_action'][:] = [C, C, EB, C, S, C]
    frames['model_action'][:] = [C, C, C, S, C, EB]
    frames['action'][:] = [EB, S, EB, EB, S, EB]
    frames['source'][:] = [1, 2, 1, 1, 3, 0]
    gt = compute_metrics(frames, 1.0)['ground_truth']
    # phantom EB: frames 0 and 3 (a model STOP made an EB counts too); phantom STOP: frame 1;
    # not phantom: 2 (truth EB), 4 (truth STOP), 5 (the model's own EB)
    assert (gt['phantom_emergency_brake_frames'], gt['phantom_stop_frames']) == (2, 1)
    assert phantom_brake_frames(frames['action'], frames['model_action'],
                                frames['truth_action']) == (2, 1)


def test_online_frames_report_degraded_as_not_recorded():
    frames = empty_frames(3)  # online: degraded / reason / reject stay -1
    frames['action'][:] = [C, C, S]
    frames['source'][:] = [0, 0, 2]
    rb = compute_metrics(frames, 1.0)['robustness']
    assert rb['degraded_recorded'] is False and rb['degraded_frames'] is None
    assert rb['fallback_frames'] == 1 and rb['fallback_by_reason'] == {}
