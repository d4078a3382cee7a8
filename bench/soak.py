"""Soak of the live node graph with injected faults: crashes, stalls and memory over a long run.

Starts `mm-fusion up fusion` (fusion_node + decision_node, one process, under `--namespace`) as
a subprocess and publishes 20 Hz camera (rgb8 sim frames), radar and odometry into it for
`--minutes`, with faults injected on a schedule drawn from `--seed`:

- broken messages: each message is, with probability `--broken` (1 %), replaced by a broken
  one of its kind (image: truncated data, unknown encoding, zero height, short row step,
  huge declared size; cloud: truncated data, point_step 0, a missing field, a field past
  point_step, a huge declared width, NaN/inf points; odometry: NaN, inf or absurd speed);
- sensor dropouts: every `--dropout-every` s one sensor (camera, radar, odometry in turn) stops
  for 1-5 s;
- clock jumps: every `--jump-every` s the stamps jump back by `--jump` s (a bag loop, a sim
  reset), and forward again at the next event.

The graph process's RSS (children included) is sampled every `--sample` s. Reported: crashes
(the graph process exiting, or a Traceback / FATAL / callback exception in its log), stalls
(no final decision for `--stall` s; no raw decision for `--stall` s while the camera is sent),
the RSS growth between the median of the first window (`--window-minutes`, after
`--warmup-minutes`) and the median of the last window, the messages sent by kind, and the
nodes' own counters from /diagnostics (rejects by reason, clock resets, degraded frames).
Exit 0 when there is no crash, no stall and the growth is under `--target` %.

    python bench/soak.py --minutes 30                      # issue 26: 0 crashes, growth < 5 %
    python bench/soak.py --minutes 0.4 --window-minutes 0.1 --warmup-minutes 0.05
        --dropout-every 6 --jump-every 8 --broken 0.05     # smoke run (test/test_soak.py)

The graph takes the ROS_DOMAIN_ID of the environment (a random one when unset) and the local
DDS settings (loopback only); its topics are under `/<namespace>/`, and only the statuses of
the /diagnostics publishers in that namespace are counted.
"""

import argparse
import json
import math
import os
from pathlib import Path
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

MIB = 2**20
NS = 1_000_000_000
CRASH_LINE = re.compile(r'Traceback \(most recent call last\)|\[FATAL\]|Exception in .*callback'
                        r'|Segmentation fault|core dumped')
SENSORS = ('camera', 'radar', 'odometry')


def tree_rss(pid: int) -> int:
    """RSS of process `pid` and its children [bytes] (0 once it is gone)."""
    try:
        import psutil
    except ImportError:  # this process only, from /proc
        try:
            pages = int(Path(f'/proc/{pid}/statm').read_text().split()[1])
        except (OSError, ValueError, IndexError):
            return 0
        return pages * os.sysconf('SC_PAGE_SIZE')
    try:
        proc = psutil.Process(pid)
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


