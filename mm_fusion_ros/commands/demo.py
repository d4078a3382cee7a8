"""`mm-fusion demo`: closed-loop simulation through the real node graph, then metrics.

Runs sim_node + fusion_node + decision_node in one process (the same graph spec as
sim.launch.py) in lockstep with /clock, on a fixed set of held-out scenarios, with the shipped
checkpoint; prints driving metrics (against the expert driving the same scenarios) and
the latency table.
"""

import argparse

from mm_fusion_ros.view.options import add_view_arguments, view_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--episodes', type=int, default=12, help='episodes (one per type)')
    parser.add_argument('--duration', type=float, default=12.0, help='episode length [s]')
    parser.add_argument('--seed', type=int, default=900000, help='first held-out seed')
    parser.add_argument('--checkpoint', default=None, help='model .pt (default: shipped)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N')
    parser.add_argument('--executor', default='events', choices=('single', 'multi', 'events'))
    add_view_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mm_fusion_ros.report import print_closed_loop_report
    from mm_fusion_ros.ros.closed_loop import run_closed_loop_graph

    result = run_closed_loop_graph(
        episodes=args.episodes,
        duration=args.duration,
        seed=args.seed,
        checkpoint=args.checkpoint,
        device=args.device,
        executor=args.executor,
        view=view_options(args),
    )
    print_closed_loop_report(result)
    return 0
