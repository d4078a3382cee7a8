"""End-to-end latency of the node graph over DDS, against a zero-compute floor of the same graph.

Two graph processes run side by side, each in its own namespace, with the same executor, QoS
and DDS settings: `real` is the package's fusion graph (fusion_node + decision_node, the public
node classes through `mm_fusion_ros.ros.runner.running_graph`); `floor` has the same 3 hops
(camera -> fusion -> decision -> this process) with nodes that subscribe to the same topics
with the same QoS and forward a decision without computing anything. This process publishes
odometry, radar and camera (pre-built messages of pre-rendered sim frames, stamped at capture)
to one graph at a time, switching every `--block` s, so both see the same machine load.

Latency runs from just before the camera message is published (odometry and radar, published
first with the same capture stamp, are not on the clock: that was the bench's own cost) to the
decision's arrival here. Printed per graph: publish -> raw decision and -> final decision p50 /
p99; for the real graph the model's predict() time per frame (the decision's
`inference_latency`), and the graph overhead beyond the model, final latency - predict() per
frame, as a ratio to the floor's final latency (p50 and p99).

`--sustained`: then the camera (with radar and odometry) at `--sustained-rate` Hz (100) for
`--sustained-seconds` (60) into the real graph alone; prints drops: the fusion node's queue
drops and the frames that reached it, and the decisions that came back.

`--py-spy PATH`: sample the real graph's process with py-spy during its measured blocks (all
threads, active samples only: a thread waiting in a wait set or on a condition is not counted)
and print where its CPU time goes, per thread and by function.

    python bench/e2e_latency.py [--seconds 60] [--rate 20] [--executor events] [--sustained]
"""

import argparse
import collections
import copy
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if 'MM_E2E_BASELINE' not in os.environ:  # a baseline graph imports its own tree's package
    sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / 'bench'))

NAMESPACES = {'real': 'e2e_real', 'floor': 'e2e_floor', 'variant': 'e2e_variant',
              'baseline': 'e2e_baseline'}
DIAG_NAME = 'mm_fusion_ros: fusion_node'
DECISION_DIAG_NAME = 'mm_fusion_ros: decision_node'


# -- graph processes --------------------------------------------------------------------------
def serve(kind: str, namespace: str, executor: str, checkpoint: str | None,
          threads: int | None = None) -> int:
    """Run one graph in this process until SIGINT; prints READY once it takes traffic."""
    import rclpy
    from rclpy.context import Context

    from mm_fusion_ros.ros.runner import make_executor, running_graph, spin

    if kind in ('real', 'variant', 'baseline'):
        params: dict = {'device': 'cpu'}
        if checkpoint:
            params['checkpoint'] = checkpoint
        if threads:
            params['num_threads'] = threads
        with running_graph('fusion', overrides={'fusion_node': params}, namespace=namespace,
                           executor=executor) as (exe, nodes):
            print('READY', flush=True)
            try:
                spin(exe, next(iter(nodes.values())).context)
            except KeyboardInterrupt:
                pass
        return 0
    from mm_fusion_ros.dds_env import apply_local_dds_env

    apply_local_dds_env(os.environ)
    context = Context()
    rclpy.init(context=context)
    exe = make_executor(executor, context)
    nodes = floor_nodes(context, namespace)
    for node in nodes:
        exe.add_node(node)
    print('READY', flush=True)
    try:
        spin(exe, context)
    except KeyboardInterrupt:
        pass
    finally:
        exe.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
    return 0


def floor_nodes(context, namespace: str) -> list:
    """fusion_node and decision_node stand-ins: the specs' names, topics and QoS, no compute."""
    from nav_msgs.msg import Odometry
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, PointCloud2

    from mm_fusion_ros.graph import DECISION_NODE, FUSION_NODE, ros_args
    from mm_fusion_ros.ros.messages import DrivingDecision

    def make(spec):
        return Node(spec.name, context=context, cli_args=ros_args(spec, [], namespace),
                    use_global_arguments=False)

    fusion, decision = make(FUSION_NODE), make(DECISION_NODE)
    raw_pub = fusion.create_publisher(DrivingDecision, '~/output/decision', 10)
    odometry_qos = copy.copy(qos_profile_sensor_data)
    odometry_qos.depth = 50

    def on_image(msg) -> None:
        raw_pub.publish(DrivingDecision(header=msg.header))

    fusion.create_subscription(PointCloud2, '~/input/radar', lambda m: None,
                               qos_profile_sensor_data)
    fusion.create_subscription(Odometry, '~/input/odom', lambda m: None, odometry_qos)
    fusion.create_subscription(Image, '~/input/image', on_image, qos_profile_sensor_data)
    final_pub = decision.create_publisher(DrivingDecision, '~/output/decision', 10)
    decision.create_subscription(DrivingDecision, '~/input/decision', final_pub.publish, 10)
    decision.create_subscription(PointCloud2, '~/input/radar', lambda m: None,
                                 qos_profile_sensor_data)
    return [fusion, decision]


