"""FusionPredictor: the one adapter that runs the model (weights loaded strict, eval mode).

Backends: 'torch' (eager, under bf16/fp16 autocast on CUDA unless `amp='fp32'`),
'torchscript' (the traced graph of `export.ExportWrapper`), 'onnxruntime' (CPU, or the CUDA /
TensorRT execution providers when the installed onnxruntime has them). `backend='auto'` takes
the fastest usable backend measured for the device in `backend_table` (`bench/gpu_backends.py`
measures them); without a row for the device it keeps the rule measured before
(`bench/model_latency.py`, batch 1, 2 shared cores): onnxruntime on CPU when importable (it runs
the default model several times faster than eager torch: BatchNorm folded, fused kernels, no
Python dispatch per op), else eager torch; on CUDA eager torch under bf16 (fp16 where bf16 is
unsupported) autocast with preallocated pinned host buffers and device buffers for batch 1.
channels_last is off by default: it measured no faster on CPU at these widths.

Start-up: `from_checkpoint` with the onnxruntime backend keeps the exported graphs in the user
cache (`onnx_cache`, keyed by the checkpoint's content): a warm start reads the graph and the
checkpoint's validated metadata from there and imports neither torch nor the weights (torch is
imported when something needs it: another modality's first export, a camera frame to resize).

Per frame, each camera frame is normalised once: the predictor keeps the normalised input of
the frames it saw as current (`preprocess.FrameInputCache`), and the earlier frame the camera
history hands back `camera_history` s later is that same array.
"""

from collections.abc import Sequence
import ctypes
from dataclasses import dataclass
import importlib.util
import logging
from pathlib import Path
import re
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from mm_fusion_ros.actions import Action
from mm_fusion_ros.model import backend_table
from mm_fusion_ros.model.config import MODALITIES, FusionModelConfig
from mm_fusion_ros.model.onnx_cache import DEFAULT_OPSET, OnnxCache, file_sha256
from mm_fusion_ros.model.preprocess import (
    INPUT_NAMES,
    FrameInputCache,
    ModelInputs,
    prepare_batch,
)
from mm_fusion_ros.sensors.radar_sequence import RadarSequence

if TYPE_CHECKING:
    import torch

    from mm_fusion_ros.model.fusion import FusionModel

logger = logging.getLogger(__name__)

BACKENDS = ('auto', 'torch', 'torchscript', 'onnxruntime')
AMP_DTYPES = ('auto', 'bf16', 'fp16', 'fp32')
_DEVICE_RE = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')
ORT_PROVIDERS = {'cpu': 'CPUExecutionProvider', 'cuda': 'CUDAExecutionProvider',
                 'tensorrt': 'TensorrtExecutionProvider'}


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


class Device(str):
    """'cpu', 'cuda' or 'cuda:N' with torch.device's `type` and `index`.

    A str, so torch accepts it wherever it takes a device, and the CPU path never has to
    import torch to name its device.
    """

    @property
    def type(self) -> str:
        return self.split(':')[0]

    @property
    def index(self) -> int | None:
        return int(self.split(':')[1]) if ':' in self else None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str) or type(other).__name__ == 'device':
            return str.__eq__(self, str(other))
        return NotImplemented

    __hash__ = str.__hash__


def _cuda_driver_present() -> bool:
    """False only where CUDA certainly cannot work (no driver library): decides without torch."""
    if 'torch' in sys.modules or not sys.platform.startswith('linux'):
        return True
    try:
        ctypes.CDLL('libcuda.so.1')
    except OSError:
        return False
    return True


def _cuda_devices() -> int:
    """Number of usable CUDA devices (imports torch only where a driver is present)."""
    if not _cuda_driver_present():
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _resolve(spec: Any) -> tuple[Device, bool]:
    spec = str(spec).strip().lower()
    if not _DEVICE_RE.match(spec):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    if spec == 'cpu':
        return Device('cpu'), False
    count = _cuda_devices()
    if spec == 'auto':
        return Device('cuda' if count else 'cpu'), False
    if not count:
        logger.warning('device %r requested but CUDA is not available; using CPU', spec)
        return Device('cpu'), True
    index = Device(spec).index
    if index is not None and index >= count:
        logger.warning('device %r requested but only %d CUDA device(s); using CPU', spec, count)
        return Device('cpu'), True
    return Device(spec), False


