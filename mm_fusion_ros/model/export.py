"""Export to ONNX (dynamic batch) and TorchScript, one function each.

Both export one modality ('fused' by default: 'camera'/'radar' graphs skip the absent branch)
at the config's image size with a dynamic batch axis. ONNX uses the TorchScript-based exporter
(`dynamo=False`): the dynamo exporter needs onnxscript, which this environment lacks, and the
model's reshapes use -1 for token counts so the traced graph has no baked-in batch.
"""

from pathlib import Path
import warnings

import torch
from torch import nn

from mm_fusion_ros.model.fusion import FusionModel
from mm_fusion_ros.model.preprocess import INPUT_NAMES

OUTPUT_NAMES = ('logits', 'accel', 'ttc')


class ExportWrapper(nn.Module):
    """Fixed modality, plain tuple output: what tracers and ONNX want."""

    def __init__(self, model: FusionModel, modality: str = 'fused') -> None:
        super().__init__()
        self.model = model
        self.modality = modality

    def forward(
        self, image: torch.Tensor, radar_points: torch.Tensor, point_mask: torch.Tensor,
        frame_mask: torch.Tensor, time_offsets: torch.Tensor, ego_speed: torch.Tensor,
        ego_speed_valid: torch.Tensor, previous_image: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(image, radar_points, point_mask, frame_mask, time_offsets, ego_speed,
                         ego_speed_valid, previous_image, modality=self.modality)
        return out.logits, out.accel, out.ttc


def example_inputs(
    model: FusionModel, batch_size: int = 2, device: torch.device | str = 'cpu',
) -> tuple[torch.Tensor, ...]:
    """Random inputs of the model's shapes: some points, a frame and a speed masked."""
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    b, t, n = batch_size, cfg.num_frames, cfg.max_points
    image = torch.randn(b, 3, cfg.input_height, cfg.image_width, generator=g)
    points = torch.randn(b, t, n, cfg.num_features, generator=g)
    point_mask = torch.rand(b, t, n, generator=g) < 0.7
    frame_mask = torch.ones(b, t, dtype=torch.bool)
    frame_mask[:, 0] = False
    offsets = -torch.arange(t - 1, -1, -1, dtype=torch.float32).expand(b, t) * 0.05
    speed = 15.0 * torch.rand(b, generator=g)
    speed_valid = torch.ones(b, dtype=torch.bool)
    speed_valid[0] = False
    previous = image + 0.1 * torch.randn(image.shape, generator=g)
    return tuple(x.to(device) for x in (image, points, point_mask, frame_mask, offsets, speed,
                                        speed_valid, previous))


def export_onnx(
    model: FusionModel, path: str | Path, modality: str = 'fused', opset: int = 17,
) -> Path:
    """Write an ONNX graph with a dynamic batch axis; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model, modality).eval()
    args = example_inputs(model, batch_size=2, device=next(model.parameters()).device)
    dynamic_axes = {name: {0: 'batch'} for name in INPUT_NAMES + OUTPUT_NAMES}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings about Python-side constants
        torch.onnx.export(
            wrapper, args, str(path), input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic_axes, opset_version=opset,
            dynamo=False, do_constant_folding=True)
    return path


def export_torchscript(
    model: FusionModel, path: str | Path, modality: str = 'fused',
) -> Path:
    """Trace to TorchScript (batch stays dynamic) and save; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model, modality).eval()
    args = example_inputs(model, batch_size=2, device=next(model.parameters()).device)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(wrapper, args, check_trace=False)
    traced.save(str(path))
    return path