# -- the sensor side ------------------------------------------------------------------------
def sim_frames(count: int) -> list:
    """Pre-rendered (rgb, radar, ego speed) so the publisher costs nothing during the run."""
    from mm_fusion_ros.sim.scenarios import scenario_mix
    from mm_fusion_ros.sim.simulator import Simulator

    frames = []
    for config in scenario_mix(4, seed=910_000, duration=count / 20 / 4 + 1):
        sim = Simulator(config)
        frame = sim.reset()
        while not frame.done and len(frames) < count:
            frames.append((frame.rgb, frame.radar, float(frame.ego.speed)))
            frame = sim.step(frame.label)
    return frames


class SensorPublisher:
    """Publishes pre-built odometry, radar and camera messages of one namespace's graph."""

    def __init__(self, node, namespace: str, frames: list) -> None:
        from nav_msgs.msg import Odometry
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, PointCloud2
        from std_msgs.msg import Header

        from mm_fusion_ros.graph import CAMERA_IMAGE, EGO_ODOMETRY, RADAR_POINTS
        from mm_fusion_ros.ros.images import rgb_image_msg
        from mm_fusion_ros.sensors.pointcloud import create_cloud
        from mm_fusion_ros.sensors.radar_presets import load_preset

        ns = f'/{namespace}/'
        self.image = node.create_publisher(Image, ns + CAMERA_IMAGE, qos_profile_sensor_data)
        self.radar = node.create_publisher(PointCloud2, ns + RADAR_POINTS,
                                           qos_profile_sensor_data)
        self.odom = node.create_publisher(Odometry, ns + EGO_ODOMETRY, qos_profile_sensor_data)
        fields = load_preset('sim').layout_fields()
        self.messages = []
        for rgb, radar, speed in frames:
            header = Header(frame_id='radar')
            odom = Odometry(header=Header(frame_id='odom'), child_frame_id='base_link')
            odom.twist.twist.linear.x = speed
            pts = radar[:, :5] if radar is not None else np.zeros((0, 5), np.float32)
            self.messages.append((odom, create_cloud(header, fields, pts),
                                  rgb_image_msg(rgb, header.stamp)))

    def publish(self, i: int) -> tuple[int, int]:
        """Publish frame i now; returns (stamp [ns], camera publish time [ns])."""
        odom, cloud, image = self.messages[i % len(self.messages)]
        stamp_ns = time.time_ns()  # capture time: the stamp of all three messages
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        for msg in (odom, cloud, image):
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
        self.odom.publish(odom)
        self.radar.publish(cloud)
        published = time.time_ns()  # the clock starts here, with the camera frame
        self.image.publish(image)
        return stamp_ns, published


class Recorder:
    """Arrival times of raw and final decisions per namespace, by camera stamp."""

    def __init__(self, node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from mm_fusion_ros.graph import DECISION, RAW_DECISION
        from mm_fusion_ros.ros.messages import DrivingDecision
        from mm_fusion_ros.ros.time import stamp_to_ns

        self.raw: dict[str, dict[int, tuple[int, float]]] = {k: {} for k in NAMESPACES}
        self.final: dict[str, dict[int, int]] = {k: {} for k in NAMESPACES}
        self.status: dict[str, str] = {}
        self.decision_status: dict[str, str] = {}
        for kind, ns in NAMESPACES.items():
            def on_raw(m, kind=kind):
                self.raw[kind].setdefault(stamp_to_ns(m.header.stamp),
                                          (time.time_ns(), m.inference_latency))

            def on_final(m, kind=kind):
                self.final[kind].setdefault(stamp_to_ns(m.header.stamp), time.time_ns())

            node.create_subscription(DrivingDecision, f'/{ns}/{RAW_DECISION}', on_raw, 100)
            node.create_subscription(DrivingDecision, f'/{ns}/{DECISION}', on_final, 100)
        node.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics, 100)

    def on_diagnostics(self, msg) -> None:
        for st in msg.status:
            if st.name == DIAG_NAME:
                self.status = {kv.key: kv.value for kv in st.values}
            elif st.name == DECISION_DIAG_NAME:
                self.decision_status = {kv.key: kv.value for kv in st.values}