def resolve_device(spec: 'str | torch.device' = 'auto') -> tuple['torch.device', bool]:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> (device, fell_back_to_cpu).

    An unavailable CUDA request falls back to CPU with a logged warning rather than failing:
    a node configured for a GPU still drives on a machine without one.
    """
    import torch

    device, fell_back = _resolve(spec)
    return torch.device(device), fell_back


def _amp_dtype(device: Device, amp: str) -> 'torch.dtype | None':
    if device.type != 'cuda' or amp == 'fp32':
        return None
    import torch

    if amp == 'fp16':
        return torch.float16
    if amp == 'bf16' or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _ort_providers() -> list[str]:
    if importlib.util.find_spec('onnxruntime') is None:
        return []
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def _usable(row: dict[str, Any], providers: list[str]) -> bool:
    if row.get('backend') in ('torch', 'torchscript'):
        return True
    return row.get('backend') == 'onnxruntime' and row.get('provider') in providers


@dataclass(frozen=True)
class BackendChoice:
    backend: str              # 'torch' | 'torchscript' | 'onnxruntime'
    amp: str                  # AMP_DTYPES entry
    provider: str | None      # onnxruntime execution provider
    why: str                  # for the log: the table row or the rule that chose it


def choose_backend(device: Device, backend: str = 'auto', amp: str = 'auto') -> BackendChoice:
    """Which backend runs on `device` (see the module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    if amp not in AMP_DTYPES:
        raise ValueError(f'amp must be one of {AMP_DTYPES}, got {amp!r}')
    if backend in ('torch', 'torchscript'):
        return BackendChoice(backend, amp, None, 'requested')
    if backend == 'onnxruntime':
        if device.type == 'cpu':
            import onnxruntime  # noqa: F401 - ImportError says what is missing
            return BackendChoice('onnxruntime', 'fp32', ORT_PROVIDERS['cpu'], 'requested')
        if ORT_PROVIDERS['cuda'] in _ort_providers():
            return BackendChoice('onnxruntime', 'fp32', ORT_PROVIDERS['cuda'], 'requested')
        logger.warning('onnxruntime has no CUDA execution provider here; using torch on %s',
                       device)
        return BackendChoice('torch', amp, None, 'onnxruntime CUDA provider missing')
    providers = _ort_providers()
    name = None
    if device.type == 'cuda':
        import torch

        name = torch.cuda.get_device_name(torch.device(device))
    row = backend_table.choose(device.type, name, lambda r: _usable(r, providers))
    if row is not None:
        why = (f"measured fastest: {row['backend']} {row.get('amp', 'fp32')} "
               f"p50 {row['p50_ms']:.2f} ms on {row.get('device_name')}")
        return BackendChoice(row['backend'], row.get('amp', 'fp32') if amp == 'auto' else amp,
                             row.get('provider'), why)
    if device.type == 'cpu' and ORT_PROVIDERS['cpu'] in providers:
        return BackendChoice('onnxruntime', 'fp32', ORT_PROVIDERS['cpu'], 'built-in rule')
    return BackendChoice('torch', amp, None, 'built-in rule')


def validate_checkpoint(path: str | Path, onnx_cache: bool = True) -> dict[str, Any]:
    """The checkpoint's metadata (payload without weights); CheckpointError if it is unusable.

    For a command that checks its checkpoints before the real work: a checkpoint whose content
    was validated before (its metadata is in the ONNX cache, keyed by the file's hash) is not
    read again, so the check costs a hash instead of the torch import and a load.
    """
    path = Path(path)
    cache = None
    if onnx_cache and path.is_file():
        try:
            cache = OnnxCache.for_checkpoint(path)
        except OSError:
            cache = None
        info = cache.load_info() if cache is not None else None
        if info is not None:
            return info
    from mm_fusion_ros.model.checkpoint import load_checkpoint

    _, info = load_checkpoint(path)
    if cache is not None:
        cache.store_info(info)
    return info


def _softmax(logits: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float32) + offsets
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


class FusionPredictor:
    """Runs a FusionModel on numpy inputs; see the module docstring for backend choices.

    Takes ownership of `model` (switched to eval and moved to the device). The onnxruntime
    and torchscript backends export / trace the weights on first use per modality, so later
    weight changes are not seen: build a new predictor after training. `num_threads` sets
    torch's (process-wide) intra-op threads on CPU and onnxruntime's; None leaves both at their
    defaults. The checkpoint's `logit_offsets` (in `info`: the training-to-driving prior
    correction of `model.prior`) are added to the logits of every backend and modality before
    the softmax, so actions and probabilities both include them. `onnx_cache`: where exported
    graphs are kept across processes (`from_checkpoint` sets it; None exports in memory).
    """

    def __init__(
        self, model: 'FusionModel', device: 'str | torch.device' = 'auto',
        num_threads: int | None = None, backend: str = 'auto', amp: str = 'auto',
        channels_last: bool = False, info: dict[str, Any] | None = None,
        onnx_cache: OnnxCache | None = None,
    ) -> None:
        resolved, fell_back = _resolve(device)
        self._setup(model.config, resolved, fell_back, num_threads,
                    choose_backend(resolved, backend, amp), channels_last, info, onnx_cache)
        self._attach_model(model)

    def _setup(
        self, config: FusionModelConfig, device: Device, fell_back: bool,
        num_threads: int | None, choice: BackendChoice, channels_last: bool,
        info: dict[str, Any] | None, onnx_cache: OnnxCache | None,
    ) -> None:
        self._config = config
        self.device, self.device_fallback = device, fell_back
        self.info = dict(info or {})
        self.num_threads = num_threads
        self.backend, self.ort_provider = choice.backend, choice.provider
        self.backend_reason = choice.why
        self.amp_dtype = _amp_dtype(device, choice.amp)
        self.channels_last = channels_last
        offsets = self.info.get('logit_offsets') or [0.0] * config.num_classes
        self.logit_offsets = np.asarray(offsets, np.float32)
        self.onnx_cache = onnx_cache
        self.frame_cache = FrameInputCache()
        self._model: FusionModel | None = None
        self._checkpoint: Path | None = None
        self._sessions: dict[str, Any] = {}
        self._buffers: dict[str, Any] = {}
        if self.backend != 'onnxruntime' or 'torch' in sys.modules:
            self._torch_threads()

    def _torch_threads(self) -> None:
        if self.num_threads is not None and self.num_threads > 0 and self.device.type == 'cpu':
            import torch

            # Process-wide in torch; the predictor is the process's one inference owner.
            torch.set_num_threads(self.num_threads)

    def _attach_model(self, model: 'FusionModel') -> None:
        model = model.eval()
        if self.backend != 'onnxruntime':
            model = model.to(self.device)
            if self.channels_last:
                import torch

                model = model.to(memory_format=torch.channels_last)
        self._model = model
        if self.device.type == 'cuda' and self.backend == 'torch':
            self._allocate_buffers()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: 'str | torch.device' = 'auto',
        num_threads: int | None = None, backend: str = 'auto', amp: str = 'auto',
        onnx_cache: bool = True,
    ) -> 'FusionPredictor':
        """Load a checkpoint (raises CheckpointError with the reason when it is unusable).

        With the onnxruntime backend and `onnx_cache`, the exported graphs and the checkpoint's
        metadata come from the user cache when this checkpoint (by content) was loaded before;
        the weights are then read only if a graph has to be exported again.
        """
        path = Path(path)
        resolved, fell_back = _resolve(device)
        choice = choose_backend(resolved, backend, amp)
        cache = None
        if choice.backend == 'onnxruntime' and onnx_cache and path.is_file():
            try:
                cache = OnnxCache.for_checkpoint(path)
            except OSError:
                cache = None  # load_checkpoint below says what is wrong with the file
        info = cache.load_info() if cache is not None else None
        config = None
        if info is not None:
            try:
                config = FusionModelConfig.from_dict(info['model_config'])
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                cache.discard_info(f'invalid model_config ({exc})')
        predictor = cls.__new__(cls)
        if config is not None:  # warm: no weights, no torch
            predictor._setup(config, resolved, fell_back, num_threads, choice, False, info,
                             cache)
            predictor._checkpoint = path
            return predictor
        from mm_fusion_ros.model.checkpoint import load_checkpoint

        model, info = load_checkpoint(path)
        if cache is not None:
            cache.store_info(info)
        predictor._setup(model.config, resolved, fell_back, num_threads, choice, False, info,
                         cache)
        predictor._attach_model(model)
        return predictor

    @property
    def config(self) -> FusionModelConfig:
        return self._config

    @property
    def model(self) -> 'FusionModel':
        """The torch model (a warm-cache predictor loads the checkpoint on first access)."""
        if self._model is None:
            self._attach_model(self._load_cached_checkpoint())
        return self._model

    def _load_cached_checkpoint(self) -> 'FusionModel':
        from mm_fusion_ros.model.checkpoint import CheckpointError, load_checkpoint

        assert self._checkpoint is not None and self.onnx_cache is not None
        model, _ = load_checkpoint(self._checkpoint)
        if file_sha256(self._checkpoint) != self.onnx_cache.checkpoint_sha256:
            raise CheckpointError(f'{self._checkpoint} changed on disk after the model was '
                                  'loaded; restart to use the new checkpoint')
        self._torch_threads()
        return model

    # -- backends -------------------------------------------------------------------------
    def _ort_session(self, modality: str) -> tuple[Any, list[str]]:
        """(session, input names) of one modality: graph from the cache, else exported (~2 s)."""
        entry = self._sessions.get(modality)
        if entry is not None:
            return entry
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if self.num_threads is not None and self.num_threads > 0:
            options.intra_op_num_threads = self.num_threads
        providers = [self.ort_provider] if self.ort_provider else []
        if ORT_PROVIDERS['cpu'] not in providers:
            providers.append(ORT_PROVIDERS['cpu'])
        cache = self.onnx_cache
        graph = cache.load_graph(modality) if cache is not None else None
        session = None
        if graph is not None:
            try:
                session = ort.InferenceSession(graph, options, providers=providers)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
                cache.discard_graph(modality, f'onnxruntime cannot load it ({exc})')
                session = None
        if session is None:
            graph = self._export(modality)
            if cache is not None:
                cache.store_graph(modality, graph)
            session = ort.InferenceSession(graph, options, providers=providers)
        # single-modality graphs drop the other branch's inputs
        entry = (session, [i.name for i in session.get_inputs()])
        self._sessions[modality] = entry
        return entry

    def _export(self, modality: str) -> bytes:
        import tempfile

        from mm_fusion_ros.model.export import export_onnx

        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(self.model, Path(tmp) / f'fusion_{modality}.onnx', modality,
                               opset=DEFAULT_OPSET)
            return path.read_bytes()

    def _script(self, modality: str) -> Any:
        """The traced TorchScript module of one modality (traced on first use)."""
        module = self._sessions.get(modality)
        if module is None:
            import warnings

            import torch

            from mm_fusion_ros.model.export import ExportWrapper, example_inputs

            wrapper = ExportWrapper(self.model, modality).eval()
            args = example_inputs(self.model, batch_size=2, device=torch.device(self.device))
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter('ignore')  # tracer warnings about Python-side constants
                module = torch.jit.trace(wrapper, args, check_trace=False)
            self._sessions[modality] = module
        return module

    def _allocate_buffers(self) -> None:
        """Batch-1 pinned host buffers and device buffers: no allocation per frame on CUDA."""
        import torch

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
    def _to_device(self, inputs: ModelInputs) -> list['torch.Tensor']:
        import torch

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

    def _forward_torch(
        self, inputs: ModelInputs, modality: str,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        tensors = self._to_device(inputs)
        if self.channels_last:
            tensors[0] = tensors[0].contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(
                self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                enabled=self.amp_dtype is not None):
            if self.backend == 'torchscript':
                out = self._script(modality)(*tensors)
            else:
                out = self.model(*tensors, modality=modality)
        logits, accel, ttc = (x.float().cpu().numpy() for x in out)
        return logits, accel, ttc

    def forward_arrays(
        self, inputs: ModelInputs, modality: str = 'fused',
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Preprocessed batch -> (probabilities (B, C), accel (B,), ttc (B,)) as numpy."""
        if modality not in MODALITIES:
            raise ValueError(f'modality must be one of {MODALITIES}, got {modality!r}')
        if self.backend == 'onnxruntime':
            session, names = self._ort_session(modality)
            feeds = inputs.as_dict()
            logits, accel, ttc = session.run(None, {n: feeds[n] for n in names})
        else:
            logits, accel, ttc = self._forward_torch(inputs, modality)
        probs = _softmax(logits, self.logit_offsets)
        return probs, np.asarray(accel, np.float32), np.asarray(ttc, np.float32)

    def predict(
        self, rgb: np.ndarray, radar: RadarSequence, modality: str = 'fused',
        ego_speed: float | None = None, previous_rgb: np.ndarray | None = None,
    ) -> Prediction:
        """One camera frame (H, W, 3) uint8 RGB + radar history + ego speed -> Prediction.

        `ego_speed` [m/s] from odometry; None when unknown (the model's no-speed path).
        `previous_rgb`: the frame `config.camera_history` s earlier (`CameraHistory`), None
        when there is none (the model then sees no motion). A frame predicted before is not
        normalised again when it comes back as `previous_rgb` (same array object).
        """
        start = time.perf_counter()
        inputs = prepare_batch([rgb], [radar], self.config, [ego_speed], [previous_rgb],
                               frame_cache=self.frame_cache)
        probs, accel, ttc = self.forward_arrays(inputs, modality)
        cls = int(np.argmax(probs[0]))
        return Prediction(
            probabilities=probs[0], action=Action(cls), confidence=float(probs[0, cls]),
            target_acceleration=float(accel[0]), ttc=float(ttc[0]),
            latency_s=time.perf_counter() - start, modality=modality)

    def warmup(
        self, modalities: Sequence[str] = ('fused',),
        camera_shape: tuple[int, int] | None = None,
    ) -> None:
        """Run once per modality (graph load or export, kernels, CUDA context) before real use.

        `camera_shape` (height, width) of the frames to come: when they need resizing, one
        such frame runs too, so the resize (and the torch import it needs) happens now.
        """
        cfg = self.config
        radar = RadarSequence.empty(cfg.num_frames, cfg.max_points, cfg.num_features)
        rgb = np.zeros((cfg.image_height, cfg.image_width, 3), np.uint8)
        for modality in modalities:
            self.predict(rgb, radar, modality, ego_speed=10.0, previous_rgb=rgb)
        if camera_shape is not None and tuple(camera_shape) != rgb.shape[:2]:
            self.predict(np.zeros((*camera_shape, 3), np.uint8), radar, modalities[0])
        self.frame_cache.clear()

    def predict_batch(
        self, rgbs: Sequence[np.ndarray], radars: Sequence[RadarSequence],
        modality: str = 'fused', batch_size: int = 64,
        ego_speeds: Sequence[float | None] | np.ndarray | None = None,
        previous_rgbs: Sequence[np.ndarray | None] | None = None, composed: bool = False,
    ) -> BatchPrediction:
        """Offline evaluation: many frames, run in chunks of `batch_size`.

        `composed`: the images are composed model frames (a training cache's). Earlier frames
        that were current frames of this or an earlier call are not normalised again.
        """
        if len(rgbs) != len(radars):
            raise ValueError(f'{len(rgbs)} images but {len(radars)} radar sequences')
        if ego_speeds is not None and len(ego_speeds) != len(rgbs):
            raise ValueError(f'{len(rgbs)} images but {len(ego_speeds)} ego speeds')
        if previous_rgbs is not None and len(previous_rgbs) != len(rgbs):
            raise ValueError(f'{len(rgbs)} images but {len(previous_rgbs)} earlier frames')
        start = time.perf_counter()
        # Earlier frames inside a chunk are looked up after the chunk's frames are stored.
        self.frame_cache.capacity = max(self.frame_cache.capacity, batch_size + 32)
        parts = []
        for i in range(0, len(rgbs), batch_size):
            speeds = None if ego_speeds is None else ego_speeds[i:i + batch_size]
            previous = None if previous_rgbs is None else previous_rgbs[i:i + batch_size]
            inputs = prepare_batch(rgbs[i:i + batch_size], radars[i:i + batch_size], self.config,
                                   speeds, previous, composed, frame_cache=self.frame_cache)
            parts.append(self.forward_arrays(inputs, modality))
        probs, accel, ttc = (np.concatenate(x) for x in zip(*parts, strict=True))
        cls = probs.argmax(axis=1)
        return BatchPrediction(
            probabilities=probs, actions=cls.astype(np.int64),
            confidence=probs[np.arange(len(cls)), cls], target_acceleration=accel, ttc=ttc,
            latency_s=time.perf_counter() - start, modality=modality)
