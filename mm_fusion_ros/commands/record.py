"""`mm-fusion record`: simulator episodes (the training scenario mix) to rosbag2, one per episode.

Each episode is driven by the expert, as for training data; bags carry the topics the live
sim publishes (see `mm_fusion_ros.bags.writer`). `--ray [ADDRESS]` fans the episodes out as
Ray tasks (local Ray without an address); the bags are the same as the serial path's.
"""

import argparse
from pathlib import Path
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--episodes', type=int, default=12, help='number of episodes (bags)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the first episode')
    parser.add_argument('--out', required=True, help='output directory (one bag per episode)')
    parser.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'))
    parser.add_argument('--compressed', action='store_true', help='JPEG CompressedImage')
    parser.add_argument('--duration', type=float, default=15.0, help='episode length [s]')
    parser.add_argument(
        '--ray',
        nargs='?',
        const='local',
        default=None,
        metavar='ADDRESS',
        help='record in parallel on Ray (local Ray without an address)',
    )


def bag_name(index: int, config: Any) -> str:
    return f'ep{index:05d}_{config.scenario.value}_{config.condition.value}_s{config.seed}'


def record_episode(config: Any, path: str, storage: str, compressed: bool) -> dict[str, Any]:
    """Simulate one episode and stream it into a bag; module level so Ray can ship it."""
    from mm_fusion_ros.bags.writer import write_episode_bag
    from mm_fusion_ros.data.cache import sim_episode_frames
    from mm_fusion_ros.sim.simulator import Simulator

    stats = write_episode_bag(
        path,
        sim_episode_frames(Simulator(config)),
        config,
        storage=storage,
        compressed_images=compressed,
    )
    return {
        'path': str(stats.path),
        'frames': stats.frames,
        'bytes': stats.bytes,
        'seconds': stats.seconds,
    }


def _jobs(args: argparse.Namespace) -> list[tuple[Any, str]]:
    from mm_fusion_ros.sim.scenarios import scenario_mix

    out = Path(args.out)
    configs = scenario_mix(args.episodes, seed=args.seed, duration=args.duration)
    return [(c, str(out / bag_name(i, c))) for i, c in enumerate(configs)]


def _serial(jobs: list[tuple[Any, str]], args: argparse.Namespace) -> list[dict[str, Any]]:
    from tqdm import tqdm

    results = []
    for config, path in tqdm(jobs, unit='bag', desc='record'):
        results.append(record_episode(config, path, args.storage, args.compressed))
    return results


def _ray(jobs: list[tuple[Any, str]], args: argparse.Namespace) -> list[dict[str, Any]]:
    import ray
    from tqdm import tqdm

    from mm_fusion_ros.evaluation.ray_local import init_ray

    init_ray(None if args.ray == 'local' else args.ray)
    try:
        task = ray.remote(record_episode)
        pending = {
            task.remote(c, p, args.storage, args.compressed): i for i, (c, p) in enumerate(jobs)
        }
        results: list[dict[str, Any] | None] = [None] * len(jobs)
        with tqdm(total=len(jobs), unit='bag', desc='record (ray)') as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    results[pending.pop(ref)] = ray.get(ref)
                    bar.update(1)
        return [r for r in results if r is not None]
    finally:
        ray.shutdown()


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1 or args.duration <= 0:
        print('record: --episodes must be >= 1 and --duration > 0', file=sys.stderr)
        return 2
    if args.ray is not None:
        try:
            import ray  # noqa: F401
        except ImportError:
            print(
                'record: --ray needs Ray, which is not installed'
                " (pip install 'mm_fusion_ros[ray]' or pip install ray)",
                file=sys.stderr,
            )
            return 2
    jobs = _jobs(args)
    existing = [p for _, p in jobs if Path(p).exists()]
    if existing:
        print(
            f'record: {len(existing)} bag(s) already exist, e.g. {existing[0]};'
            ' choose another --out or --seed',
            file=sys.stderr,
        )
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = _ray(jobs, args) if args.ray is not None else _serial(jobs, args)
    frames = sum(r['frames'] for r in results)
    size = sum(r['bytes'] for r in results)
    seconds = sum(r['seconds'] for r in results)
    print(
        f'recorded {len(results)} bags ({args.storage}) to {args.out}: {frames} frames,'
        f' {size / 1e6:.1f} MB, {frames / max(seconds, 1e-9):.0f} frames/s'
        ' (simulate + encode + write)'
    )
    return 0
