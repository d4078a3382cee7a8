"""Stream rosbag2 bags (MCAP, SQLite3) of any topic layout into the pure core.

`open_bag(path, topics)` checks up front that the bag has the camera and radar topics (and the
ground truth when asked) with the expected types, then yields deserialised rosbags messages in
log-time order. rosbags message objects carry the standard ROS field names (`data` is a numpy
array), so `image_to_rgb` and the radar preset converters read them like rclpy messages.
Nothing is loaded whole: one message at a time, and a message over `max_message_bytes` is
skipped and counted instead of being deserialised.
"""

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
import json
import logging
from pathlib import Path
import sqlite3
import struct
from typing import Any, NamedTuple

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError
import yaml

from mm_fusion_ros.bags.typestore import DRIVING_DECISION, project_typestore
from mm_fusion_ros.errors import UserInputError
from mm_fusion_ros.paths import config_dir
from mm_fusion_ros.sensors.image import image_to_rgb
from mm_fusion_ros.sensors.radar_presets import RadarPresetError, load_preset
from mm_fusion_ros.sensors.sync import msg_stamp_ns

_LOG = logging.getLogger(__name__)

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
POINT_CLOUD2 = 'sensor_msgs/msg/PointCloud2'
STRING = 'std_msgs/msg/String'
ODOMETRY = 'nav_msgs/msg/Odometry'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'
IMAGE_KINDS = {'raw': IMAGE, 'compressed': COMPRESSED_IMAGE}
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 4K rgb8 frame is 25 MB

# Errors rosbags and its storage backends raise on a truncated or corrupt file (garbage
# record lengths surface as OverflowError or MemoryError).
_STORAGE_ERRORS = (ReaderError, struct.error, EOFError, OSError, ValueError, KeyError,
                   IndexError, OverflowError, MemoryError, sqlite3.DatabaseError)


class BagError(UserInputError, RuntimeError):
    """Base of the errors this module raises about a bag."""


class BagTopicsError(UserInputError, ValueError):
    """A bag topics preset or YAML file that is unknown, unreadable or malformed."""


class BagLayoutError(BagError):
    """The bag lacks a topic the layout needs, or has it with another type."""


class BagReadError(BagError):
    """The bag cannot be opened or read (missing, truncated, corrupt)."""


class OversizeMessageError(BagReadError):
    """A single message over the size limit (raised only with `strict=True`)."""


@dataclass(frozen=True)
class BagTopics:
    """Which topics of a bag carry camera, radar and ground truth, and how to decode them."""

    name: str = 'sim'
    image_topic: str = '/sensors/camera/image_raw'
    image_kind: str = 'raw'  # 'raw' (sensor_msgs/Image) | 'compressed' (CompressedImage)
    radar_topic: str = '/sensors/radar/points'
    radar_preset: str = 'sim'  # config/radar_presets/<name>.yaml
    ground_truth_topic: str | None = '/sim/ground_truth/decision'  # DrivingDecision
    expert_topic: str | None = '/sim/ground_truth/expert'  # String JSON {stamp_ns, ttc}
    episode_topic: str | None = '/sim/episode'  # String JSON, scenario/condition/seed
    odometry_topic: str | None = '/odom'  # nav_msgs/Odometry: the model's ego speed
    # Sensor geometry (`bags.rig`): CameraInfo of the image topic, the static transform tree,
    # and the frame they are resolved in. None: the layout has none (mounts from parameters).
    camera_info_topic: str | None = None  # sensor_msgs/CameraInfo
    tf_static_topic: str | None = None  # tf2_msgs/TFMessage
    vehicle_frame: str = 'base_link'  # the CARLA bridge names it after the role: ego_vehicle
    description: str = ''

    def __post_init__(self) -> None:
        if self.image_kind not in IMAGE_KINDS:
            raise ValueError(
                f'image_kind must be one of {sorted(IMAGE_KINDS)}, got {self.image_kind!r}')
        topics = [t for t in (self.image_topic, self.radar_topic, self.ground_truth_topic,
                              self.expert_topic, self.episode_topic, self.odometry_topic,
                              self.camera_info_topic, self.tf_static_topic) if t]
        if len(set(topics)) != len(topics):
            raise ValueError(f'bag topics {self.name!r}: one topic in two roles: {topics}')

    @property
    def image_type(self) -> str:
        return IMAGE_KINDS[self.image_kind]

    def expected(self, require_ground_truth: bool = False) -> dict[str, tuple[str, str, bool]]:
        """Topic -> (kind, type, required) for every topic this layout reads."""
        out = {
            self.image_topic: ('image', self.image_type, True),
            self.radar_topic: ('radar', POINT_CLOUD2, True),
        }
        if self.ground_truth_topic:
            out[self.ground_truth_topic] = ('ground_truth', DRIVING_DECISION,
                                            require_ground_truth)
        if self.expert_topic:
            out[self.expert_topic] = ('expert', STRING, False)
        if self.episode_topic:
            out[self.episode_topic] = ('episode', STRING, False)
        if self.odometry_topic:
            out[self.odometry_topic] = ('odometry', ODOMETRY, False)
        if self.camera_info_topic:
            out[self.camera_info_topic] = ('camera_info', CAMERA_INFO, False)
        if self.tf_static_topic:
            out[self.tf_static_topic] = ('tf_static', TF_MESSAGE, False)
        return out


