"""Per-frame cost of the radar tracker and of the safety layer's radar step that runs it.

Run: python bench/tracker.py [--frames N] [--clutter N] [--targets N] [--seed S] [--sim N]
A synthetic 20 Hz stream in the vehicle frame: `--clutter` returns per frame at random places
in the 60-degree field of view (70 % static, 30 % moving, as the simulator's clutter), 16
guardrail returns, and `--targets` cars ahead at constant velocity, 3-4 returns each over the
rear face. Prints p50 / p99 per frame of `RadarTracker.update` and of `SafetyLayer.on_radar`
(tracker + time to collision of the confirmed tracks), and the tracks alive and confirmed.
`--sim N`: the radar frames of N held-out simulator episodes instead (`scenario_mix` from seed
900000, expert-driven, preprocessed as the pipeline does; every condition, clutter included).
Figures on a shared machine are noisy.
"""

import argparse
import time

import numpy as np

from mm_fusion_ros.safety import SafetyConfig, SafetyLayer
from mm_fusion_ros.tracking import RadarTracker

NS = 1_000_000_000
DT = 0.05  # [s]
EGO_SPEED = 14.0  # [m/s]


def frames(n: int, clutter: int, targets: int, seed: int) -> list[np.ndarray]:
    """Canonical (x, y, z, radial_velocity, rcs) frames of the synthetic scene."""
    rng = np.random.default_rng(seed)
    start = np.stack([rng.uniform(15.0, 60.0, targets), rng.choice([-3.5, 0.0, 3.5], targets)],
                     axis=1)
    speed = rng.uniform(8.0, 16.0, targets)  # over ground, along x
    out = []
    for k in range(n):
        t = k * DT
        pos, vel = [], []
        for i in range(targets):
            m = int(rng.integers(3, 5))
            x = start[i, 0] + (speed[i] - EGO_SPEED) * t + 0.3 * rng.random(m)
            y = start[i, 1] + rng.uniform(-0.9, 0.9, m)
            pos.append(np.stack([x, y], axis=1))
            vel.append(np.tile([speed[i], 0.0], (m, 1)))
        r = rng.uniform(4.0, 120.0, clutter)
        a = np.radians(rng.uniform(-60.0, 60.0, clutter))
        pos.append(np.stack([r * np.cos(a), r * np.sin(a)], axis=1))
        vel.append(np.where((rng.random(clutter) < 0.3)[:, None],
                            rng.normal(0.0, 3.0, (clutter, 2)), 0.0))
        pos.append(np.stack([rng.uniform(3.0, 100.0, 16), rng.choice([-6.45, 6.45], 16)], axis=1))
        vel.append(np.zeros((16, 2)))
        p, v = np.concatenate(pos), np.concatenate(vel)
        rho = np.hypot(p[:, 0], p[:, 1])
        vr = ((v[:, 0] - EGO_SPEED) * p[:, 0] + v[:, 1] * p[:, 1]) / rho
        vr += 0.1 * rng.standard_normal(len(p))
        z = rng.uniform(-0.3, 1.0, len(p))
        out.append(np.stack([p[:, 0], p[:, 1], z, vr, rng.uniform(-10.0, 15.0, len(p))],
                            axis=1).astype(np.float32))
    return out


def sim_frames(episodes: int, seed: int = 900_000) -> list[tuple[int, np.ndarray]]:
    """(stamp [ns], canonical points) of the radar frames of held-out episodes, in order.

    Stamps run on across episodes (a gap of 2 s between them restarts the tracks, as a new
    drive does).
    """
    from mm_fusion_ros.pipeline import PipelineConfig
    from mm_fusion_ros.sensors.radar_preprocess import preprocess_radar
    from mm_fusion_ros.sim.scenarios import scenario_mix
    from mm_fusion_ros.sim.simulator import SimOptions, Simulator

    preprocess = PipelineConfig().preprocess
    out, offset = [], 0
    for config in scenario_mix(episodes, seed=seed):
        sim = Simulator(config, SimOptions(render_camera=False, render_radar=True))
        frame = sim.reset()
        while not frame.done:
            if frame.radar is not None:
                out.append((offset + round(frame.radar_stamp * NS),
                            preprocess_radar(frame.radar[:, :5], preprocess)))
            frame = sim.step(frame.label)
        offset = out[-1][0] + 2 * NS if out else offset
    return out


def timed(step, stream: list[tuple[int, np.ndarray]], warmup: int) -> np.ndarray:
    times = []
    for k, (stamp_ns, points) in enumerate(stream):
        t0 = time.perf_counter()
        step(stamp_ns, points)
        if k >= warmup:
            times.append(time.perf_counter() - t0)
    return np.array(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, default=2000)
    parser.add_argument('--clutter', type=int, default=45)
    parser.add_argument('--targets', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--sim', type=int, default=0, metavar='EPISODES',
                        help='radar frames of this many held-out simulator episodes instead')
    args = parser.parse_args()
    if args.sim:
        stream = sim_frames(args.sim)
        scene = f'{len(stream)} radar frames of {args.sim} held-out simulator episodes'
    else:
        stream = [(round(k * DT * NS), p) for k, p in
                  enumerate(frames(args.frames, args.clutter, args.targets, args.seed))]
        scene = (f'{args.frames} frames ({args.clutter} clutter, 16 guardrail, {args.targets} '
                 'targets)')
    warmup = 40
    tracker = RadarTracker(SafetyConfig().tracker_config())
    alive, confirmed = [], []

    def track(stamp_ns: int, points: np.ndarray) -> None:
        confirmed.append(len(tracker.update(stamp_ns, points)))
        alive.append(len(tracker))

    t_tracker = timed(track, stream, warmup)
    layer = SafetyLayer()
    t_layer = timed(layer.on_radar, stream, warmup)
    points = np.mean([len(p) for _, p in stream])
    print(f'{scene}, {points:.0f} returns each on average; tracks alive {np.mean(alive):.0f}, '
          f'confirmed {np.mean(confirmed):.1f} on average')
    for label, t in (('RadarTracker.update', t_tracker), ('SafetyLayer.on_radar', t_layer)):
        print(f'  {label:<22} p50 {np.percentile(t, 50):.3f} ms  p99 {np.percentile(t, 99):.3f}'
              f' ms  max {t.max():.3f} ms')


if __name__ == '__main__':
    main()
