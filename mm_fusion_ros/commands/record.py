"""`mm-fusion record`: simulator episodes (the training scenario mix) to rosbag2, one per episode.

Each episode is driven by the expert, as for training data; bags carry the topics the live
sim publishes (see `mm_fusion_ros.bags.writer`). `--rig foreign` records them with a rig unlike
the training one (`sim.rig.FOREIGN_RIG`: another camera, an offset yawed radar at 15 Hz in the
CARLA-bridge layout, `/tf_static`, CameraInfo) and without a decision topic, as a user's
vehicle logs a drive: the expert's labels go to `hidden_labels/<bag>.json`, for scoring only,
and `topics.yaml` / `radar_preset.yaml` describe the layout for `--topics`. `--ray [ADDRESS]`
fans the episodes out as Ray tasks (local Ray without an address); the bags are the same as
the serial path's.
"""

import argparse
from pathlib import Path
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--episodes', type=int, default=12, help='number of episodes (bags)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the first episode')
    parser.add_argument('--out', required=True, help='output directory (one bag per episode)')
    parser.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'))
    parser.add_argument('--compressed', action='store_true', help='JPEG CompressedImage')
    parser.add_argument('--duration', type=float, default=15.0, help='episode length [s]')
    from mm_fusion_ros.sim.rig import RIGS

    parser.add_argument('--rig', default='training', choices=tuple(RIGS),
                        help='sensor rig (not training: no decision topic, hidden labels file;'
                        " foreign-*: the training rig with one of the foreign rig's differences)")
    parser.add_argument(
        '--ray',
        nargs='?',
        const='local',
        default=None,
        metavar='ADDRESS',
        help='record in parallel on Ray (local Ray without an address)',
    )


def bag_name(index: int, config: Any) -> str:
    return f'ep{index:05d}_{config.scenario.value}_{config.condition.value}_s{config.seed}'


def record_episode(config: Any, path: str, storage: str, compressed: bool,
                   rig: str = 'training') -> dict[str, Any]:
    """Simulate one episode and stream it into a bag; module level so Ray can ship it.

    A foreign rig's bag has no decision topic; the expert's labels are written to
    `<out>/hidden_labels/<bag>.json` beside it.
    """
    import json

    from mm_fusion_ros.bags.writer import BagWriteOptions, frame_stamp_ns, write_episode_bag
    from mm_fusion_ros.data.cache import sim_episode_frames
    from mm_fusion_ros.sim.rig import RIGS, RigSensors, rig_frames
    from mm_fusion_ros.sim.simulator import Simulator

    variant = RIGS[rig]
    sensors = RigSensors(variant)
    frames = rig_frames(sim_episode_frames(Simulator(config, variant.sim_options())), sensors)
    hidden: list[list[float]] = []
    if not variant.is_training:
        options = BagWriteOptions(
            storage=storage, compressed_images=compressed, radar_preset=variant.radar_preset,
            ground_truth=False, static_transforms=tuple(variant.static_transforms()),
            camera_frame_id=variant.optical_frame, radar_frame_id=variant.radar_frame)
        base = options.base_time_ns

        def keep_labels(stream: Any) -> Any:
            for frame in stream:
                hidden.append([frame_stamp_ns(base, frame.stamp), int(frame.label.action),
                               float(frame.label.target_acceleration)])
                yield frame

        frames = keep_labels(frames)
    else:
        options = BagWriteOptions(storage=storage, compressed_images=compressed)
    stats = write_episode_bag(path, frames, config, options=options, camera=variant.camera)
    if hidden:
        labels = Path(path).parent / 'hidden_labels' / f'{Path(path).name}.json'
        labels.parent.mkdir(parents=True, exist_ok=True)
        labels.write_text(json.dumps({'bag': Path(path).name, 'columns': [
            'stamp_ns', 'action', 'target_acceleration'], 'labels': hidden}))
    return {
        'path': str(stats.path),
        'frames': stats.frames,
        'bytes': stats.bytes,
        'seconds': stats.seconds,
    }


