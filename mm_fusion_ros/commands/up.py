"""`mm-fusion up GRAPH`: start a node graph in this process until Ctrl-C (the pip path)."""

import argparse

from mm_fusion_ros.graph import GRAPHS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('graph', choices=sorted(GRAPHS), help='which node graph to run')
    parser.add_argument('--namespace', default='', help='namespace for all nodes and topics')
    parser.add_argument('--config-dir', default=None, help='directory with the params files')
    parser.add_argument('--radar-preset', default=None, help='radar layout (sim, carla, ...)')
    parser.add_argument('--device', default=None, help='inference device (auto, cpu, cuda:N)')
    parser.add_argument('--checkpoint', default=None, help='model checkpoint (.pt)')
    parser.add_argument('--use-sim-time', action='store_true', help='follow /clock')
    parser.add_argument(
        '--executor',
        default='events',
        choices=('single', 'multi', 'events'),
        help='rclpy executor (events measured cheapest: bench/e2e_latency.py)',
    )


def graph_overrides(args: argparse.Namespace) -> dict[str, dict]:
    """Per-node parameter overrides from the command line."""
    overrides: dict[str, dict] = {'fusion_node': {}, 'decision_node': {}}
    if args.radar_preset:
        overrides['fusion_node']['radar_preset'] = args.radar_preset
        overrides['decision_node']['radar_preset'] = args.radar_preset
    if args.device:
        overrides['fusion_node']['device'] = args.device
    if args.checkpoint:
        overrides['fusion_node']['checkpoint'] = args.checkpoint
    return {k: v for k, v in overrides.items() if v}


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mm_fusion_ros.ros.runner import running_graph, spin

    with running_graph(
        args.graph,
        overrides=graph_overrides(args),
        params_dir=Path(args.config_dir) if args.config_dir else None,
        namespace=args.namespace,
        executor=args.executor,
        use_sim_time=args.use_sim_time,
    ) as (executor, nodes):
        try:
            spin(executor, next(iter(nodes.values())).context)
        except KeyboardInterrupt:
            pass
    return 0
