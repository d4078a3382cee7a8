"""`mm-fusion dataset`: simulator episodes -> training and held-out validation caches.

Training and validation episodes come from disjoint seed ranges. The same cache comes out of
`mm-fusion record` + `mm-fusion cache` (through bags); this skips writing bags.
"""

import argparse

TRAIN_SEED = 0
VAL_SEED = 500_000  # held-out scenario seeds; closed-loop evaluation uses 900_000+


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='data/cache', help='writes OUT/train and OUT/val')
    parser.add_argument('--train-episodes', type=int, default=324)
    parser.add_argument('--val-episodes', type=int, default=108)
    parser.add_argument('--duration', type=float, default=15.0, help='episode length [s]')
    parser.add_argument('--frame-stride', type=int, default=4, help='keep every k-th frame')
    parser.add_argument('--train-seed', type=int, default=TRAIN_SEED)
    parser.add_argument('--val-seed', type=int, default=VAL_SEED)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mm_fusion_ros.data.cache import CacheConfig, build_cache_from_sim
    from mm_fusion_ros.sim.scenarios import scenario_mix

    if args.train_seed + args.train_episodes > args.val_seed:
        raise SystemExit('training seeds would overlap the validation seeds')
    config = CacheConfig(frame_stride=args.frame_stride)
    for split, episodes, seed in (
        ('train', args.train_episodes, args.train_seed),
        ('val', args.val_episodes, args.val_seed),
    ):
        result = build_cache_from_sim(
            scenario_mix(episodes, seed=seed, duration=args.duration),
            Path(args.out) / split,
            config,
            progress=True,
        )
        counts = result.manifest['class_counts']
        print(
            f'{split}: {result.samples} samples from {episodes} episodes in '
            f'{result.seconds:.0f} s; data hash {result.data_hash[:16]}; classes {counts}'
        )
    return 0
