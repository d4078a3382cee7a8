"""Fuzz run: N malformed sensor messages through the decoders, the pipeline and both nodes.

    python -m test.fuzz_run --cases 10000 [--explore] [--no-nodes]

The regression inputs (`fuzz_cases.regressions()`) go first, then N generated cases. Every
case goes (a) through `image_to_rgb` / `FusionPipeline.radar_points` + `add_radar` / `decide`
(a preset cloud through its own preset's converter) and (b) into fusion_node `_on_image` /
`_on_radar` and decision_node `_on_radar` (in process, random-weight checkpoint); most cases
(about 60 %) also send a fuzzed raw decision to decision_node `_on_decision`. Prints cases,
crashes (must be 0), outcomes by input kind and rejects by `SensorDecodeError.reason`, the
time and the peak RSS; exits 1 on any crash. Several processes with `--explore` draw different
cases.

A run longer than `--batch` cases is drawn in batches (one hypothesis run each, seeded 0, 1,
2, ... without `--explore`, random with it), with a progress line per batch on stderr (cases,
crashes, RSS, time): a case that takes minutes or gigabytes shows up there. The long run of
issue 26 (>= 100,000 inputs, 0 crashes):

    python -m test.fuzz_run --cases 100000 --explore --no-nodes   # decoders + pipeline
    python -m test.fuzz_run --cases 5000 --explore                # + both nodes' callbacks
"""

import argparse
from collections import Counter
import random
import resource
import sys
import tempfile
import time

from hypothesis import given, seed, settings
from hypothesis import strategies as st


def _rss_mib() -> float:
    """Current resident set of this process [MiB] (Linux /proc; 0 elsewhere)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cases', type=int, default=10000)
    parser.add_argument('--explore', action='store_true',
                        help='new random cases (default: the derandomised CI cases)')
    parser.add_argument('--no-nodes', action='store_true', help='decoders and pipeline only')
    parser.add_argument('--batch', type=int, default=1000,
                        help='cases per hypothesis run (bounds its memory)')
    args = parser.parse_args(argv)

    from test.fuzz_cases import (
        FuzzCrashError,
        cases,
        check_decode,
        fuzz_settings,
        kind_of,
        label_of,
        regressions,
    )

    outcomes: Counter = Counter()
    reasons: Counter = Counter()  # decode rejects by reason
    crashes: list[str] = []
    with tempfile.TemporaryDirectory(prefix='mm_fuzz_') as tmp:
        from test.fuzz_nodes import fuzz_graph, random_checkpoint, raw_decisions

        ckpt = random_checkpoint(f'{tmp}/random.pt')
        from mm_fusion_ros.model.predictor import FusionPredictor
        from mm_fusion_ros.pipeline import FusionPipeline

        pipeline = FusionPipeline(FusionPredictor.from_checkpoint(ckpt, 'cpu', num_threads=1))
        profile = 'fuzz-explore' if args.explore else 'fuzz-ci'
        start = time.perf_counter()

        def feed(fuzzer, case, decision) -> None:
            label = label_of(case)
            try:
                outcome = check_decode(case, pipeline)
                outcomes[f'{label}: decode {outcome.split(":")[0]}'] += 1
                if outcome.startswith('reject:'):
                    reasons[f'{kind_of(case)}: {outcome[7:]}'] += 1
                if fuzzer is not None:
                    outcomes[f'{label}: nodes {fuzzer.feed(case)}'] += 1
                    if decision is not None:
                        outcomes[f'decision: node {fuzzer.feed_decision(decision)}'] += 1
                    if outcomes.total() % 50 == 0:
                        fuzzer.spin(0.0)
            except FuzzCrashError as exc:
                crashes.append(str(exc))
                outcomes[f'{label}: CRASH'] += 1

        def run(fuzzer) -> None:
            for _, case in regressions():
                feed(fuzzer, case, None)
            # Most cases (about 60 %) also carry a raw decision for decision_node.
            decisions = st.none() if fuzzer is None else st.none() | raw_decisions()

            first = random.SystemRandom().getrandbits(64) if args.explore else 0
            left, batch = args.cases, 0
            while left > 0:
                n = min(left, max(1, args.batch))
                if args.cases <= args.batch:  # one run: the profile's own (CI) cases
                    run_settings = fuzz_settings(n, profile)
                else:
                    run_settings = settings(fuzz_settings(n, profile), derandomize=False)

                @seed(first + batch)
                @run_settings
                @given(cases(), decisions)
                def one(case, decision) -> None:
                    feed(fuzzer, case, decision)

                one()
                left -= n
                batch += 1
                if args.cases > args.batch:
                    print(f'  batch {batch}: {args.cases - left} cases, {len(crashes)} crashes,'
                          f' RSS {_rss_mib():.0f} MiB, {time.perf_counter() - start:.0f} s',
                          file=sys.stderr, flush=True)

        if args.no_nodes:
            run(None)
            real = fake = 0
        else:
            with fuzz_graph(ckpt) as fuzzer:
                run(fuzzer)
                stats = fuzzer.fusion.stats()
                decision_counts = dict(fuzzer.decision._counts)
                real, fake = fuzzer.real, fuzzer.fake
        elapsed = time.perf_counter() - start

    n_cases = sum(v for k, v in outcomes.items() if ': decode ' in k or k.endswith('CRASH'))
    print(f'fuzz: {n_cases} cases ({len(regressions())} regression inputs) in {elapsed:.1f} s'
          f' ({n_cases / elapsed:.0f} cases/s), profile {profile}')
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'crashes: {len(crashes)}; peak RSS {peak:.0f} MiB')
    for key in sorted(outcomes):
        print(f'  {key:40s} {outcomes[key]:7d}')
    print('decode rejects by reason:')
    for key in sorted(reasons):
        print(f'  {key:40s} {reasons[key]:7d}')
    if not args.no_nodes:
        print(f'  node inputs: {real} real sensor_msgs messages, {fake} message-like objects'
              ' (values the message class cannot hold)')
        keys = ('camera_frames', 'image_rejected', 'radar_frames', 'radar_rejected',
                'decisions', 'degraded', 'dropped', 'clock_resets')
        print('  fusion_node stats: ' + ', '.join(f'{k} {stats[k]}' for k in keys))
        print('  decision_node counts: '
              + ', '.join(f'{k} {v}' for k, v in decision_counts.items()))
    for text, count in Counter(crashes).most_common(10):
        print(f'  CRASH x{count}: {text[:300]}')
    return 1 if crashes else 0


if __name__ == '__main__':
    sys.exit(main())
