"""Training loop: AdamW + one-cycle, class-weighted loss, validation every epoch, best checkpoint.

Started as `torchrun --nproc-per-node N -m mm_fusion_ros.train ...` (or `mm-fusion train` under
torchrun) it runs DistributedDataParallel: gloo on CPU, nccl on CUDA; rank 0 validates, writes
the checkpoint, metrics JSON and plots. Preprocessing is `model.preprocess.prepare_batch`, the
same function the predictor uses at inference, so training and deployment see identical inputs.
"""

from collections.abc import Sequence
import json
import logging
import math
import os
from pathlib import Path
import time
from typing import Any

import numpy as np
import torch
from torch import nn
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset

from mm_fusion_ros.evaluation.metrics import classification_report, plot_confusion_matrix
from mm_fusion_ros.model.checkpoint import load_checkpoint, save_checkpoint
from mm_fusion_ros.model.config import FusionModelConfig
from mm_fusion_ros.model.export import INPUT_NAMES
from mm_fusion_ros.model.fusion import FusionModel
from mm_fusion_ros.model.predictor import resolve_device
from mm_fusion_ros.model.preprocess import prepare_batch
from mm_fusion_ros.model.prior import prior_logit_offsets
from mm_fusion_ros.sensors.radar_sequence import RadarSequence
from mm_fusion_ros.train.augment import PhotometricAugment, PhotometricAugmentConfig
from mm_fusion_ros.train.config import TrainConfig, TrainConfigError
from mm_fusion_ros.train.data import CacheSamples, check_frames, check_trainable

logger = logging.getLogger(__name__)


def collate(samples: Sequence[dict[str, Any]], config: FusionModelConfig) -> dict[str, Any]:
    """Cache samples -> model input tensors + targets (numpy preprocessing, as at inference)."""
    rgbs = [s['image'] for s in samples]
    seqs = [
        RadarSequence(s['radar_points'], s['point_mask'], s['frame_mask'], s['time_offsets'])
        for s in samples
    ]
    speeds = np.array([float(s['ego_speed']) for s in samples], np.float32)  # NaN: unknown
    inputs = prepare_batch(rgbs, seqs, config, speeds, [s['previous_image'] for s in samples],
                           composed=True)
    batch = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.as_dict().items()}
    batch['action'] = torch.tensor([int(s['action']) for s in samples], dtype=torch.int64)
    batch['target_accel'] = torch.tensor(
        [float(s['target_accel']) for s in samples], dtype=torch.float32
    )
    ttc = torch.tensor([float(s['ttc']) for s in samples], dtype=torch.float32)
    batch['ttc'] = ttc
    batch['ttc_valid'] = torch.isfinite(ttc) & (ttc <= config.ttc_max)
    batch['condition'] = [str(s.get('condition', '')) for s in samples]
    return batch


def _init_model(path: str, overrides: dict[str, Any]) -> FusionModel:
    """The checkpoint's model, or (with `overrides` to its config) a model grown from it.

    Grown: every tensor of the checkpoint is copied into the new model's tensor of that name,
    whole when the shapes match, else into its leading block (the image position embedding
    of a model that gained fovea rows: the view's tokens come first). New tensors keep their
    fresh initialisation.
    """
    if path == 'shipped':  # the checkpoint in the package (fine-tuning on one's own rig)
        from mm_fusion_ros.paths import resolve_checkpoint

        path = str(resolve_checkpoint(None))
    model, _ = load_checkpoint(path)
    if not overrides:
        return model
    try:
        config = FusionModelConfig.from_dict({**model.config.to_dict(), **overrides})
    except (TypeError, ValueError) as exc:
        raise TrainConfigError(f'model: {exc} (applied to the config of {path})') from None
    grown = FusionModel(config)
    state = grown.state_dict()
    for name, value in model.state_dict().items():
        target = state.get(name)
        if target is None or target.dim() != value.dim() or any(
                a > b for a, b in zip(value.shape, target.shape, strict=True)):
            raise TrainConfigError(f'{path}: {name} {tuple(value.shape)} does not fit the '
                                   f'model made with {overrides}')
        target[tuple(slice(0, n) for n in value.shape)] = value
    grown.load_state_dict(state)
    logger.info('initialised from %s with config changes %s', path, overrides)
    return grown


def class_weights(counts: np.ndarray, mode: str) -> torch.Tensor | None:
    if mode == 'none':
        return None
    freq = np.maximum(counts.astype(float), 1.0) / max(counts.sum(), 1)
    w = 1.0 / freq if mode == 'inverse' else 1.0 / np.sqrt(freq)
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def training_logit_offsets(
    config: TrainConfig, train_counts: np.ndarray | None, target_counts: np.ndarray | None,
) -> np.ndarray | None:
    """The checkpoint's prior correction (`model.prior`); None when off or counts unknown."""
    if config.logit_prior == 'none' or train_counts is None or target_counts is None:
        return None
    weights = None
    if config.logit_prior == 'validation_accuracy':
        weights = class_weights(np.asarray(train_counts), config.class_weighting)
    return prior_logit_offsets(train_counts, target_counts,
                               None if weights is None else weights.numpy())