def bag_topics_dir() -> Path:
    """config/bag_topics of the package share (or the source tree when the share lacks it)."""
    path = config_dir() / 'bag_topics'
    if path.is_dir():
        return path
    return Path(__file__).resolve().parents[2] / 'config' / 'bag_topics'


def list_bag_topics() -> list[str]:
    d = bag_topics_dir()
    return sorted(p.stem for p in d.glob('*.yaml')) if d.is_dir() else []


def load_bag_topics(name_or_path: str | Path) -> BagTopics:
    """A layout by preset name (`sim`, `sim_compressed`, `carla`, `nuscenes`) or YAML path."""
    path = Path(name_or_path)
    if path.suffix not in ('.yaml', '.yml'):
        path = bag_topics_dir() / f'{name_or_path}.yaml'
        if not path.is_file():
            raise BagTopicsError(
                f'unknown bag topics preset {str(name_or_path)!r}'
                f' (available: {list_bag_topics()}; or give a YAML path)')
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise BagTopicsError(f'cannot read bag topics {str(path)!r}: {e.strerror}') from e
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, 'problem_mark', None)
        where = f' (line {mark.line + 1}, column {mark.column + 1})' if mark else ''
        why = getattr(e, 'problem', None) or type(e).__name__
        raise BagTopicsError(
            f'cannot read bag topics {str(path)!r}: not YAML{where}: {why}') from e
    if not isinstance(data, dict):
        raise BagTopicsError(f'bag topics {str(path)!r}: expected a mapping')
    known = set(BagTopics.__dataclass_fields__)
    unknown = {str(k) for k in set(data) - known}
    if unknown:
        raise BagTopicsError(f'bag topics {str(path)!r}: unknown keys {sorted(unknown)}')
    data.setdefault('name', path.stem)
    for key, value in data.items():
        if not (isinstance(value, str) or (value is None and key.endswith('_topic')
                                           and key not in ('image_topic', 'radar_topic'))):
            raise BagTopicsError(f'bag topics {str(path)!r}: {key} must be a string, got '
                                 f'{value!r}')
    try:
        topics = BagTopics(**data)
        load_preset(topics.radar_preset)  # a layout with a radar preset that cannot be read
    except (ValueError, RadarPresetError) as e:
        raise BagTopicsError(f'bag topics {str(path)!r}: {e}') from e
    return topics


class RejectedMessage(NamedTuple):
    topic: str
    log_time_ns: int
    size: int
    reason: str


@dataclass
class BagStats:
    """What a pass over the bag read and what it had to skip (never silently)."""

    messages: dict[str, int] = field(default_factory=dict)  # kind -> count
    rejected: list[RejectedMessage] = field(default_factory=list)

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)

    def as_dict(self) -> dict[str, Any]:
        return {'messages': dict(self.messages),
                'rejected': [r._asdict() for r in self.rejected]}


class BagMessage(NamedTuple):
    kind: str  # 'image' | 'radar' | 'ground_truth' | 'expert' | 'episode' | 'odometry' |
    # 'camera_info' | 'tf_static'
    topic: str
    log_time_ns: int
    msg: Any  # deserialised rosbags message


def _layout_listing(available: dict[str, str]) -> str:
    return '\n'.join(f'  {t}  [{ty}]' for t, ty in sorted(available.items())) or '  (none)'


