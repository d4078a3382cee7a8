"""Sharded .npz training cache, built from bags of any layout or straight from the simulator.

Each sample is one camera frame that has a label with the same stamp: the bag's ground-truth
decision topic or, for a bag without one (`labels='derived'`, or `'auto'` on such a bag), the
label derived from the recorded driver's odometry and radar (`labels.label_bag`; frames it
leaves unlabelled are counted, never guessed). The sensor geometry is the bag's
(`bags.rig.bag_geometry`: /tf_static and CameraInfo where the layout names them, else the
`rig` given, by default the training rig's mounts), as replay evaluation takes it. Its radar
history is built exactly as `FusionPipeline` builds it in the node: preset converter ->
`preprocess_radar` -> `RadarSequenceBuffer.push(stamp_ns, points)` ->
`.sequence(camera_stamp_ns)` with `future_tolerance = sync_slop`. Which radar frames are in
the buffer when a camera frame is processed is fixed by stamps, not by arrival: every radar
frame stamped at or before the camera, plus a later one within `sync_slop` when this camera
is its nearest camera stamp (the frame an approximate-time sync pairs with it): the
`bags.delivery` rule, which replay evaluation uses too. The ego speed is the newest odometry
reading up to `sync_slop` after the camera stamp, as `FusionPipeline.speed_at` takes it (NaN
when none is younger than `odometry_max_age`). So a bag replayed from disk and the
simulator's own frames give byte-identical samples. The earlier frame is the camera frame
`camera_history` s before the sample's, picked by `CameraHistory` as the node picks it
(labelled or not, strided or not; the sample's own frame again when there is none).

Shard keys (S samples per shard; T, N, F = num_frames, max_points, 5 canonical features):

    image          (S, H, W, 3) uint8   RGB model frame (`model.preprocess.compose_frame`): the
                                        view at image_height x W, the fovea's rows below it
    previous_image (S, H, W, 3) uint8   the frame `camera_history` s earlier (or `image`)
    radar_points   (S, T, N, F) float32 (or float16, `points_dtype`), raw canonical units
    point_mask     (S, T, N)    bool
    frame_mask     (S, T)       bool
    time_offsets   (S, T)       float32 [s] radar stamp - camera stamp
    action         (S,)         int64   Action (the model's class order)
    target_accel   (S,)         float32 [m/s^2]
    ttc            (S,)         float32 [s] expert TTC, inf = no threat, nan = unknown
    ego_speed      (S,)         float32 [m/s] odometry forward speed, nan = unknown
    stamp_ns       (S,)         int64   camera stamp
    episode        (S,)         int32   index into manifest['sources']
    seed           (S,)         int64   scenario seed, -1 unknown
    scenario       (S,)         str     scenario type ('' unknown)
    condition      (S,)         str     condition ('' unknown)

`manifest.json` holds the config, per-shard sample counts and sha256, counts per class /
condition / scenario, and `data_hash`: sha256 over the shard files' bytes in order. Shards are
written as deterministic zip archives (fixed member timestamps, stored), so the same inputs
give the same hash on any machine.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
import hashlib
import json
import math
from pathlib import Path
import time
from typing import Any
import zipfile

import numpy as np

from mm_fusion_ros.actions import ACTION_LABELS
from mm_fusion_ros.bags.delivery import delivery_order
from mm_fusion_ros.bags.reader import (
    BagTopics,
    expert_ttc,
    find_bags,
    open_bag,
    parse_json_string,
)
from mm_fusion_ros.bags.writer import DEFAULT_BASE_TIME_NS, episode_info, frame_stamp_ns
from mm_fusion_ros.errors import UserInputError
from mm_fusion_ros.model.config import FOVEA_BOX
from mm_fusion_ros.model.preprocess import compose_frame
from mm_fusion_ros.sensors.ego_motion import check_radar_ego_motion
from mm_fusion_ros.sensors.errors import SensorDecodeError
from mm_fusion_ros.sensors.front_end import FrontEndConfig, SensorFrontEnd, SensorRig
from mm_fusion_ros.sensors.image import image_to_rgb
from mm_fusion_ros.sensors.odometry import EgoSpeedBuffer, OdometryError, forward_speed
from mm_fusion_ros.sensors.pointcloud import PointCloudMsg, create_cloud
from mm_fusion_ros.sensors.radar_features import NUM_RADAR_FEATURES
from mm_fusion_ros.sensors.radar_preprocess import RadarPreprocessConfig
from mm_fusion_ros.sensors.radar_presets import RadarPresetError, load_preset
from mm_fusion_ros.sim.camera import CameraConfig

NS = 1_000_000_000
CACHE_FORMAT = 'mm_fusion_cache'
CACHE_VERSION = 4  # 2: ego_speed; 3: previous_image; 4: fovea rows
MANIFEST = 'manifest.json'
SAMPLE_KEYS = ('image', 'previous_image', 'radar_points', 'point_mask', 'frame_mask',
               'time_offsets', 'action', 'target_accel', 'ttc', 'ego_speed', 'stamp_ns',
               'episode', 'seed', 'scenario', 'condition')
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class CacheConfig:
    """Sample geometry and sync; defaults are the model's (FusionModelConfig) and the node's."""

    num_frames: int = 8          # T radar frames of history
    max_points: int = 64         # N points per radar frame
    image_height: int = 128      # [px] model input (the whole view)
    image_width: int = 256       # [px]
    # FusionModelConfig.fovea_height / fovea_box; a cache with a fovea also trains models without
    # one (they read the top image_height rows). Meant for a camera twice the view's size.
    fovea_height: int = 0        # [px]
    fovea_box: tuple[float, float, float, float] = FOVEA_BOX
    sync_slop: float = FrontEndConfig.sync_slop  # [s] = the buffer's future tolerance
    preprocess: RadarPreprocessConfig = field(default_factory=RadarPreprocessConfig)
    frame_stride: int = 1        # keep every k-th labelled frame (20 Hz frames are near twins)
    shard_size: int = 1024       # samples per shard file
    points_dtype: str = 'float32'  # 'float32' | 'float16' for radar_points
    reorder_window: float = 0.5  # [s] how long a camera frame waits for late radar/labels
    odometry_max_age: float = FrontEndConfig.odometry_max_age  # [s] older: ego speed unknown
    camera_history: float = FrontEndConfig.camera_history  # [s] the earlier frame's age
    radar_ego_motion: str = 'raw'  # FusionModelConfig.radar_ego_motion
    max_message_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.frame_stride < 1 or self.shard_size < 1:
            raise ValueError('frame_stride and shard_size must be >= 1')
        if self.points_dtype not in ('float32', 'float16'):
            raise ValueError(f'points_dtype must be float32 or float16, got {self.points_dtype}')
        if self.reorder_window < 2 * self.sync_slop:
            raise ValueError('reorder_window must be >= 2 * sync_slop')
        check_radar_ego_motion(self.radar_ego_motion)

    def front_end_config(self, radar_preset: str, rig: SensorRig | None = None
                         ) -> FrontEndConfig:
        """The serving path's front end, reading what the cached model reads."""
        return FrontEndConfig(
            radar_preset=radar_preset, sync_slop=self.sync_slop, preprocess=self.preprocess,
            num_frames=self.num_frames, max_points=self.max_points,
            odometry_max_age=self.odometry_max_age, camera_history=self.camera_history,
            radar_ego_motion=self.radar_ego_motion,
            training_camera=CameraConfig.for_view(self), rig=rig or SensorRig())


