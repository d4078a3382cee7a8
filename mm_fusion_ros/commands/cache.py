"""`mm-fusion cache`: bags (any layout) -> the sharded .npz training cache + manifest."""

import argparse
import sys


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


def run(args: argparse.Namespace) -> int:
    from mm_fusion_ros.bags.reader import BagError, find_bags, load_bag_topics
    from mm_fusion_ros.data.cache import CacheConfig, build_cache_from_bags

    try:
        bags = find_bags(args.bags)
        if not bags:
            print('cache: no bags found', file=sys.stderr)
            return 2
        topics = None if args.topics == 'auto' else load_bag_topics(args.topics)
        config = CacheConfig(
            num_frames=args.num_frames,
            max_points=args.max_points,
            frame_stride=args.frame_stride,
            shard_size=args.shard_size,
            points_dtype=args.points_dtype,
        )
        result = build_cache_from_bags(bags, args.out, topics, config, progress=True)
    except (BagError, ValueError, OSError) as e:
        print(f'cache: {e}', file=sys.stderr)
        return 2
    m = result.manifest
    print(
        f'cached {m["num_samples"]} samples from {len(bags)} bags into {len(m["shards"])}'
        f' shards in {result.seconds:.1f} s ({m["num_samples"] / max(result.seconds, 1e-9):.0f}'
        f' samples/s)'
    )
    print(f'classes: {m["class_counts"]}')
    print(f'conditions: {m["condition_counts"]}')
    print(f'data hash: {m["data_hash"]}')
    return 0
