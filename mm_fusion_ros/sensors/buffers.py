"""Zero-copy views of message byte buffers."""

from typing import Any

import numpy as np


def uint8_view(data: Any) -> np.ndarray:
    """Read-only uint8 view of `data` (bytes, bytearray, array.array, memoryview, ndarray).

    Goes through the buffer protocol: an rclpy `array.array` is never turned into a list.
    """
    if isinstance(data, np.ndarray):
        buf = data.reshape(-1).view(np.uint8).view()
    else:
        buf = np.frombuffer(data, dtype=np.uint8)
    buf.flags.writeable = False
    return buf
