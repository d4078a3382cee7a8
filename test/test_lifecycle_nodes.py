"""Managed nodes over real DDS: lifecycle services, start-up state, rates.

- unconfigured and inactive nodes publish no decision; active ones do; deactivate stops them,
  cleanup frees the model, configure + activate again resumes;
- before the first fusion output decision_node reports 'not ready' and publishes its fallback
  at `fallback_rate`, not at the watchdog rate;
- with the nuScenes preset's 13 Hz radar, radar_timeout follows the preset's rate: no stale
  radar, no degraded decision at the nominal rate.
"""

import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
pytest.importorskip(
    'mm_fusion_msgs.msg', reason='the mm_fusion_msgs interface package is not built'
)

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from mm_fusion_ros.actions import Action  # noqa: E402
from mm_fusion_ros.decision import Decision, DecisionSource  # noqa: E402
from mm_fusion_ros.graph import (  # noqa: E402
    CAMERA_IMAGE,
    DECISION,
    EGO_ODOMETRY,
    RADAR_POINTS,
    RAW_DECISION,
)
from mm_fusion_ros.ros.messages import DrivingDecision, decision_to_msg  # noqa: E402
from mm_fusion_ros.ros.runner import running_graph  # noqa: E402
from mm_fusion_ros.sensors.pointcloud import create_cloud  # noqa: E402
from mm_fusion_ros.sensors.radar_presets import load_preset  # noqa: E402
from test.fuzz_nodes import random_checkpoint  # noqa: E402
from test.ros_graph_utils import odometry, radar_cloud, rgb_image, spin_until  # noqa: E402


class Lifecycle:
    """Clients of one node's lifecycle services (what `ros2 lifecycle set/get` call)."""

    def __init__(self, probe, executor, node: str) -> None:
        self.executor = executor
        self.change = probe.create_client(ChangeState, f'/{node}/change_state')
        self.get = probe.create_client(GetState, f'/{node}/get_state')
        assert spin_until(executor, lambda: self.change.service_is_ready()
                          and self.get.service_is_ready(), 10.0), node

    def _call(self, client, request):
        future = client.call_async(request)
        assert spin_until(self.executor, future.done, 60.0)
        return future.result()

    def set(self, transition: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition
        return self._call(self.change, request).success

    def state(self) -> int:
        return self._call(self.get, GetState.Request()).current_state.id


def _wait(executor, seconds: float) -> None:
    spin_until(executor, lambda: False, seconds)


def test_every_transition_over_the_lifecycle_services(tmp_path):
    ckpt = random_checkpoint(tmp_path / 'random.pt')
    overrides = {'fusion_node': {'checkpoint': ckpt, 'device': 'cpu'}}
    with running_graph('fusion', overrides=overrides, autostart=False) as (executor, nodes):
        probe = rclpy.create_node('lifecycle_probe', context=nodes['fusion_node'].context)
        executor.add_node(probe)
        image_pub = probe.create_publisher(Image, CAMERA_IMAGE, qos_profile_sensor_data)
        radar_pub = probe.create_publisher(PointCloud2, RADAR_POINTS, qos_profile_sensor_data)
        odom_pub = probe.create_publisher(Odometry, EGO_ODOMETRY, qos_profile_sensor_data)
        raw, final = [], []
        probe.create_subscription(DrivingDecision, RAW_DECISION, raw.append, 50)
        probe.create_subscription(DrivingDecision, DECISION, final.append, 50)

        def tick():
            stamp = probe.get_clock().now().to_msg()
            radar_pub.publish(radar_cloud(stamp))
            odom_pub.publish(odometry(stamp))
            image_pub.publish(rgb_image(stamp))

        probe.create_timer(0.05, tick)
        managed = {n: Lifecycle(probe, executor, n) for n in ('fusion_node', 'decision_node')}

        def all_set(transition: int) -> None:
            for name, lc in managed.items():
                assert lc.set(transition), (name, transition)

        def published_during(seconds: float) -> tuple[int, int]:
            _wait(executor, 0.2)  # what was in flight
            r, f = len(raw), len(final)
            _wait(executor, seconds)
            return len(raw) - r, len(final) - f

        for lc in managed.values():
            assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert nodes['fusion_node']._predictor is None  # nothing loaded before configure
        assert published_during(0.5) == (0, 0)

        all_set(Transition.TRANSITION_CONFIGURE)
        for lc in managed.values():
            assert lc.state() == State.PRIMARY_STATE_INACTIVE
        assert nodes['fusion_node']._predictor is not None  # loaded and warmed up
        assert published_during(0.5) == (0, 0)

        all_set(Transition.TRANSITION_ACTIVATE)
        for lc in managed.values():
            assert lc.state() == State.PRIMARY_STATE_ACTIVE
        assert spin_until(executor, lambda: len(raw) >= 5 and len(final) >= 5, 20.0)

        all_set(Transition.TRANSITION_DEACTIVATE)
        assert published_during(0.6) == (0, 0)

        all_set(Transition.TRANSITION_CLEANUP)
        for lc in managed.values():
            assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert nodes['fusion_node']._predictor is None  # freed
        assert published_during(0.3) == (0, 0)

        all_set(Transition.TRANSITION_CONFIGURE)
        all_set(Transition.TRANSITION_ACTIVATE)
        before = len(raw)
        assert spin_until(executor, lambda: len(raw) >= before + 5, 20.0)

        for lc in managed.values():
            assert lc.set(Transition.TRANSITION_ACTIVE_SHUTDOWN)
            assert lc.state() == State.PRIMARY_STATE_FINALIZED
        executor.remove_node(probe)
        probe.destroy_node()


def test_decision_node_not_ready_then_fallback_at_its_rate():
    with running_graph('fusion', nodes=['decision_node']) as (executor, nodes):
        node = nodes['decision_node']
        probe = rclpy.create_node('rate_probe', context=node.context)
        executor.add_node(probe)
        finals, diags = [], []
        probe.create_subscription(DrivingDecision, DECISION, finals.append, 100)
        probe.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 10)
        assert spin_until(executor, lambda: len(finals) > 0, 10.0)
        start = time.monotonic()
        first = len(finals)
        _wait(executor, 2.0)
        rate = (len(finals) - first) / (time.monotonic() - start)
        assert 0.5 * node._params.fallback_rate <= rate <= 1.5 * node._params.fallback_rate, rate
        assert all(m.degraded and m.action == Action.STOP and m.source == DecisionSource.FALLBACK
                   for m in finals)
        assert spin_until(executor, lambda: any(
            s.message.startswith('not ready') for d in diags for s in d.status
            if s.name.endswith('decision_node')), 5.0)
        executor.remove_node(probe)
        probe.destroy_node()


