"""Fusion model: CNN image branch, radar sequence encoder, attention fusion (pure torch)."""

from mm_fusion_ros.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from mm_fusion_ros.model.config import FusionModelConfig, small_config
from mm_fusion_ros.model.export import export_onnx, export_torchscript
from mm_fusion_ros.model.fusion import MODALITIES, FusionModel, FusionOutput
from mm_fusion_ros.model.losses import LossTerms, LossWeights, fusion_loss
from mm_fusion_ros.model.predictor import (
    BatchPrediction,
    FusionPredictor,
    Prediction,
    resolve_device,
)
from mm_fusion_ros.model.preprocess import (
    ModelInputs,
    collate_radar,
    prepare_batch,
    preprocess_image,
)

__all__ = [
    'BatchPrediction', 'CheckpointError', 'FusionModel', 'FusionModelConfig', 'FusionOutput',
    'FusionPredictor', 'LossTerms', 'LossWeights', 'MODALITIES', 'ModelInputs', 'Prediction',
    'collate_radar', 'export_onnx', 'export_torchscript', 'fusion_loss', 'load_checkpoint',
    'prepare_batch', 'preprocess_image', 'read_checkpoint', 'resolve_device', 'save_checkpoint',
    'small_config',
]
