"""`mm-fusion closed-loop`: the model drives held-out scenarios (pure core, no DDS).

Compares the fused model, the same weights run camera-only and radar-only, and the expert on
the same episodes: collisions, red-light violations, min-TTC distribution, progress, jerk.
With all three model drivers it also prints the on-policy ablation: each driver's model
decisions scored against the expert's labels on the states its own driving reached (macro-F1
per condition, `evaluation.ablation.on_policy_ablation`).

Rates come with exact 95 % intervals (Clopper-Pearson): collisions and red-light violations
per episode, phantom emergency brakes and stops per frame (`closed_loop.driver_rates`).
`--ray [ADDRESS]` fans the episodes out over Ray actors (a local Ray on loopback, or the
cluster at ADDRESS), each loading the model once; the rows are those of the serial loop.
`--rig NAME` drives with another sensor rig (`sim.rig.RIGS`, as `mm-fusion record --rig`):
the simulator renders that rig's camera and radar, and the model drivers read them through the
front end with the rig's geometry (`evaluation.rig_policy`); the expert does not see sensors.
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
    parser.add_argument('--num-threads', type=int, default=None,
                        help='CPU inference threads per process (default: 2; 1 with --ray)')
    parser.add_argument(
        '--ray', nargs='?', const='local', default=None, metavar='ADDRESS',
        help='run the episodes as Ray tasks: a local Ray on loopback, or join ADDRESS')
    parser.add_argument('--workers', type=int, default=None,
                        help='Ray actors (and CPUs of a local Ray); default: every CPU')
    from mm_fusion_ros.sim.rig import RIGS

    parser.add_argument('--rig', default='training', choices=tuple(RIGS),
                        help='sensor rig the simulator renders (default: the training rig)')


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    import json
    import math
    import os

    from tqdm import tqdm

    from mm_fusion_ros.bags import load_bag_topics
    from mm_fusion_ros.errors import UserInputError, check_output_file
    from mm_fusion_ros.evaluation.ablation import (
        MODALITIES,
        ablation_markdown,
        on_policy_ablation,
    )
    from mm_fusion_ros.evaluation.closed_loop import (
        EpisodeRunner,
        decision_report,
        driver_rates,
        model_macro_f1,
        outcomes_to_rows,
        rate_text,
        run_episodes_ray,
        summarize,
    )
    from mm_fusion_ros.evaluation.replay import node_configs
    from mm_fusion_ros.paths import resolve_checkpoint
    from mm_fusion_ros.report import table
    from mm_fusion_ros.sim.scenarios import scenario_mix

    drivers = [d.strip() for d in args.drivers.split(',') if d.strip()]
    known = (*MODALITIES, 'expert')
    if not drivers or set(drivers) - set(known):
        raise UserInputError(f'--drivers {args.drivers!r}: give a comma list of {known}')
    if args.episodes < 1 or not args.duration > 0:
        raise UserInputError('--episodes must be >= 1 and --duration > 0')
    if args.workers is not None and (args.workers < 1 or args.ray is None):
        raise UserInputError('--workers N (N >= 1) goes with --ray')
    if args.json:
        check_output_file(args.json, '--json')
    if args.ray is not None:
        try:
            import ray
        except ImportError:
            raise UserInputError("--ray needs Ray (pip install 'mm_fusion_ros[ray]' or pip "
                                 'install ray)') from None
    configs = scenario_mix(args.episodes, seed=args.seed, duration=args.duration)
    nodes = node_configs(load_bag_topics('sim'))  # fusion.yaml / decision.yaml, as the nodes
    with_model = any(d != 'expert' for d in drivers)
    threads = args.num_threads or (1 if args.ray is not None else 2)
    runner_args = {
        'checkpoint': str(resolve_checkpoint(args.checkpoint)) if with_model else None,
        'num_threads': threads, 'pipeline_config': nodes.pipeline,
        'safety_config': nodes.safety, 'with_model': with_model,
    }
    if args.rig != 'training':
        runner_args['rig'] = args.rig
    results: dict[str, list] = {d: [] for d in drivers}
    summaries, rates = [], {}

    def finish(driver: str) -> None:  # a driver's episodes are all in: its summary row
        outcomes = results[driver]
        s = summarize(outcomes)
        r = driver_rates(outcomes)
        rates[driver] = r
        row = {
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
        if driver != 'expert':
            row['model_macro_f1'] = model_macro_f1(outcomes)
            row['phantom_eb_%'] = 100 * r['phantom_eb_frames']['rate']
            row['phantom_stop_%'] = 100 * r['phantom_stop_frames']['rate']
        summaries.append(row)
        print(table(summaries[-1:], list(summaries[-1])), flush=True)

    jobs = [(d, c) for d in drivers for c in configs]
    if args.ray is None:
        runner = EpisodeRunner(**runner_args)
        for driver in drivers:
            for config in tqdm(configs, desc=driver, leave=False):
                results[driver].append(runner.run(driver, config))
            finish(driver)
    else:
        from mm_fusion_ros.evaluation.ray_local import init_ray

        local = args.ray in ('', 'local')
        workers = args.workers or (os.cpu_count() or 1)
        init_ray(None if local else args.ray,
                 **({'num_cpus': workers} if local else {}), log_to_driver=False)
        try:
            if not local and args.workers is None:
                workers = max(1, int(ray.cluster_resources().get('CPU', 1)))
            with tqdm(total=len(jobs), desc=f'closed loop (ray, {workers} workers)',
                      leave=False) as bar:

                def collect(i: int, outcome) -> None:
                    driver = jobs[i][0]
                    results[driver].append(outcome)
                    bar.update(1)
                    if len(results[driver]) == len(configs):
                        bar.clear()
                        finish(driver)

                run_episodes_ray(jobs, runner_args, workers, collect)
        finally:
            ray.shutdown()
    print()
    print(table(summaries, list(dict.fromkeys(k for row in summaries for k in row))))
    print('\nRates, exact 95 % intervals (frame rates count correlated frames: too narrow)')
    rate_rows = [{'driver': d, **{k: rate_text(v) for k, v in r.items()}}
                 for d, r in rates.items()]
    columns = list(dict.fromkeys(k for row in rate_rows for k in row))
    print(table(rate_rows, columns))
    decisions = {d: decision_report(results[d]) for d in drivers if d != 'expert'}
    for r in decisions.values():  # true TTC inf (nothing in path) as null, as in the rows
        r['first_emergency_brake_ttc_s'] = {
            k: [t if math.isfinite(t) else None for t in v]
            for k, v in r['first_emergency_brake_ttc_s'].items()}
    report = {'summary': summaries, 'rates': rates, 'decision_report': decisions}
    if args.rig != 'training':
        report['rig'] = args.rig
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
