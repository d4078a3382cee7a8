"""Launch descriptions built from the graph spec (imported by launch/*.launch.py).

Every launch file is one call to `graph_launch_description`, so the launch files and the
in-process runner (`mm-fusion up`) start the same nodes with the same parameters and
remappings.
"""

from collections.abc import Sequence
import os

from launch import Action, LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mm_fusion_ros.dds_env import FASTDDS_LARGE_SHM
from mm_fusion_ros.graph import PACKAGE, graph
from mm_fusion_ros.paths import config_dir

ARGUMENTS = (
    ('config_dir', str(config_dir()), 'Directory holding fusion.yaml, decision.yaml, sim.yaml.'),
    ('radar_preset', '', 'Radar message layout (sim, carla, nuscenes); empty keeps the config.'),
    ('device', '', 'Inference device (auto, cpu, cuda, cuda:N); empty keeps the config.'),
    ('checkpoint', '', 'Model checkpoint (.pt); empty uses the shipped one.'),
    ('namespace', '', 'Namespace for all nodes and topics.'),
    ('use_sim_time', 'false', 'Use /clock (simulation and bag replay).'),
)


def _nodes(context: LaunchContext, graph_name: str) -> list[Node]:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    overrides = {'use_sim_time': arg('use_sim_time').lower() == 'true'}
    for name in ('radar_preset', 'device', 'checkpoint'):
        if arg(name):
            overrides[name] = arg(name)
    nodes = []
    for spec in graph(graph_name):
        node_overrides = {
            k: v
            for k, v in overrides.items()
            if k == 'use_sim_time' or (spec.name, k) in _NODE_PARAMS
        }
        nodes.append(
            Node(
                package=PACKAGE,
                executable=spec.executable,
                name=spec.name,
                namespace=arg('namespace'),
                parameters=[os.path.join(arg('config_dir'), spec.params_file), node_overrides],
                remappings=list(spec.remappings),
                output='screen',
            )
        )
    return nodes


# Which node takes which launch-argument override.
_NODE_PARAMS = {
    ('fusion_node', 'radar_preset'),
    ('fusion_node', 'device'),
    ('fusion_node', 'checkpoint'),
    ('decision_node', 'radar_preset'),
}


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
