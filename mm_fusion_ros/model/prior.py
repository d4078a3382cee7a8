"""Logit offsets that move a trained classifier from its training prior to the driving one.

A classifier trained by cross-entropy on data with class counts n_c and class weights w_c
decides argmax_c w_c * n_c * p(x|c): its logits carry the training data's class frequencies
and the weights as the costs of missing each class. Bayes' rule swaps the data's prior for
another, pi_c, by adding log(pi_c) - log(n_c) to the logits (label-shift correction, Saerens
et al. 2002); adding -log(w_c) too removes the costs and leaves the accuracy-optimal rule
(Menon et al. 2021, 'logit adjustment').

Here the training data's prior is off because of the DAgger caches: driven by models that
lingered behind slow vehicles, they hold lane changes several times as often as the expert's
drives, and stops less often. The weights (sqrt-inverse frequency) are kept by default: they
make the model call STOP and EMERGENCY_BRAKE more readily than accuracy alone would, and
removing them trades stop recall for macro-F1 (measured in README). No free parameter: the
offsets come from class counts only.
"""

from collections.abc import Sequence

import numpy as np


def prior_logit_offsets(
    train_counts: Sequence[float] | np.ndarray,
    target_counts: Sequence[float] | np.ndarray,
    class_weights: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """(C,) float32 offsets, zero mean, to add to the logits before the decision.

    `train_counts`: samples per class the model was trained on; `target_counts`: samples per
    class of data drawn the way the model will be used (the validation split's scenario mix);
    `class_weights`: the loss's per-class weights to remove as well (None: keep them as
    decision costs). A class absent from either counts as one sample: no offset is infinite.
    """
    n = np.maximum(np.asarray(train_counts, np.float64), 1.0)
    target = np.maximum(np.asarray(target_counts, np.float64), 1.0)
    w = np.ones_like(n) if class_weights is None else np.asarray(class_weights, np.float64)
    if n.shape != target.shape or n.shape != w.shape or n.ndim != 1:
        raise ValueError(f'class counts and weights must be 1-D of one length, got {n.shape}, '
                         f'{target.shape}, {w.shape}')
    if not np.all(w > 0):
        raise ValueError(f'class weights must be positive, got {w.tolist()}')
    offsets = np.log(target) - np.log(n) - np.log(w)
    return (offsets - offsets.mean()).astype(np.float32)
