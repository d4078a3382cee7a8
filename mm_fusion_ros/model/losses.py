"""Training loss: decision cross-entropy + smooth-L1 acceleration + masked log-TTC.

The class weights weight the acceleration term too (a weighted mean over the batch): the
rare classes are the ones with hard braking (STOP, EMERGENCY_BRAKE), and an unweighted mean
lets the many cruising samples (about 0 m/s^2) pull their targets towards zero; a STOP with
a timid deceleration runs the light in closed loop.

TTC targets are clipped to [ttc_min, ttc_max] and compared in log space (an error of 0.5 s
matters at 1 s, not at 9 s); samples without a meaningful TTC (`ttc_valid` False, e.g. no lead
object) contribute nothing, and the TTC term averages over valid samples only.
"""

from dataclasses import dataclass
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812 - torch convention

from mm_fusion_ros.model.config import FusionModelConfig
from mm_fusion_ros.model.output import FusionOutput


@dataclass(frozen=True)
class LossWeights:
    action: float = 1.0
    accel: float = 0.5       # per (m/s^2) of smooth-L1
    ttc: float = 0.2         # auxiliary
    accel_beta: float = 1.0  # [m/s^2] smooth-L1 switch from quadratic to linear
    ttc_beta: float = 0.5    # [log s]
    label_smoothing: float = 0.0


class LossTerms(NamedTuple):
    total: torch.Tensor
    action: torch.Tensor
    accel: torch.Tensor
    ttc: torch.Tensor


def fusion_loss(
    output: FusionOutput, target_action: torch.Tensor, target_accel: torch.Tensor,
    target_ttc: torch.Tensor, ttc_valid: torch.Tensor, config: FusionModelConfig,
    class_weights: torch.Tensor | None = None, weights: LossWeights | None = None,
) -> LossTerms:
    """Weighted sum of the three terms, each also returned for logging.

    target_action (B,) int64 class index; target_accel (B,) [m/s^2]; target_ttc (B,) [s]
    (inf/NaN allowed where ttc_valid is False); ttc_valid (B,) bool.
    """
    w = weights or LossWeights()
    logits = output.logits.float()
    action = F.cross_entropy(
        logits, target_action.long(),
        weight=None if class_weights is None else class_weights.to(logits),
        label_smoothing=w.label_smoothing)
    accel_err = F.smooth_l1_loss(output.accel.float(), target_accel.float(), beta=w.accel_beta,
                                 reduction='none')
    if class_weights is None:
        accel = accel_err.mean()
    else:
        sample_w = class_weights.to(logits)[target_action.long()]
        accel = (sample_w * accel_err).sum() / sample_w.sum()
    valid = ttc_valid.bool() & ~torch.isnan(target_ttc)
    target = torch.where(valid, target_ttc.float(), config.ttc_max)  # no NaN in the graph
    target_log = target.clamp(config.ttc_min, config.ttc_max).log()
    pred_log = output.ttc.float().clamp(min=config.ttc_min * 0.5).log()
    per_sample = F.smooth_l1_loss(pred_log, target_log, beta=w.ttc_beta, reduction='none')
    n_valid = valid.sum()
    ttc = torch.where(valid, per_sample, 0.0).sum() / n_valid.clamp(min=1)
    total = w.action * action + w.accel * accel + w.ttc * ttc
    return LossTerms(total=total, action=action, accel=accel, ttc=ttc)


def log_ttc_range(config: FusionModelConfig) -> tuple[float, float]:
    """[log s] range of the TTC head."""
    return math.log(config.ttc_min), math.log(config.ttc_max)
