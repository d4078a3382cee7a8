"""`mm-fusion closed-loop`: the model drives held-out scenarios (pure core, no DDS).

Compares the fused model, the same weights run camera-only and radar-only, and the expert on
the same episodes: collisions, red-light violations, min-TTC distribution, progress, jerk.
With all three model drivers it also prints the on-policy ablation: each driver's model
decisions scored against the expert's labels on the states its own driving reached (macro-F1
per condition, `evaluation.ablation.on_policy_ablation`).
"""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--episodes', type=int, default=200)
    parser.add_argument('--duration', type=float, default=12.0, help='episode length [s]')
    parser.add_argument('--seed', type=int, default=900_000, help='first held-out seed')
    parser.add_argument('--checkpoint', default=None, help='model .pt (default: shipped)')
    parser.add_argument(
        '--drivers',
        default='fused,camera,radar,expert',
        help='comma list of fused, camera, radar, expert',
    )
    parser.add_argument('--json', default=None, help='write per-episode rows and summaries')
    parser.add_argument('--num-threads', type=int, default=2)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    import json
    import math

    from tqdm import tqdm

    from mm_fusion_ros.bags import load_bag_topics
    from mm_fusion_ros.errors import UserInputError, check_output_file
    from mm_fusion_ros.evaluation.ablation import (
        MODALITIES,
        ablation_markdown,
        on_policy_ablation,
    )
    from mm_fusion_ros.evaluation.closed_loop import (
        ModelPolicy,
        drive,
        outcomes_to_rows,
        summarize,
    )
    from mm_fusion_ros.evaluation.replay import node_configs
    from mm_fusion_ros.model.predictor import FusionPredictor
    from mm_fusion_ros.paths import resolve_checkpoint
    from mm_fusion_ros.report import table
    from mm_fusion_ros.sim.camera import CameraConfig, CameraModel
    from mm_fusion_ros.sim.scenarios import scenario_mix
    from mm_fusion_ros.sim.simulator import expert_policy

    drivers = [d.strip() for d in args.drivers.split(',') if d.strip()]
    known = (*MODALITIES, 'expert')
    if not drivers or set(drivers) - set(known):
        raise UserInputError(f'--drivers {args.drivers!r}: give a comma list of {known}')
    if args.episodes < 1 or not args.duration > 0:
        raise UserInputError('--episodes must be >= 1 and --duration > 0')
    if args.json:
        check_output_file(args.json, '--json')
    configs = scenario_mix(args.episodes, seed=args.seed, duration=args.duration)
    predictor = None
    if any(d != 'expert' for d in drivers):
        predictor = FusionPredictor.from_checkpoint(
            resolve_checkpoint(args.checkpoint), device='cpu', num_threads=args.num_threads
        )
        predictor.warmup(('fused', 'camera', 'radar'))
    # The camera the model was trained on (twice its view with a fovea).
    camera = CameraModel(CameraConfig() if predictor is None
                         else CameraConfig.for_view(predictor.config))
    nodes = node_configs(load_bag_topics('sim'))  # fusion.yaml / decision.yaml, as the nodes
    results, summaries = {}, []
    for driver in drivers:
        outcomes = []
        for config in tqdm(configs, desc=driver, leave=False):
            if driver == 'expert':
                outcomes.append(drive(config, expert_policy, camera, render=False))
            else:
                outcomes.append(drive(config, ModelPolicy(predictor, driver, nodes.pipeline,
                                                          nodes.safety), camera))
        results[driver] = outcomes
        s = summarize(outcomes)
        summaries.append(
            {
                'driver': driver,
                'episodes': s['episodes'],
                'collisions': s['collisions'],
                'red_light_violations': s['red_light_violations'],
                'min_ttc_p5_s': s['min_ttc'].get('p5', math.inf),
                'min_ttc_p50_s': s['min_ttc'].get('p50', math.inf),
                'min_ttc<1s': s['min_ttc_below_1s'],
                'progress_m': s['mean_progress_m'],
                'rms_jerk': s['mean_rms_jerk'],
                'agreement': s['mean_agreement'],
            }
        )
        print(table(summaries[-1:], list(summaries[-1])), flush=True)
    print()
    print(table(summaries, list(summaries[0])))
    report = {'summary': summaries}
    if all(m in results for m in MODALITIES):
        ablation = on_policy_ablation({m: results[m] for m in MODALITIES})
        print('\nOn policy: each model scored against the expert on the frames it drove to')
        print(ablation_markdown(ablation))
        report['on_policy_ablation'] = asdict(ablation)
    if args.json:
        report['episodes'] = {d: outcomes_to_rows(o) for d, o in results.items()}
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    return 0
