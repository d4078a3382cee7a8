"""`mm-fusion dagger`: a model drives training scenarios; the expert labels what it reached.

One round of DAgger (Ross et al., 2011): behaviour cloning only ever sees the states the
expert visits, so a model that reacts late drives into states (a pedestrian close ahead at
full speed) it has no labels for. Here the checkpoint drives through the same stack as
`mm-fusion closed-loop` (pipeline, model, safety layer, node configs) and every camera frame
is stored with the expert's decision for the state actually reached. Train on the union of
this cache and the expert's (`train_cache` as a list, see config/train_dagger.yaml).
"""

import argparse

from mm_fusion_ros.commands.dataset import add_mix_pairing_argument, camera_size

DAGGER_SEED = 200_000  # training side: below the held-out val/test/closed-loop seeds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, help='model .pt that drives')
    parser.add_argument('--out', default='data/cache/dagger', help='cache directory to write')
    parser.add_argument('--episodes', type=int, default=324)
    parser.add_argument('--seed', type=int, default=DAGGER_SEED, help='first scenario seed')
    parser.add_argument('--duration', type=float, default=15.0, help='episode length [s]')
    parser.add_argument('--frame-stride', type=int, default=4, help='keep every k-th frame')
    parser.add_argument('--num-threads', type=int, default=2, help='torch CPU threads')
    add_mix_pairing_argument(parser)
    parser.add_argument(
        '--camera', type=camera_size, default=None, metavar='WIDTHxHEIGHT',
        help="simulated camera [px] (default: the model's view, twice it with a fovea)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mm_fusion_ros.bags import load_bag_topics
    from mm_fusion_ros.commands.dataset import VAL_SEED, sim_options
    from mm_fusion_ros.data.cache import CacheConfig, build_cache_from_sim, file_sha256
    from mm_fusion_ros.errors import UserInputError
    from mm_fusion_ros.evaluation.closed_loop import ModelPolicy
    from mm_fusion_ros.evaluation.replay import node_configs
    from mm_fusion_ros.model.predictor import FusionPredictor
    from mm_fusion_ros.sim.scenarios import scenario_mix

    if args.seed + args.episodes > VAL_SEED:
        raise UserInputError(f'dagger seeds must stay below the held-out seeds ({VAL_SEED}+)')
    if args.frame_stride < 1 or args.episodes < 1 or not args.duration > 0:
        raise UserInputError('--frame-stride and --episodes must be >= 1, --duration > 0')
    predictor = FusionPredictor.from_checkpoint(args.checkpoint, device='cpu',
                                                num_threads=args.num_threads)
    predictor.warmup(('fused',))
    model = predictor.config  # the cache holds what this model reads
    nodes = node_configs(load_bag_topics('sim'))
    policy = ModelPolicy(predictor, 'fused', nodes.pipeline, nodes.safety)
    config = CacheConfig(frame_stride=args.frame_stride, **{
        k: getattr(model, k)
        for k in ('image_height', 'image_width', 'num_frames', 'max_points', 'camera_history',
                  'radar_ego_motion', 'fovea_height', 'fovea_box')
    })
    result = build_cache_from_sim(
        scenario_mix(args.episodes, seed=args.seed, duration=args.duration,
                     pairing=args.mix_pairing),
        args.out,
        config,
        progress=True,
        options=sim_options(args.camera, config),
        driver=policy,
        extra={'driver': {'checkpoint': str(args.checkpoint),
                          'sha256': file_sha256(Path(args.checkpoint))}},
    )
    print(f'dagger: {result.samples} samples from {args.episodes} episodes in '
          f'{result.seconds:.0f} s; data hash {result.data_hash[:16]}; classes '
          f'{result.manifest["class_counts"]}')
    return 0
