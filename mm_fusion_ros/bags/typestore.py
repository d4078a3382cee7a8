"""The rosbags typestore for this project's bags: a ROS 2 store plus mm_fusion_msgs.

rosbags (de)serialises CDR from type definitions alone, so bags are written and read without
a ROS distro. `DrivingDecision` is registered from the package's own `.msg` text, so the bag's
schema is exactly the interface the nodes build against.
"""

from functools import lru_cache
import os
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

DRIVING_DECISION = 'mm_fusion_msgs/msg/DrivingDecision'
MSG_PACKAGE = 'mm_fusion_msgs'

# Newest first: the newest ROS 2 store this rosbags offers; the sensor/nav/std message
# definitions (and so their type hashes) are the same in every store since Jazzy.
_STORE_PREFERENCE = ('ros2_lyrical', 'ros2_kilted', 'ros2_jazzy', 'ros2_iron', 'ros2_humble')


class TypestoreError(RuntimeError):
    """The custom message definition could not be found or parsed."""


def ros2_store() -> Stores:
    """The newest ROS 2 type store offered by the installed rosbags."""
    available = {s.value: s for s in Stores}
    for name in _STORE_PREFERENCE:
        if name in available:
            return available[name]
    raise TypestoreError(f'rosbags offers no ROS 2 type store (has {sorted(available)})')


def driving_decision_msg_path() -> Path:
    """DrivingDecision.msg: the source tree next to the package, else an installed share dir."""
    rel = Path('msg') / 'DrivingDecision.msg'
    candidates = [Path(__file__).resolve().parents[2] / MSG_PACKAGE / rel]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(MSG_PACKAGE)) / rel)
    except (ImportError, LookupError, OSError, ValueError):
        pass  # no ament index (plain venv): the source tree or AMENT_PREFIX_PATH below
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'share' / MSG_PACKAGE / rel)
    for path in candidates:
        if path.is_file():
            return path
    raise TypestoreError(
        f'cannot find {MSG_PACKAGE}/{rel} (looked in {[str(c) for c in candidates]})')


@lru_cache(maxsize=1)
def project_typestore() -> Typestore:
    """ROS 2 typestore with mm_fusion_msgs/msg/DrivingDecision registered (cached, read-only)."""
    store = get_typestore(ros2_store())
    path = driving_decision_msg_path()
    try:
        store.register(get_types_from_msg(path.read_text(), DRIVING_DECISION))
    except Exception as e:  # rosbags raises its own parser errors
        raise TypestoreError(f'cannot parse {path}: {e}') from e
    return store
