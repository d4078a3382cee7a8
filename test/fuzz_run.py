"""Fuzz run: N malformed sensor messages through the decoders, the pipeline and both nodes.

    python -m test.fuzz_run --cases 10000 [--explore] [--no-nodes]

Every case goes (a) through `image_to_rgb` / `FusionPipeline.radar_points` + `add_radar` /
`decide` and (b) into fusion_node `_on_image` / `_on_radar` and decision_node `_on_radar`
(in process, random-weight checkpoint); most cases (about 60 %) also send a fuzzed raw decision
to decision_node `_on_decision`. Prints cases, crashes (must be 0), rejects by kind and time;
exits 1 on any crash.
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

    from test.fuzz_cases import FuzzCrashError, cases, check_decode, fuzz_settings, kind_of

    outcomes: Counter = Counter()
    crashes: list[str] = []
    with tempfile.TemporaryDirectory(prefix='mm_fuzz_') as tmp:
        from test.fuzz_nodes import fuzz_graph, random_checkpoint, raw_decisions

        ckpt = random_checkpoint(f'{tmp}/random.pt')
        from mm_fusion_ros.model.predictor import FusionPredictor
        from mm_fusion_ros.pipeline import FusionPipeline

        pipeline = FusionPipeline(FusionPredictor.from_checkpoint(ckpt, 'cpu', num_threads=1))
        profile = 'fuzz-explore' if args.explore else 'fuzz-ci'
        start = time.perf_counter()

        def run(fuzzer) -> None:
            # Most cases (about 60 %) also carry a raw decision for decision_node.
            decisions = st.none() if fuzzer is None else st.none() | raw_decisions()

            @fuzz_settings(args.cases, profile)
            @given(cases(), decisions)
            def one(case, decision) -> None:
                kind = kind_of(case)
                try:
                    outcomes[f'{kind}: decode {check_decode(case, pipeline)}'] += 1
                    if fuzzer is not None:
                        outcomes[f'{kind}: nodes {fuzzer.feed(case)}'] += 1
                        if decision is not None:
                            outcomes[f'decision: node {fuzzer.feed_decision(decision)}'] += 1
                        if outcomes.total() % 50 == 0:
                            fuzzer.spin(0.0)
                except FuzzCrashError as exc:
                    crashes.append(str(exc))
                    outcomes[f'{kind}: CRASH'] += 1

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
    print(f'fuzz: {n_cases} cases in {elapsed:.1f} s ({n_cases / elapsed:.0f} cases/s), '
          f'profile {profile}')
    print(f'crashes: {len(crashes)}')
    for key in sorted(outcomes):
        print(f'  {key:32s} {outcomes[key]:6d}')
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
