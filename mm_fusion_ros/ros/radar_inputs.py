"""Radar inputs of fusion_node and decision_node: one or more topics, PointCloud2 or RadarScan.

Each topic of `radar_topics` gets a subscription of the `radar_type` message and a converter
that takes its messages into the model radar frame through that radar's mount; a
`RadarMerger` joins the radars into one stream at the first radar's rate
(`sensors.radar_merge`). `radar_msgs` is not among the ROS wheels on PyPI: `radar_scan` needs a
ROS distro, and configure fails with a message that says so where it is missing.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from mm_fusion_ros.sensors.front_end import RadarToModel
from mm_fusion_ros.sensors.radar_merge import RadarMerger
from mm_fusion_ros.sensors.radar_presets import load_preset
from mm_fusion_ros.sensors.radar_scan import RadarScanToModel

NS = 1_000_000_000
POINTCLOUD2 = 'pointcloud2'
RADAR_SCAN = 'radar_scan'


class RadarTypeUnavailableError(ValueError):
    """The radar message package is not importable here."""


def radar_message_type(radar_type: str) -> type:
    """The message class of `radar_type`; RadarTypeUnavailableError where it is not installed."""
    if radar_type == POINTCLOUD2:
        from sensor_msgs.msg import PointCloud2

        return PointCloud2
    if radar_type == RADAR_SCAN:
        try:
            from radar_msgs.msg import RadarScan
        except ImportError:
            raise RadarTypeUnavailableError(
                'radar_type radar_scan needs the radar_msgs package (not among the ROS wheels '
                'on PyPI; install ros-<distro>-radar-msgs with a ROS distro)') from None
        return RadarScan
    raise ValueError(f'unknown radar_type {radar_type!r}')


def radar_converters(params: Any) -> list[Callable[[Any], np.ndarray]]:
    """One converter per radar of the node's parameters: message -> model-frame points."""
    out = []
    for source in params.radars():
        if params.radar_type == RADAR_SCAN:
            out.append(RadarScanToModel(source.mount, float(params.radar_doppler_sign)))
        else:
            out.append(RadarToModel(params.radar_preset, source.mount))
    return out


def radar_merger(params: Any) -> RadarMerger:
    """The merger of the node's radars: a frame of another radar joins within one period."""
    period_ns = round(NS / load_preset(params.radar_preset).rate_hz)
    return RadarMerger(len(params.radar_topics), period_ns)


__all__ = ['POINTCLOUD2', 'RADAR_SCAN', 'RadarTypeUnavailableError', 'radar_converters',
           'radar_merger', 'radar_message_type']
