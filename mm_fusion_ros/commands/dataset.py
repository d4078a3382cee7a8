"""`mm-fusion dataset`: simulator episodes -> training, validation and test caches.

Training, validation (model selection) and test (reported figures) episodes come from
disjoint seed ranges. The same cache comes out of
`mm-fusion record` + `mm-fusion cache` (through bags); this skips writing bags.

`test_perturbed` holds the test episodes again, each driven with the training split's
`DrivingNoise` (late reactions, acceleration offsets), labels still the expert's. On the
plain test split the recorded ego brakes from the first STOP frame on, so a model can read
the expert's decision from the ego's own motion (the copycat problem); there the ego's motion
no longer gives it away, and an open-loop ablation scores what each modality sees.
"""

import argparse
from typing import Any

from mm_fusion_ros.sensors.ego_motion import RADAR_EGO_MOTION
from mm_fusion_ros.sim.scenarios import MIX_PAIRINGS, balanced_mix_length

TRAIN_SEED = 0
VAL_SEED = 500_000  # held-out: best-epoch selection
TEST_SEED = 700_000  # held-out: reported figures; closed-loop evaluation uses 900_000+
SPLITS = ('train', 'val', 'test', 'test_perturbed')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='data/cache', help='writes OUT/<split> per split')
    parser.add_argument('--train-episodes', type=int, default=324)
    parser.add_argument('--val-episodes', type=int, default=108)
    # every scenario type meets every condition (216), so the per-condition rows of the
    # reported figures compare the same scenes (108 left out half of the pairs)
    parser.add_argument('--test-episodes', type=int, default=balanced_mix_length())
    add_mix_pairing_argument(parser)
    parser.add_argument('--duration', type=float, default=15.0, help='episode length [s]')
    parser.add_argument('--frame-stride', type=int, default=4, help='keep every k-th frame')
    parser.add_argument('--train-seed', type=int, default=TRAIN_SEED)
    parser.add_argument('--val-seed', type=int, default=VAL_SEED)
    parser.add_argument('--test-seed', type=int, default=TEST_SEED)
    parser.add_argument(
        '--driving-noise', type=float, default=1.5,
        help='[m/s^2] std of the acceleration offset the training split is driven with '
             '(DrivingNoise, half the episodes; 0 = the plain expert), and test_perturbed '
             '(every episode); val/test never')
    parser.add_argument(
        '--reaction-delay', type=float, default=2.0,
        help='[s] longest late reaction to a braking onset in the noisy training episodes '
             '(DrivingNoise.reaction_delay; 0 = none)')
    parser.add_argument(
        '--brake-pulse-rate', type=float, default=0.0,
        help='[1/s] unprompted brake pulses in the noisy training episodes, labels unchanged '
             '(DrivingNoise.brake_pulse_rate; 0 = none)')
    parser.add_argument(
        '--splits', default='train,val,test',
        help='comma list of the splits to build: train, val, test, test_perturbed (the test '
             'seeds, driven with the driving noise)')
    parser.add_argument(
        '--scenarios', type=scenario_types, default=None, metavar='TYPE,...',
        help='keep only these scenario types of the episode mix (same seeds and conditions '
             'as in the full mix; the episode counts still count the whole mix)')
    parser.add_argument(
        '--fovea-height', type=int, default=0,
        help='[px] fovea rows below the 256x128 view (FusionModelConfig.fovea_height; 0 = none)')
    parser.add_argument(
        '--radar-ego-motion', choices=RADAR_EGO_MOTION, default='raw',
        help="how the radar history shows the ego's motion (FusionModelConfig.radar_ego_motion)")
    parser.add_argument(
        '--camera', type=camera_size, default=None, metavar='WIDTHxHEIGHT',
        help='simulated camera [px] (default: 256x128, twice that with a fovea)')


def camera_size(text: str) -> tuple[int, int]:
    """'512x256' -> (512, 256)."""
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected WIDTHxHEIGHT, got {text!r}') from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f'camera size must be positive, got {text!r}')
    return width, height


def scenario_types(text: str) -> frozenset[str]:
    """'pedestrian_crossing,red_light' -> the ScenarioType values, checked."""
    from mm_fusion_ros.sim.scenarios import ScenarioType

    names = frozenset(t.strip() for t in text.split(',') if t.strip())
    known = {t.value for t in ScenarioType}
    if not names or not names <= known:
        raise argparse.ArgumentTypeError(
            f'unknown scenario types {sorted(names - known) or text!r}; known: {sorted(known)}')
    return names


def add_mix_pairing_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--mix-pairing', choices=MIX_PAIRINGS, default='balanced',
        help='how the scenario mix pairs types with conditions (sim.scenarios.scenario_mix; '
             'first = the formula stages 1-4 of make checkpoint were trained on)')


def sim_options(camera: tuple[int, int] | None, config: Any) -> Any:
    """SimOptions rendering `camera`, or by default the cache's view (twice it with a fovea)."""
    from mm_fusion_ros.sim.camera import CameraConfig
    from mm_fusion_ros.sim.simulator import SimOptions

    if camera is None:
        return SimOptions(camera=CameraConfig.for_view(config))
    return SimOptions(camera=CameraConfig(width=camera[0], height=camera[1]))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mm_fusion_ros.data.cache import CacheConfig, build_cache_from_sim, existing_cache_files
    from mm_fusion_ros.errors import UserInputError
    from mm_fusion_ros.sim.scenarios import scenario_mix
    from mm_fusion_ros.sim.simulator import DrivingNoise

    ranges = sorted([
        (args.train_seed, args.train_episodes), (args.val_seed, args.val_episodes),
        (args.test_seed, args.test_episodes),
    ])
    if any(a + n > b for (a, n), (b, _) in zip(ranges, ranges[1:], strict=False)):
        raise UserInputError('train, val and test seed ranges overlap')
    try:
        config = CacheConfig(frame_stride=args.frame_stride, fovea_height=args.fovea_height,
                             radar_ego_motion=args.radar_ego_motion)
    except ValueError as exc:  # --frame-stride out of range
        raise UserInputError(str(exc)) from None
    options = sim_options(args.camera, config)
    wanted = {s.strip() for s in args.splits.split(',')}
    unknown = wanted - set(SPLITS)
    if unknown:
        raise UserInputError(f'unknown splits {sorted(unknown)}; known: {list(SPLITS)}')
    noisy = args.driving_noise > 0 or args.reaction_delay > 0 or args.brake_pulse_rate > 0
    if 'test_perturbed' in wanted and not noisy:
        raise UserInputError('test_perturbed needs driving noise (--driving-noise, '
                             '--reaction-delay or --brake-pulse-rate > 0)')
    for split in sorted(wanted):  # before the first split is simulated, not after it
        if stale := existing_cache_files(Path(args.out) / split):
            raise UserInputError(f'{Path(args.out) / split} already holds a cache '
                                 f'({len(stale)} files); choose another --out')
    for split, episodes, seed, noise_share in (
        ('train', args.train_episodes, args.train_seed, 0.5),
        ('val', args.val_episodes, args.val_seed, 0.0),
        ('test', args.test_episodes, args.test_seed, 0.0),
        ('test_perturbed', args.test_episodes, args.test_seed, 1.0),
    ):
        if split not in wanted:
            continue
        episodes_mix = scenario_mix(episodes, seed=seed, duration=args.duration,
                                    pairing=args.mix_pairing)
        if args.scenarios is not None:
            episodes_mix = [e for e in episodes_mix if e.scenario.value in args.scenarios]
        result = build_cache_from_sim(
            episodes_mix,
            Path(args.out) / split,
            config,
            progress=True,
            options=options,
            noise=DrivingNoise(sigma=args.driving_noise, reaction_delay=args.reaction_delay,
                               brake_pulse_rate=args.brake_pulse_rate, episode_share=noise_share)
            if noise_share > 0 and noisy else None,
        )
        counts = result.manifest['class_counts']
        print(
            f'{split}: {result.samples} samples from {len(episodes_mix)} episodes '
            f'({options.camera.width}x{options.camera.height} camera) in '
            f'{result.seconds:.0f} s; data hash {result.data_hash[:16]}; classes {counts}'
        )
    return 0
