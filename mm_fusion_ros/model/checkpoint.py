"""Checkpoint format: a `.pt` holding only tensors and plain metadata, loaded weights-only.

Layout (format_version 3; 2 had no earlier camera frame, 1 no ego-speed input):
    format:              'mm_fusion_ros.fusion_model'
    format_version:      3
    model_config:        FusionModelConfig.to_dict() (plain lists/numbers/strings)
    class_names:         list[str], must equal the config's and the `Action` order
    input_normalisation: {'image_mean', 'image_std', 'radar_offset', 'radar_scale'}
    radar_features:      list[str], the per-point channel order
    training_data_hash:  str ('' for untrained / random weights)
    logit_offsets:       list[float], one per class, added to the logits before the decision
                         (`model.prior`); optional, absent means zeros
    metadata:            dict of plain values (epoch, metrics, notes, ...)
    state_dict:          {name: tensor}

`torch.load(weights_only=True)` never runs pickled code, and `load_state_dict(strict=True)`
means a checkpoint either matches the architecture its config describes or is refused.

torch is imported by the functions that read or write a file, not by this module: a node or
command that only needs `CheckpointError` (fusion_node) or the metadata the ONNX cache kept
(`predictor.validate_checkpoint`) starts without the torch import (1.3-3.5 s on 2 cores).
"""

from collections.abc import Sequence
import math
from pathlib import Path
import pickle
import re
from typing import TYPE_CHECKING, Any
import warnings
import zipfile

import numpy as np

from mm_fusion_ros.actions import ACTION_LABELS
from mm_fusion_ros.errors import UserInputError
from mm_fusion_ros.model.config import FusionModelConfig

if TYPE_CHECKING:
    from mm_fusion_ros.model.fusion import FusionModel

FORMAT = 'mm_fusion_ros.fusion_model'
FORMAT_VERSION = 3  # 2: ego speed input; 3: earlier camera frame input


class CheckpointError(UserInputError, RuntimeError):
    """A checkpoint that is missing, unreadable, of another format/version, or mismatched.

    The message names the file and what is wrong in one line (never torch's advice to load
    it with `weights_only=False`).
    """


def input_normalisation(config: FusionModelConfig) -> dict[str, list[float]]:
    return {
        'image_mean': list(config.image_mean), 'image_std': list(config.image_std),
        'radar_offset': list(config.radar_offset), 'radar_scale': list(config.radar_scale),
    }


def _plain(value: Any, where: str = 'metadata') -> Any:
    """Copy of `value` with only str/int/float/bool/None/list/dict (numpy scalars unwrapped).

    Anything else would either be refused by `torch.load(weights_only=True)` later or smuggle
    code into the file, so it is an error now, at save time.
    """
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f'{where}: dict keys must be str')
        return {k: _plain(v, f'{where}.{k}') for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f'{where}[{i}]') for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)):
        return type(value)(value) if type(value) in (int, float) else float(value)
    raise ValueError(f'{where}: {type(value).__name__} is not plain checkpoint metadata')