class _Distributed:
    """torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK) or a single process."""

    def __init__(self, device: torch.device) -> None:
        self.world = self.world_size()
        self.rank = int(os.environ.get('RANK', '0'))
        self.local_rank = int(os.environ.get('LOCAL_RANK', '0'))
        self.device = device
        if self.world > 1:
            if device.type == 'cuda':
                self.device = torch.device('cuda', self.local_rank)
                torch.cuda.set_device(self.device)
            dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')

    @staticmethod
    def world_size() -> int:
        return int(os.environ.get('WORLD_SIZE', '1'))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


@torch.inference_mode()
def evaluate(
    model: nn.Module, loader: DataLoader, device: torch.device, modality: str = 'fused',
    logit_offsets: np.ndarray | None = None,
) -> dict[str, Any]:
    """Predictions over a loader -> report overall and per condition.

    The prediction is the argmax of logits + `logit_offsets`, as the predictor decides.
    """
    model.eval()
    offsets = torch.as_tensor(0.0 if logit_offsets is None else logit_offsets,
                              dtype=torch.float32, device=device)
    y_true, y_pred, conditions, accel_err = [], [], [], []
    for batch in loader:
        out = model(*(batch[k].to(device) for k in INPUT_NAMES), modality=modality)
        y_true.append(batch['action'].numpy())
        y_pred.append((out.logits.float() + offsets).argmax(-1).cpu().numpy())
        accel_err.append((out.accel.float().cpu() - batch['target_accel']).abs().numpy())
        conditions += batch['condition']
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    conditions = np.asarray(conditions)
    report = classification_report(y_true, y_pred)
    per_condition = {
        c: classification_report(y_true[conditions == c], y_pred[conditions == c]).macro_f1
        for c in sorted(set(conditions.tolist()))
    }
    return {
        'report': report,
        'macro_f1': report.macro_f1,
        'accuracy': report.accuracy,
        'accel_mae': float(np.concatenate(accel_err).mean()),
        'per_condition_macro_f1': per_condition,
        'y_true': y_true,
        'y_pred': y_pred,
        'conditions': conditions,
    }


