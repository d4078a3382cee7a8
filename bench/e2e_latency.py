"""End-to-end latency of the real node graph over DDS: camera publish -> final decision.

Starts `mm-fusion up fusion` (fusion_node + decision_node, one process) as a subprocess, then
this process publishes 20 Hz camera (rgb8, sim frames) + 20 Hz radar for --seconds and records
the raw and final decisions. Prints publish->decision p50/p99, the fusion node's own
arrival->publish latency and model time (from its diagnostics), drops, and the node overhead
relative to the model forward time.

    python bench/e2e_latency.py --seconds 60 [--executor single|events|multi] [--checkpoint X]
"""

import argparse
import os
import signal
import subprocess
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Header

from mm_fusion_ros.dds_env import apply_local_dds_env, random_domain_id
from mm_fusion_ros.graph import CAMERA_IMAGE, DECISION, EGO_ODOMETRY, RADAR_POINTS, RAW_DECISION
from mm_fusion_ros.ros.images import rgb_image_msg
from mm_fusion_ros.ros.messages import DrivingDecision
from mm_fusion_ros.ros.time import stamp_to_ns
from mm_fusion_ros.sensors.pointcloud import create_cloud
from mm_fusion_ros.sensors.radar_presets import load_preset
from mm_fusion_ros.sim.scenarios import scenario_mix
from mm_fusion_ros.sim.simulator import Simulator


def sim_frames(count: int):
    """Pre-rendered (rgb, radar, ego speed) so the publisher costs nothing during the run."""
    frames = []
    for config in scenario_mix(4, seed=910_000, duration=count / 20 / 4 + 1):
        sim = Simulator(config)
        frame = sim.reset()
        while not frame.done and len(frames) < count:
            frames.append((frame.rgb, frame.radar, float(frame.ego.speed)))
            frame = sim.step(frame.label)
    return frames


class SensorPublisher:
    """Publishes one pre-rendered frame as odometry, radar and camera messages, now-stamped."""

    def __init__(self, node) -> None:
        self.fields = load_preset('sim').layout_fields()
        self.image = node.create_publisher(Image, CAMERA_IMAGE, qos_profile_sensor_data)
        self.radar = node.create_publisher(PointCloud2, RADAR_POINTS, qos_profile_sensor_data)
        self.odom = node.create_publisher(Odometry, EGO_ODOMETRY, qos_profile_sensor_data)

    def publish(self, frame) -> int:
        """Publish (rgb, radar, speed); returns the stamp [ns]."""
        rgb, radar, speed = frame
        stamp_ns = time.time_ns()
        header = Header(frame_id='radar')
        header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        odom = Odometry(header=Header(stamp=header.stamp, frame_id='odom'),
                        child_frame_id='base_link')
        odom.twist.twist.linear.x = speed
        self.odom.publish(odom)
        pts = radar[:, :5] if radar is not None else np.zeros((0, 5), np.float32)
        self.radar.publish(create_cloud(header, self.fields, pts))
        self.image.publish(rgb_image_msg(rgb, header.stamp))
        return stamp_ns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--seconds', type=float, default=60.0)
    parser.add_argument('--rate', type=float, default=20.0)
    parser.add_argument('--executor', default='events', choices=('single', 'events', 'multi'))
    parser.add_argument('--checkpoint', default=None)
    args = parser.parse_args()

    env = apply_local_dds_env(dict(os.environ), override=True)
    env.setdefault('ROS_DOMAIN_ID', str(random_domain_id()))
    os.environ.update(env)
    cmd = [
        sys.executable,
        '-m',
        'mm_fusion_ros.cli',
        'up',
        'fusion',
        '--device',
        'cpu',
        '--executor',
        args.executor,
    ]
    if args.checkpoint:
        cmd += ['--checkpoint', args.checkpoint]
    graph = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    n = int(args.seconds * args.rate)
    frames = sim_frames(min(n, 600))
    rclpy.init()
    node = rclpy.create_node('e2e_latency_bench')
    sensors = SensorPublisher(node)
    raw_rx, final_rx, diags = {}, {}, []
    node.create_subscription(
        DrivingDecision,
        RAW_DECISION,
        lambda m: raw_rx.setdefault(stamp_to_ns(m.header.stamp), time.time_ns()),
        100,
    )
    node.create_subscription(
        DrivingDecision,
        DECISION,
        lambda m: final_rx.setdefault(stamp_to_ns(m.header.stamp), time.time_ns()),
        100,
    )
    node.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 100)

    deadline = time.monotonic() + 60
    while (
        sensors.image.get_subscription_count() == 0 or node.count_publishers(DECISION) == 0
    ) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)  # let the graph finish discovery

    sent = []
    period = 1.0 / args.rate
    start = time.monotonic()
    for i in range(n):
        target = start + i * period
        while time.monotonic() < target:
            rclpy.spin_once(node, timeout_sec=max(0.0, target - time.monotonic()))
        sent.append(sensors.publish(frames[i % len(frames)]))
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)

    graph.send_signal(signal.SIGINT)
    try:
        graph.wait(timeout=10)
    except subprocess.TimeoutExpired:
        graph.kill()

    raw = np.array([(raw_rx[s] - s) / 1e6 for s in sent if s in raw_rx])
    final = np.array([(final_rx[s] - s) / 1e6 for s in sent if s in final_rx])
    status = {}
    for d in diags:
        for st in d.status:
            if st.name == 'mm_fusion_ros: fusion_node':
                status = {kv.key: kv.value for kv in st.values}
    print(
        f'graph: fusion_node + decision_node, executor={args.executor}, '
        f'{len(sent)} frames at {args.rate:.0f} Hz over {args.seconds:.0f} s'
    )
    for name, lat in (('publish -> raw decision', raw), ('publish -> final decision', final)):
        if lat.size:
            print(
                f'  {name:28s} p50 {np.percentile(lat, 50):6.2f} ms  '
                f'p99 {np.percentile(lat, 99):6.2f} ms  ({lat.size}/{len(sent)} frames)'
            )
    if status:
        lat50, lat99 = float(status['latency_p50_ms']), float(status['latency_p99_ms'])
        fwd50, fwd99 = float(status['forward_p50_ms']), float(status['forward_p99_ms'])
        print(f'  fusion_node arrival->publish p50 {lat50:.2f} ms  p99 {lat99:.2f} ms')
        print(f'  model predict()               p50 {fwd50:.2f} ms  p99 {fwd99:.2f} ms')
        print(f"  sync wait (arrival->inference) p50 {float(status['sync_wait_p50_ms']):.2f} ms  "
              f"p99 {float(status['sync_wait_p99_ms']):.2f} ms  (of which worker pickup p50 "
              f"{float(status['pickup_p50_ms']):.2f} ms); publish p50 "
              f"{float(status['publish_p50_ms']):.3f} ms")
        print(f'  node overhead / model time (p50): {(lat50 - fwd50) / fwd50:.2%}')
        print(
            f'  drops {status["dropped"]}, decisions {status["decisions"]}, '
            f'camera frames {status["camera_frames"]}, degraded {status["degraded"]}'
        )
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