def _nuscenes_cloud(stamp):
    preset = load_preset('nuscenes')
    fields = preset.layout_fields()
    points = np.zeros(2, dtype=[(f.name, np.float32) for f in fields])
    points['x'], points['y'], points['rcs'] = (40.0, 20.0), (0.0, 3.0), (10.0, 5.0)
    header = Header(frame_id='radar')
    header.stamp = stamp
    return create_cloud(header, fields, points)


def test_radar_timeout_follows_the_presets_rate():
    settings = {'radar_preset': 'nuscenes'}
    with running_graph('fusion', nodes=['decision_node'], settings=settings) as (executor, nodes):
        node = nodes['decision_node']
        assert node._logic.safety.config.radar_timeout_s == pytest.approx(1.5 / 13)
        probe = rclpy.create_node('nuscenes_probe', context=node.context)
        executor.add_node(probe)
        raw_pub = probe.create_publisher(DrivingDecision, RAW_DECISION, 10)
        radar_pub = probe.create_publisher(PointCloud2, RADAR_POINTS, qos_profile_sensor_data)
        finals = []
        probe.create_subscription(DrivingDecision, DECISION, finals.append, 100)
        assert spin_until(executor, lambda: raw_pub.get_subscription_count() > 0
                          and radar_pub.get_subscription_count() > 0, 10.0)

        def radar():
            radar_pub.publish(_nuscenes_cloud(probe.get_clock().now().to_msg()))

        def model():
            now = probe.get_clock().now()
            raw_pub.publish(decision_to_msg(Decision(
                stamp_ns=now.nanoseconds, action=Action.CRUISE, target_acceleration=0.5,
                confidence=0.9, source=DecisionSource.MODEL)))

        probe.create_timer(1 / 13, radar)
        probe.create_timer(0.05, model)
        assert spin_until(executor, lambda: len(finals) >= 5, 10.0)
        settled = len(finals)
        _wait(executor, 2.0)
        later = finals[settled:]
        assert len(later) >= 20
        stale = [m.degraded_reason for m in later if m.degraded]
        assert not stale, stale[:3]
        executor.remove_node(probe)
        probe.destroy_node()
