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
    # sqrt-inverse weights: the trained prior is proportional to sqrt(n).
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


def test_offsets_recover_accuracy_lost_to_class_weights():
    """A classifier trained with inverse-frequency weights over-predicts the rare class."""
    rng = np.random.default_rng(0)
    means, prior = np.array([-1.0, 1.0]), np.array([0.9, 0.1])

    def draw(n):
        y = rng.choice(2, n, p=prior)
        return torch.tensor(rng.normal(means[y], 1.0)[:, None], dtype=torch.float32), y

    x, y = draw(20_000)
    counts = np.bincount(y, minlength=2)
    weights = 1.0 / (counts / counts.sum())
    linear = torch.nn.Linear(1, 2)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.05)
    target = torch.from_numpy(y)
    for _ in range(300):
        optimizer.zero_grad()
        F.cross_entropy(linear(x), target,
                        weight=torch.tensor(weights, dtype=torch.float32)).backward()
        optimizer.step()
    x_test, y_test = draw(20_000)
    with torch.no_grad():
        logits = linear(x_test).numpy()
    offsets = prior_logit_offsets(counts, counts, weights)
    raw = (logits.argmax(1) == y_test).mean()
    corrected = ((logits + offsets).argmax(1) == y_test).mean()
    # Bayes-optimal accuracy here is about 0.93; the weighted boundary sits at x = 0.
    assert raw < 0.86 and corrected > 0.92
