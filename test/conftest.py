"""Test-run isolation: each run gets its own ROS domain and keeps DDS traffic on this machine."""

import os

from mm_fusion_ros.dds_env import apply_local_dds_env, random_domain_id


def pytest_configure(config):
    # Set before any rclpy.init() and inherited by every subprocess the tests start, so
    # parallel runs never see each other and nothing leaves loopback.
    if 'MM_FUSION_TEST_DOMAIN_ID' in os.environ:
        os.environ['ROS_DOMAIN_ID'] = os.environ['MM_FUSION_TEST_DOMAIN_ID']
    else:
        os.environ['ROS_DOMAIN_ID'] = str(random_domain_id())
    apply_local_dds_env(os.environ, override=True)


def pytest_report_header(config):
    return (
        f'ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID")} '
        f'ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE")} '
        f'FASTDDS_BUILTIN_TRANSPORTS={os.environ.get("FASTDDS_BUILTIN_TRANSPORTS")}'
    )
