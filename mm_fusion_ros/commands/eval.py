"""`mm-fusion eval BAG_OR_DIR...`: evaluate the fusion graph on recorded drives.

offline (default): the nodes' logic in-process over each bag, batched, as fast as the machine
allows (`mm_fusion_ros.evaluation.replay`); online: plays each bag into fusion_node +
decision_node at `--rate` and records the final decisions (`mm_fusion_ros.ros.bag_player`).
Writes metrics.json, summary.md, PNG plots and index.html to `--out`. Exit code 2 for bags
that cannot be read or do not match the topics layout (the message lists what the bag has).
"""

import argparse
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bags', nargs='+', metavar='BAG_OR_DIR',
                        help='bag directories / .mcap / .db3 files, or directories of bags')
    parser.add_argument('--mode', default='offline', choices=('offline', 'online'))
    parser.add_argument('--topics', default='auto',
                        help='bag layout: a preset (sim, sim_compressed, carla, nuscenes), a'
                        ' YAML path, or auto (first preset the bag matches)')
    parser.add_argument('--checkpoint', default=None, help='model .pt (default: shipped)')
    parser.add_argument('--compare-checkpoint', default=None,
                        help='second model: report agreement between the two (offline)')
    parser.add_argument('--out', default='eval_report', help='report directory')
    parser.add_argument('--rate', type=float, default=1.0, help='online playback rate')
    parser.add_argument('--no-lockstep', action='store_true',
                        help='online: never wait for a decision before the next frame')
    parser.add_argument('--attach', action='store_true',
                        help='online: play into an already running graph (launch/replay)')
    parser.add_argument('--ray', nargs='?', const='local', default=None, metavar='ADDRESS',
                        help='offline: one Ray task per bag (local Ray without an address)')
    parser.add_argument('--batch-size', type=int, default=64, help='offline model batch')
    parser.add_argument('--radar-lead', type=float, default=0.02,
                        help='[s] paired radar goes out this long before its camera frame')
    parser.add_argument('--num-threads', type=int, default=None,
                        help='CPU inference threads (offline default 2, 1 per Ray task;'
                        ' online: the params file)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def _fail(message: str) -> int:
    from mm_fusion_ros.errors import one_line

    print(f'mm-fusion eval: {one_line(message)}', file=sys.stderr)
    return 2


def _resolve(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(bag, BagTopics) per bag, layouts checked up front (raises BagError / ValueError)."""
    from mm_fusion_ros.bags import detect_topics, find_bags, load_bag_topics, open_bag

    fixed = None if args.topics == 'auto' else load_bag_topics(args.topics)
    jobs = []
    for bag in find_bags(args.bags):
        if fixed is None:
            topics = detect_topics(bag)  # opened and checked against the layout it returns
        else:
            topics = fixed
            with open_bag(bag, topics):
                pass  # layout + type check now, not halfway through a long run
        jobs.append((str(bag), topics))
    if not jobs:
        raise ValueError(f'no bags found in {args.bags}')
    return jobs


def evaluate_serial(jobs: list[Any], progress: bool = True) -> list[Any]:
    from tqdm import tqdm

    from mm_fusion_ros.evaluation.replay import run_offline_job

    return [run_offline_job(j) for j in tqdm(jobs, unit='bag', desc='eval', disable=not progress)]


def evaluate_ray(jobs: list[Any], address: str | None, progress: bool = True,
                 init: bool = True) -> list[Any]:
    """One Ray task per bag; results in bag order, exactly what the serial loop returns.

    `init`: start a local Ray on loopback (no address) or join `address` (`ray_local`). A
    task's user-input error (a bag that turns out corrupt) is re-raised as itself.
    """
    import ray
    from tqdm import tqdm

    from mm_fusion_ros.errors import UserInputError
    from mm_fusion_ros.evaluation.ray_local import init_ray
    from mm_fusion_ros.evaluation.replay import run_offline_job

    if init:
        init_ray(address)
    try:
        task = ray.remote(num_cpus=1)(run_offline_job)
        pending = {task.remote(j): i for i, j in enumerate(jobs)}
        results: list[Any] = [None] * len(jobs)
        with tqdm(total=len(jobs), unit='bag', desc='eval (ray)', disable=not progress) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    try:
                        results[pending.pop(ref)] = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        if isinstance(exc.cause, UserInputError):
                            raise exc.cause from None  # its message, not the remote traceback
                        raise
                    bar.update(1)
        return results
    finally:
        if init:
            ray.shutdown()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mm_fusion_ros.bags import BagError
    from mm_fusion_ros.evaluation.replay import (
        OFFLINE_THREADS,
        OfflineJob,
        ReplayConfig,
        merge_results,
    )
    from mm_fusion_ros.evaluation.replay_report import compute_metrics, write_report
    from mm_fusion_ros.model.predictor import validate_checkpoint
    from mm_fusion_ros.paths import resolve_checkpoint

    if args.batch_size < 1 or not args.rate > 0:
        return _fail('--batch-size must be >= 1 and --rate > 0')
    if args.mode == 'online' and (args.ray or args.compare_checkpoint):
        return _fail('--ray and --compare-checkpoint apply to --mode offline')
    if args.ray is not None:
        try:
            import ray  # noqa: F401
        except ImportError:
            return _fail("--ray needs Ray (pip install 'mm_fusion_ros[ray]' or pip install ray)")
    checkpoint = str(resolve_checkpoint(args.checkpoint))
    for ckpt in (None if args.attach else checkpoint, args.compare_checkpoint):
        if ckpt:
            # CheckpointError now, not in the middle of the bags; a checkpoint validated
            # before (same content, ONNX cache) costs a hash, not the torch import and a load
            validate_checkpoint(ckpt)
    Path(args.out).mkdir(parents=True, exist_ok=True)  # an unwritable --out fails first too
    replay = ReplayConfig(batch_size=args.batch_size, radar_lead=args.radar_lead)
    threads = args.num_threads or (1 if args.ray is not None else OFFLINE_THREADS)
    progress = not args.quiet
    try:
        resolved = _resolve(args)
        if args.mode == 'offline':
            jobs = [OfflineJob(p, t, checkpoint, args.compare_checkpoint, replay, threads, i)
                    for i, (p, t) in enumerate(resolved)]
            if args.ray is not None:
                results = evaluate_ray(jobs, args.ray, progress)
            else:
                results = evaluate_serial(jobs, progress)
        else:
            from mm_fusion_ros.ros.bag_player import evaluate_bag_online, player_config

            results = []
            for i, (path, topics) in enumerate(resolved):
                config = player_config(topics, args.rate, replay, not args.no_lockstep)
                results.append(evaluate_bag_online(
                    path, topics, None if args.attach else checkpoint, config,
                    attach=args.attach, num_threads=args.num_threads, bag_index=i))
    except (BagError, ValueError) as exc:
        return _fail(str(exc))  # bags and layouts the user gave (exit 2, one line)
    from mm_fusion_ros.evaluation.recorded_driver import add_recorded_driver

    add_recorded_driver(results, [topics for _, topics in resolved])  # bags without truth
    frames, duration = merge_results(results)
    metrics = compute_metrics(frames, duration)
    bags = [r.summary() for r in results]
    model = 'the running graph' if args.attach else Path(checkpoint).name
    paths = write_report(args.out, metrics, frames, bags,
                         title=f'mm-fusion eval ({args.mode}): {model}')
    print(paths['summary'].read_text())
    print(f'report: {paths["index"]}')
    return 0
