"""Fuzz run: N malformed sensor messages through the decoders, the pipeline and both nodes.

    python -m test.fuzz_run --cases 10000 [--explore] [--no-nodes]

The regression inputs (`fuzz_cases.regressions()`) go first, then N generated cases. Every
case goes (a) through `image_to_rgb` / `FusionPipeline.radar_points` + `add_radar` / `decide`
(a preset cloud through its own preset's converter) and (b) into fusion_node `_on_image` /
`_on_radar` and decision_node `_on_radar` (in process, random-weight checkpoint); most cases
(about 60 %) also send a fuzzed raw decision to decision_node `_on_decision`. Prints cases,
crashes (must be 0), outcomes by input kind and rejects by `SensorDecodeError.reason`, and the
time; exits 1 on any crash. Several processes with `--explore` draw different cases.
"""

import argparse
from collections import Counter
import sys
import tempfile
import time

from hypothesis import given
from hypothesis import strategies as st


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cases', type=int, default=10000)
    parser.add_argument('--explore', action='store_true',
                        help='new random cases (default: the derandomised CI cases)')
    parser.add_argument('--no-nodes', action='store_true', help='decoders and pipeline only')
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

            @fuzz_settings(args.cases, profile)
            @given(cases(), decisions)
            def one(case, decision) -> None:
                feed(fuzzer, case, decision)

            one()

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
    print(f'crashes: {len(crashes)}')
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
