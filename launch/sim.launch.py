"""Closed-loop simulation: sim_node + fusion_node + decision_node."""

from mm_fusion_ros.ros.launch_common import graph_launch_description


def generate_launch_description():
    return graph_launch_description('sim', local_dds=True)
