"""Image branch: a light ResNet-style CNN (stem + BasicBlock stages) -> a grid of image tokens.

Structure follows torchvision's resnet.py (BasicBlock, `_make_layer`, 1x1 downsample on the
shortcut) in plain torch, because torchvision does not import beside torch 2.13 here. The
ResNet-18 stem (7x7 conv + max-pool) and widths (64..512) cost 35-47 ms at 128x256 on 2 CPU
cores; a 3x3 stride-2 stem and widths 16-96 keep the branch at a few ms while still giving a
stride-32 grid (4x8 tokens at 128x256) for the fusion attention.

With a fovea (`FusionModelConfig.fovea_height`) the input is the view with the fovea's rows
stacked below it (`preprocess.compose_frame`): the same convolutions read both, and the
position embedding, one per grid cell, tells the view's tokens (first rows) from the fovea's
(2x8 more at 64 rows). 64 is a multiple of the stride, so no token straddles the seam.

Motion enters early (the "early fusion" of two frames in video CNNs): with `camera_history`
the stem reads 6 channels, the frame and its change since the earlier frame, so the first
convolutions see a pedestrian's few-pixel step at full resolution. A missing earlier frame is
a zero change (trained by history dropout).
"""

import torch
from torch import nn

from mm_fusion_ros.model.config import FusionModelConfig


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 strided) shortcut, as in ResNet-18/34."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, Cin, H, W) -> (B, Cout, H/stride, W/stride)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ImageBranch(nn.Module):
    """(B, 3, H, W) normalised RGB (+ change) -> (B, h*w, D) tokens with 2-D position embedding."""

    def __init__(self, config: FusionModelConfig) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            conv3x3(config.image_channels, config.stem_width, stride=2),
            nn.BatchNorm2d(config.stem_width), nn.ReLU(inplace=True))
        self.use_history = config.camera_history > 0
        in_ch = config.stem_width
        stages = []
        for width, blocks, stride in zip(
                config.stage_widths, config.stage_blocks, config.stage_strides, strict=True):
            stages.append(self._make_layer(in_ch, width, blocks, stride))
            in_ch = width
        self.stages = nn.Sequential(*stages)
        self.proj = nn.Conv2d(in_ch, config.token_dim, 1)
        grid_h, grid_w = config.image_grid
        # One embedding per grid cell; the model runs at the config's image size (preprocess
        # resizes to it), so the token count is fixed while the batch stays dynamic.
        self.pos_embed = nn.Parameter(torch.zeros(1, grid_h * grid_w, config.token_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _make_layer(in_ch: int, out_ch: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_ch, out_ch, stride)]
        layers += [BasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(
        self, image: torch.Tensor, change: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # image: (B, 3, H, W); change: (B, 3, H, W) image - earlier image (None: zeros)
        if self.use_history:
            image = torch.cat([image, torch.zeros_like(image) if change is None else change], 1)
        x = self.stages(self.stem(image))     # (B, C, h, w)
        x = self.proj(x)                      # (B, D, h, w)
        x = x.flatten(2).transpose(1, 2)      # (B, h*w, D)
        return x + self.pos_embed
