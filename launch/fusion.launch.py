"""fusion_node + decision_node, for integration into a vehicle stack."""

from mm_fusion_ros.ros.launch_common import graph_launch_description


def generate_launch_description():
    return graph_launch_description('fusion', local_dds=False)
