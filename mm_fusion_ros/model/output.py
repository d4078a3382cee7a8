"""What the fusion model returns: the one type the model and its loss share."""

from typing import NamedTuple

import torch


class FusionOutput(NamedTuple):
    logits: torch.Tensor  # (B, C) decision class logits
    accel: torch.Tensor   # (B,) target longitudinal acceleration [m/s^2]
    ttc: torch.Tensor     # (B,) time to collision [s], in [ttc_min, ttc_max]