class BagStream:
    """An open bag validated against a `BagTopics` layout; use as a context manager."""

    def __init__(
        self, path: str | Path, topics: BagTopics, require_ground_truth: bool = False,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, strict: bool = False,
    ) -> None:
        self.path = Path(path)
        self.topics = topics
        self.max_message_bytes = int(max_message_bytes)
        self.strict = strict
        self.stats = BagStats()
        self.store = project_typestore()
        if not self.path.exists():
            raise BagReadError(f'bag {str(self.path)!r} does not exist')
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except _STORAGE_ERRORS as e:
            raise BagReadError(
                f'cannot open bag {str(self.path)!r} (truncated, corrupt or not a rosbag2'
                f' directory / .mcap / .db3): {type(e).__name__}: {e}') from e
        try:
            self.available = {
                t: (info.msgtype or 'mixed types')
                for t, info in self._reader.topics.items()}
            self._kinds = self._validate(require_ground_truth)
        except BaseException:
            self._reader.close()
            raise

    def _validate(self, require_ground_truth: bool) -> dict[str, str]:
        problems, kinds = [], {}
        if require_ground_truth and not self.topics.ground_truth_topic:
            problems.append(f'topics preset {self.topics.name!r} names no ground_truth topic')
        for topic, (kind, typename, required) in self.topics.expected(
                require_ground_truth).items():
            have = self.available.get(topic)
            if have is None:
                if required:
                    problems.append(f'missing {kind} topic {topic} [{typename}]')
                continue
            if have != typename:
                problems.append(f'{kind} topic {topic} has type {have}, expected {typename}')
                continue
            kinds[topic] = kind
        if problems:
            raise BagLayoutError(
                f'bag {str(self.path)!r} does not match topics preset'
                f' {self.topics.name!r}: ' + '; '.join(problems)
                + f'\nthe bag has:\n{_layout_listing(self.available)}')
        gt = self.topics.ground_truth_topic
        if gt in kinds:
            ours = self.store.hash_rihs01(DRIVING_DECISION)
            for conn in self._reader.topics[gt].connections:
                if conn.digest.startswith('RIHS01_') and conn.digest != ours:
                    raise BagLayoutError(
                        f'bag {str(self.path)!r}: {gt} was recorded with another'
                        f' {DRIVING_DECISION} definition ({conn.digest}, this package has'
                        f' {ours}); rebuild the bag or the package to match')
        return kinds

    @property
    def has_ground_truth(self) -> bool:
        return 'ground_truth' in self._kinds.values()

    @property
    def start_time_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    def messages(self, kinds: tuple[str, ...] | None = None) -> Iterator[BagMessage]:
        """Deserialised messages of the layout's topics in log-time order."""
        conns = [c for c in self._reader.connections
                 if c.topic in self._kinds and (kinds is None or self._kinds[c.topic] in kinds)]
        if not conns:
            return
        raw_iter = self._reader.messages(connections=conns)
        n = 0
        while True:
            try:
                item = next(raw_iter)
            except StopIteration:
                return
            except _STORAGE_ERRORS as e:
                raise BagReadError(
                    f'bag {str(self.path)!r} is truncated or corrupt (failed after {n}'
                    f' messages): {type(e).__name__}: {e}') from e
            n += 1
            conn, log_time, raw = item
            size = len(raw)
            if size > self.max_message_bytes:
                self._reject(conn.topic, log_time, size,
                             f'{size} bytes > limit {self.max_message_bytes}',
                             oversize=True)
                continue
            try:
                msg = self.store.deserialize_cdr(raw, conn.msgtype)
            except Exception as e:  # noqa: BLE001 - any decoder failure is one bad message
                self._reject(conn.topic, log_time, size,
                             f'cannot deserialise: {type(e).__name__}: {e}')
                continue
            kind = self._kinds[conn.topic]
            self.stats.messages[kind] = self.stats.messages.get(kind, 0) + 1
            yield BagMessage(kind, conn.topic, int(log_time), msg)

    def _reject(self, topic: str, log_time: int, size: int, reason: str,
                oversize: bool = False) -> None:
        rejected = RejectedMessage(topic, int(log_time), int(size), reason)
        if oversize and self.strict:
            raise OversizeMessageError(
                f'bag {str(self.path)!r}: message on {topic} at {log_time} ns rejected: {reason}')
        self.stats.rejected.append(rejected)
        _LOG.warning('bag %s: skipped message on %s at %d ns: %s',
                     self.path, topic, log_time, reason)

    def episode_info(self) -> dict[str, Any]:
        """The first /sim/episode JSON of the bag ({} when the layout or bag has none)."""
        for m in self.messages(('episode',)):
            return parse_json_string(m.msg)
        return {}

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()

    def __enter__(self) -> 'BagStream':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_bag(
    path: str | Path, topics: BagTopics | str | None = None, *,
    require_ground_truth: bool = False,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, strict: bool = False,
) -> BagStream:
    """Open and validate a bag (directory, .mcap or .db3); `topics` is a layout or preset name.

    Raises BagReadError when the file cannot be read and BagLayoutError (listing every topic
    and type the bag has) when a needed topic is missing or has another type.
    """
    if topics is None:
        topics = BagTopics()
    elif isinstance(topics, str | Path):
        topics = load_bag_topics(topics)
    return BagStream(path, topics, require_ground_truth, max_message_bytes, strict)