@dataclass
class _Label:
    action: int
    target_accel: float
    ttc: float = math.nan


class _EpisodeSampler:
    """One episode's sensor front end (the serving path's) and sample assembly."""

    def __init__(self, cfg: CacheConfig, radar_preset: str, episode: int,
                 info: dict[str, Any], rig: SensorRig | None = None) -> None:
        self.cfg = cfg
        self.front = SensorFrontEnd(cfg.front_end_config(radar_preset, rig))
        self.episode = episode
        self.info = info
        self.labelled = 0  # labelled camera frames seen (the stride counter)

    def radar_points(self, cloud: Any) -> np.ndarray:
        return self.front.radar_points(cloud)

    def push(self, stamp_ns: int, points: np.ndarray) -> None:
        self.front.add_radar(stamp_ns, points)

    @property
    def ego_speed(self) -> EgoSpeedBuffer:
        return self.front.ego_speed

    def add_camera(self, stamp_ns: int, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(this frame at the model size, the one `camera_history` s earlier or None)."""
        cfg = self.cfg
        image = compose_frame(self.front.camera_view(rgb), cfg.image_height, cfg.image_width,
                              cfg.fovea_height, cfg.fovea_box)
        return image, self.front.add_camera(stamp_ns, image)

    def sample(
        self, stamp_ns: int, image: np.ndarray, previous: np.ndarray | None, label: _Label,
    ) -> dict[str, Any] | None:
        """The sample of one labelled camera frame (model-size images), None when skipped."""
        keep = self.labelled % self.cfg.frame_stride == 0
        self.labelled += 1
        if not keep:
            return None
        speed = self.front.speed_at(stamp_ns)
        seq = self.front.sequence(stamp_ns)
        info = self.info
        return {
            'image': image, 'previous_image': image if previous is None else previous,
            'radar_points': seq.points.astype(self.cfg.points_dtype),
            'point_mask': seq.point_mask, 'frame_mask': seq.frame_mask,
            'time_offsets': seq.time_offsets.astype(np.float32),
            'action': np.int64(label.action), 'target_accel': np.float32(label.target_accel),
            'ttc': np.float32(label.ttc),
            'ego_speed': np.float32(math.nan if speed is None else speed),
            'stamp_ns': np.int64(stamp_ns),
            'episode': np.int32(self.episode), 'seed': np.int64(info.get('seed', -1)),
            'scenario': str(info.get('scenario', '')),
            'condition': str(info.get('condition', '')),
        }


# -- sources: bags ------------------------------------------------------------------------------
@dataclass
class SourceStats:
    name: str
    camera_frames: int = 0
    samples: int = 0
    unlabelled: int = 0  # camera frames without a same-stamp ground truth
    rejected_messages: int = 0
    bad_odometry: int = 0  # odometry messages with a NaN/inf/implausible speed
    bad_radar: int = 0  # radar clouds the preset cannot decode (skipped)
    bad_images: int = 0  # camera frames that cannot be decoded or disagree with CameraInfo
    labels: str = 'topic'  # 'topic' (the bag's decision topic) | 'derived' (recorded driver)
    unlabelled_reasons: dict[str, int] = field(default_factory=dict)  # derived labels only
    geometry: str = ''  # where the mounts and intrinsics came from (`BagGeometry.describe`)
    info: dict[str, Any] = field(default_factory=dict)


LABEL_SOURCES = ('auto', 'topic', 'derived')


def derived_labels(path: str | Path, topics: BagTopics, stats: SourceStats) -> dict[int, _Label]:
    """Camera stamp -> label derived from the recorded driver (raises MissingOdometryError)."""
    from mm_fusion_ros.labels import UNLABELLED_REASONS
    from mm_fusion_ros.labels.bag import label_bag

    derived = label_bag(path, topics).labels
    reasons = derived.reasons[derived.reasons >= 0].astype(np.int64)
    counts = np.bincount(reasons, minlength=len(UNLABELLED_REASONS))
    stats.labels = 'derived'
    stats.unlabelled_reasons = {r: int(c) for r, c in zip(UNLABELLED_REASONS, counts,
                                                          strict=True) if c}
    return {int(t): _Label(int(a), float(acc)) for t, a, acc in
            zip(derived.stamps_ns, derived.actions, derived.accels, strict=True) if a >= 0}


def bag_samples(
    path: str | Path, topics: BagTopics, cfg: CacheConfig, episode: int, stats: SourceStats,
    labels: str = 'topic', rig: SensorRig | None = None,
) -> Iterator[dict[str, Any]]:
    """Samples of one bag, streamed in `bags.delivery` order (memory bounded by the window).

    `labels`: 'topic' (the decision topic, required), 'derived' (from the recorded driver) or
    'auto' (the topic when the bag has it, else derived). `rig`: the mounts used where the bag
    has no /tf_static (default: the training rig's).
    """
    from mm_fusion_ros.bags.rig import bag_geometry

    if labels not in LABEL_SOURCES:
        raise ValueError(f'labels must be one of {LABEL_SOURCES}, got {labels!r}')
    with open_bag(path, topics, require_ground_truth=labels == 'topic',
                  max_message_bytes=cfg.max_message_bytes) as bag:
        derive = labels == 'derived' or (labels == 'auto' and not bag.has_ground_truth)
    fixed = derived_labels(path, topics, stats) if derive else None
    geometry = bag_geometry(path, topics, rig, max_message_bytes=cfg.max_message_bytes)
    stats.geometry = geometry.describe()
    with open_bag(path, topics, require_ground_truth=not derive,
                  max_message_bytes=cfg.max_message_bytes) as bag:
        sampler = _EpisodeSampler(cfg, topics.radar_preset, episode, {}, geometry.rig)
        labels_at: dict[int, _Label] = {}
        ttcs: dict[int, float] = {}
        for ev in delivery_order(bag, cfg.sync_slop, cfg.reorder_window):
            if ev.kind == 'camera':
                stats.camera_frames += 1
                try:
                    image, previous = sampler.add_camera(ev.stamp_ns, image_to_rgb(ev.msg))
                except SensorDecodeError:
                    stats.bad_images += 1
                    continue
                label = (fixed.get(ev.stamp_ns) if fixed is not None
                         else labels_at.get(ev.stamp_ns))
                if label is None:
                    stats.unlabelled += 1
                else:
                    label.ttc = ttcs.get(ev.stamp_ns, math.nan)
                    sample = sampler.sample(ev.stamp_ns, image, previous, label)
                    if sample is not None:
                        stats.samples += 1
                        yield sample
                for d in (labels_at, ttcs):
                    for s in [s for s in d if s <= ev.stamp_ns]:
                        del d[s]
            elif ev.kind == 'radar':
                try:
                    sampler.push(ev.stamp_ns, sampler.radar_points(ev.msg))
                except (ValueError, RadarPresetError):
                    stats.bad_radar += 1
            elif ev.kind == 'ground_truth' and fixed is None:
                labels_at[ev.stamp_ns] = _Label(int(ev.msg.action),
                                                float(ev.msg.target_acceleration))
            elif ev.kind == 'odometry':
                try:
                    sampler.ego_speed.push(ev.stamp_ns, forward_speed(ev.msg))
                except OdometryError:
                    stats.bad_odometry += 1
            elif ev.kind == 'expert':
                stamp, ttc = expert_ttc(ev.msg)
                if stamp is not None:
                    ttcs[stamp] = ttc
            elif ev.kind == 'episode' and not sampler.info:
                sampler.info = stats.info = parse_json_string(ev.msg)
        stats.rejected_messages = bag.stats.rejected_count


# -- sources: the simulator ---------------------------------------------------------------------
def sim_samples(
    frames: Iterable[Any], config: Any, cfg: CacheConfig, episode: int, stats: SourceStats,
    base_time_ns: int = DEFAULT_BASE_TIME_NS,
) -> Iterator[dict[str, Any]]:
    """Samples of simulator frames, equal to writing them to a bag and reading it back."""
    info = episode_info(config, base_time_ns)
    stats.info = info
    sampler = _EpisodeSampler(cfg, 'sim', episode, info)
    fields = load_preset('sim').layout_fields()
    for frame in frames:
        stamp = frame_stamp_ns(base_time_ns, frame.stamp)
        sampler.ego_speed.push(stamp, float(frame.ego.speed))  # what the bag's odometry holds
        if frame.radar is not None:
            cloud = create_cloud(None, fields, np.asarray(frame.radar[:, :5], np.float32),
                                 msg_type=PointCloudMsg)
            sampler.push(frame_stamp_ns(base_time_ns, frame.radar_stamp),
                         sampler.radar_points(cloud))
        if frame.rgb is None:
            continue
        stats.camera_frames += 1
        ttc = float(frame.label.ttc)
        label = _Label(int(frame.label.action),
                       float(np.float32(frame.label.target_acceleration)), ttc)
        image, previous = sampler.add_camera(stamp, frame.rgb)
        sample = sampler.sample(stamp, image, previous, label)
        if sample is not None:
            stats.samples += 1
            yield sample


# -- shard writing ------------------------------------------------------------------------------
def write_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """np.savez-compatible archive with fixed member metadata; returns the file's sha256."""
    tmp = path.with_suffix('.tmp')
    with zipfile.ZipFile(tmp, 'w', compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f'{key}.npy', date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, 'w', force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
    tmp.replace(path)
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open('rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


class _ShardWriter:
    def __init__(self, out_dir: Path, shard_size: int) -> None:
        self.out_dir = out_dir
        self.shard_size = shard_size
        self.pending: list[dict[str, Any]] = []
        self.shards: list[dict[str, Any]] = []
        self.counts: dict[str, Counter] = {k: Counter() for k in ('action', 'condition',
                                                                   'scenario')}

    def add(self, sample: dict[str, Any]) -> None:
        self.pending.append(sample)
        self.counts['action'][ACTION_LABELS[int(sample['action'])]] += 1
        self.counts['condition'][sample['condition']] += 1
        self.counts['scenario'][sample['scenario']] += 1
        if len(self.pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        arrays = {k: np.stack([np.asarray(s[k]) for s in self.pending]) for k in SAMPLE_KEYS}
        name = f'shard-{len(self.shards):05d}.npz'
        digest = write_npz_deterministic(self.out_dir / name, arrays)
        self.shards.append({'file': name, 'samples': len(self.pending), 'sha256': digest})
        self.pending = []


@dataclass
class CacheResult:
    out_dir: Path
    manifest: dict[str, Any]
    seconds: float

    @property
    def samples(self) -> int:
        return int(self.manifest['num_samples'])

    @property
    def data_hash(self) -> str:
        return str(self.manifest['data_hash'])


def existing_cache_files(out_dir: str | Path) -> list[Path]:
    """The shards and manifest already in `out_dir` (a cache is never written over)."""
    out = Path(out_dir)
    return list(out.glob('shard-*.npz')) + list(out.glob(MANIFEST)) if out.is_dir() else []


def _prepare_out(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stale = existing_cache_files(out)
    if stale:
        raise FileExistsError(f'{out} already holds a cache ({len(stale)} files); use a new'
                              ' directory')
    return out


def _finish(out: Path, writer: _ShardWriter, cfg: CacheConfig, sources: list[SourceStats],
            t0: float, origin: str, extra: dict[str, Any] | None = None) -> CacheResult:
    writer.flush()
    h = hashlib.sha256()
    for shard in writer.shards:
        with (out / shard['file']).open('rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                h.update(block)
    cfg_dict = asdict(cfg)
    manifest = {
        'format': CACHE_FORMAT, 'version': CACHE_VERSION, 'origin': origin,
        'config': cfg_dict,
        **(extra or {}),
        'num_samples': sum(s['samples'] for s in writer.shards),
        'image_shape': [cfg.image_height + cfg.fovea_height, cfg.image_width, 3],
        'radar_shape': [cfg.num_frames, cfg.max_points, NUM_RADAR_FEATURES],
        'class_labels': list(ACTION_LABELS),
        'class_counts': {lab: writer.counts['action'].get(lab, 0) for lab in ACTION_LABELS},
        'condition_counts': dict(sorted(writer.counts['condition'].items())),
        'scenario_counts': dict(sorted(writer.counts['scenario'].items())),
        'shards': writer.shards,
        'sources': [asdict(s) for s in sources],
        'data_hash': h.hexdigest(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + '\n')
    return CacheResult(out, manifest, time.perf_counter() - t0)


def build_cache_from_bags(
    bags: Iterable[str | Path], out_dir: str | Path, topics: BagTopics | None = None,
    config: CacheConfig | None = None, progress: bool = False, labels: str = 'topic',
    rig: SensorRig | None = None,
) -> CacheResult:
    """Cache every labelled camera frame of `bags` (in the order given) into `out_dir`.

    Items may be bags or directories holding bags (searched recursively, sorted). `topics`
    None detects the layout per bag among the shipped presets. `labels` and `rig`: see
    `bag_samples`.
    """
    cfg = config or CacheConfig()
    bags = find_bags(bags)
    out = _prepare_out(out_dir)
    writer = _ShardWriter(out, cfg.shard_size)
    sources: list[SourceStats] = []
    t0 = time.perf_counter()
    for i, bag in enumerate(_progress(bags, progress, 'bags')):
        layout = topics or _detect(bag, labels)
        stats = SourceStats(name=str(bag))
        sources.append(stats)
        for sample in bag_samples(bag, layout, cfg, i, stats, labels, rig):
            writer.add(sample)
    return _finish(out, writer, cfg, sources, t0, 'bags', {'labels': labels})


def _detect(bag: Path, labels: str = 'topic') -> BagTopics:
    from mm_fusion_ros.bags.reader import detect_topics

    return detect_topics(bag, require_ground_truth=labels == 'topic')


def build_cache_from_sim(
    configs: Iterable[Any], out_dir: str | Path, config: CacheConfig | None = None,
    base_time_ns: int = DEFAULT_BASE_TIME_NS, progress: bool = False,
    options: Any = None, noise: Any = None, driver: Any = None,
    extra: dict[str, Any] | None = None,
) -> CacheResult:
    """The same cache as sim -> bag -> cache, without writing bags (for big training runs).

    Each ScenarioConfig runs closed-loop under the expert (as `mm-fusion record` does), with
    `noise` (`sim.simulator.DrivingNoise`) on its executed acceleration when given, or under
    `driver` (a policy with `reset()`, e.g. `evaluation.closed_loop.ModelPolicy`: DAgger data);
    labels are always the expert's. Frames are streamed into the shards; `extra` goes into the
    manifest.
    """
    if noise is not None and driver is not None:
        raise ValueError('pass noise (expert-driven) or driver, not both')
    from mm_fusion_ros.sim.camera import CameraModel
    from mm_fusion_ros.sim.simulator import SimOptions, Simulator

    cfg = config or CacheConfig()
    out = _prepare_out(out_dir)
    writer = _ShardWriter(out, cfg.shard_size)
    sources: list[SourceStats] = []
    t0 = time.perf_counter()
    opts = options or SimOptions()
    camera = CameraModel(opts.camera)
    for i, sc in enumerate(_progress(list(configs), progress, 'episodes')):
        stats = SourceStats(name=f'sim:{sc.scenario.value}/{sc.condition.value}/seed{sc.seed}')
        sources.append(stats)
        if driver is not None:
            driver.reset()
        frames = sim_episode_frames(Simulator(sc, opts, camera), noise, driver)
        for sample in sim_samples(frames, sc, cfg, i, stats, base_time_ns):
            writer.add(sample)
    return _finish(out, writer, cfg, sources, t0, 'sim',
                   {'driving_noise': asdict(noise) if noise is not None else None,
                    **(extra or {})})


def sim_episode_frames(sim: Any, noise: Any = None, driver: Any = None) -> Iterator[Any]:
    """Frames of one episode, generated lazily.

    Driven by `driver` when given, else by the expert (with `DrivingNoise` when given).
    """
    from mm_fusion_ros.sim.simulator import NoisyExpertPolicy, expert_policy

    if driver is not None:
        policy = driver
    elif noise is not None:
        policy = NoisyExpertPolicy(noise, sim.config.seed, sim.config.dt)
    else:
        policy = expert_policy
    frame = sim.reset()
    yield frame
    while not frame.done:
        frame = sim.step(policy(frame))
        yield frame


def _progress(items: list, enabled: bool, unit: str) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, unit=unit)


class CacheError(UserInputError, ValueError):
    """A cache directory that is missing, has no or a malformed manifest, or corrupt shards."""


# manifest key -> type; `config` must hold what readers of the frames look up
_MANIFEST_TYPES = {'config': dict, 'shards': list, 'class_counts': dict, 'data_hash': str,
                   'num_samples': int}
_CONFIG_KEYS = ('image_height', 'image_width', 'fovea_height', 'fovea_box', 'camera_history')


def load_manifest(cache_dir: str | Path) -> dict[str, Any]:
    """The cache's manifest, checked: format, version, keys, shard entries and counts.

    Raises CacheError (a ValueError) naming the directory or file and what is wrong.
    """
    root = Path(cache_dir)
    path = root / MANIFEST
    if not root.is_dir():
        raise CacheError(f'cache directory {root} not found' if not root.exists()
                         else f'cache {root} is a file, not a cache directory')
    if not path.is_file():
        raise CacheError(f'{root} is not a training cache: it has no {MANIFEST} '
                         f'(build one with mm-fusion dataset, cache or dagger)')
    try:
        manifest = json.loads(path.read_text())
    except OSError as e:
        raise CacheError(f'cannot read {path}: {e.strerror}') from None
    except UnicodeDecodeError:
        raise CacheError(f'{path}: not a training cache manifest (not text)') from None
    except json.JSONDecodeError as e:
        raise CacheError(f'{path}: not a training cache manifest (not JSON: {e.msg} at '
                         f'line {e.lineno}, column {e.colno})') from None
    if not isinstance(manifest, dict):
        raise CacheError(f'{path}: not a training cache manifest (a JSON '
                         f'{type(manifest).__name__}, not an object)')
    if manifest.get('format') != CACHE_FORMAT:
        raise CacheError(f'{path}: format {manifest.get("format")!r}, expected {CACHE_FORMAT}')
    if manifest.get('version') != CACHE_VERSION:
        raise CacheError(f'{path}: cache version {manifest.get("version")}, this code reads'
                         f' {CACHE_VERSION}; rebuild the cache')
    if problem := _manifest_problem(manifest):
        raise CacheError(f'{path}: {problem}; rebuild the cache')
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    for key, kind in _MANIFEST_TYPES.items():
        if not isinstance(manifest.get(key), kind):
            return f'{key!r} is missing or not a {kind.__name__}'
    if missing := [k for k in _CONFIG_KEYS if k not in manifest['config']]:
        return f'config lacks {missing}'
    for i, shard in enumerate(manifest['shards']):
        name = shard.get('file') if isinstance(shard, dict) else None
        samples = shard.get('samples') if isinstance(shard, dict) else None
        if not isinstance(name, str) or not isinstance(samples, int) or samples < 0:
            return f'shard entry {i} needs a file name and a sample count, got {shard!r}'
        if Path(name).name != name or name in ('', '.', '..'):
            return f'shard entry {i} names {name!r}, not a file of the cache directory'
    if sum(s['samples'] for s in manifest['shards']) != manifest['num_samples']:
        return f'its shards hold {sum(s["samples"] for s in manifest["shards"])} samples, ' \
               f'num_samples says {manifest["num_samples"]}'
    return None


def verify_cache(cache_dir: str | Path) -> bool:
    """True when every shard's sha256 still matches the manifest."""
    manifest = load_manifest(cache_dir)
    return all(file_sha256(Path(cache_dir) / s['file']) == s['sha256'] for s in manifest['shards'])
