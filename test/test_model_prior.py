"""The training-to-driving prior correction (`model.prior`) and where it is applied."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - torch convention

from mm_fusion_ros.model.prior import prior_logit_offsets


def test_offsets_are_the_log_ratio_of_priors():
    n = np.array([800.0, 150.0, 50.0])
    # Unweighted, trained on the driving prior: nothing to correct.
    np.testing.assert_allclose(prior_logit_offsets(n, n), 0.0, atol=1e-6)
    # Removing sqrt-inverse weights: the trained prior is proportional to sqrt(n).
    w = 1.0 / np.sqrt(n / n.sum())
    got = prior_logit_offsets(n, n, w)
    want = 0.5 * np.log(n)
    np.testing.assert_allclose(got, want - want.mean(), rtol=1e-5)
    assert got.dtype == np.float32 and got.mean() == pytest.approx(0.0, abs=1e-6)
    # Absent classes count as one sample: finite offsets.
    assert np.isfinite(prior_logit_offsets([10, 0, 5], [0, 3, 5])).all()
    with pytest.raises(ValueError, match='one length'):
        prior_logit_offsets([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match='positive'):
        prior_logit_offsets([1, 2], [1, 2], [1.0, 0.0])


def _draw(rng, n, prior):
    """1-D features, class c ~ N(2c - 1, 1)."""
    y = rng.choice(2, n, p=prior)
    return torch.tensor(rng.normal(2.0 * y - 1.0, 1.0)[:, None], dtype=torch.float32), y


def _fit(x, y, weights=None):
    linear = torch.nn.Linear(1, 2)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.05)
    w = None if weights is None else torch.tensor(weights, dtype=torch.float32)
    for _ in range(300):
        optimizer.zero_grad()
        F.cross_entropy(linear(x), torch.from_numpy(y), weight=w).backward()
        optimizer.step()
    return linear


def _accuracy(linear, x, y, offsets):
    with torch.no_grad():
        return ((linear(x).numpy() + offsets).argmax(1) == y).mean()


def test_offsets_undo_a_training_prior_that_differs_from_the_driving_one():
    """Trained on balanced data (like DAgger's extra lane changes), used where class 1 is rare."""
    rng = np.random.default_rng(0)
    x, y = _draw(rng, 20_000, [0.5, 0.5])
    linear = _fit(x, y)
    x_road, y_road = _draw(rng, 20_000, [0.9, 0.1])
    offsets = prior_logit_offsets(np.bincount(y, minlength=2), [900, 100])
    # Bayes-optimal accuracy under the road prior is about 0.93; the balanced boundary, 0.84.
    assert _accuracy(linear, x_road, y_road, 0.0) < 0.86
    assert _accuracy(linear, x_road, y_road, offsets) > 0.92


def test_offsets_can_remove_class_weights_too():
    """Inverse-frequency weights make the rare class a costly miss; the accuracy rule drops it."""
    rng = np.random.default_rng(1)
    x, y = _draw(rng, 20_000, [0.9, 0.1])
    counts = np.bincount(y, minlength=2)
    weights = counts.sum() / counts
    linear = _fit(x, y, weights)
    x_test, y_test = _draw(rng, 20_000, [0.9, 0.1])
    keep_costs = prior_logit_offsets(counts, counts)
    np.testing.assert_allclose(keep_costs, 0.0, atol=1e-6)  # same prior: nothing to move
    recall = _accuracy(linear, x_test[y_test == 1], y_test[y_test == 1], keep_costs)
    accuracy_rule = prior_logit_offsets(counts, counts, weights)
    assert _accuracy(linear, x_test, y_test, keep_costs) < 0.86
    assert _accuracy(linear, x_test, y_test, accuracy_rule) > 0.92
    # ... by missing the rare class more often.
    assert _accuracy(linear, x_test[y_test == 1], y_test[y_test == 1], accuracy_rule) < recall
