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
