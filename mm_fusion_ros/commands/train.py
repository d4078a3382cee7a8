"""`mm-fusion train`: train the fusion model on cache shards (torchrun-aware, see trainer)."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', default=None,
                        help='training YAML (default: config/training/train.yaml, stage 1)')
    parser.add_argument('--train-cache', nargs='+', default=None, help='one or more caches')
    parser.add_argument('--val-cache', default=None)
    parser.add_argument('--out-dir', default=None)
    parser.add_argument('--epochs', type=int, default=None)
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--lr', type=float, default=None)
    parser.add_argument('--seed', type=int, default=None)
    parser.add_argument('--modality', choices=('fused', 'camera', 'radar'), default=None)
    parser.add_argument('--max-train-samples', type=int, default=None)
    parser.add_argument('--num-threads', type=int, default=None)
    parser.add_argument('--device', default=None)
    parser.add_argument('--init-checkpoint', default=None,
                        help="start from these weights ('shipped': the package's checkpoint;"
                        ' fine-tuning on your own rig, see config/training/finetune.yaml)')


def run(args: argparse.Namespace) -> int:
    import logging

    from mm_fusion_ros.paths import config_dir
    from mm_fusion_ros.train.config import TrainConfig
    from mm_fusion_ros.train.data import open_training_data
    from mm_fusion_ros.train.trainer import train

    logging.basicConfig(level=logging.INFO, format='%(message)s')
    config = TrainConfig.from_yaml(
        args.config or config_dir() / 'training' / 'train.yaml',
        train_cache=args.train_cache,
        val_cache=args.val_cache,
        out_dir=args.out_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        modality=args.modality,
        max_train_samples=args.max_train_samples,
        num_threads=args.num_threads,
        device=args.device,
        init_checkpoint=args.init_checkpoint,
    )
    data = open_training_data(config)
    best = train(config, data.train, data.val, data.data_hash, data.class_counts,
                 data.val_class_counts)
    if 'report' not in best:
        return 0  # not rank 0 under torchrun: rank 0 validates and reports
    print(
        f'best val macro-F1 {best["macro_f1"]:.4f} (epoch {best.get("epoch")}); '
        f'checkpoint {config.out_dir}/best.pt'
    )
    return 0
