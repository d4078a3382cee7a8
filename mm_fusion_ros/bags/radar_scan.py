"""radar_msgs/RadarScan in rosbag2 bags through rosbags, without radar_msgs installed.

The types are registered in the project typestore from the definition text in
`sensors.radar_scan` (`RADAR_SCAN_MSGDEFS`), so `BagStream` deserialises RadarScan topics like
any other, and `read_radar_scans` reads one or more RadarScan topics of a bag into canonical
points in the model radar frame, merged the way the live nodes merge several radars.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from mm_fusion_ros.bags.typestore import project_typestore
from mm_fusion_ros.sensors.extrinsics import Extrinsic
from mm_fusion_ros.sensors.front_end import MODEL_RADAR_MOUNT
from mm_fusion_ros.sensors.radar_merge import RadarMerger
from mm_fusion_ros.sensors.radar_scan import RADAR_SCAN_TYPE, RadarScanToModel, register_radar_scan
from mm_fusion_ros.sensors.sync import msg_stamp_ns


def radar_scan_typestore():
    """The project typestore with RadarReturn and RadarScan registered (idempotent)."""
    return register_radar_scan(project_typestore())


def read_radar_scans(path: str | Path, topics: Sequence[str],
                     mounts: Sequence[Extrinsic] = (MODEL_RADAR_MOUNT,),
                     max_age_s: float = 0.05, doppler_sign: float = 1.0,
                     ) -> Iterator[tuple[int, np.ndarray]]:
    """(stamp [ns], (N, 5) model-frame points) per frame of the first topic, others merged.

    Raises ValueError when a topic is missing or is not a RadarScan.
    """
    topics = list(topics)
    if len(mounts) != len(topics):
        raise ValueError(f'{len(topics)} topics need as many mounts, got {len(mounts)}')
    store = radar_scan_typestore()
    convert = [RadarScanToModel(m, doppler_sign) for m in mounts]
    merger = RadarMerger(len(topics), round(max_age_s * 1e9))
    with Reader(Path(path)) as reader:
        have = {t: info.msgtype for t, info in reader.topics.items()}
        for topic in topics:
            if have.get(topic) != RADAR_SCAN_TYPE:
                raise ValueError(f'bag {path}: topic {topic} is {have.get(topic, "missing")},'
                                 f' expected {RADAR_SCAN_TYPE} (the bag has {sorted(have)})')
        index = {t: i for i, t in enumerate(topics)}
        conns = [c for c in reader.connections if c.topic in index]
        for conn, _, raw in reader.messages(connections=conns):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            i = index[conn.topic]
            merged = merger.push(i, msg_stamp_ns(msg), convert[i](msg))
            if merged is not None:
                yield merged


__all__ = ['radar_scan_typestore', 'read_radar_scans']
