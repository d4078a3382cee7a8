"""Soak test of the real node graph: memory growth over a long run at 20 Hz.

Starts `mm-fusion up fusion` (fusion_node + decision_node in one process) as a subprocess and
publishes 20 Hz camera (rgb8 sim frames) + 20 Hz radar for --minutes. The graph process's RSS
(children included) is sampled every --sample seconds with psutil. Prints the RSS after the
warm-up (first 2 min, at most a third of the run), at the end, the growth in % between them
(target < 5 %), the post-warm-up slope, and the decisions, drops and degraded counts.

    python bench/soak.py --minutes 30        # the soak
    python bench/soak.py --minutes 2         # quick check (warm-up shortened to 40 s)
"""

import argparse
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import psutil
import rclpy

from mm_fusion_ros.dds_env import apply_local_dds_env, random_domain_id
from mm_fusion_ros.graph import DECISION, RAW_DECISION
from mm_fusion_ros.ros.messages import DrivingDecision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_latency import SensorPublisher, sim_frames  # noqa: E402

MIB = 2**20


def tree_rss(proc: psutil.Process) -> int:
    """RSS of `proc` and its children [bytes] (0 once it is gone)."""
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--minutes', type=float, default=30.0)
    parser.add_argument('--rate', type=float, default=20.0, help='camera and radar rate [Hz]')
    parser.add_argument('--warmup-minutes', type=float, default=2.0)
    parser.add_argument('--sample', type=float, default=10.0, help='RSS sample period [s]')
    parser.add_argument('--target', type=float, default=5.0, help='max RSS growth [%%]')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--executor', default='events', choices=('single', 'events', 'multi'))
    args = parser.parse_args()

    duration = args.minutes * 60.0
    warmup = min(args.warmup_minutes * 60.0, duration / 3)
    env = apply_local_dds_env(dict(os.environ), override=True)
    env.setdefault('ROS_DOMAIN_ID', str(random_domain_id()))
    os.environ.update(env)
    cmd = [sys.executable, '-m', 'mm_fusion_ros.cli', 'up', 'fusion', '--device', 'cpu',
           '--executor', args.executor]
    if args.checkpoint:
        cmd += ['--checkpoint', args.checkpoint]
    graph = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    graph_proc = psutil.Process(graph.pid)

    frames = sim_frames(600)
    rclpy.init()
    node = rclpy.create_node('soak_bench')
    sensors = SensorPublisher(node)
    counts = {'raw': 0, 'final': 0, 'final_degraded': 0}
    status: dict[str, str] = {}

    def on_raw(_: DrivingDecision) -> None:
        counts['raw'] += 1

    def on_final(msg: DrivingDecision) -> None:
        counts['final'] += 1
        counts['final_degraded'] += int(msg.degraded)

    def on_diag(msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name == 'mm_fusion_ros: fusion_node':
                status.update({kv.key: kv.value for kv in st.values})

    node.create_subscription(DrivingDecision, RAW_DECISION, on_raw, 100)
    node.create_subscription(DrivingDecision, DECISION, on_final, 100)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 100)

    deadline = time.monotonic() + 120
    while (sensors.image.get_subscription_count() == 0 or node.count_publishers(DECISION) == 0):
        if time.monotonic() > deadline or graph.poll() is not None:
            print('graph did not come up:', graph.stderr.read().decode()[-2000:] if
                  graph.poll() is not None else 'discovery timed out')
            return 2
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)

    print(f'soak: fusion graph pid {graph.pid}, {args.rate:.0f} Hz camera + radar for '
          f'{args.minutes:g} min, warm-up {warmup / 60:.1f} min, RSS every {args.sample:g} s',
          flush=True)
    samples: list[tuple[float, int]] = []
    period = 1.0 / args.rate
    start = time.monotonic()
    next_sample = start
    sent = 0
    while True:
        target = start + sent * period
        if target - start >= duration:
            break
        while time.monotonic() < target:
            rclpy.spin_once(node, timeout_sec=max(0.0, target - time.monotonic()))
        now = time.monotonic()
        if now >= next_sample:
            rss = tree_rss(graph_proc)
            samples.append((now - start, rss))
            next_sample += args.sample
            print(f'  t={now - start:7.1f} s  RSS {rss / MIB:7.1f} MiB  '
                  f'raw {counts["raw"]}  final {counts["final"]}  '
                  f'drops {status.get("dropped", "?")}', flush=True)
        if graph.poll() is not None:
            print(f'graph exited early with {graph.returncode}')
            return 2
        sensors.publish(frames[sent % len(frames)])
        sent += 1
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    samples.append((time.monotonic() - start, tree_rss(graph_proc)))

    graph.send_signal(signal.SIGINT)
    try:
        graph.wait(timeout=20)
    except subprocess.TimeoutExpired:
        graph.kill()
    node.destroy_node()
    rclpy.try_shutdown()

    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples], np.float64) / MIB
    after = t >= warmup
    warm_rss = rss[after][0]
    end_rss = rss[-1]
    growth = (end_rss - warm_rss) / warm_rss * 100
    slope = (np.polyfit(t[after], rss[after], 1)[0] * 3600 if after.sum() >= 3 else float('nan'))
    minutes = t[-1] / 60
    print(f'soak: {minutes:.1f} min, {sent} camera + {sent} radar frames sent '
          f'({sent / t[-1]:.1f} Hz)')
    print(f'  RSS start {rss[0]:.1f} MiB, after warm-up ({t[after][0] / 60:.1f} min) '
          f'{warm_rss:.1f} MiB, end {end_rss:.1f} MiB, max {rss.max():.1f} MiB')
    print(f'  growth after warm-up: {growth:+.2f} % (target < {args.target:g} %), '
          f'slope {slope:+.1f} MiB/h')
    print(f'  decisions: raw {counts["raw"]}, final {counts["final"]} '
          f'({counts["final_degraded"]} degraded)')
    if status:
        print(f'  fusion_node: decisions {status.get("decisions")}, dropped '
              f'{status.get("dropped")}, degraded {status.get("degraded")}, camera frames '
              f'{status.get("camera_frames")}, image_rejected {status.get("image_rejected")}, '
              f'radar_rejected {status.get("radar_rejected")}, latency p50/p99 '
              f'{float(status.get("latency_p50_ms", "nan")):.1f}/'
              f'{float(status.get("latency_p99_ms", "nan")):.1f} ms')
    ok = growth < args.target
    print(f'  result: {"PASS" if ok else "FAIL"}')
    return 0 if ok else 1


if __name__ == '__main__':
    raise SystemExit(main())