# -- running ----------------------------------------------------------------------------------
def start_graph(kind: str, args, env: dict[str, str], tree: Path | None = None
                ) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), '--serve', kind,
           '--executor', args.executor]
    cwd = ROOT
    if kind == 'baseline':
        from baseline import child_cwd, child_env

        env, cwd = child_env(tree, dict(env, MM_E2E_BASELINE='1')), child_cwd(tree)
    if args.checkpoint:
        cmd += ['--checkpoint', args.checkpoint]
    threads = args.variant_threads if kind == 'variant' else args.num_threads
    if threads:
        cmd += ['--num-threads', str(threads)]
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    return proc


def wait_ready(procs: dict[str, subprocess.Popen], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    for kind, proc in procs.items():
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.strip() == 'READY':
                break
            if proc.poll() is not None:
                raise RuntimeError(f'{kind} graph exited with {proc.returncode}')
        else:
            raise RuntimeError(f'{kind} graph not ready after {timeout:.0f} s')


def stop(procs: dict[str, subprocess.Popen]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs.values():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def pace(node, rclpy, sensors: SensorPublisher, rate: float, seconds: float,
         start_index: int = 0) -> list[tuple[int, int]]:
    """Publish at `rate` for `seconds`, spinning in between; returns (stamp, publish time)."""
    sent = []
    period = 1.0 / rate
    start = time.monotonic()
    for i in range(int(round(seconds * rate))):
        target = start + i * period
        while (now := time.monotonic()) < target:
            rclpy.spin_once(node, timeout_sec=target - now)
        sent.append(sensors.publish(start_index + i))
    return sent


def drain(node, rclpy, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.02)


def percentiles(values) -> str:
    v = np.asarray(values, float)
    if not v.size:
        return 'no samples'
    return f'p50 {np.percentile(v, 50):6.2f} ms  p99 {np.percentile(v, 99):6.2f} ms'


def latencies(sent, arrivals, key=lambda a: a) -> np.ndarray:
    return np.array([(key(arrivals[s]) - p) / 1e6 for s, p in sent if s in arrivals])


def py_spy_summary(path: Path, seconds: float, top: int = 14) -> list[str]:
    """Per thread: active samples as ms per second, and the functions they were in."""
    by_thread: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    incl: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    totals: collections.Counter = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(' ')
        if not stack:
            continue
        n = int(count)
        frames = stack.split(';')
        thread = frames[0]
        totals[thread] += n
        by_thread[thread][frames[-1]] += n
        for frame in set(frames[1:]):
            incl[thread][frame] += n
    rate = 200.0  # py-spy --rate
    out = []
    for thread, total in totals.most_common():
        out.append(f'  {thread}: active {1e3 * total / rate / seconds:.0f} ms per s '
                   f'({total} samples)')
        out.append('    self (where the samples were):')
        own = by_thread[thread].most_common(top)
        out += [f'      {100 * c / total:5.1f}%  {f}' for f, c in own]
        out.append('    inclusive (with what it calls):')
        out += [f'      {100 * c / total:5.1f}%  {f}' for f, c in incl[thread].most_common(top)
                if not f.startswith(('<module>', 'Thread.', 'main ', 'serve '))]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=60.0, help='measured seconds per graph')
    parser.add_argument('--rate', type=float, default=20.0, help='camera rate [Hz]')
    parser.add_argument('--block', type=float, default=10.0,
                        help='seconds of traffic to one graph before switching to the other')
    parser.add_argument('--executor', default='events', choices=('single', 'events', 'multi'))
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--no-floor', action='store_true', help='real graph only')
    parser.add_argument('--sustained', action='store_true',
                        help='then the real graph at --sustained-rate for --sustained-seconds')
    parser.add_argument('--sustained-rate', type=float, default=100.0)
    parser.add_argument('--sustained-seconds', type=float, default=60.0)
    parser.add_argument('--py-spy', default=None, metavar='PATH',
                        help='py-spy executable: profile the real graph while it is measured')
    parser.add_argument('--num-threads', type=int, default=None,
                        help="fusion_node's num_threads (default: its params file)")
    parser.add_argument('--variant-threads', type=int, default=None, metavar='N',
                        help='also run a third graph, the real one with num_threads N')
    parser.add_argument('--baseline', default=None, metavar='REV',
                        help='also run the real graph of the package at this git revision')
    parser.add_argument('--serve', choices=tuple(NAMESPACES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, NAMESPACES[args.serve], args.executor, args.checkpoint,
                     args.num_threads)
    if (args.variant_threads or args.baseline) and args.sustained:
        parser.error("--sustained reads the real graph's diagnostics: run it without "
                     '--variant-threads and --baseline')

    import rclpy

    from mm_fusion_ros.dds_env import apply_local_dds_env, random_domain_id

    env = apply_local_dds_env(dict(os.environ), override=True)
    env.setdefault('ROS_DOMAIN_ID', str(random_domain_id()))
    os.environ.update(env)
    kinds = ['real'] if args.no_floor else ['real', 'floor']
    if args.variant_threads:
        kinds.append('variant')
    tree = None
    if args.baseline:
        from baseline import extract

        kinds.append('baseline')
        tree = extract(args.baseline, Path(tempfile.mkdtemp(prefix='e2e_baseline_')))
    procs = {kind: start_graph(kind, args, env, tree) for kind in kinds}
    try:
        frames = sim_frames(600)
        rclpy.init()
        node = rclpy.create_node('e2e_latency_bench')
        sensors = {kind: SensorPublisher(node, NAMESPACES[kind], frames) for kind in kinds}
        recorder = Recorder(node)
        wait_ready(procs)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
                s.image.get_subscription_count() and s.radar.get_subscription_count()
                for s in sensors.values()):
            rclpy.spin_once(node, timeout_sec=0.05)
        drain(node, rclpy, 1.0)  # let discovery of the decision topics finish
        for kind in kinds:  # warm-up traffic, not measured
            pace(node, rclpy, sensors[kind], args.rate, 2.0)
        drain(node, rclpy, 0.5)
        sent: dict[str, list] = {kind: [] for kind in kinds}
        profile = None
        remaining = {kind: args.seconds for kind in kinds}
        while any(r > 1e-9 for r in remaining.values()):
            for kind in kinds:
                block = min(args.block, remaining[kind])
                if block <= 0:
                    continue
                if args.py_spy and kind == 'real':
                    profile = profile or Path(tempfile.mkdtemp(prefix='e2e_pyspy_'))
                    spy = subprocess.Popen(
                        [args.py_spy, 'record', '--pid', str(procs['real'].pid), '--threads',
                         '--nonblocking', '--rate', '200', '--format', 'raw',
                         '--duration', str(int(block)), '--output',
                         str(profile / f'block{len(sent[kind])}.txt')],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                sent[kind] += pace(node, rclpy, sensors[kind], args.rate, block,
                                   len(sent[kind]))
                drain(node, rclpy, 0.3)
                remaining[kind] -= block
                if args.py_spy and kind == 'real':
                    spy.wait(timeout=30)
        drain(node, rclpy, 1.5)
        status = dict(recorder.status)

        print(f'graphs: fusion_node + decision_node (real) and a zero-compute copy (floor), '
              f'executor={args.executor}, {args.rate:.0f} Hz, {args.seconds:.0f} s each in '
              f'{args.block:.0f} s blocks; {os.cpu_count()} CPUs, load average '
              f'{os.getloadavg()[0]:.1f}')
        results = {}
        for kind in kinds:
            raw = latencies(sent[kind], recorder.raw[kind], key=lambda a: a[0])
            final = latencies(sent[kind], recorder.final[kind])
            results[kind] = final
            print(f'  {kind:8s} publish -> raw decision    {percentiles(raw)}  '
                  f'({raw.size}/{len(sent[kind])} frames)')
            print(f'  {kind:8s} publish -> final decision  {percentiles(final)}  '
                  f'({final.size}/{len(sent[kind])} frames)')
        floor = results.get('floor')
        for kind in [k for k in kinds if k != 'floor']:
            label = {'real': 'real', 'variant': f'real, num_threads {args.variant_threads}',
                     'baseline': f'baseline {args.baseline}'}[kind]
            raws = recorder.raw[kind]
            model = np.array([raws[s][1] * 1e3 for s, _ in sent[kind] if s in raws])
            beyond = np.array([(recorder.final[kind][s] - p) / 1e6 - raws[s][1] * 1e3
                               for s, p in sent[kind] if s in recorder.final[kind] and s in raws])
            print(f'  {label}: model predict() per frame {percentiles(model)}')
            print(f'  {label}: final latency - predict() per frame {percentiles(beyond)}')
            if floor is not None and floor.size and beyond.size:
                r50 = np.percentile(beyond, 50) / np.percentile(floor, 50)
                r99 = np.percentile(beyond, 99) / np.percentile(floor, 99)
                print(f'  {label}: graph overhead beyond the model / floor: p50 {r50:.2f}x  '
                      f'p99 {r99:.2f}x (1.00x: the nodes add nothing but their model time to '
                      'a bare 3-hop graph)')
        if status and len(kinds) <= 2:  # the real graphs' diagnostics look alike
            print(f"  fusion_node: arrival->publish p50 {float(status['latency_p50_ms']):.2f} ms"
                  f"  p99 {float(status['latency_p99_ms']):.2f} ms; sync wait p50 "
                  f"{float(status['sync_wait_p50_ms']):.2f} ms (worker pickup p50 "
                  f"{float(status['pickup_p50_ms']):.2f} ms); publish p50 "
                  f"{float(status['publish_p50_ms']):.3f} ms; drops {status['dropped']}, "
                  f"camera frames {status['camera_frames']}, degraded {status['degraded']}")
            radar = recorder.decision_status
            if radar.get('radar_step_p50_ms', 'nan') != 'nan':
                print(f"  decision_node: radar step (tracker + TTC) p50 "
                      f"{float(radar['radar_step_p50_ms']):.3f} ms  p99 "
                      f"{float(radar['radar_step_p99_ms']):.3f} ms per radar frame; tracks "
                      f"{radar['tracks']} alive, {radar['confirmed_tracks']} confirmed")
        if profile is not None:
            merged = profile / 'all.txt'
            merged.write_text('\n'.join(p.read_text() for p in sorted(profile.glob('block*'))))
            print(f'py-spy, real graph process during its measured blocks ({merged}):')
            print('\n'.join(py_spy_summary(merged, args.seconds)))

        if args.sustained:
            before = dict(recorder.status)
            drain(node, rclpy, 1.5)
            spy_out = None
            if args.py_spy:
                spy_out = Path(tempfile.mkdtemp(prefix='e2e_pyspy_')) / 'sustained.txt'
                spy = subprocess.Popen(
                    [args.py_spy, 'record', '--pid', str(procs['real'].pid), '--threads',
                     '--nonblocking', '--rate', '200', '--format', 'raw', '--duration',
                     str(int(args.sustained_seconds)), '--output', str(spy_out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sent_s = pace(node, rclpy, sensors['real'], args.sustained_rate,
                          args.sustained_seconds, 10_000)
            if spy_out is not None:
                spy.wait(timeout=30)
            drain(node, rclpy, 2.5)
            after = dict(recorder.status)
            final = latencies(sent_s, recorder.final['real'])
            raw_n = sum(1 for s, _ in sent_s if s in recorder.raw['real'])

            def delta(key: str) -> int:
                return int(after.get(key, 0)) - int(before.get(key, 0))

            print(f'sustained: camera + radar + odometry at {args.sustained_rate:.0f} Hz for '
                  f'{args.sustained_seconds:.0f} s into the real graph: {len(sent_s)} frames sent')
            print(f'  reached fusion_node {delta("camera_frames")}, dropped by its queue '
                  f'{delta("dropped")}, raw decisions back {raw_n}, final decisions back '
                  f'{final.size}: drops {len(sent_s) - final.size} (target 0)')
            print(f'  publish -> final decision {percentiles(final)}')
            if spy_out is not None and spy_out.is_file():
                print(f'py-spy, real graph process during the sustained run ({spy_out}):')
                print('\n'.join(py_spy_summary(spy_out, args.sustained_seconds)))
        node.destroy_node()
        rclpy.try_shutdown()
    finally:
        stop(procs)
        if tree is not None:
            shutil.rmtree(tree, ignore_errors=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
