"""Bag replay evaluation: fusion_node + decision_node on bag time, fed and scored by the player.

The nodes are the 'fusion' graph (same parameters and remappings as fusion.launch.py) with
use_sim_time defaulting to true. The player + evaluator is `mm-fusion eval --mode online
--attach BAG`: it publishes the bag's camera and radar with /clock in a sync-safe order (a radar
frame paired with a camera frame goes out before it; `ros2 bag play` publishes in log-time
order, so a radar frame logged just after its camera frame races the node's radar sync), records
the final decisions, writes the report to `out`, and the launch shuts down when it exits.
For other bag layouts pass `topics` and `radar_preset` (and camera_transport in fusion.yaml).

    ros2 launch mm_fusion_ros replay.launch.py bag:=/path/to/bag out:=/tmp/report
"""

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackagePrefix

from mm_fusion_ros.ros.launch_common import graph_launch_description


def generate_launch_description():
    # colcon installs console scripts into lib/<package> (setup.cfg), off PATH like `ros2 run`.
    mm_fusion = PathJoinSubstitution(
        [FindPackagePrefix('mm_fusion_ros'), 'lib', 'mm_fusion_ros', 'mm-fusion']
    )
    evaluator = ExecuteProcess(
        cmd=[
            mm_fusion, 'eval', LaunchConfiguration('bag'), '--mode', 'online', '--attach',
            '--topics', LaunchConfiguration('topics'), '--rate', LaunchConfiguration('rate'),
            '--out', LaunchConfiguration('out'), '--quiet',
        ],
        output='screen',
    )
    extra = [
        DeclareLaunchArgument('bag', description='Bag directory, .mcap or .db3 to replay.'),
        DeclareLaunchArgument(
            'topics', default_value='auto', description='Bag layout preset or YAML (auto).'
        ),
        DeclareLaunchArgument('rate', default_value='1.0', description='Playback rate.'),
        DeclareLaunchArgument(
            'out', default_value='eval_report', description='Report directory.'
        ),
        evaluator,
        RegisterEventHandler(
            OnProcessExit(
                target_action=evaluator,
                on_exit=[EmitEvent(event=Shutdown(reason='replay evaluation finished'))],
            )
        ),
    ]
    return graph_launch_description(
        'fusion', local_dds=True, extra_actions=extra, argument_defaults={'use_sim_time': 'true'}
    )
