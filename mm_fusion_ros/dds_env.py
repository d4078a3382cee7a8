"""DDS settings for the project's own processes: local-only discovery and large-sample SHM.

Fast DDS (the only RMW on PyPI) drops most fragmented camera frames over its default
shared-memory segment; a larger segment fixes it (measured: 640x480 rgb8 at 20 Hz, 5% of frames
arrive by default, 200/200 with these options). SHM-only transport also keeps every byte on
this machine. Users' own camera drivers need the same `FASTDDS_BUILTIN_TRANSPORTS` value (or the
XML profile in config/fastdds_local.xml) to publish large images to the fusion node.
"""

from collections.abc import MutableMapping
import random

FASTDDS_LARGE_SHM = 'SHM?max_msg_size=4MB&sockets_size=16MB'

LOCAL_DDS_ENV: dict[str, str] = {
    'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',  # kilted ignores ROS_LOCALHOST_ONLY
    'FASTDDS_BUILTIN_TRANSPORTS': FASTDDS_LARGE_SHM,
    'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
}


def apply_local_dds_env(
    environ: MutableMapping[str, str], *, override: bool = False
) -> MutableMapping[str, str]:
    """Put the local-only DDS settings into `environ` (keeps user values unless `override`)."""
    for key, value in LOCAL_DDS_ENV.items():
        if override:
            environ[key] = value
        else:
            environ.setdefault(key, value)
    if override:
        environ.pop('ROS_STATIC_PEERS', None)
    return environ


def random_domain_id(rng: random.Random | None = None) -> int:
    """A ROS domain id in the range every platform allows (1..101), for isolated test runs."""
    return (rng or random.SystemRandom()).randint(1, 101)
