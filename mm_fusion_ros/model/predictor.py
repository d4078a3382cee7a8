"""FusionPredictor: the one adapter that runs the model (weights loaded strict, eval mode).

Backends, chosen by measurement (`bench/model_latency.py`, batch 1, 2 shared cores):
onnxruntime runs the default model several times faster than eager torch on CPU (BatchNorm
folded, fused kernels, no Python dispatch per op), so `backend='auto'` uses it on CPU when
onnxruntime is importable and falls back to eager torch otherwise; on CUDA eager torch runs
under bf16 (fp16 where bf16 is unsupported) autocast with preallocated pinned host buffers and
device buffers for batch 1. channels_last is off by default: it measured no faster on CPU at
these widths (the bench prints both).
"""

from collections.abc import Sequence
from dataclasses import dataclass
import logging
from pathlib import Path
import re
import tempfile
import time
from typing import Any

import numpy as np
import torch

from mm_fusion_ros.actions import Action
from mm_fusion_ros.model.checkpoint import load_checkpoint
from mm_fusion_ros.model.config import FusionModelConfig
from mm_fusion_ros.model.export import INPUT_NAMES, export_onnx
from mm_fusion_ros.model.fusion import MODALITIES, FusionModel, FusionOutput
from mm_fusion_ros.model.preprocess import ModelInputs, prepare_batch
from mm_fusion_ros.sensors.radar_sequence import RadarSequence

logger = logging.getLogger(__name__)

BACKENDS = ('auto', 'torch', 'onnxruntime')
AMP_DTYPES = ('auto', 'bf16', 'fp16', 'fp32')
_DEVICE_RE = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray   # (C,) float32 softmax over the Action order
    action: Action              # argmax class
    confidence: float           # probability of `action`
    target_acceleration: float  # [m/s^2]
    ttc: float                  # [s] auxiliary time-to-collision estimate
    latency_s: float            # [s] whole predict(): preprocessing + forward + readback
    modality: str = 'fused'


@dataclass(frozen=True)
class BatchPrediction:
    probabilities: np.ndarray        # (B, C) float32
    actions: np.ndarray              # (B,) int64 Action values
    confidence: np.ndarray           # (B,) float32
    target_acceleration: np.ndarray  # (B,) float32 [m/s^2]
    ttc: np.ndarray                  # (B,) float32 [s]
    latency_s: float                 # [s] for the whole batch
    modality: str = 'fused'


