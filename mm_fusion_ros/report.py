"""Plain-text tables for the command line (closed-loop metrics, latency)."""

import math

from mm_fusion_ros.evaluation.closed_loop import summarize


def _fmt(value) -> str:
    if isinstance(value, float):
        return 'inf' if math.isinf(value) else f'{value:.2f}'
    return str(value)


def table(rows: list[dict], columns: list[str]) -> str:
    cells = [[_fmt(r.get(c, '')) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ['  '.join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append('  '.join('-' * w for w in widths))
    lines += ['  '.join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return '\n'.join(lines)


def print_closed_loop_report(result) -> None:
    print('\nClosed loop through the ROS graph (sim_node -> fusion_node -> decision_node):')
    rows = []
    for m, e in zip(result.model, result.expert, strict=True):
        rows.append(
            {
                'scenario': m.scenario,
                'condition': m.condition,
                'collision': m.collision,
                'red_light': m.red_light_violation,
                'min_ttc_s': m.min_ttc,
                'progress_m': m.progress,
                'expert_progress_m': e.progress,
                'agreement': m.agreement,
            }
        )
    print(table(rows, list(rows[0]) if rows else []))
    summary_rows = []
    for name, outcomes in (('model (graph)', result.model), ('expert', result.expert)):
        s = summarize(outcomes)
        summary_rows.append(
            {
                'driver': name,
                'episodes': s['episodes'],
                'collisions': s['collisions'],
                'red_light_violations': s['red_light_violations'],
                'min_ttc_p5_s': s['min_ttc'].get('p5', math.inf),
                'mean_progress_m': s['mean_progress_m'],
                'mean_rms_jerk': s['mean_rms_jerk'],
            }
        )
    print()
    print(table(summary_rows, list(summary_rows[0])))
    st = result.fusion_stats
    print('\nLatency (fusion_node, image arrival -> decision publish; model forward):')
    print(
        table(
            [
                {
                    'metric': 'arrival->publish',
                    'p50_ms': st['latency_p50_ms'],
                    'p99_ms': st['latency_p99_ms'],
                },
                {
                    'metric': 'model predict()',
                    'p50_ms': st['forward_p50_ms'],
                    'p99_ms': st['forward_p99_ms'],
                },
            ],
            ['metric', 'p50_ms', 'p99_ms'],
        )
    )
    print(
        f'\ncamera frames {st["camera_frames"]}, decisions {st["decisions"]}, '
        f'dropped {st["dropped"]}, degraded {st["degraded"]}, device {st["device"]}; '
        f'{result.frames} frames in {result.wall_s:.1f} s wall '
        f'({result.frames / max(result.wall_s, 1e-9):.1f} frames/s)'
    )