def save_checkpoint(
    model: 'FusionModel', path: str | Path, training_data_hash: str = '',
    metadata: dict[str, Any] | None = None, logit_offsets: Sequence[float] | None = None,
) -> Path:
    """Write `model` (weights + config + plain metadata) to `path`; returns the path."""
    import torch

    cfg = model.config
    metadata = _plain(dict(metadata or {}))
    offsets = [0.0] * cfg.num_classes if logit_offsets is None else _plain(list(logit_offsets))
    if problem := _offsets_problem(offsets, cfg.num_classes):
        raise ValueError(problem)
    payload = {
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'model_config': cfg.to_dict(),
        'class_names': list(cfg.class_names),
        'input_normalisation': input_normalisation(cfg),
        'radar_features': list(cfg.radar_features),
        'training_data_hash': str(training_data_hash),
        'logit_offsets': offsets,
        'metadata': metadata,
        'torch_version': str(torch.__version__),  # TorchVersion is not weights-only safe
        'state_dict': {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint at `path`
    return path


def _offsets_problem(offsets: Any, num_classes: int) -> str | None:
    if (not isinstance(offsets, list) or len(offsets) != num_classes
            or not all(isinstance(v, float | int) and math.isfinite(v) for v in offsets)):
        return f'logit_offsets must be {num_classes} finite numbers, got {offsets!r}'
    return None


# What torch.load raises on a file that is not a readable weights-only archive.
_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError,
                zipfile.BadZipFile, AttributeError, KeyError, IndexError, TypeError,
                UnicodeDecodeError, OverflowError, MemoryError)
_GLOBAL = re.compile(r'Unsupported global: GLOBAL (\S+)')


def _unreadable(path: Path, exc: BaseException) -> CheckpointError:
    """What is wrong with a file torch.load refused, in our words (torch's are advice)."""
    if isinstance(exc, OSError):
        why = exc.strerror or type(exc).__name__
    elif isinstance(exc, pickle.UnpicklingError) and (found := _GLOBAL.search(str(exc))):
        why = (f'it holds a pickled Python object ({found.group(1)}), and checkpoints are '
               f'loaded weights-only (tensors and plain values)')
    elif not zipfile.is_zipfile(path):
        why = 'not a PyTorch archive (empty, truncated, or another kind of file)'
    elif isinstance(exc, RuntimeError) and 'PytorchStreamReader' in str(exc):
        why = f'a corrupt PyTorch archive ({str(exc).split(". ")[0].strip()})'
    elif isinstance(exc, RuntimeError):
        why = 'a zip archive, but not one torch.save wrote'
    else:
        why = f'corrupt data in the archive ({type(exc).__name__})'
    return CheckpointError(f'cannot read checkpoint {path}: {why}')


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate the payload (not the weights' shapes; see `load_checkpoint`)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f'checkpoint {path} is a directory, not a .pt file')
    if not path.is_file():
        raise CheckpointError(f'checkpoint not found: {path}')
    import torch

    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol is our error's business
            warnings.filterwarnings('ignore', message='Detected pickle protocol')
            payload = torch.load(path, map_location='cpu', weights_only=True)
    except _LOAD_ERRORS as exc:
        raise _unreadable(path, exc) from exc
    if not isinstance(payload, dict) or payload.get('format') != FORMAT:
        raise CheckpointError(f'{path} is not a {FORMAT} checkpoint')
    version = payload.get('format_version')
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f'{path} has checkpoint format_version {version!r}; this code reads version '
            f'{FORMAT_VERSION} (re-export the checkpoint with a matching mm_fusion_ros)')
    for key in ('model_config', 'class_names', 'state_dict', 'radar_features',
                'input_normalisation'):
        if key not in payload:
            raise CheckpointError(f'{path} lacks {key!r}')
    for key, kind in (('model_config', dict), ('state_dict', dict), ('class_names', list),
                      ('radar_features', list), ('input_normalisation', dict),
                      ('metadata', dict)):
        if key in payload and not isinstance(payload[key], kind):
            raise CheckpointError(f'{path}: {key} is a {type(payload[key]).__name__}, '
                                  f'expected a {kind.__name__}')
    return payload


def _weights_problem(path: Path, model: 'FusionModel', weights: dict[str, Any]) -> str | None:
    """One line on how `weights` miss the model's tensors (names and shapes), or None."""
    import torch

    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong = [f'{k} {tuple(v.shape)} (the model has {tuple(expected[k].shape)})'
             if isinstance(v, torch.Tensor) else f'{k} ({type(v).__name__}, not a tensor)'
             for k, v in weights.items()
             if k in expected and not (isinstance(v, torch.Tensor)
                                       and v.shape == expected[k].shape)]
    problems = []
    for what, names in (('missing', missing), ('unexpected', unexpected),
                        ('wrong shape', wrong)):
        if names:
            more = f' and {len(names) - 3} more' if len(names) > 3 else ''
            problems.append(f'{what}: {", ".join(names[:3])}{more}')
    if not problems:
        return None
    return (f'{path}: weights do not fit the architecture in its model_config: '
            + '; '.join(problems))


def load_checkpoint(path: str | Path) -> tuple['FusionModel', dict[str, Any]]:
    """Rebuild the model from `path` (eval mode, CPU) -> (model, payload without weights)."""
    from mm_fusion_ros.model.fusion import FusionModel

    payload = read_checkpoint(path)
    try:
        config = FusionModelConfig.from_dict(payload['model_config'])
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f'{path}: invalid model_config: {exc}') from exc
    names = tuple(payload['class_names'])
    if names != config.class_names or names != ACTION_LABELS:
        raise CheckpointError(
            f'{path}: class names {list(names)} do not match the action set '
            f'{list(ACTION_LABELS)} (and config {list(config.class_names)})')
    if tuple(payload['radar_features']) != config.radar_features:
        raise CheckpointError(
            f'{path}: radar_features {payload["radar_features"]} disagree with the config '
            f'{list(config.radar_features)}')
    if payload['input_normalisation'] != input_normalisation(config):
        raise CheckpointError(f'{path}: input_normalisation disagrees with model_config')
    payload.setdefault('logit_offsets', [0.0] * config.num_classes)
    if problem := _offsets_problem(payload['logit_offsets'], config.num_classes):
        raise CheckpointError(f'{path}: {problem}')
    try:
        model = FusionModel(config)
    except (TypeError, ValueError) as exc:  # a config that validates but builds no model
        raise CheckpointError(f'{path}: invalid model_config: {exc}') from exc
    if problem := _weights_problem(Path(path), model, payload['state_dict']):
        raise CheckpointError(problem)
    model.load_state_dict(payload['state_dict'], strict=True)
    model.eval()
    info = {k: v for k, v in payload.items() if k != 'state_dict'}
    return model, info
