"""`mm-fusion logit-prior`: write a checkpoint's prior correction from its training config.

`mm-fusion train` writes the logit offsets (`model.prior`) itself; this gives them to a
checkpoint trained before it did, from the class counts of the caches it was trained on (the
config's, checked against the checkpoint's data hash) and of the validation split.
"""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', required=True,
                        help='training YAML the checkpoint was made with (caches, weighting)')
    parser.add_argument('--checkpoint', required=True, help='model .pt to give the offsets')
    parser.add_argument('--out', default=None, help='where to write (default: --checkpoint)')


def run(args: argparse.Namespace) -> int:
    from mm_fusion_ros.actions import ACTION_LABELS
    from mm_fusion_ros.errors import UserInputError
    from mm_fusion_ros.model.checkpoint import load_checkpoint, save_checkpoint
    from mm_fusion_ros.train.config import TrainConfig
    from mm_fusion_ros.train.data import cache_class_counts, cache_data_hash
    from mm_fusion_ros.train.trainer import training_logit_offsets

    config = TrainConfig.from_yaml(args.config)
    model, info = load_checkpoint(args.checkpoint)
    trained_on = str(info.get('training_data_hash') or '')
    if not trained_on:
        raise UserInputError(f'{args.checkpoint} records no training data (untrained weights?)')
    if cache_data_hash(config.train_cache) != trained_on:
        raise UserInputError(
            f'{args.checkpoint} was trained on data {trained_on[:16]}..., not on the caches '
            f'of {args.config} ({config.train_cache})')
    offsets = training_logit_offsets(config, cache_class_counts(config.train_cache),
                                     cache_class_counts(config.val_cache))
    metadata = {**info.get('metadata', {}), 'logit_prior': config.logit_prior}
    save_checkpoint(model, args.out or args.checkpoint, trained_on, metadata, offsets)
    shown = 'none' if offsets is None else ', '.join(
        f'{name} {value:+.2f}' for name, value in zip(ACTION_LABELS, offsets, strict=True))
    print(f'logit offsets ({config.logit_prior}): {shown} -> {args.out or args.checkpoint}')
    return 0