def train(
    config: TrainConfig,
    train_set: Dataset,
    val_set: Dataset,
    data_hash: str = '',
    class_counts: np.ndarray | None = None,
    val_class_counts: np.ndarray | None = None,
) -> dict[str, Any]:
    """Train; returns the best validation metrics. Writes into config.out_dir (rank 0).

    `class_counts` weight the loss; with `val_class_counts` they also give the checkpoint's
    logit offsets (`training_logit_offsets`), which validation and the predictor apply.
    Data that gives no training step or no validation is refused before anything starts
    (`train.data.check_trainable`, TrainingDataError); its warnings go to the log and to
    metrics.json.
    """
    warnings = _check_data(config, train_set, val_set, class_counts, val_class_counts)
    try:
        device, _ = resolve_device(config.device)
    except ValueError as exc:
        raise TrainConfigError(f'device: {exc}') from None
    ddp = _Distributed(device)
    device = ddp.device
    torch.manual_seed(config.seed + ddp.rank)
    np.random.seed(config.seed + ddp.rank)
    if device.type == 'cpu':
        torch.set_num_threads(config.num_threads)
    if config.init_checkpoint:
        model = _init_model(config.init_checkpoint, config.model)
        model_cfg = model.config
    else:
        model_cfg = (
            FusionModelConfig.from_dict(config.model) if config.model else FusionModelConfig()
        )
        model = FusionModel(model_cfg)
    for name, data in (('training', train_set), ('validation', val_set)):
        if isinstance(data, CacheSamples):
            check_frames(model_cfg, name, data)
    for warning in warnings:  # once the run is known to start
        logger.warning('warning: %s', warning)
    augment = PhotometricAugment(PhotometricAugmentConfig.from_dict(config.augment),
                                 model_cfg.image_mean, model_cfg.image_std)
    model = model.to(device)
    # Missing-modality tokens are unused in some batches.
    net = (
        nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        if ddp.world > 1
        else model
    )

    if config.max_train_samples and len(train_set) > config.max_train_samples:
        idx = np.random.default_rng(config.seed).choice(
            len(train_set), config.max_train_samples, replace=False
        )
        train_set = Subset(train_set, np.sort(idx).tolist())
    generator = torch.Generator().manual_seed(config.seed)
    sampler = (
        DistributedSampler(train_set, ddp.world, ddp.rank, shuffle=True, seed=config.seed)
        if ddp.world > 1
        else RandomSampler(train_set, generator=generator)
    )
    collate_fn = _Collate(model_cfg)
    train_loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=config.num_workers,
        drop_last=True,
        persistent_workers=config.num_workers > 0,
    )
    val_loader = DataLoader(
        val_set,
        batch_size=2 * config.batch_size,
        shuffle=False,
        collate_fn=collate_fn,
        num_workers=config.num_workers,
    )

    weights = None
    if class_counts is not None:
        weights = class_weights(np.asarray(class_counts), config.class_weighting)
        weights = None if weights is None else weights.to(device)
    offsets = training_logit_offsets(config, class_counts, val_class_counts)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = max(1, config.epochs * len(train_loader))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=steps, pct_start=0.15
    )

    out_dir = Path(config.out_dir)
    if ddp.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    history, best = [], {'macro_f1': -math.inf}
    progress = _progress(ddp.main)
    for epoch in range(config.epochs):
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        net.train()
        start, total, seen = time.perf_counter(), 0.0, 0
        bar = progress(train_loader, desc=f'epoch {epoch + 1}/{config.epochs}')
        for batch in bar:
            inputs = {k: batch[k].to(device) for k in INPUT_NAMES}
            inputs['image'], inputs['previous_image'] = augment(inputs['image'],
                                                                inputs['previous_image'])
            out = net(*inputs.values(), modality=config.modality)
            terms = model.loss(
                out,
                batch['action'].to(device),
                batch['target_accel'].to(device),
                batch['ttc'].to(device),
                batch['ttc_valid'].to(device),
                class_weights=weights,
            )
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            total += terms.total.detach().item() * len(batch['action'])
            seen += len(batch['action'])
            if hasattr(bar, 'set_postfix'):
                bar.set_postfix(loss=f'{total / seen:.3f}')
        ddp.barrier()
        if not ddp.main:
            continue
        val = evaluate(model, val_loader, device, config.modality, offsets)
        row = {
            'epoch': epoch + 1,
            'train_loss': total / seen if seen else None,  # never a loss of no step
            'val_macro_f1': val['macro_f1'],
            'val_accuracy': val['accuracy'],
            'val_accel_mae': val['accel_mae'],
            'epoch_s': time.perf_counter() - start,
        }
        history.append(row)
        logger.info('%s', json.dumps(row))
        if val['macro_f1'] > best['macro_f1']:
            best = {k: v for k, v in val.items() if k not in ('y_true', 'y_pred', 'conditions')}
            best['epoch'] = epoch + 1
            save_checkpoint(
                model,
                out_dir / 'best.pt',
                training_data_hash=data_hash,
                metadata={
                    'epoch': epoch + 1,
                    'val_macro_f1': val['macro_f1'],
                    'modality': config.modality,
                    'seed': config.seed,
                    'train_samples': len(train_set),
                    'world_size': ddp.world,
                    'logit_prior': config.logit_prior,
                },
                logit_offsets=offsets,
            )
            plot_confusion_matrix(val['report'], str(out_dir / 'confusion_matrix.png'))
    if ddp.main:
        summary = {
            'best_epoch': best.get('epoch'),
            'best_val_macro_f1': best['macro_f1'] if 'epoch' in best else None,
            'best_val_accuracy': best.get('accuracy'),
            'best_per_condition_macro_f1': best.get('per_condition_macro_f1'),
            'best_report': best['report'].to_dict() if 'report' in best else None,
            'history': history,
            'training_data_hash': data_hash,
            'logit_offsets': None if offsets is None else offsets.tolist(),
            'config': config.__dict__,
            'warnings': warnings,
        }
        (out_dir / 'metrics.json').write_text(json.dumps(summary, indent=2))
    ddp.barrier()
    ddp.close()
    return best


def _check_data(
    config: TrainConfig, train_set: Dataset, val_set: Dataset,
    class_counts: np.ndarray | None, val_class_counts: np.ndarray | None,
) -> list[str]:
    """`check_trainable` on what the loaders will see; returns its warnings."""
    samples = len(train_set)
    if config.max_train_samples:
        samples = min(samples, config.max_train_samples)
    if val_class_counts is None and isinstance(val_set, CacheSamples):
        val_class_counts = val_set.class_counts()
    if class_counts is None and isinstance(train_set, CacheSamples):
        class_counts = train_set.class_counts()
    return check_trainable(
        getattr(train_set, 'name', type(train_set).__name__), samples,
        getattr(val_set, 'name', type(val_set).__name__), len(val_set), config.batch_size,
        _Distributed.world_size(), val_class_counts, class_counts)


class _Collate:
    """Picklable collate (DataLoader workers)."""

    def __init__(self, config: FusionModelConfig) -> None:
        self.config = config

    def __call__(self, samples):
        return collate(samples, self.config)


def _progress(enabled: bool):
    if not enabled:
        return lambda it, **_: it
    from tqdm import tqdm

    return lambda it, **kw: tqdm(it, leave=False, dynamic_ncols=True, **kw)
