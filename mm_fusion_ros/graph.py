"""The node graphs, defined once for the launch files and the in-process runner.

`launch/*.launch.py` turn each NodeSpec into a launch_ros `Node` (`LifecycleNode` for the
managed ones); `mm-fusion up` turns it into an rclpy node in one process (the pip path, where
launch_ros is not installable). Every node reads the one params file (`config/params.yaml`:
shared settings in `/**`, then a block per node). Topic names inside nodes are private
(`~/input/...`, `~/output/...`) and remapped here, so integrating the package into a vehicle
stack is a matter of remappings.
"""

from dataclasses import dataclass, field

from mm_fusion_ros.params.nodes import NODE_PARAMS
from mm_fusion_ros.params.spec import graph_overrides

PACKAGE = 'mm_fusion_ros'

# Public topics of the graphs, relative so a launch namespace applies to all of them.
CAMERA_IMAGE = 'sensors/camera/image_raw'
CAMERA_COMPRESSED = 'sensors/camera/image_raw/compressed'
CAMERA_INFO = 'sensors/camera/camera_info'
RADAR_POINTS = 'sensors/radar/points'
RAW_DECISION = 'fusion/decision_raw'
DECISION = 'decision'
ACCEL_COMMAND = 'decision/accel_cmd'
ACKERMANN_COMMAND = 'decision/ackermann_cmd'  # ackermann_msgs/AckermannDriveStamped
TRACK_MARKERS = 'decision/tracks'  # the confirmed radar tracks of the TTC override
GROUND_TRUTH_DECISION = 'sim/ground_truth/decision'
EGO_ODOMETRY = 'odom'  # nav_msgs/Odometry, the vehicle stack's usual name
FUSION_MARKERS = 'fusion/markers'


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph: what runs, with which parameters file and remappings."""

    name: str
    executable: str  # console script (`ros2 run mm_fusion_ros <executable>`)
    node_class: str  # 'module:Class', for the in-process runner
    remappings: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    managed: bool = False  # a lifecycle node: configure and activate it after start


FUSION_NODE = NodeSpec(
    name='fusion_node',
    executable='fusion_node',
    node_class='mm_fusion_ros.ros.fusion_node:FusionNode',
    remappings=(
        ('~/input/image', CAMERA_IMAGE),
        ('~/input/image/compressed', CAMERA_COMPRESSED),
        ('~/input/camera_info', CAMERA_INFO),
        ('~/input/radar', RADAR_POINTS),
        ('~/input/odom', EGO_ODOMETRY),
        ('~/output/decision', RAW_DECISION),
        ('~/output/markers', FUSION_MARKERS),
    ),
    managed=True,
)

DECISION_NODE = NodeSpec(
    name='decision_node',
    executable='decision_node',
    node_class='mm_fusion_ros.ros.decision_node:DecisionNode',
    remappings=(
        ('~/input/decision', RAW_DECISION),
        ('~/input/radar', RADAR_POINTS),
        ('~/output/decision', DECISION),
        ('~/output/accel_cmd', ACCEL_COMMAND),
        ('~/input/odom', EGO_ODOMETRY),  # read only with ackermann_output
        ('~/output/ackermann_cmd', ACKERMANN_COMMAND),
        ('~/output/tracks', TRACK_MARKERS),
    ),
    managed=True,
)

SIM_NODE = NodeSpec(
    name='sim_node',
    executable='sim_node',
    node_class='mm_fusion_ros.ros.sim_node:SimNode',
    remappings=(
        ('~/output/image', CAMERA_IMAGE),
        ('~/output/camera_info', CAMERA_INFO),
        ('~/output/radar', RADAR_POINTS),
        ('~/output/ground_truth', GROUND_TRUTH_DECISION),
        ('~/output/odom', EGO_ODOMETRY),
        ('~/input/decision', DECISION),
    ),
)

GRAPHS: dict[str, tuple[NodeSpec, ...]] = {
    'fusion': (FUSION_NODE, DECISION_NODE),
    'sim': (SIM_NODE, FUSION_NODE, DECISION_NODE),
}


def graph(name: str) -> tuple[NodeSpec, ...]:
    try:
        return GRAPHS[name]
    except KeyError:
        raise ValueError(f'unknown graph {name!r}; choose one of {sorted(GRAPHS)}') from None


def node_overrides(graph_name: str, values: dict) -> dict[str, dict]:
    """{node: {parameter: value}}: each setting to every node of the graph that declares it.

    Settings given once for a graph (launch arguments, `mm-fusion up` options, a bag layout)
    are routed here, by the nodes' parameter specs, never by a hand-kept table.
    """
    return graph_overrides({s.name: NODE_PARAMS[s.name] for s in graph(graph_name)}, values)


def ros_args(spec: NodeSpec, params_files: list[str], namespace: str = '') -> list[str]:
    """Command-line (rcl) arguments that give a node its parameters files and remappings."""
    args = ['--ros-args']
    for path in params_files:
        args += ['--params-file', path]
    if namespace:
        args += ['-r', f'__ns:=/{namespace.strip("/")}']
    for src, dst in spec.remappings:
        args += ['-r', f'{src}:={dst}']
    return args
