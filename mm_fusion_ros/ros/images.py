"""sensor_msgs/Image from RGB pixels, built the fast way (one encoder for all publishers)."""

import numpy as np
from sensor_msgs.msg import Image

from mm_fusion_ros.sensors.image import image_fields_from_rgb


def rgb_image_msg(rgb: np.ndarray, stamp, frame_id: str = 'camera') -> Image:
    msg = Image(**image_fields_from_rgb(rgb))
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg
