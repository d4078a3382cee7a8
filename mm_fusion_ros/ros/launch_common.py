"""Launch descriptions built from the graph spec (imported by launch/*.launch.py).

Every launch file is one call to `graph_launch_description`, so the launch files and the
in-process runner (`mm-fusion up`) start the same nodes with the same parameters and
remappings. fusion_node and decision_node are managed (lifecycle) nodes: with `autostart:=true`
(the default) the launch configures and activates them; with `false` a lifecycle manager or
`ros2 lifecycle set` does.
"""

from collections.abc import Sequence

from launch import Action, LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.event_handlers import OnProcessStart
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from mm_fusion_ros.dds_env import FASTDDS_LARGE_SHM
from mm_fusion_ros.graph import PACKAGE, graph, node_overrides
from mm_fusion_ros.paths import resolve_params_file

ARGUMENTS = (
    ('params_file', '', 'Node parameters file; empty: the shipped config/params.yaml.'),
    ('radar_preset', '', 'Radar message layout (sim, carla, nuscenes); empty keeps the file.'),
    ('device', '', 'Inference device (auto, cpu, cuda, cuda:N); empty keeps the file.'),
    ('checkpoint', '', 'Model checkpoint (.pt); empty keeps the file (the shipped one).'),
    ('namespace', '', 'Namespace for all nodes and topics.'),
    ('use_sim_time', 'false', 'Use /clock (simulation and bag replay).'),
    ('autostart', 'true', 'Configure and activate the managed nodes once they start.'),
    ('view', 'false', 'Also start view_node: the live view (Rerun, needs rerun-sdk) at the '
     "address and port of the params file's view_node block (default 127.0.0.1:9090)."),
)
# Launch arguments that set node parameters; graph.node_overrides routes each to the nodes
# whose parameter spec declares it. Empty means: keep the params file's value.
PARAMETER_ARGUMENTS = ('radar_preset', 'device', 'checkpoint')


def _nodes(context: LaunchContext, graph_name: str) -> list[Action]:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    settings = {name: arg(name) for name in PARAMETER_ARGUMENTS if arg(name)}
    per_node = node_overrides(graph_name, settings)
    params_file = str(resolve_params_file(arg('params_file')))
    autostart = arg('autostart').lower() == 'true'
    actions: list[Action] = []
    for spec in graph(graph_name):
        parameters = [params_file, dict(per_node.get(spec.name, {}),
                                        use_sim_time=arg('use_sim_time').lower() == 'true')]
        kind = LifecycleNode if spec.managed else Node
        node = kind(
            package=PACKAGE,
            executable=spec.executable,
            name=spec.name,
            namespace=arg('namespace'),
            parameters=parameters,
            remappings=list(spec.remappings),
            output='screen',
        )
        actions.append(node)
        if spec.managed and autostart:
            actions += _autostart(node)
    if arg('view').lower() == 'true':
        from mm_fusion_ros.ros.view_node import VIEW_NODE

        actions.append(Node(
            package=PACKAGE, executable=VIEW_NODE.executable, name=VIEW_NODE.name,
            namespace=arg('namespace'),
            parameters=[params_file, {'use_sim_time': arg('use_sim_time').lower() == 'true'}],
            remappings=list(VIEW_NODE.remappings), output='screen'))
    return actions


def _autostart(node: LifecycleNode) -> list[Action]:
    """Configure the node once it runs, activate it once it is inactive (any ROS 2 distro)."""
    def change(transition: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                           transition_id=transition))

    return [
        RegisterEventHandler(OnProcessStart(
            target_action=node, on_start=[change(Transition.TRANSITION_CONFIGURE)])),
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
            entities=[change(Transition.TRANSITION_ACTIVATE)])),
    ]


def graph_launch_description(
    graph_name: str,
    local_dds: bool,
    extra_actions: Sequence[Action] = (),
    argument_defaults: dict[str, str] | None = None,
) -> LaunchDescription:
    """LaunchDescription for one graph of `mm_fusion_ros.graph`.

    `local_dds` keeps DDS on this machine with a shared-memory segment large enough for camera
    frames (simulation, replay); a vehicle stack keeps its own transport settings.
    `extra_actions` run beside the graph (e.g. the replay evaluator); `argument_defaults`
    changes the defaults of ARGUMENTS (e.g. use_sim_time for bag replay).
    """
    defaults = dict(argument_defaults or {})
    actions = [
        DeclareLaunchArgument(n, default_value=defaults.get(n, d), description=h)
        for n, d, h in ARGUMENTS
    ]
    if local_dds:
        actions += [
            DeclareLaunchArgument(
                'fastdds_transports',
                default_value=FASTDDS_LARGE_SHM,
                description='FASTDDS_BUILTIN_TRANSPORTS for every process of the graph.',
            ),
            SetEnvironmentVariable(
                'FASTDDS_BUILTIN_TRANSPORTS', LaunchConfiguration('fastdds_transports')
            ),
            SetEnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST'),
        ]
    actions.append(OpaqueFunction(function=_nodes, args=[graph_name]))
    actions += list(extra_actions)
    return LaunchDescription(actions)
