"""FusionModel: image tokens and radar tokens meet in a fusion-token (bottleneck) attention.

Design choice: K learned fusion tokens cross-attend to the concatenation of image tokens
(4x8 grid) and radar tokens (summary + T frames), then self-attend among themselves, for
`fusion_layers` rounds; the heads read only the fusion tokens. Chosen over bidirectional
image<->radar cross-attention because:

- a missing modality (modality dropout, camera-only / radar-only runs) is just a learned
  "missing" token in the key set; the queries belong to neither modality, so nothing is ever
  asked to attend *from* a blank modality, and camera-only / radar-only / fused use the same
  weights with no change of graph other than the keys (at eval the absent branch is skipped);
- cost is K x (Ni + Nr) per layer, linear in the token counts (bidirectional is Ni x Nr both
  ways plus a pooling step per modality);
- the heads see a fixed number of tokens whatever the image grid or T, so reshapes are
  shape-agnostic and ONNX export only needs a dynamic batch.
The price is that image and radar tokens never update each other directly; with 32 image (48
with the fovea rows) and 9 radar tokens the fusion tokens see every one of them at every
layer, which is enough here.

Ego speed (from odometry) is a measurement, not a modality: as in conditional imitation
learning (Codevilla et al., 2018) its embedding is concatenated to the fused features before
the heads. Stopping short of a line or a pedestrian, following distance and the yellow-light
rule all scale with the ego's own speed, which no single camera frame shows. An unknown speed
(no odometry) is an explicit input (`ego_speed_valid` False), trained by speed dropout.

The camera frame `camera_history` s earlier enters the image branch as the frame-to-frame
change (see `image_branch.py`): a pedestrian on the road looks the same walking into the ego's
path as out of it in one frame, and radar rarely resolves a 1.5 m/s lateral walk.

Heads (from the flattened fusion tokens): decision logits over `config.class_names` (the
`Action` order), target longitudinal acceleration [m/s^2] (unbounded linear output; the safety
layer clips), and an auxiliary time-to-collision [s]: the head predicts log-TTC squashed into
[log ttc_min, log ttc_max] by a sigmoid, so TTC is always positive and finite and "no threat"
saturates at ttc_max. The loss compares log-TTC (see `losses.py`).
"""

import math

import torch
from torch import nn

from mm_fusion_ros.model.config import MODALITIES, FusionModelConfig
from mm_fusion_ros.model.image_branch import ImageBranch
from mm_fusion_ros.model.layers import CrossAttentionBlock
from mm_fusion_ros.model.losses import LossTerms, LossWeights, fusion_loss
from mm_fusion_ros.model.output import FusionOutput
from mm_fusion_ros.model.radar_encoder import RadarEncoder


