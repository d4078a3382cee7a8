"""Training configuration (loaded from YAML, see config/train.yaml)."""

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

LOGIT_PRIORS = ('validation', 'validation_accuracy', 'none')


@dataclass
class TrainConfig:
    # directory of cache shards (mm-fusion dataset/cache/dagger), or a list of them
    train_cache: str | list[str] = 'data/cache/train'
    val_cache: str = 'data/cache/val'
    out_dir: str = 'runs/fusion'
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3  # peak AdamW learning rate (one-cycle schedule)
    weight_decay: float = 0.05
    seed: int = 0
    num_threads: int = 2  # torch CPU threads per process
    num_workers: int = 0  # DataLoader workers
    class_weighting: str = 'sqrt_inverse'  # 'none' | 'sqrt_inverse' | 'inverse'
    # the checkpoint's logit offsets (`model.prior`): 'validation' moves its decisions from
    # the training data's class prior to the validation split's, the class weights staying
    # as the costs of missing a class; 'validation_accuracy' also removes those costs (the
    # accuracy-optimal rule; fewer stops); 'none': raw logits
    logit_prior: str = 'validation'
    modality: str = 'fused'  # train a 'camera' or 'radar'-only model for the ablation
    max_train_samples: int = 0  # 0 = all
    device: str = 'auto'
    init_checkpoint: str = ''  # start from these weights (a second, lower-LR stage)
    model: dict[str, Any] = field(default_factory=dict)  # FusionModelConfig overrides
    # PhotometricAugmentConfig options (mm_fusion_ros.train.augment); {} or probability 0: off
    augment: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.logit_prior not in LOGIT_PRIORS:
            raise ValueError(f'logit_prior must be one of {LOGIT_PRIORS}, got '
                             f'{self.logit_prior!r}')

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> 'TrainConfig':
        data = yaml.safe_load(Path(path).read_text()) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f'unknown training options in {path}: {sorted(unknown)}')
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)
