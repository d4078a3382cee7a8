"""Logit offsets that move a trained classifier from its training prior to the driving one.

Cross-entropy with class weights w_c on data with class counts n_c is minimised by a softmax
that is the posterior under the prior proportional to w_c * n_c, not the one the model meets
on the road. Bayes' rule swaps priors by adding log(pi_c) - log(w_c * n_c) to the logits
(label-shift correction; Saerens et al. 2002, Menon et al. 2021 'logit adjustment'). Two things
make the training prior differ here: the sqrt-inverse class weights (they favour the rare lane
changes and emergency brakes by about sqrt(1/frequency)), and the DAgger caches, driven by a
model that lingered behind slow vehicles, so they hold lane changes several times as often as
the expert's drives. The offsets have no free parameter: they come from class counts only.
"""

from collections.abc import Sequence

import numpy as np


def prior_logit_offsets(
    train_counts: Sequence[float] | np.ndarray,
    target_counts: Sequence[float] | np.ndarray,
    class_weights: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """(C,) float32 offsets, zero mean: logits + offsets = logits under the target prior.

    `train_counts`: samples per class the model was trained on; `class_weights`: the loss's
    per-class weights (None: unweighted); `target_counts`: samples per class of data drawn the
    way the model will be used (the validation split's scenario mix). A class absent from
    either counts as one sample, so no offset is infinite.
    """
    n = np.maximum(np.asarray(train_counts, np.float64), 1.0)
    target = np.maximum(np.asarray(target_counts, np.float64), 1.0)
    w = np.ones_like(n) if class_weights is None else np.asarray(class_weights, np.float64)
    if n.shape != target.shape or n.shape != w.shape or n.ndim != 1:
        raise ValueError(f'class counts and weights must be 1-D of one length, got {n.shape}, '
                         f'{target.shape}, {w.shape}')
    if not np.all(w > 0):
        raise ValueError(f'class weights must be positive, got {w.tolist()}')
    offsets = np.log(target / target.sum()) - np.log(w * n / (w * n).sum())
    return (offsets - offsets.mean()).astype(np.float32)