def resolve_device(spec: str | torch.device = 'auto') -> tuple[torch.device, bool]:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> (device, fell_back_to_cpu).

    An unavailable CUDA request falls back to CPU with a logged warning rather than failing:
    a node configured for a GPU still drives on a machine without one.
    """
    spec = str(spec).strip().lower()
    if not _DEVICE_RE.match(spec):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    if spec == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu'), False
    if spec == 'cpu':
        return torch.device('cpu'), False
    device = torch.device(spec)
    if not torch.cuda.is_available():
        logger.warning('device %r requested but CUDA is not available; using CPU', spec)
        return torch.device('cpu'), True
    if device.index is not None and device.index >= torch.cuda.device_count():
        logger.warning('device %r requested but only %d CUDA device(s); using CPU',
                       spec, torch.cuda.device_count())
        return torch.device('cpu'), True
    return device, False


def _amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    if device.type != 'cuda' or amp == 'fp32':
        return None
    if amp == 'fp16':
        return torch.float16
    if amp == 'bf16' or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


class FusionPredictor:
    """Runs a FusionModel on numpy inputs; see the module docstring for backend choices.

    Takes ownership of `model` (switched to eval and moved to the device). The onnxruntime
    backend exports the weights on first use per modality, so later weight changes are not
    seen: build a new predictor after training. `num_threads` sets torch's (process-wide)
    intra-op threads on CPU and onnxruntime's; None leaves both at their defaults. The
    checkpoint's `logit_offsets` (in `info`: the training-to-driving prior correction of
    `model.prior`) are added to the logits of every backend and modality before the softmax,
    so actions and probabilities both include them.
    """

    def __init__(
        self, model: FusionModel, device: str | torch.device = 'auto',
        num_threads: int | None = None, backend: str = 'auto', amp: str = 'auto',
        channels_last: bool = False, info: dict[str, Any] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        if amp not in AMP_DTYPES:
            raise ValueError(f'amp must be one of {AMP_DTYPES}, got {amp!r}')
        self.device, self.device_fallback = resolve_device(device)
        self.info = dict(info or {})
        self.num_threads = num_threads
        if num_threads is not None and num_threads > 0 and self.device.type == 'cpu':
            # Process-wide in torch; the predictor is the process's one inference owner.
            torch.set_num_threads(num_threads)
        self.model = model.eval().to(self.device)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        offsets = self.info.get('logit_offsets') or [0.0] * model.config.num_classes
        self.logit_offsets = torch.tensor(offsets, dtype=torch.float32)
        self.amp_dtype = _amp_dtype(self.device, amp)
        self.backend = self._pick_backend(backend)
        self._ort_sessions: dict[str, tuple[Any, list[str]]] = {}
        self._buffers: dict[str, torch.Tensor] = {}
        if self.device.type == 'cuda':
            self._allocate_buffers()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = 'auto',
        num_threads: int | None = None, backend: str = 'auto', amp: str = 'auto',
    ) -> 'FusionPredictor':
        """Load a checkpoint (raises CheckpointError with the reason when it is unusable)."""
        model, info = load_checkpoint(path)
        return cls(model, device=device, num_threads=num_threads, backend=backend, amp=amp,
                   info=info)

    @property
    def config(self) -> FusionModelConfig:
        return self.model.config

    # -- backends -------------------------------------------------------------------------
    def _pick_backend(self, backend: str) -> str:
        if backend == 'torch':
            return 'torch'
        if self.device.type != 'cpu':
            if backend == 'onnxruntime':
                logger.warning('onnxruntime backend runs on CPU only here; using torch on %s',
                               self.device)
            return 'torch'
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            if backend == 'onnxruntime':
                raise
            return 'torch'
        return 'onnxruntime'

    def _ort_session(self, modality: str) -> tuple[Any, list[str]]:
        """Export + load the ONNX graph of one modality on first use (about a second)."""
        entry = self._ort_sessions.get(modality)
        if entry is None:
            import onnxruntime as ort

            with tempfile.TemporaryDirectory() as tmp:
                path = export_onnx(self.model, Path(tmp) / f'fusion_{modality}.onnx', modality)
                graph = path.read_bytes()
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.inter_op_num_threads = 1
            if self.num_threads is not None and self.num_threads > 0:
                options.intra_op_num_threads = self.num_threads
            session = ort.InferenceSession(graph, options, providers=['CPUExecutionProvider'])
            entry = (session, [i.name for i in session.get_inputs()])
            self._ort_sessions[modality] = entry
        return entry

    def _allocate_buffers(self) -> None:
        """Batch-1 pinned host buffers and device buffers: no allocation per frame on CUDA."""
        cfg = self.config
        shapes = {
            'image': ((1, 3, cfg.input_height, cfg.image_width), torch.float32),
            'radar_points': ((1, cfg.num_frames, cfg.max_points, cfg.num_features),
                             torch.float32),
            'point_mask': ((1, cfg.num_frames, cfg.max_points), torch.bool),
            'frame_mask': ((1, cfg.num_frames), torch.bool),
            'time_offsets': ((1, cfg.num_frames), torch.float32),
            'ego_speed': ((1,), torch.float32),
            'ego_speed_valid': ((1,), torch.bool),
            'previous_image': ((1, 3, cfg.input_height, cfg.image_width), torch.float32),
        }
        for name, (shape, dtype) in shapes.items():
            self._buffers['host_' + name] = torch.empty(shape, dtype=dtype, pin_memory=True)
            self._buffers['dev_' + name] = torch.empty(shape, dtype=dtype, device=self.device)

    # -- running --------------------------------------------------------------------------
    def _to_device(self, inputs: ModelInputs) -> list[torch.Tensor]:
        arrays = inputs.as_dict()
        if self._buffers and inputs.image.shape[0] == 1:
            out = []
            for name in INPUT_NAMES:
                host = self._buffers['host_' + name]
                host.copy_(torch.from_numpy(arrays[name]))
                dev = self._buffers['dev_' + name]
                dev.copy_(host, non_blocking=True)
                out.append(dev)
            return out
        return [torch.from_numpy(arrays[name]).to(self.device, non_blocking=True)
                for name in INPUT_NAMES]

    def forward_arrays(
        self, inputs: ModelInputs, modality: str = 'fused',
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Preprocessed batch -> (probabilities (B, C), accel (B,), ttc (B,)) as numpy."""
        if modality not in MODALITIES:
            raise ValueError(f'modality must be one of {MODALITIES}, got {modality!r}')
        if self.backend == 'onnxruntime':
            session, names = self._ort_session(modality)
            feeds = inputs.as_dict()  # single-modality graphs drop the other branch's inputs
            logits, accel, ttc = session.run(None, {n: feeds[n] for n in names})
            logits = torch.from_numpy(logits)
            accel_t, ttc_t = torch.from_numpy(accel), torch.from_numpy(ttc)
        else:
            tensors = self._to_device(inputs)
            if self.channels_last:
                tensors[0] = tensors[0].contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), torch.autocast(
                    self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                    enabled=self.amp_dtype is not None):
                out: FusionOutput = self.model(*tensors, modality=modality)
            logits, accel_t, ttc_t = (x.float().cpu() for x in out)
        probs = torch.softmax(logits.float() + self.logit_offsets, dim=-1).numpy()
        return probs, accel_t.numpy().astype(np.float32), ttc_t.numpy().astype(np.float32)

    def predict(
        self, rgb: np.ndarray, radar: RadarSequence, modality: str = 'fused',
        ego_speed: float | None = None, previous_rgb: np.ndarray | None = None,
    ) -> Prediction:
        """One camera frame (H, W, 3) uint8 RGB + radar history + ego speed -> Prediction.

        `ego_speed` [m/s] from odometry; None when unknown (the model's no-speed path).
        `previous_rgb`: the frame `config.camera_history` s earlier (`CameraHistory`), None
        when there is none (the model then sees no motion).
        """
        start = time.perf_counter()
        inputs = prepare_batch([rgb], [radar], self.config, [ego_speed], [previous_rgb])
        probs, accel, ttc = self.forward_arrays(inputs, modality)
        cls = int(np.argmax(probs[0]))
        return Prediction(
            probabilities=probs[0], action=Action(cls), confidence=float(probs[0, cls]),
            target_acceleration=float(accel[0]), ttc=float(ttc[0]),
            latency_s=time.perf_counter() - start, modality=modality)

    def warmup(self, modalities: Sequence[str] = ('fused',)) -> None:
        """Run once per modality (ONNX export, kernel selection, CUDA context) before real use."""
        cfg = self.config
        rgb = np.zeros((cfg.image_height, cfg.image_width, 3), np.uint8)
        radar = RadarSequence.empty(cfg.num_frames, cfg.max_points, cfg.num_features)
        for modality in modalities:
            self.predict(rgb, radar, modality, ego_speed=10.0, previous_rgb=rgb)

    def predict_batch(
        self, rgbs: Sequence[np.ndarray], radars: Sequence[RadarSequence],
        modality: str = 'fused', batch_size: int = 64,
        ego_speeds: Sequence[float | None] | np.ndarray | None = None,
        previous_rgbs: Sequence[np.ndarray | None] | None = None, composed: bool = False,
    ) -> BatchPrediction:
        """Offline evaluation: many frames, run in chunks of `batch_size`.

        `composed`: the images are composed model frames (a training cache's).
        """
        if len(rgbs) != len(radars):
            raise ValueError(f'{len(rgbs)} images but {len(radars)} radar sequences')
        if ego_speeds is not None and len(ego_speeds) != len(rgbs):
            raise ValueError(f'{len(rgbs)} images but {len(ego_speeds)} ego speeds')
        if previous_rgbs is not None and len(previous_rgbs) != len(rgbs):
            raise ValueError(f'{len(rgbs)} images but {len(previous_rgbs)} earlier frames')
        start = time.perf_counter()
        parts = []
        for i in range(0, len(rgbs), batch_size):
            speeds = None if ego_speeds is None else ego_speeds[i:i + batch_size]
            previous = None if previous_rgbs is None else previous_rgbs[i:i + batch_size]
            inputs = prepare_batch(rgbs[i:i + batch_size], radars[i:i + batch_size], self.config,
                                   speeds, previous, composed)
            parts.append(self.forward_arrays(inputs, modality))
        probs, accel, ttc = (np.concatenate(x) for x in zip(*parts, strict=True))
        cls = probs.argmax(axis=1)
        return BatchPrediction(
            probabilities=probs, actions=cls.astype(np.int64),
            confidence=probs[np.arange(len(cls)), cls], target_acceleration=accel, ttc=ttc,
            latency_s=time.perf_counter() - start, modality=modality)