def find_bags(items: Iterable[str | Path]) -> list[Path]:
    """Bags named directly (directory, .mcap, .db3), plus every bag under other directories."""
    bags: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_file() or (path / 'metadata.yaml').is_file():
            bags.append(path)
        elif path.is_dir():
            bags += sorted(p.parent for p in path.rglob('metadata.yaml'))
        else:
            raise BagReadError(f'{str(item)!r}: no such bag or directory')
    return bags


def detect_topics(path: str | Path, require_ground_truth: bool = False) -> BagTopics:
    """The first shipped preset whose topics the bag has (for `--topics auto`)."""
    errors = []
    for name in ['sim', 'sim_compressed'] + [
            n for n in list_bag_topics() if n not in ('sim', 'sim_compressed')]:
        topics = load_bag_topics(name)
        try:
            with open_bag(path, topics, require_ground_truth=require_ground_truth):
                return topics
        except BagLayoutError as e:
            errors.append(str(e).split('\n')[0])
    with Reader(path) as r:
        available = {t: (i.msgtype or 'mixed types') for t, i in r.topics.items()}
    raise BagLayoutError(
        f'bag {str(path)!r} matches no topics preset ({list_bag_topics()}); pass a YAML'
        f' layout.\n' + '\n'.join(errors) + f'\nthe bag has:\n{_layout_listing(available)}')


def parse_json_string(msg: Any) -> dict[str, Any]:
    try:
        value = json.loads(msg.data)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class BagEpisode:
    """A whole (small) bag decoded into arrays; for tests and inspection, not for big bags."""

    topics: BagTopics
    info: dict[str, Any]
    images: list[tuple[int, np.ndarray]]         # (stamp_ns, (H, W, 3) uint8 RGB)
    radar: list[tuple[int, np.ndarray]]          # (stamp_ns, (N, 5) canonical float32)
    ground_truth: dict[int, Any]                 # stamp_ns -> DrivingDecision message
    ttc: dict[int, float]                        # stamp_ns -> expert ttc [s] (inf: none)
    stats: BagStats

    def summary(self) -> dict[str, Any]:
        return {'topics': asdict(self.topics), 'info': self.info, 'images': len(self.images),
                'radar': len(self.radar), 'ground_truth': len(self.ground_truth)}


def episode_from_bag(
    path: str | Path, topics: BagTopics | str | None = None, **kwargs: Any,
) -> BagEpisode:
    """Decode every camera, radar and ground-truth message of a bag (converter applied)."""
    with open_bag(path, topics, **kwargs) as bag:
        convert = load_preset(bag.topics.radar_preset).converter()
        ep = BagEpisode(bag.topics, {}, [], [], {}, {}, bag.stats)
        for m in bag.messages():
            if m.kind == 'image':
                ep.images.append((msg_stamp_ns(m.msg), np.array(image_to_rgb(m.msg))))
            elif m.kind == 'radar':
                ep.radar.append((msg_stamp_ns(m.msg), convert(m.msg)))
            elif m.kind == 'ground_truth':
                ep.ground_truth[msg_stamp_ns(m.msg)] = m.msg
            elif m.kind == 'expert':
                stamp, ttc = expert_ttc(m.msg)
                if stamp is not None:
                    ep.ttc[stamp] = ttc
            elif m.kind == 'episode' and not ep.info:
                ep.info = parse_json_string(m.msg)
    return ep


def expert_ttc(msg: Any) -> tuple[int | None, float]:
    """(stamp_ns, ttc) from an /sim/ground_truth/expert String; ttc null -> inf."""
    value = parse_json_string(msg)
    stamp = value.get('stamp_ns')
    ttc = value.get('ttc')
    return (int(stamp) if stamp is not None else None,
            float('inf') if ttc is None else float(ttc))