def write_rig_layout(out: str | Path, rig: str, compressed: bool) -> Path:
    """`topics.yaml` (for `--topics`) and `radar_preset.yaml` of a rig's bags; the topics path."""
    import yaml

    from mm_fusion_ros.bags import writer
    from mm_fusion_ros.sensors.radar_presets import preset_dirs
    from mm_fusion_ros.sim.rig import RIGS

    variant = RIGS[rig]
    out = Path(out).resolve()
    source = next(d / f'{variant.radar_preset}.yaml' for d in preset_dirs()
                  if (d / f'{variant.radar_preset}.yaml').is_file())
    preset = yaml.safe_load(source.read_text())
    preset.update(name=f'{rig}_radar', rate_hz=variant.radar_rate or 20.0,
                  description=f'{preset["description"]} Recorded at {variant.radar_rate} Hz.')
    (out / 'radar_preset.yaml').write_text(yaml.safe_dump(preset, sort_keys=False))
    topics = {
        'name': f'{rig}_rig', 'description': f'mm-fusion record --rig {rig}',
        'image_topic': writer.COMPRESSED_IMAGE_TOPIC if compressed else writer.IMAGE_TOPIC,
        'image_kind': 'compressed' if compressed else 'raw',
        'radar_topic': writer.RADAR_TOPIC, 'radar_preset': str(out / 'radar_preset.yaml'),
        'ground_truth_topic': None, 'expert_topic': None,
        'episode_topic': writer.EPISODE_TOPIC, 'odometry_topic': writer.ODOM_TOPIC,
        'camera_info_topic': writer.CAMERA_INFO_TOPIC,
        'tf_static_topic': writer.TF_STATIC_TOPIC, 'vehicle_frame': variant.vehicle_frame,
    }
    path = out / 'topics.yaml'
    path.write_text(yaml.safe_dump(topics, sort_keys=False))
    return path


def _jobs(args: argparse.Namespace) -> list[tuple[Any, str]]:
    from mm_fusion_ros.sim.scenarios import scenario_mix

    out = Path(args.out)
    configs = scenario_mix(args.episodes, seed=args.seed, duration=args.duration)
    return [(c, str(out / bag_name(i, c))) for i, c in enumerate(configs)]


def _serial(jobs: list[tuple[Any, str]], args: argparse.Namespace) -> list[dict[str, Any]]:
    from tqdm import tqdm

    results = []
    for config, path in tqdm(jobs, unit='bag', desc='record'):
        results.append(record_episode(config, path, args.storage, args.compressed, args.rig))
    return results


def _ray(jobs: list[tuple[Any, str]], args: argparse.Namespace) -> list[dict[str, Any]]:
    import ray
    from tqdm import tqdm

    from mm_fusion_ros.evaluation.ray_local import init_ray

    init_ray(None if args.ray == 'local' else args.ray)
    try:
        task = ray.remote(record_episode)
        pending = {
            task.remote(c, p, args.storage, args.compressed, args.rig): i
            for i, (c, p) in enumerate(jobs)
        }
        results: list[dict[str, Any] | None] = [None] * len(jobs)
        with tqdm(total=len(jobs), unit='bag', desc='record (ray)') as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    results[pending.pop(ref)] = ray.get(ref)
                    bar.update(1)
        return [r for r in results if r is not None]
    finally:
        ray.shutdown()


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1 or args.duration <= 0:
        print('record: --episodes must be >= 1 and --duration > 0', file=sys.stderr)
        return 2
    if args.ray is not None:
        try:
            import ray  # noqa: F401
        except ImportError:
            print(
                'record: --ray needs Ray, which is not installed'
                " (pip install 'mm_fusion_ros[ray]' or pip install ray)",
                file=sys.stderr,
            )
            return 2
    jobs = _jobs(args)
    existing = [p for _, p in jobs if Path(p).exists()]
    if existing:
        print(
            f'record: {len(existing)} bag(s) already exist, e.g. {existing[0]};'
            ' choose another --out or --seed',
            file=sys.stderr,
        )
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.rig != 'training':
        write_rig_layout(args.out, args.rig, args.compressed)
    results = _ray(jobs, args) if args.ray is not None else _serial(jobs, args)
    frames = sum(r['frames'] for r in results)
    size = sum(r['bytes'] for r in results)
    seconds = sum(r['seconds'] for r in results)
    print(
        f'recorded {len(results)} bags ({args.storage}) to {args.out}: {frames} frames,'
        f' {size / 1e6:.1f} MB, {frames / max(seconds, 1e-9):.0f} frames/s'
        ' (simulate + encode + write)'
    )
    return 0
