"""`mm-fusion up GRAPH`: start a node graph in this process until Ctrl-C (the pip path).

The same nodes, params file and remappings as the launch files; managed nodes are configured
and activated unless `--no-autostart` (then `ros2 lifecycle set` or a lifecycle manager does).
"""

import argparse

from mm_fusion_ros.graph import GRAPHS
from mm_fusion_ros.view.options import add_view_arguments, view_options

# Options that set node parameters (dest -> parameter), routed to the nodes that declare them.
PARAMETER_OPTIONS = ('radar_preset', 'device', 'checkpoint')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('graph', choices=sorted(GRAPHS), help='which node graph to run')
    parser.add_argument('--namespace', default='', help='namespace for all nodes and topics')
    parser.add_argument('--params-file', default=None,
                        help='node parameters file (default: the shipped config/params.yaml)')
    parser.add_argument('--radar-preset', default=None, help='radar layout (sim, carla, ...)')
    parser.add_argument('--device', default=None, help='inference device (auto, cpu, cuda:N)')
    parser.add_argument('--checkpoint', default=None, help='model checkpoint (.pt)')
    parser.add_argument('--use-sim-time', action='store_true', help='follow /clock')
    parser.add_argument('--no-autostart', dest='autostart', action='store_false',
                        help='leave the managed nodes unconfigured')
    parser.add_argument(
        '--executor',
        default='events',
        choices=('single', 'multi', 'events'),
        help='rclpy executor (events measured cheapest: bench/e2e_latency.py)',
    )
    add_view_arguments(parser)


def settings(args: argparse.Namespace) -> dict:
    """Node parameters given on the command line."""
    return {k: getattr(args, k) for k in PARAMETER_OPTIONS if getattr(args, k)}


def run(args: argparse.Namespace) -> int:
    from mm_fusion_ros.ros.runner import running_graph, spin
    from mm_fusion_ros.ros.view_node import attached_view

    view = view_options(args)
    with running_graph(
        args.graph,
        settings=settings(args),
        params_file=args.params_file,
        namespace=args.namespace,
        executor=args.executor,
        use_sim_time=args.use_sim_time,
        autostart=args.autostart,
    ) as (executor, nodes), attached_view(
        view, executor, next(iter(nodes.values())).context, namespace=args.namespace,
        params_file=args.params_file, settings=settings(args), use_sim_time=args.use_sim_time,
    ):
        try:
            spin(executor, next(iter(nodes.values())).context)
        except KeyboardInterrupt:
            pass
    return 0