class FusionModel(nn.Module):
    """Camera + radar history -> FusionOutput (see module docstring for the design)."""

    def __init__(self, config: FusionModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or FusionModelConfig()
        cfg = self.config
        d = cfg.token_dim
        self.image_branch = ImageBranch(cfg)
        self.radar_encoder = RadarEncoder(cfg)
        self.image_type = nn.Parameter(torch.zeros(1, 1, d))
        self.radar_type = nn.Parameter(torch.zeros(1, 1, d))
        self.missing_image = nn.Parameter(torch.zeros(1, 1, d))
        self.missing_radar = nn.Parameter(torch.zeros(1, 1, d))
        self.fusion_queries = nn.Parameter(torch.zeros(1, cfg.fusion_tokens, d))
        for p in (self.image_type, self.radar_type, self.missing_image, self.missing_radar,
                  self.fusion_queries):
            nn.init.trunc_normal_(p, std=0.02)
        self.fusion = nn.ModuleList(
            CrossAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.dropout)
            for _ in range(cfg.fusion_layers))
        self.norm = nn.LayerNorm(d)
        self.ego_speed_embed = nn.Sequential(nn.Linear(2, cfg.ego_speed_dim), nn.GELU())
        self.trunk = nn.Sequential(
            nn.Linear(cfg.fusion_tokens * d + cfg.ego_speed_dim, 2 * d), nn.GELU(),
            nn.Dropout(cfg.dropout))
        self.logits_head = nn.Linear(2 * d, cfg.num_classes)
        self.accel_head = nn.Linear(2 * d, 1)
        self.ttc_head = nn.Linear(2 * d, 1)
        self.log_ttc_min = math.log(cfg.ttc_min)
        self.log_ttc_range = math.log(cfg.ttc_max) - self.log_ttc_min

    def forward(
        self, image: torch.Tensor, radar_points: torch.Tensor, point_mask: torch.Tensor,
        frame_mask: torch.Tensor, time_offsets: torch.Tensor,
        ego_speed: torch.Tensor | None = None, ego_speed_valid: torch.Tensor | None = None,
        previous_image: torch.Tensor | None = None, modality: str = 'fused',
    ) -> FusionOutput:
        """Inputs as made by `preprocess.prepare_batch` (normalised image and radar).

        image: (B, 3, H, W) float, H = view + fovea rows; radar_points: (B, T, N, F) float;
        point_mask: (B, T, N) bool; frame_mask: (B, T) bool; time_offsets: (B, T) [s];
        ego_speed: (B,) [m/s] and ego_speed_valid: (B,) bool (None: speed unknown);
        previous_image: (B, 3, H, W) the frame `camera_history` s earlier, equal to `image`
        (or None) when there is none.
        `modality` 'camera' or 'radar' skips the other branch and uses its learned missing
        token instead.
        """
        if modality not in MODALITIES:
            raise ValueError(f'modality must be one of {MODALITIES}, got {modality!r}')
        b = image.shape[0]
        point_mask = point_mask.bool()
        frame_mask = frame_mask.bool()
        if modality == 'radar':
            img = self.missing_image.expand(b, -1, -1)                 # (B, 1, D)
        else:
            img = self.image_branch(image, self._image_change(image, previous_image))
            img = img + self.image_type                                # (B, Ni, D)
        if modality == 'camera':
            rad = self.missing_radar.expand(b, -1, -1)                 # (B, 1, D)
            rad_mask = torch.ones_like(frame_mask[:, :1])              # (B, 1)
        else:
            rad, rad_mask = self.radar_encoder(
                radar_points, point_mask, frame_mask, time_offsets)    # (B, Nr, D), (B, Nr)
            rad = rad + self.radar_type
        img_mask = torch.ones_like(img[..., 0], dtype=torch.bool)       # (B, Ni)
        if modality == 'fused' and self.training and self.config.modality_dropout > 0:
            img, img_mask, rad, rad_mask = self._modality_dropout(img, img_mask, rad, rad_mask)
        context = torch.cat([img, rad.to(img.dtype)], dim=1)           # (B, Ni + Nr, D)
        key_mask = torch.cat([img_mask, rad_mask], dim=1)              # (B, Ni + Nr)
        x = self.fusion_queries.expand(b, -1, -1).to(context.dtype)    # (B, K, D)
        for block in self.fusion:
            x = block(x, context, key_mask)
        speed = self._ego_speed_features(ego_speed, ego_speed_valid, b, x)  # (B, E)
        h = self.trunk(torch.cat([self.norm(x).flatten(1), speed.to(x.dtype)], dim=1))  # (B, 2D)
        log_ttc = self.log_ttc_min + self.log_ttc_range * torch.sigmoid(self.ttc_head(h))
        return FusionOutput(
            logits=self.logits_head(h),                                # (B, C)
            accel=self.accel_head(h).squeeze(-1),                      # (B,)
            ttc=torch.exp(log_ttc).squeeze(-1),                        # (B,)
        )

    def _image_change(
        self, image: torch.Tensor, previous: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """(B, 3, H, W) image - earlier image; zero for a `history_dropout` share in training."""
        if previous is None or self.config.camera_history <= 0:
            return None
        change = image - previous.to(image.dtype)
        if self.training and self.config.history_dropout > 0:
            keep = torch.rand(image.shape[0], device=image.device) >= self.config.history_dropout
            change = change * keep[:, None, None, None].to(change.dtype)
        return change

    def _ego_speed_features(
        self, ego_speed: torch.Tensor | None, valid: torch.Tensor | None, b: int,
        like: torch.Tensor,
    ) -> torch.Tensor:
        """(B, E) embedding of [speed / scale, known]; unknown speeds read as [0, 0]."""
        if ego_speed is None:
            ego_speed = torch.zeros(b, device=like.device)
            valid = torch.zeros(b, dtype=torch.bool, device=like.device)
        elif valid is None:
            valid = torch.isfinite(ego_speed)
        valid = valid.bool()
        if self.training and self.config.ego_speed_dropout > 0:
            valid = valid & (torch.rand(b, device=valid.device) >= self.config.ego_speed_dropout)
        speed = torch.where(valid, ego_speed.float() / self.config.ego_speed_scale, 0.0)
        return self.ego_speed_embed(torch.stack([speed, valid.float()], dim=1))

    def _modality_dropout(
        self, img: torch.Tensor, img_mask: torch.Tensor, rad: torch.Tensor,
        rad_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Blank one modality for a random `modality_dropout` share of the samples.

        A blanked modality keeps one slot, holding its learned missing token, and masks the
        rest, so the fusion attention sees exactly what the eval-time camera-only / radar-only
        runs show it (those pass that single token).
        """
        b = img.shape[0]
        drop = torch.rand(b, device=img.device) < self.config.modality_dropout
        camera = torch.rand(b, device=img.device) < 0.5
        drop_img = (drop & camera)[:, None]                            # (B, 1)
        drop_rad = (drop & ~camera)[:, None]                           # (B, 1)
        img = torch.where(drop_img[..., None], self.missing_image.to(img.dtype), img)
        rad = torch.where(drop_rad[..., None], self.missing_radar.to(rad.dtype), rad)
        first_img = torch.zeros_like(img_mask)
        first_img[:, 0] = True
        first_rad = torch.zeros_like(rad_mask)
        first_rad[:, 0] = True
        img_mask = torch.where(drop_img, first_img, img_mask)
        rad_mask = torch.where(drop_rad, first_rad, rad_mask)
        return img, img_mask, rad, rad_mask

    def loss(
        self, output: FusionOutput, target_action: torch.Tensor, target_accel: torch.Tensor,
        target_ttc: torch.Tensor, ttc_valid: torch.Tensor,
        class_weights: torch.Tensor | None = None, weights: LossWeights | None = None,
    ) -> LossTerms:
        """Combined training loss; see `losses.fusion_loss`."""
        return fusion_loss(
            output, target_action, target_accel, target_ttc, ttc_valid, self.config,
            class_weights=class_weights, weights=weights)
