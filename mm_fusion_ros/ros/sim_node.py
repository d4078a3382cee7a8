"""sim_node: the scenario simulator on ROS topics, in closed loop with the decision node.

Publishes camera (Image + CameraInfo), radar (PointCloud2), the expert's ground-truth decision
and ego odometry, and drives the ego with the final DrivingDecision it receives. Two pacings:
- real time: a 20 Hz wall timer; each step uses the latest decision;
- lockstep (with /clock): each step waits for the decision of the frame just published (or a
  timeout), so runs are as fast as the graph allows and repeatable; nodes use sim time.
"""

from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.params.nodes import SimNodeParams
from mm_fusion_ros.ros.images import rgb_image_msg
from mm_fusion_ros.ros.messages import DrivingDecision, decision_to_msg, msg_to_decision
from mm_fusion_ros.ros.params import declare_parameters
from mm_fusion_ros.ros.tf_static import broadcast, sensor_transforms
from mm_fusion_ros.ros.time import stamp_from_ns
from mm_fusion_ros.sensors.pointcloud import create_cloud
from mm_fusion_ros.sensors.radar_presets import load_preset
from mm_fusion_ros.sim.camera import CameraConfig, CameraModel
from mm_fusion_ros.sim.conditions import CONDITIONS, Condition
from mm_fusion_ros.sim.metrics import EpisodeMetrics
from mm_fusion_ros.sim.radar import RadarConfig
from mm_fusion_ros.sim.scenarios import ScenarioConfig, ScenarioType, scenario_mix
from mm_fusion_ros.sim.simulator import SimFrame, Simulator

NS = 1_000_000_000
EPISODE_GAP_NS = 3 * NS  # > the radar history window, so episodes never share history


@dataclass
class EpisodeRecord:
    """What the sim saw of one closed-loop episode."""

    config: ScenarioConfig
    metrics: EpisodeMetrics | None = None
    expert_actions: list[int] = field(default_factory=list)
    decided_actions: list[int] = field(default_factory=list)
    decision_sources: list[int] = field(default_factory=list)
    timeouts: int = 0


def episode_plan(params: SimNodeParams) -> list[ScenarioConfig]:
    conds = (CONDITIONS if params.conditions == ['all']
             else tuple(Condition(c) for c in params.conditions))
    count = params.episodes or 1000000
    if params.scenarios == ['mix']:
        return scenario_mix(count, seed=params.seed, duration=params.duration, conditions=conds)
    types = [ScenarioType(s) for s in params.scenarios]
    return [
        ScenarioConfig(
            scenario=types[i % len(types)],
            condition=conds[i % len(conds)],
            seed=params.seed + i,
            duration=params.duration,
        )
        for i in range(count)
    ]


class SimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('sim_node', **kwargs)
        p = declare_parameters(self, SimNodeParams)
        self._plan = episode_plan(p)
        self._lockstep = p.lockstep
        self._publish_clock = p.publish_clock
        self._decision_timeout = p.decision_timeout
        # built once: its backgrounds are precomputed per condition
        self._camera = CameraModel(CameraConfig(width=p.camera_width, height=p.camera_height))
        self._camera_frame = p.camera_frame_id
        self._radar_frame = p.radar_frame_id
        self._radar_fields = load_preset('sim').layout_fields()

        self._image_pub = self.create_publisher(Image, '~/output/image', qos_profile_sensor_data)
        self._info_pub = self.create_publisher(
            CameraInfo, '~/output/camera_info', qos_profile_sensor_data
        )
        self._radar_pub = self.create_publisher(
            PointCloud2, '~/output/radar', qos_profile_sensor_data
        )
        self._truth_pub = self.create_publisher(DrivingDecision, '~/output/ground_truth', 10)
        self._odom_pub = self.create_publisher(Odometry, '~/output/odom', 10)
        self._clock_pub = (
            self.create_publisher(Clock, '/clock', 10) if self._publish_clock else None
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(DrivingDecision, '~/input/decision', self._on_decision, 10)
        # The sensor frames on /tf_static where tf2_ros is importable (a ROS distro), so RViz
        # and Foxglove place radar, camera and markers in base_link.
        self.transforms = sensor_transforms(
            'base_link', self._camera_frame, self._camera.config.mount,
            [(self._radar_frame, RadarConfig().mount)])
        self._tf_broadcaster = broadcast(self, self.transforms)
        if self._tf_broadcaster is None:
            self.get_logger().info('tf2_ros is not importable: no /tf_static for the sensor '
                                   'frames (a ROS distro provides it)')

        self.records: list[EpisodeRecord] = []
        self.finished = False
        self._episode = -1
        self._sim: Simulator | None = None
        self._frame: SimFrame | None = None
        self._latest: Decision | None = None
        self._base_ns = 0 if self._publish_clock else self.get_clock().now().nanoseconds
        self._episode_start_ns = self._base_ns
        self._waiting_since = None
        self._started = False
        dt = self._plan[0].dt
        if self._lockstep:
            self.create_timer(0.01, self._on_lockstep_timeout, clock=_wall_clock())
        else:
            self.create_timer(dt, self._on_tick, clock=_wall_clock())

    # -- episode bookkeeping ------------------------------------------------------------------
    def _next_episode(self) -> None:
        if self._sim is not None:
            self.records[-1].metrics = self._sim.metrics()
            m = self.records[-1].metrics
            self.get_logger().info(
                f'episode {self._episode} {self._sim.config.scenario.value}/'
                f'{self._sim.config.condition.value}: collision={m.collision} '
                f'red_light={m.red_light_violation} min_ttc={m.min_ttc:.2f}s '
                f'progress={m.progress:.0f}m'
            )
            self._episode_start_ns = self._frame_ns(self._frame) + EPISODE_GAP_NS
        self._episode += 1
        if self._episode >= len(self._plan):
            self._sim = None
            self.finished = True
            self.get_logger().info(f'all {len(self._plan)} episodes done')
            return
        config = self._plan[self._episode]
        self._sim = Simulator(config, camera=self._camera)
        self.records.append(EpisodeRecord(config=config))
        self._latest = None
        self._frame = self._sim.reset()
        self._publish_frame(self._frame)

    def _frame_ns(self, frame: SimFrame) -> int:
        return self._episode_start_ns + round(frame.stamp * NS)

    # -- stepping -----------------------------------------------------------------------------
    def _on_decision(self, msg: DrivingDecision) -> None:
        decision = msg_to_decision(msg)
        self._latest = decision
        if (
            self._lockstep
            and self._frame is not None
            and decision.stamp_ns == self._frame_ns(self._frame)
        ):
            self._step(decision)

    def _consumers_ready(self) -> bool:
        decision_topic = self.resolve_topic_name('~/input/decision')
        return (
            self._image_pub.get_subscription_count() > 0
            and self._radar_pub.get_subscription_count() > 0
            and self.count_publishers(decision_topic) > 0
        )

    def _start_when_ready(self) -> bool:
        """Lockstep starts once the graph is connected; real time starts at once."""
        if not self._started and (not self._lockstep or self._consumers_ready()):
            self._started = True
            self._next_episode()
        return self._started

    def _on_lockstep_timeout(self) -> None:
        if not self._start_when_ready():
            return
        if self._frame is None or self._waiting_since is None:
            return
        waited = (self.get_clock_wall_ns() - self._waiting_since) / NS
        if waited > self._decision_timeout:
            self.records[-1].timeouts += 1
            self.get_logger().warning(
                f'no decision for frame {self._frame.index} within {self._decision_timeout} s',
                throttle_duration_sec=5.0,
            )
            self._step(None)

    def _on_tick(self) -> None:
        if self._start_when_ready() and self._frame is not None:
            self._step(self._latest)

    def _step(self, decision: Decision | None) -> None:
        if self._sim is None:
            return
        if decision is None:
            decision = Decision(
                stamp_ns=0,
                action=Action.STOP,
                target_acceleration=-3.0,
                source=DecisionSource.FALLBACK,
                degraded=True,
                degraded_reason='no decision',
            )
        record = self.records[-1]
        record.expert_actions.append(int(self._frame.label.action))
        record.decided_actions.append(int(decision.action))
        record.decision_sources.append(int(decision.source))
        if self._sim.done:
            self._next_episode()
            return
        self._frame = self._sim.step(decision)
        self._publish_frame(self._frame)

    # -- publishing ---------------------------------------------------------------------------
    def get_clock_wall_ns(self) -> int:
        return _wall_clock().now().nanoseconds

    def _publish_frame(self, frame: SimFrame) -> None:
        stamp_ns = self._frame_ns(frame)
        stamp = stamp_from_ns(stamp_ns)
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=stamp))
        if frame.rgb is not None:
            self._image_pub.publish(rgb_image_msg(frame.rgb, stamp, self._camera_frame))
            self._info_pub.publish(self._camera_info(stamp, frame.rgb.shape))
        if frame.radar is not None:
            radar_ns = self._episode_start_ns + round(frame.radar_stamp * NS)
            header = Header()
            header.stamp = stamp_from_ns(radar_ns)
            header.frame_id = self._radar_frame
            self._radar_pub.publish(create_cloud(header, self._radar_fields, frame.radar[:, :5]))
        truth = Decision(
            stamp_ns=stamp_ns,
            action=frame.label.action,
            target_acceleration=frame.label.target_acceleration,
            target_speed=frame.ego.speed,
            probabilities=np.eye(len(Action), dtype=np.float32)[int(frame.label.action)],
        )
        self._truth_pub.publish(decision_to_msg(truth, 'base_link'))
        odom = Odometry()
        odom.header.stamp = stamp
        odom.header.frame_id = 'map'
        odom.child_frame_id = 'base_link'
        odom.pose.pose.position.x = float(frame.ego.x)
        odom.pose.pose.position.y = float(frame.ego.y)
        odom.twist.twist.linear.x = float(frame.ego.speed)
        self._odom_pub.publish(odom)
        self._waiting_since = self.get_clock_wall_ns()

    def _camera_info(self, stamp, shape) -> CameraInfo:
        info = CameraInfo(height=shape[0], width=shape[1], distortion_model='plumb_bob')
        info.header.stamp = stamp
        info.header.frame_id = self._camera_frame
        k = np.asarray(self._sim.K, float)
        info.k = k.ravel().tolist()
        info.d = [0.0] * 5
        info.r = np.eye(3).ravel().tolist()
        p = np.zeros((3, 4))
        p[:, :3] = k
        info.p = p.ravel().tolist()
        return info


def _wall_clock():
    from rclpy.clock import Clock as RclClock
    from rclpy.clock import ClockType

    return RclClock(clock_type=ClockType.STEADY_TIME)


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = SimNode()
        while rclpy.ok() and not node.finished:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
