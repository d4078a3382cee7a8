"""Classification metrics against hand-computed values."""

import numpy as np
import pytest

from mm_fusion_ros.evaluation.metrics import classification_report, confusion_matrix


def test_confusion_matrix_counts():
    cm = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_report_values():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    r = classification_report(y_true, y_pred, labels=('a', 'b', 'c'))
    assert r.accuracy == pytest.approx(4 / 6)
    assert r.precision == pytest.approx([2 / 3, 2 / 3, 0.0])
    assert r.recall == pytest.approx([2 / 3, 1.0, 0.0])
    f1_a, f1_b = 2 / 3, 0.8
    assert r.macro_f1 == pytest.approx((f1_a + f1_b + 0.0) / 3)


def test_absent_classes_do_not_count_in_macro_f1():
    r = classification_report(np.array([0, 1]), np.array([0, 1]), labels=('a', 'b', 'c'))
    assert r.macro_f1 == 1.0
