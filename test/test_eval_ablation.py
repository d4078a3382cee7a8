"""Ablation summary rows and the fused-over-best-single margin."""

import numpy as np
import pytest

from mm_fusion_ros.evaluation.ablation import ablation_markdown, summarize_ablation


def test_margin_and_degraded_groups():
    y = np.array([0, 1, 2, 0, 1, 2])
    conditions = np.array(['clear', 'clear', 'fog', 'fog', 'radar_ghosts', 'radar_ghosts'])
    preds = {
        'fused': y.copy(),
        'camera': np.array([0, 1, 0, 0, 1, 2]),  # wrong in fog
        'radar': np.array([0, 1, 2, 0, 0, 0]),  # wrong with ghosts
    }
    r = summarize_ablation(y, preds, conditions)
    assert r.macro_f1['fused']['all'] == 1.0
    assert r.samples['camera_degraded'] == 2 and r.samples['radar_degraded'] == 2
    assert r.macro_f1['camera']['radar_degraded'] == 1.0
    assert r.margin_over_best_single('fog') == pytest.approx(0.0)  # radar is perfect in fog
    assert r.margin_over_best_single('degraded') > 0
    assert '| all | 6 |' in ablation_markdown(r)


def test_on_policy_scores_each_driver_on_its_own_frames():
    from types import SimpleNamespace

    from mm_fusion_ros.evaluation.ablation import on_policy_ablation

    def episode(condition, expert, decided):
        return SimpleNamespace(condition=condition, expert_actions=expert, model_actions=decided)

    # The radar driver reached other states (its labels differ) and is right on clear frames
    # only; the camera driver is right everywhere but in fog.
    outcomes = {
        'fused': [episode('clear', [0, 2, 2], [0, 2, 2]), episode('fog', [0, 1], [0, 1])],
        'camera': [episode('clear', [0, 2, 2], [0, 2, 2]), episode('fog', [0, 1], [0, 0])],
        'radar': [episode('clear', [0, 0, 2], [0, 0, 2]), episode('fog', [0, 2], [0, 0])],
    }
    r = on_policy_ablation(outcomes)
    # rows without frames are left out
    assert r.samples == {'all': 5, 'clear': 3, 'fog': 2, 'camera_degraded': 2, 'degraded': 2}
    assert r.macro_f1['radar']['clear'] == 1.0  # scored against its own labels [0, 0, 2]
    assert r.macro_f1['fused']['fog'] == 1.0
    assert r.macro_f1['camera']['fog'] < 1.0 and r.macro_f1['radar']['fog'] < 1.0
    assert r.margin_over_best_single('camera_degraded') > 0
    assert '| fog | 2 |' in ablation_markdown(r)


def test_samples_from_label_change_counts_within_each_episode():
    from mm_fusion_ros.evaluation.ablation import samples_from_label_change

    # episode 0 (stamps shuffled): labels 0 0 0 1 1 0; episode 1 never changes
    actions = np.array([1, 0, 0, 0, 1, 0, 2, 2, 2])
    episodes = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    stamps = np.array([4, 1, 0, 2, 3, 5, 0, 1, 2])
    d = samples_from_label_change(actions, episodes, stamps)
    # by stamp, episode 0 reads 0 0 0 1 1 0: changes between stamps 2|3 and 4|5
    assert d.tolist() == [0, 1, 2, 0, 0, 0, 9, 9, 9]


def test_timing_bound_keeps_only_errors_at_a_label_change():
    from mm_fusion_ros.evaluation.ablation import (
        CachePredictions,
        timing_bound,
        timing_bound_markdown,
    )

    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # one change, between samples 3 and 4
    fused = np.array([0, 1, 0, 1, 1, 1, 1, 1])  # wrong at 1 (far) and 3 (at the change)
    p = CachePredictions(
        y_true=y,
        preds={'fused': fused, 'camera': np.zeros(8, np.int64), 'radar': y.copy()},
        conditions=np.array(['fog'] * 8, object),
        episodes=np.zeros(8, np.int64),
        stamps_ns=np.arange(8),
    )
    r = summarize_ablation(p.y_true, p.preds, p.conditions)
    b = timing_bound(p, window=1)
    assert b.near_change['all'] == pytest.approx(2 / 8)
    assert r.macro_f1['fused']['all'] < b.fused_bound['all'] < 1.0  # the change's error stays
    assert r.best_single('all') == 1.0  # radar
    assert b.near_change.keys() == r.samples.keys() and r.samples['camera_degraded'] == 8
    wide = timing_bound(p, window=3)  # both errors count as timing
    assert wide.fused_bound['all'] == pytest.approx(r.macro_f1['fused']['all'])
    assert '| camera_degraded | 8 | 0.250 |' in timing_bound_markdown(r, b)


def test_ablation_command_prints_and_writes_the_timing_bound(tmp_path, capsys):
    import json

    from mm_fusion_ros.cli import main as cli_main

    out = tmp_path / 'cache'
    assert cli_main(['dataset', '--out', str(out), '--splits', 'test', '--test-episodes', '2',
                     '--duration', '2', '--frame-stride', '4']) == 0
    capsys.readouterr()
    report = tmp_path / 'ablation.json'
    assert cli_main(['ablation', '--val-cache', str(out / 'test'), '--timing-bound', '1',
                     '--json', str(report)]) == 0
    printed = capsys.readouterr().out
    assert 'fused, only timing errors left' in printed
    result = json.loads(report.read_text())
    bound = result['timing_bound']
    assert bound['window'] == 1 and bound['fused_bound'].keys() == result['samples'].keys()
    for row, f1 in result['macro_f1']['fused'].items():
        assert bound['fused_bound'][row] >= f1  # correcting errors never lowers the score
