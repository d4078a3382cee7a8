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