class Faults:
    """Healthy and broken messages of each sensor, and the fault schedule."""

    def __init__(self, frames: list, args: argparse.Namespace) -> None:
        from nav_msgs.msg import Odometry
        from std_msgs.msg import Header

        from mm_fusion_ros.ros.images import rgb_image_msg
        from mm_fusion_ros.sensors.pointcloud import create_cloud
        from mm_fusion_ros.sensors.radar_presets import load_preset

        self.rng = random.Random(args.seed)
        self.broken_rate = args.broken
        fields = load_preset('sim').layout_fields()
        self.healthy = []
        for rgb, radar, speed in frames:
            header = Header(frame_id='radar')
            odom = Odometry(header=Header(frame_id='odom'), child_frame_id='base_link')
            odom.twist.twist.linear.x = speed
            pts = radar[:, :5] if radar is not None else np.zeros((0, 5), np.float32)
            self.healthy.append({'camera': rgb_image_msg(rgb, header.stamp),
                                 'radar': create_cloud(header, fields, pts),
                                 'odometry': odom})
        self.broken = self._broken(self.healthy[0], fields)
        self.dropout_every, self.jump_every = args.dropout_every, args.jump_every
        self.jump_ns = int(args.jump * NS)
        self.dropout: tuple[str, float] | None = None  # (sensor, until [s])
        self.next_dropout = args.dropout_every / 2
        self.next_jump = args.jump_every
        self.offset_ns = 0
        self.counts = {f'{s} {k}': 0 for s in SENSORS for k in ('sent', 'broken', 'dropped')}
        self.counts.update(dropouts=0, jumps_back=0, jumps_forward=0)

    @staticmethod
    def _broken(template: dict, fields: list) -> dict[str, list]:
        """Broken variants of one healthy message of each sensor (name, message)."""
        import copy

        from sensor_msgs.msg import PointField

        def variant(msg, **changes):
            out = copy.deepcopy(msg)
            for key, value in changes.items():
                setattr(out, key, value)
            return out

        image, cloud, odom = template['camera'], template['radar'], template['odometry']
        data = bytes(image.data)
        cdata = bytes(cloud.data)
        nan_points = np.full((16, 5), np.nan, np.float32)
        nan_points[::2] = np.inf
        from std_msgs.msg import Header

        from mm_fusion_ros.sensors.pointcloud import create_cloud

        nan_cloud = create_cloud(Header(frame_id='radar'), fields, nan_points)
        far_field = copy.deepcopy(list(cloud.fields))
        far_field[-1] = PointField(name=far_field[-1].name, offset=cloud.point_step + 4,
                                   datatype=far_field[-1].datatype, count=1)
        images = [
            variant(image, data=data[:len(data) // 2]),
            variant(image, encoding='yuv9_unknown'),
            variant(image, height=0),
            variant(image, step=image.width),
            variant(image, height=60000, width=60000, step=180000),
        ]
        clouds = [
            variant(cloud, data=cdata[:len(cdata) // 2 + 3]),
            variant(cloud, point_step=0),
            variant(cloud, fields=list(cloud.fields)[:-1]),
            variant(cloud, fields=far_field),
            variant(cloud, width=10_000_000, row_step=10_000_000 * cloud.point_step),
            nan_cloud,
        ]
        odoms = []
        for speed in (math.nan, math.inf, 1e9):
            o = copy.deepcopy(odom)
            o.twist.twist.linear.x = speed
            odoms.append(o)
        return {'camera': images, 'radar': clouds, 'odometry': odoms}

    def events(self, t: float) -> None:
        """Start / end dropouts and jump the clock at run time `t` [s]."""
        if self.dropout is not None and t >= self.dropout[1]:
            self.dropout = None
        if self.dropout_every > 0 and t >= self.next_dropout:
            sensor = SENSORS[self.counts['dropouts'] % len(SENSORS)]
            self.dropout = (sensor, t + self.rng.uniform(1.0, 5.0))
            self.counts['dropouts'] += 1
            self.next_dropout += self.dropout_every
        if self.jump_every > 0 and t >= self.next_jump:
            if self.offset_ns == 0:
                self.offset_ns = -self.jump_ns
                self.counts['jumps_back'] += 1
            else:
                self.offset_ns = 0
                self.counts['jumps_forward'] += 1
            self.next_jump += self.jump_every

    def messages(self, i: int) -> list[tuple[str, object]]:
        """This tick's (sensor, message) in publish order: odometry, radar, camera last."""
        stamp_ns = time.time_ns() + self.offset_ns
        sec, nanosec = divmod(stamp_ns, NS)
        out = []
        for sensor in ('odometry', 'radar', 'camera'):
            if self.dropout is not None and self.dropout[0] == sensor:
                self.counts[f'{sensor} dropped'] += 1
                continue
            if self.rng.random() < self.broken_rate:
                msg = self.rng.choice(self.broken[sensor])
                self.counts[f'{sensor} broken'] += 1
            else:
                msg = self.healthy[i % len(self.healthy)][sensor]
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
            self.counts[f'{sensor} sent'] += 1
            out.append((sensor, msg))
        return out


def _windows(t: np.ndarray, window: float, warmup: float) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the first window after the warm-up and of the last window."""
    end = t[-1]
    window = min(window, max((end - warmup) / 2, 0.0))
    first = (t >= warmup) & (t <= warmup + window)
    last = t >= end - window
    return first, last


def crash_lines(log: Path) -> list[str]:
    try:
        text = log.read_text(errors='replace')
    except OSError:
        return []
    return [line.strip()[:300] for line in text.splitlines() if CRASH_LINE.search(line)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--minutes', type=float, default=30.0)
    parser.add_argument('--rate', type=float, default=20.0, help='sensor rate [Hz]')
    parser.add_argument('--broken', type=float, default=0.01,
                        help='probability that a message is broken')
    parser.add_argument('--dropout-every', type=float, default=60.0,
                        help='[s] between sensor dropouts (1-5 s each); 0: none')
    parser.add_argument('--jump-every', type=float, default=90.0,
                        help='[s] between clock jumps; 0: none')
    parser.add_argument('--jump', type=float, default=5.0, help='clock jump [s]')
    parser.add_argument('--sample', type=float, default=5.0, help='RSS sample period [s]')
    parser.add_argument('--window-minutes', type=float, default=5.0,
                        help='RSS growth: median of the first vs the last window')
    parser.add_argument('--warmup-minutes', type=float, default=1.0,
                        help='before the first window (model load, allocator warm-up)')
    parser.add_argument('--stall', type=float, default=3.0,
                        help='[s] without a decision that counts as a stall')
    parser.add_argument('--target', type=float, default=5.0, help='max RSS growth [%%]')
    parser.add_argument('--frames', type=int, default=300, help='distinct sim frames sent')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--namespace', default='soak')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--executor', default='events', choices=('single', 'events', 'multi'))
    parser.add_argument('--log', default=None, help='graph log file (default: a temp file)')
    parser.add_argument('--json', default=None, help='write the results here')
    args = parser.parse_args(argv)

    from mm_fusion_ros.dds_env import apply_local_dds_env, random_domain_id

    env = apply_local_dds_env(dict(os.environ))
    env.setdefault('ROS_DOMAIN_ID', str(random_domain_id()))
    os.environ.update(env)  # this process joins the graph's domain

    from e2e_latency import sim_frames
    import rclpy
    from rclpy.qos import qos_profile_sensor_data

    duration = args.minutes * 60.0
    log = Path(args.log) if args.log else Path(tempfile.mkdtemp(prefix='soak_')) / 'graph.log'
    cmd = [sys.executable, '-m', 'mm_fusion_ros.cli', 'up', 'fusion', '--device', 'cpu',
           '--executor', args.executor, '--namespace', args.namespace]
    if args.checkpoint:
        cmd += ['--checkpoint', args.checkpoint]
    faults = Faults(sim_frames(args.frames), args)
    launched = time.monotonic()
    with open(log, 'wb') as log_file:
        graph = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        return _soak(args, graph, log, faults, duration, launched, rclpy,
                     qos_profile_sensor_data)
    finally:
        if graph.poll() is None:
            graph.send_signal(signal.SIGINT)
            try:
                graph.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(graph.pid, signal.SIGKILL)
                graph.wait()
        rclpy.try_shutdown()


def _soak(args, graph, log, faults, duration, launched, rclpy, sensor_qos) -> int:
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image, PointCloud2

    from mm_fusion_ros.graph import (
        CAMERA_IMAGE,
        DECISION,
        EGO_ODOMETRY,
        RADAR_POINTS,
        RAW_DECISION,
    )
    from mm_fusion_ros.ros.messages import DrivingDecision

    ns = f'/{args.namespace}/'
    rclpy.init()
    node = rclpy.create_node('soak_bench')
    pubs = {'camera': node.create_publisher(Image, ns + CAMERA_IMAGE, sensor_qos),
            'radar': node.create_publisher(PointCloud2, ns + RADAR_POINTS, sensor_qos),
            'odometry': node.create_publisher(Odometry, ns + EGO_ODOMETRY, sensor_qos)}
    got = {'raw': 0, 'final': 0, 'final_degraded': 0}
    last = {'raw': None, 'final': None}
    first: dict[str, float] = {}  # first decision of each kind [monotonic s]
    stalls: list[str] = []
    status: dict[str, dict[str, str]] = {}
    ours: set[tuple] = set()

    def on_raw(_: DrivingDecision) -> None:
        got['raw'] += 1
        last['raw'] = time.monotonic()
        first.setdefault('raw', last['raw'])

    def on_final(msg: DrivingDecision) -> None:
        got['final'] += 1
        got['final_degraded'] += int(msg.degraded)
        last['final'] = time.monotonic()
        first.setdefault('final', last['final'])

    def gid(data) -> tuple:
        return tuple(data)[:16]

    def refresh_ours() -> None:
        for info in node.get_publishers_info_by_topic('/diagnostics'):
            if info.node_namespace.rstrip('/') == ns.rstrip('/'):
                ours.add(gid(info.endpoint_gid))

    def on_diag(msg: DiagnosticArray, info) -> None:
        publisher = (info or {}).get('publisher_gid') or {}
        if gid(publisher.get('data', ())) not in ours:
            refresh_ours()
            if gid(publisher.get('data', ())) not in ours:
                return  # another graph on this domain
        for st in msg.status:
            status[st.name.split(': ')[-1]] = {kv.key: kv.value for kv in st.values}

    node.create_subscription(DrivingDecision, ns + RAW_DECISION, on_raw, 100)
    node.create_subscription(DrivingDecision, ns + DECISION, on_final, 100)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 100)

    deadline = time.monotonic() + 180
    while (pubs['camera'].get_subscription_count() == 0
           or node.count_publishers(ns + DECISION) == 0):
        if time.monotonic() > deadline or graph.poll() is not None:
            print(f'soak: the graph did not come up (exit {graph.poll()}); log {log}:\n'
                  + log.read_text(errors='replace')[-3000:])
            return 2
        rclpy.spin_once(node, timeout_sec=0.05)
    start_wait = time.monotonic()
    while got['final'] == 0 and time.monotonic() - start_wait < 30:
        rclpy.spin_once(node, timeout_sec=0.05)  # decision_node's control rate: it is up

    print(f'soak: graph pid {graph.pid} (ROS_DOMAIN_ID {os.environ["ROS_DOMAIN_ID"]}, '
          f'namespace {ns}), {args.rate:g} Hz camera + radar + odometry for {args.minutes:g} '
          f'min; faults: {args.broken:.1%} broken, a dropout every {args.dropout_every:g} s, '
          f'a clock jump every {args.jump_every:g} s; RSS every {args.sample:g} s; log {log}',
          flush=True)
    samples: list[tuple[float, int]] = []
    period = 1.0 / args.rate
    start = time.monotonic()
    last['raw'] = last['final'] = start
    first_raw_startup = None
    camera_since = start  # the camera has been sent continuously since then
    next_sample = start
    next_print = start
    sent = 0
    died = None
    while True:
        target = start + sent * period
        if target - start >= duration:
            break
        while time.monotonic() < target:
            rclpy.spin_once(node, timeout_sec=max(0.0, target - time.monotonic()))
        now = time.monotonic()
        t = now - start
        if graph.poll() is not None:
            died = f'graph exited with {graph.returncode} at t={t:.1f} s'
            break
        if first_raw_startup is None and 'raw' in first:
            first_raw_startup = first['raw'] - launched
            print(f'  start-up: graph process start -> decision_node output '
                  f'{first.get("final", math.nan) - launched:.2f} s, -> first model decision '
                  f'{first_raw_startup:.2f} s (sensors sent from {start - launched:.2f} s)',
                  flush=True)
        if now >= next_sample:
            samples.append((t, tree_rss(graph.pid)))
            next_sample += args.sample
        if now >= next_print:
            next_print += 60.0
            broken = sum(faults.counts[f'{s} broken'] for s in SENSORS)
            print(f'  t={t:7.1f} s  RSS {samples[-1][1] / MIB:7.1f} MiB  raw {got["raw"]}  '
                  f'final {got["final"]}  broken {broken}  '
                  f'dropouts {faults.counts["dropouts"]}  jumps '
                  f'{faults.counts["jumps_back"] + faults.counts["jumps_forward"]}  '
                  f'stalls {len(stalls)}', flush=True)
        if now - last['final'] > args.stall:
            stalls.append(f'no final decision for {now - last["final"]:.1f} s at t={t:.1f} s')
            last['final'] = now
        if now - camera_since > args.stall + 1 and now - last['raw'] > args.stall:
            stalls.append(f'no raw decision for {now - last["raw"]:.1f} s at t={t:.1f} s '
                          '(camera sent)')
            last['raw'] = now
        faults.events(t)
        published = set()
        for sensor, msg in faults.messages(sent):
            pubs[sensor].publish(msg)
            published.add(sensor)
        if 'camera' not in published:
            camera_since = now
        sent += 1
    end = time.monotonic() + 2.0
    while time.monotonic() < end and died is None:
        rclpy.spin_once(node, timeout_sec=0.05)
    if died is None:
        samples.append((time.monotonic() - start, tree_rss(graph.pid)))
    node.destroy_node()
    rclpy.try_shutdown()
    if graph.poll() is None:  # a clean stop is part of the check
        graph.send_signal(signal.SIGINT)
        try:
            graph.wait(timeout=30)
        except subprocess.TimeoutExpired:
            died = died or 'graph did not stop within 30 s of SIGINT'
    crashes = ([died] if died else []) + crash_lines(log)

    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples], np.float64) / MIB
    growth = math.nan
    result: dict = {'minutes': float(t[-1] / 60) if len(t) else 0.0}
    if len(t) >= 3:
        first_w, last_w = _windows(t, args.window_minutes * 60, args.warmup_minutes * 60)
        if first_w.any() and last_w.any():
            a, b = float(np.median(rss[first_w])), float(np.median(rss[last_w]))
            growth = (b - a) / a * 100
            result.update(rss_first_window_mib=a, rss_last_window_mib=b,
                          first_window_s=[float(t[first_w][0]), float(t[first_w][-1])],
                          last_window_s=[float(t[last_w][0]), float(t[last_w][-1])])
        result.update(rss_start_mib=float(rss[0]), rss_end_mib=float(rss[-1]),
                      rss_max_mib=float(rss.max()))
    ok = not crashes and not stalls and growth < args.target
    result.update(startup_s={k: v - launched for k, v in first.items()},
                  sensors_from_s=start - launched, growth_pct=growth, target_pct=args.target,
                  crashes=crashes, stalls=stalls,
                  frames=sent, sent=faults.counts, received=got, diagnostics=status,
                  exit_code=graph.returncode, passed=ok)

    print(f'soak: {result["minutes"]:.1f} min, {sent} ticks at {args.rate:g} Hz; graph exit '
          f'code {graph.returncode} after SIGINT')
    print('  sent: ' + ', '.join(f'{k} {v}' for k, v in faults.counts.items()))
    print(f'  crashes: {len(crashes)}' + ''.join(f'\n    {c}' for c in crashes[:10]))
    print(f'  stalls: {len(stalls)}' + ''.join(f'\n    {s}' for s in stalls[:10]))
    if 'rss_first_window_mib' in result:
        print(f'  RSS: start {result["rss_start_mib"]:.1f} MiB, median of '
              f'{result["first_window_s"][0]:.0f}-{result["first_window_s"][1]:.0f} s '
              f'{result["rss_first_window_mib"]:.1f} MiB, median of '
              f'{result["last_window_s"][0]:.0f}-{result["last_window_s"][1]:.0f} s '
              f'{result["rss_last_window_mib"]:.1f} MiB, max {result["rss_max_mib"]:.1f} MiB')
    print(f'  RSS growth: {growth:+.2f} % (target < {args.target:g} %)')
    print(f'  decisions received: raw {got["raw"]}, final {got["final"]} '
          f'({got["final_degraded"]} degraded)')
    for name, values in sorted(status.items()):
        keys = [k for k in values if not k.endswith(('_ms', '_hz')) and k != 'device']
        print(f'  {name}: ' + ', '.join(f'{k} {values[k]}' for k in keys))
    print(f'  result: {"PASS" if ok else "FAIL"}')
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return 0 if ok else 1


if __name__ == '__main__':
    raise SystemExit(main())
