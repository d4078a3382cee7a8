"""Bag replay: offline speed vs real time, and offline-vs-online agreement on the same bag.

Generates a 60 s, 20 Hz sim bag (4 x 15 s scenario_mix episodes laid end to end in one bag),
evaluates it offline and online (played at --rate into fusion_node + decision_node over DDS)
with the same checkpoint, and prints the online decisions recorded, the share of frames with
the same final action, and both modes' median/p99 latency. Default checkpoint: the shipped
one, else random weights.

Offline speed, as drive seconds per wall second (x real time), two ways:
- whole process: a fresh Python process evaluates the bag (`run_offline_job`, what
  `mm-fusion eval` runs per bag), timed from spawn to result, start-up included (warm ONNX
  cache); with `--baseline REV` the package at that git revision runs the same child,
  interleaved round by round (`--repeats`), so both meet the same machine load;
- in process, model already loaded (wall and CPU time), and with `--profile` the cProfile
  of that run (what the offline path spends its time on).

    python bench/replay_speed.py [--bag PATH] [--checkpoint X] [--rate 1.0] [--seconds 60]
        [--repeats 3] [--baseline REV] [--profile] [--skip-online]
"""

import argparse
import cProfile
from dataclasses import replace
import os
from pathlib import Path
import pstats
import random
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import CHILD, child_cwd, child_env, extract, run_child  # noqa: E402

from mm_fusion_ros.bags import load_bag_topics, write_episode_bag
from mm_fusion_ros.dds_env import apply_local_dds_env, random_domain_id
from mm_fusion_ros.evaluation.replay import (
    OfflineJob,
    ReplayConfig,
    load_predictor,
    run_offline_job,
)
from mm_fusion_ros.evaluation.replay_report import agreement, compute_metrics
from mm_fusion_ros.paths import default_checkpoint
from mm_fusion_ros.sim.scenarios import scenario_mix
from mm_fusion_ros.sim.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]


def drive_frames(seconds: float, episodes: int = 4, seed: int = 930_000):
    """Expert-driven scenario_mix episodes, stamps shifted so they form one drive."""
    from mm_fusion_ros.data.cache import sim_episode_frames

    configs = scenario_mix(episodes, seed=seed, duration=seconds / episodes)
    offset = 0.0
    for config in configs:
        last = offset
        for frame in sim_episode_frames(Simulator(config)):
            last = offset + frame.stamp
            yield replace(frame, stamp=last, radar_stamp=offset + frame.radar_stamp)
        offset = last + config.dt


def make_bag(path: Path, seconds: float) -> Path:
    configs = scenario_mix(4, seed=930_000, duration=seconds / 4)
    write_episode_bag(path, drive_frames(seconds), configs[0])
    return path


def checkpoint_path(arg: str | None, tmp: Path) -> tuple[str, str]:
    if arg:
        return arg, 'given'
    if default_checkpoint().is_file():
        return str(default_checkpoint()), 'shipped'
    import torch

    from mm_fusion_ros.model.checkpoint import save_checkpoint
    from mm_fusion_ros.model.fusion import FusionModel

    torch.manual_seed(0)
    return str(save_checkpoint(FusionModel(), tmp / 'random.pt')), 'random weights'


def lat(m: dict) -> str:
    lat = m['latency']
    if not lat['count']:
        return 'n/a'
    return f"median {lat['median_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms"


