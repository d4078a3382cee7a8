"""Training configuration (loaded from YAML, see config/training/train.yaml).

Each field's metadata carries its rule (`min`, `above`, `choices`); `TrainConfig` checks every
value's type and range when it is made, so a bad option is refused before any data is read,
with `TrainConfigError` naming the file and the key.
"""

from dataclasses import dataclass, field, fields, replace
import difflib
import math
from pathlib import Path
from typing import Any

import yaml

from mm_fusion_ros.errors import UserInputError

LOGIT_PRIORS = ('validation', 'validation_accuracy', 'none')
CLASS_WEIGHTINGS = ('none', 'sqrt_inverse', 'inverse')
MODALITIES = ('fused', 'camera', 'radar')


class TrainConfigError(UserInputError, ValueError):
    """A training config file that is missing, not YAML, or has a bad key or value."""


@dataclass
class TrainConfig:
    # directory of cache shards (mm-fusion dataset/cache/dagger), or a list of them
    train_cache: str | list[str] = 'data/cache/train'
    val_cache: str = 'data/cache/val'
    out_dir: str = 'runs/fusion'
    epochs: int = field(default=8, metadata={'min': 1})
    batch_size: int = field(default=64, metadata={'min': 1})
    # peak AdamW learning rate (one-cycle schedule)
    lr: float = field(default=2e-3, metadata={'above': 0.0})
    weight_decay: float = field(default=0.05, metadata={'min': 0.0})
    seed: int = field(default=0, metadata={'min': 0})
    num_threads: int = field(default=2, metadata={'min': 1})  # torch CPU threads per process
    num_workers: int = field(default=0, metadata={'min': 0})  # DataLoader workers
    class_weighting: str = field(default='sqrt_inverse', metadata={'choices': CLASS_WEIGHTINGS})
    # the checkpoint's logit offsets (`model.prior`): 'validation' moves its decisions from
    # the training data's class prior to the validation split's, the class weights staying
    # as the costs of missing a class; 'validation_accuracy' also removes those costs (the
    # accuracy-optimal rule; fewer stops); 'none': raw logits
    logit_prior: str = field(default='validation', metadata={'choices': LOGIT_PRIORS})
    # train a 'camera' or 'radar'-only model for the ablation
    modality: str = field(default='fused', metadata={'choices': MODALITIES})
    max_train_samples: int = field(default=0, metadata={'min': 0})  # 0 = all
    device: str = 'auto'  # auto, cpu, cuda, cuda:N
    init_checkpoint: str = ''  # start from these weights (a second, lower-LR stage)
    model: dict[str, Any] = field(default_factory=dict)  # FusionModelConfig overrides
    # PhotometricAugmentConfig options (mm_fusion_ros.train.augment); {} or probability 0: off
    augment: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, _checked(f.name, getattr(self, f.name), f.type, f.metadata))
        self._check_sections()

    def _check_sections(self) -> None:
        """`model` and `augment` hold the options of other configs: check their names now."""
        from mm_fusion_ros.model.config import FusionModelConfig
        from mm_fusion_ros.train.augment import PhotometricAugmentConfig

        try:
            PhotometricAugmentConfig.from_dict(self.augment)
        except (TypeError, ValueError) as exc:
            raise TrainConfigError(f'augment: {exc}') from None
        known = {f.name for f in fields(FusionModelConfig)}
        if unknown := sorted(set(self.model) - known):
            raise TrainConfigError(f'model: unknown FusionModelConfig keys {unknown}'
                                   f'{_did_you_mean(unknown, known)}')
        if not self.init_checkpoint:  # with one, the overrides apply to the checkpoint's
            try:
                FusionModelConfig.from_dict(self.model)
            except (TypeError, ValueError) as exc:
                raise TrainConfigError(f'model: {exc}') from None

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> 'TrainConfig':
        """The config in `path`, then the non-None `overrides` (command-line options)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise TrainConfigError(f'training config {path} not found') from None
        except IsADirectoryError:
            raise TrainConfigError(f'training config {path} is a directory') from None
        except OSError as exc:
            raise TrainConfigError(f'cannot read training config {path}: {exc.strerror}') \
                from None
        except UnicodeDecodeError:
            raise TrainConfigError(f'training config {path} is not a text file') from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, 'problem_mark', None)
            where = f' (line {mark.line + 1}, column {mark.column + 1})' if mark else ''
            problem = getattr(exc, 'problem', None) or type(exc).__name__
            raise TrainConfigError(f'training config {path} is not YAML{where}: {problem}') \
                from None
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise TrainConfigError(f'training config {path} must be a mapping of options, '
                                   f'not a {type(data).__name__}')
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise TrainConfigError(f'unknown training options in {path}: {unknown}'
                                   f'{_did_you_mean(unknown, known)}')
        try:
            config = cls(**data)
        except TrainConfigError as exc:
            raise TrainConfigError(f'training config {path}: {exc}') from None
        try:
            return replace(config, **{k: v for k, v in overrides.items() if v is not None})
        except TrainConfigError as exc:
            raise TrainConfigError(f'command line: {exc}') from None


def _checked(name: str, value: Any, kind: Any, rule: Any) -> Any:
    """`value` if it has the field's type and lies in its range, else TrainConfigError."""
    if kind is float and isinstance(value, str):  # YAML 1.1 reads 2e-3 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if name == 'train_cache':
        ok = isinstance(value, str) or (isinstance(value, list) and value
                                        and all(isinstance(v, str) for v in value))
        expected = 'a cache directory or a non-empty list of them'
    elif kind in (dict, dict[str, Any]) or getattr(kind, '__origin__', None) is dict:
        value = {} if value is None else value
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        expected = 'a mapping'
    else:
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        expected = {int: 'an integer', float: 'a finite number', str: 'a string'}[kind]
    if not ok or (kind is float and not math.isfinite(value)):
        raise TrainConfigError(f'{name} must be {expected}, got {value!r}')
    if 'choices' in rule and value not in rule['choices']:
        raise TrainConfigError(f'{name} must be one of {rule["choices"]}, got {value!r}')
    if 'min' in rule and not value >= rule['min']:
        raise TrainConfigError(f'{name} must be >= {rule["min"]}, got {value!r}')
    if 'above' in rule and not value > rule['above']:
        raise TrainConfigError(f'{name} must be > {rule["above"]}, got {value!r}')
    return value


def _did_you_mean(unknown: list[str], known: set[str]) -> str:
    close = [m for u in unknown for m in difflib.get_close_matches(u, sorted(known), n=1)]
    return f' (did you mean {close}?)' if close else ''
