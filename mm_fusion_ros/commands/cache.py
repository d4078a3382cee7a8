"""`mm-fusion cache`: bags (any layout) -> the sharded .npz training cache + manifest.

Labels: the bag's decision topic, or for bags without one, the labels derived from the
recorded driver's odometry and radar (`--labels auto`, the default; `derived` always derives,
`topic` requires the topic). Geometry: the bag's /tf_static and CameraInfo, else the mounts of
`--params-file` (default: the training rig's).
"""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        'bags',
        nargs='+',
        metavar='BAG_OR_DIR',
        help='bag directories, .mcap/.db3 files, or directories of bags',
    )
    parser.add_argument('--out', required=True, help='cache directory (new or empty)')
    parser.add_argument(
        '--topics',
        default='auto',
        help='topics preset (sim, sim_compressed, carla, nuscenes), a YAML'
        " file, or 'auto' to detect per bag",
    )
    parser.add_argument('--frame-stride', type=int, default=1, help='keep every k-th frame')
    parser.add_argument('--shard-size', type=int, default=1024, help='samples per shard')
    parser.add_argument('--num-frames', type=int, default=8, help='radar history T')
    parser.add_argument('--max-points', type=int, default=64, help='radar points per frame N')
    parser.add_argument('--points-dtype', default='float32', choices=('float32', 'float16'))
    parser.add_argument('--labels', default='auto', choices=('auto', 'topic', 'derived'),
                        help='auto: the decision topic when the bag has one, else labels'
                        ' derived from the recorded driver (odometry + radar)')
    parser.add_argument('--params-file', default=None,
                        help='node params YAML whose radar_mount / camera_mount apply to bags'
                        ' without /tf_static (default: the shipped params)')


def run(args: argparse.Namespace) -> int:
    """Bags, topics file and --out problems raise UserInputError / OSError: cli exits 2."""
    from pathlib import Path

    from mm_fusion_ros.bags.reader import detect_topics, find_bags, load_bag_topics, open_bag
    from mm_fusion_ros.data.cache import (
        CacheConfig,
        build_cache_from_bags,
        existing_cache_files,
    )
    from mm_fusion_ros.errors import UserInputError
    from mm_fusion_ros.labels.bag import MissingOdometryError
    from mm_fusion_ros.params.nodes import FusionNodeParams
    from mm_fusion_ros.params.spec import load_params
    from mm_fusion_ros.paths import resolve_params_file

    if args.num_frames < 1 or args.max_points < 1:
        raise UserInputError('--num-frames and --max-points must be >= 1')
    try:
        config = CacheConfig(
            num_frames=args.num_frames,
            max_points=args.max_points,
            frame_stride=args.frame_stride,
            shard_size=args.shard_size,
            points_dtype=args.points_dtype,
        )
    except ValueError as e:  # --frame-stride / --shard-size out of range
        raise UserInputError(str(e)) from None
    if stale := existing_cache_files(args.out):
        raise UserInputError(f'{args.out} already holds a cache ({len(stale)} files); '
                             f'choose another --out')
    Path(args.out).mkdir(parents=True, exist_ok=True)  # OSError (exit 2) before any bag is read
    topics = None if args.topics == 'auto' else load_bag_topics(args.topics)
    bags = find_bags(args.bags)
    if not bags:
        raise UserInputError(f'no bags found in {args.bags}')
    need_topic = args.labels == 'topic'
    for bag in bags:  # unreadable bags and layouts now, not halfway through the run
        with open_bag(bag, topics or detect_topics(bag, require_ground_truth=need_topic),
                      require_ground_truth=need_topic) as opened:
            odometry = opened.topics.odometry_topic
            derive = args.labels == 'derived' or not opened.has_ground_truth
            if derive and (not odometry or odometry not in opened.available):
                raise MissingOdometryError(
                    f'bag {str(bag)!r} has no decision topic and no odometry topic'
                    f' {odometry or "(the layout names none)"}: labels cannot be derived')
    rig = load_params(FusionNodeParams, 'fusion_node',
                      [resolve_params_file(args.params_file)]).rig()
    result = build_cache_from_bags(bags, args.out, topics, config, progress=True,
                                   labels=args.labels, rig=rig)
    m = result.manifest
    print(
        f'cached {m["num_samples"]} samples from {len(bags)} bags into {len(m["shards"])}'
        f' shards in {result.seconds:.1f} s ({m["num_samples"] / max(result.seconds, 1e-9):.0f}'
        f' samples/s)'
    )
    print(f'classes: {m["class_counts"]}')
    derived = [s for s in m['sources'] if s['labels'] == 'derived']
    if derived:
        unlabelled: dict[str, int] = {}
        for s in derived:
            for k, v in s['unlabelled_reasons'].items():
                unlabelled[k] = unlabelled.get(k, 0) + v
        print(f'labels derived from the recorded driver in {len(derived)} of {len(bags)} bags;'
              f' unlabelled frames: {unlabelled or "none"}')
    print(f'conditions: {m["condition_counts"]}')
    print(f'data hash: {m["data_hash"]}')
    return 0
