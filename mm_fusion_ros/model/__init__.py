"""Fusion model: CNN image branch, radar sequence encoder, attention fusion (pure torch).

Names are imported on first use (PEP 562), so `from mm_fusion_ros.model.predictor import
FusionPredictor` does not import torch: the onnxruntime path starts without it.
"""

import importlib
from typing import Any

_EXPORTS = {
    'CheckpointError': 'checkpoint', 'load_checkpoint': 'checkpoint',
    'read_checkpoint': 'checkpoint', 'save_checkpoint': 'checkpoint',
    'FusionModelConfig': 'config', 'small_config': 'config', 'MODALITIES': 'config',
    'export_onnx': 'export', 'export_torchscript': 'export',
    'FusionModel': 'fusion', 'FusionOutput': 'output',
    'LossTerms': 'losses', 'LossWeights': 'losses', 'fusion_loss': 'losses',
    'BatchPrediction': 'predictor', 'FusionPredictor': 'predictor', 'Prediction': 'predictor',
    'resolve_device': 'predictor',
    'ModelInputs': 'preprocess', 'collate_radar': 'preprocess', 'prepare_batch': 'preprocess',
    'preprocess_image': 'preprocess',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'{__name__}.{module}'), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
