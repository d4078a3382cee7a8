"""Simulator throughput on one core, the cost split, and the expert label distribution.

Usage: python bench/sim_throughput.py [--episodes 8] [--label-episodes 200] [--seed 0]
"""

import os

# one core: keep any threaded numpy backend from spreading over more
for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')

import argparse  # noqa: E402
from collections import Counter  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from mm_fusion_ros.actions import Action  # noqa: E402
from mm_fusion_ros.sim.camera import CameraModel  # noqa: E402
from mm_fusion_ros.sim.conditions import CONDITIONS  # noqa: E402
from mm_fusion_ros.sim.scenarios import scenario_mix  # noqa: E402
from mm_fusion_ros.sim.simulator import (  # noqa: E402
    SimOptions,
    Simulator,
    expert_policy,
    run_episode,
)


def _pin_one_core() -> None:
    if hasattr(os, 'sched_setaffinity'):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[0]})


def throughput(episodes: int, seed: int) -> None:
    camera = CameraModel()
    fps, cam_t, radar_t, step_t, frames = [], 0.0, 0.0, 0.0, 0
    for cfg in scenario_mix(episodes, seed=seed, duration=10.0):
        sim = Simulator(cfg, camera=camera)
        frame = sim.reset()
        n, t0 = 0, time.perf_counter()
        while not frame.done:
            frame = sim.step(expert_policy(frame))
            n += 1
        fps.append(n / (time.perf_counter() - t0))
        # cost split on the same episode, each part timed alone
        sim_fast = Simulator(cfg, SimOptions(render_camera=False, render_radar=False))
        rng = np.random.default_rng(cfg.seed)
        frame = sim_fast.reset()
        while not frame.done:
            t = time.perf_counter()
            frame = sim_fast.step(expert_policy(frame))
            step_t += time.perf_counter() - t
            t = time.perf_counter()
            camera.render(sim_fast.world, frame.ego, cfg.condition, None, cfg.seed)
            cam_t += time.perf_counter() - t
            t = time.perf_counter()
            sim_fast.radar.detect(sim_fast.world, frame.ego, rng, cfg.condition)
            radar_t += time.perf_counter() - t
            frames += 1
    print(f'camera+radar+step: median {statistics.median(fps):.0f} frames/s over {episodes} '
          f'episodes (min {min(fps):.0f}, max {max(fps):.0f})')
    total = cam_t + radar_t + step_t
    print(f'per frame: camera {1e3 * cam_t / frames:.3f} ms ({100 * cam_t / total:.0f} %), '
          f'radar {1e3 * radar_t / frames:.3f} ms ({100 * radar_t / total:.0f} %), '
          f'step+expert {1e3 * step_t / frames:.3f} ms ({100 * step_t / total:.0f} %)')


def label_distribution(episodes: int, seed: int) -> None:
    counts: Counter = Counter()
    by_condition: dict[str, Counter] = {c.value: Counter() for c in CONDITIONS}
    collisions = red = 0
    fast = SimOptions(render_camera=False, render_radar=False)
    for cfg in scenario_mix(episodes, seed=seed):
        result = run_episode(cfg, options=fast)
        for f in result.frames:
            counts[f.label.action] += 1
            by_condition[cfg.condition.value][f.label.action] += 1
        collisions += result.metrics.collision
        red += result.metrics.red_light_violation
    total = sum(counts.values())
    print(f'label distribution over {episodes} expert episodes ({total} frames):')
    for a in Action:
        print(f'  {a.label:18s} {counts[a]:7d}  {100 * counts[a] / total:5.1f} %')
    print(f'expert: {collisions} collisions, {red} red-light violations')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--episodes', type=int, default=8)
    parser.add_argument('--label-episodes', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    _pin_one_core()
    throughput(args.episodes, args.seed)
    label_distribution(args.label_episodes, args.seed)


if __name__ == '__main__':
    main()
