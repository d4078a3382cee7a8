"""Radar sequence encoder: PointNet per frame, then a temporal encoder over the last T frames.

Per frame, a shared per-point MLP embeds every point's normalised features (x, y, z, Doppler
radial velocity, rcs, optional vx/vy: Doppler and rcs are inputs like position, not
afterthoughts) and a masked max + mean pool summarises the padded point set; the point count
(log1p) is appended, since "how much radar return" is itself a cue. Padded points never reach
the pool (`torch.where`, not multiplication, so even NaN in padding cannot leak), and an empty
frame pools to zeros.

The temporal encoder sees each frame's time offset [s] through a small MLP and the frame mask
(missing frames are replaced by a learned embedding and masked out as attention keys). It
outputs T + 1 radar tokens: a summary token first (always valid, so attention over radar keys
never has an all-masked row), then one token per frame.
"""

import torch
from torch import nn

from mm_fusion_ros.model.config import FusionModelConfig
from mm_fusion_ros.model.layers import SelfAttentionBlock


class PointEncoder(nn.Module):
    """(B, T, N, F) points + (B, T, N) mask -> (B, T, D) frame embeddings."""

    def __init__(self, config: FusionModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_dim = config.num_features
        for width in config.point_mlp:
            layers += [nn.Linear(in_dim, width), nn.LayerNorm(width), nn.ReLU(inplace=True)]
            in_dim = width
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(2 * in_dim + 1, config.token_dim)

    def forward(self, points: torch.Tensor, point_mask: torch.Tensor) -> torch.Tensor:
        # points: (B, T, N, F); point_mask: (B, T, N) bool
        h = self.mlp(points)                                  # (B, T, N, C)
        m = point_mask.unsqueeze(-1)                          # (B, T, N, 1)
        count = point_mask.sum(dim=-1, keepdim=True).to(h.dtype)  # (B, T, 1)
        pooled_max = torch.where(m, h, float('-inf')).amax(dim=2)  # (B, T, C), -inf if empty
        pooled_max = torch.where(count > 0, pooled_max, 0.0)
        pooled_mean = torch.where(m, h, 0.0).sum(dim=2) / count.clamp(min=1.0)  # (B, T, C)
        feats = torch.cat([pooled_max, pooled_mean, torch.log1p(count)], dim=-1)
        return self.out(feats)                                # (B, T, D)


class TemporalTransformer(nn.Module):
    def __init__(self, config: FusionModelConfig) -> None:
        super().__init__()
        d = config.token_dim
        self.summary = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.summary, std=0.02)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(d, config.num_heads, config.mlp_ratio, config.dropout)
            for _ in range(config.temporal_layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D); frame_mask: (B, T) -> (B, T + 1, D), summary first
        summary = self.summary.expand(x.shape[0], -1, -1)            # (B, 1, D)
        x = torch.cat([summary, x], dim=1)                           # (B, T+1, D)
        valid = torch.ones_like(frame_mask[:, :1])                   # (B, 1)
        key_mask = torch.cat([valid, frame_mask], dim=1)             # (B, T+1)
        for block in self.blocks:
            x = block(x, key_mask)
        return self.norm(x)


class TemporalGRU(nn.Module):
    """GRU over frames oldest -> newest; the final hidden state is the summary token."""

    def __init__(self, config: FusionModelConfig) -> None:
        super().__init__()
        d = config.token_dim
        self.gru = nn.GRU(d, d, num_layers=config.temporal_layers, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D) -> (B, T + 1, D); missing frames already carry the missing embedding.
        out, _ = self.gru(x)                                  # (B, T, D)
        x = torch.cat([out[:, -1:], out], dim=1)              # (B, T+1, D)
        return self.norm(x)


class RadarEncoder(nn.Module):
    """Radar history -> (tokens (B, T+1, D), key mask (B, T+1)); token 0 is the summary."""

    def __init__(self, config: FusionModelConfig) -> None:
        super().__init__()
        d = config.token_dim
        self.time_scale = config.time_scale
        self.max_time_offset = config.max_time_offset
        self.points = PointEncoder(config)
        self.time_mlp = nn.Sequential(nn.Linear(1, d), nn.GELU(), nn.Linear(d, d))
        self.missing_frame = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.missing_frame, std=0.02)
        if config.temporal_encoder == 'gru':
            self.temporal: nn.Module = TemporalGRU(config)
        else:
            self.temporal = TemporalTransformer(config)

    def forward(
        self, points: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor,
        time_offsets: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # points: (B, T, N, F); point_mask: (B, T, N); frame_mask: (B, T); time_offsets: (B, T)
        point_mask = point_mask & frame_mask.unsqueeze(-1)            # no points in missing frames
        frames = self.points(points, point_mask)                     # (B, T, D)
        fm = frame_mask.unsqueeze(-1)                                # (B, T, 1)
        frames = torch.where(fm, frames, self.missing_frame.to(frames.dtype))
        dt = time_offsets.clamp(-self.max_time_offset, self.max_time_offset) / self.time_scale
        dt = torch.where(frame_mask, dt, 0.0).unsqueeze(-1)          # (B, T, 1)
        tokens = self.temporal(frames + self.time_mlp(dt), frame_mask)  # (B, T+1, D)
        valid = torch.ones_like(frame_mask[:, :1])
        return tokens, torch.cat([valid, frame_mask], dim=1)        # (B, T+1, D), (B, T+1)
