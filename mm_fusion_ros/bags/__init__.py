"""rosbag2 I/O through rosbags (no ROS distro): episode writer, layout-checked streaming reader.

Pure core: no rclpy. Messages are rosbags dataclasses with the standard ROS field names.
"""

from mm_fusion_ros.bags.reader import (
    BagError,
    BagLayoutError,
    BagMessage,
    BagReadError,
    BagStream,
    BagTopics,
    BagTopicsError,
    OversizeMessageError,
    detect_topics,
    episode_from_bag,
    find_bags,
    list_bag_topics,
    load_bag_topics,
    open_bag,
)
from mm_fusion_ros.bags.typestore import project_typestore
from mm_fusion_ros.bags.writer import BagWriteOptions, BagWriteStats, write_episode_bag

__all__ = [
    'BagError', 'BagLayoutError', 'BagMessage', 'BagReadError', 'BagStream', 'BagTopics',
    'BagTopicsError', 'BagWriteOptions', 'BagWriteStats', 'OversizeMessageError',
    'detect_topics', 'find_bags', 'episode_from_bag', 'list_bag_topics', 'load_bag_topics',
    'open_bag', 'project_typestore', 'write_episode_bag',
]