def whole_process(bag: str, ckpt: str, tmp: Path, repeats: int, baseline: str | None) -> None:
    """Fresh processes evaluate the bag, start-up included; baseline rounds interleaved."""
    from mm_fusion_ros.model.onnx_cache import ENV_VAR

    env = {ENV_VAR: str(tmp / 'onnx_cache')}
    trees = {'working tree': None}
    if baseline:
        trees[f'baseline {baseline}'] = extract(baseline, tmp / 'baseline')
    run_child(CHILD, [ckpt, 'default'], child_env(None, dict(os.environ, **env)), ROOT)  # warm
    walls: dict[str, list[float]] = {name: [] for name in trees}
    drive = 0.0
    for _ in range(repeats):
        for name, tree in trees.items():
            out = run_child(CHILD, [ckpt, 'default', bag],
                            child_env(tree, dict(os.environ, **env)), child_cwd(tree))
            walls[name].append(out['done_s'])
            drive = out['drive_s']
    print(f'offline, whole process (start-up included, warm ONNX cache), {repeats} rounds:')
    for name, values in walls.items():
        v = np.asarray(values)
        print(f'  {name:22s} median {np.median(v):6.2f} s (min {v.min():.2f}, max {v.max():.2f})'
              f' = {drive / np.median(v):5.1f}x real time (target >= 20x)')
    if len(walls) > 1:
        names = list(walls)
        print(f'  speed-up: {np.median(walls[names[1]]) / np.median(walls[names[0]]):.2f}x')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--bag', default=None, help='evaluate this bag instead of generating')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--seconds', type=float, default=60.0, help='generated drive length')
    parser.add_argument('--rate', type=float, default=1.0, help='online playback rate')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--skip-online', action='store_true')
    parser.add_argument('--repeats', type=int, default=3, help='whole-process rounds')
    parser.add_argument('--baseline', default=None, metavar='REV',
                        help='also evaluate with the package at this git revision')
    parser.add_argument('--profile', action='store_true', help='cProfile the offline run')
    args = parser.parse_args()
    os.environ.setdefault('ROS_DOMAIN_ID', str(random_domain_id(random.Random())))
    apply_local_dds_env(os.environ)
    with tempfile.TemporaryDirectory(prefix='replay_bench_') as tmp:
        tmp = Path(tmp)
        ckpt, origin = checkpoint_path(args.checkpoint, tmp)
        if args.bag:
            bag = Path(args.bag)
        else:
            t0 = time.perf_counter()
            bag = make_bag(tmp / 'drive', args.seconds)
            print(f'bag: {args.seconds:.0f} s at 20 Hz, written in'
                  f' {time.perf_counter() - t0:.1f} s')
        topics = load_bag_topics('sim')
        print(f'checkpoint: {ckpt} ({origin})')
        whole_process(str(bag), ckpt, tmp, args.repeats, args.baseline)
        load_predictor(ckpt, 2)  # load + warm up outside the timed run
        t0, cpu0 = time.perf_counter(), time.process_time()
        offline = run_offline_job(OfflineJob(str(bag), topics, ckpt,
                                             replay=ReplayConfig(batch_size=args.batch_size)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        m_off = compute_metrics(offline.frames, offline.duration_s)
        print(f'offline: {offline.num_frames} frames, {offline.duration_s:.1f} s of drive in'
              f' {wall:.2f} s = {offline.duration_s / wall:.1f}x real time'
              f' (model per frame: {lat(m_off)})')
        # CPU seconds do not depend on what else runs on the machine: drive seconds per CPU
        # second is the speed on one dedicated core.
        print(f'offline CPU time: {cpu:.2f} s = {offline.duration_s / cpu:.1f}x real time'
              f' per CPU core; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs')
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            run_offline_job(OfflineJob(str(bag), topics, ckpt,
                                       replay=ReplayConfig(batch_size=args.batch_size)))
            profile.disable()
            print('offline path, cProfile (by own time, then cumulative):')
            stats = pstats.Stats(profile, stream=sys.stdout)
            stats.sort_stats('tottime').print_stats(20)
            stats.sort_stats('cumulative').print_stats(30)
        gt = m_off.get('ground_truth')
        if gt:
            print(f"offline vs expert: accuracy {gt['accuracy']:.3f},"
                  f" macro-F1 {gt['macro_f1']:.3f}, false brakes/h"
                  f" {gt['false_brake_per_hour']:.1f}")
        if args.skip_online:
            return 0
        from mm_fusion_ros.ros.bag_player import evaluate_bag_online, player_config

        t0 = time.perf_counter()
        config = player_config(topics, args.rate, ReplayConfig(batch_size=args.batch_size))
        online = evaluate_bag_online(str(bag), topics, ckpt, config)
        wall = time.perf_counter() - t0
        m_on = compute_metrics(online.frames, online.duration_s)
        recorded = int((online.frames['action'] >= 0).sum())
        print(f'online (rate {args.rate}): {recorded}/{online.num_frames} decisions recorded'
              f' in {wall:.1f} s; camera publish -> final decision {lat(m_on)}')
        print(f'player: {online.counts}')
        a = agreement(offline.frames, online.frames)
        both = online.frames['action'] >= 0
        accel_same = float(np.mean(np.abs(online.frames['accel'][both]
                                          - offline.frames['accel'][both]) < 1e-3))
        print(f"offline vs online: {a['same']}/{a['frames']} frames with the same final action"
              f" = {100 * a['agreement']:.2f}% ({a['missing']} without an online decision);"
              f' same target accel (1e-3): {100 * accel_same:.2f}%')
        diff = np.flatnonzero(offline.frames['action'] != online.frames['action'])
        t = (offline.frames['stamp_ns'] - offline.frames['stamp_ns'][0]) / 1e9
        for i in diff[:10]:
            print(f'  differs at frame {i} (t={t[i]:.2f} s): final / model action offline'
                  f" {offline.frames['action'][i]} / {offline.frames['model_action'][i]},"
                  f" online {online.frames['action'][i]} / {online.frames['model_action'][i]}")
        raw = (online.frames['model_action'] >= 0) & (offline.frames['model_action'] >= 0)
        same_raw = online.frames['model_action'][raw] == offline.frames['model_action'][raw]
        print(f'model (pre-safety) action agreement: {100 * np.mean(same_raw):.2f}%'
              f' over {raw.sum()} frames')
        return 0 if a['agreement'] >= 0.99 else 1


if __name__ == '__main__':
    sys.exit(main())
