"""`mm-fusion`: the project's command line (demo, up, record, train, eval)."""

import argparse
from collections.abc import Sequence
import importlib
import sys

# Sub-command -> module with `add_arguments(parser)` and `run(args) -> int`. Modules are
# imported only when their command runs, so `mm-fusion eval` never pays for rclpy.
COMMANDS = {
    'demo': (
        'mm_fusion_ros.commands.demo',
        'closed-loop simulation + metrics on the shipped model',
    ),
    'up': ('mm_fusion_ros.commands.up', 'run a node graph (sim, fusion) in one process'),
    'record': ('mm_fusion_ros.commands.record', 'simulator episodes to rosbag2 (one per episode)'),
    'cache': ('mm_fusion_ros.commands.cache', 'bags -> sharded .npz training cache'),
    'dataset': ('mm_fusion_ros.commands.dataset', 'simulator -> train/val training caches'),
    'dagger': (
        'mm_fusion_ros.commands.dagger',
        'a checkpoint drives training scenarios, the expert labels them (DAgger cache)',
    ),
    'train': ('mm_fusion_ros.commands.train', 'train the fusion model (torchrun-aware)'),
    'logit-prior': (
        'mm_fusion_ros.commands.logit_prior',
        "write a checkpoint's training-to-driving prior correction (logit offsets)",
    ),
    'ablation': ('mm_fusion_ros.commands.ablation', 'fused vs single-modality macro-F1'),
    'closed-loop': (
        'mm_fusion_ros.commands.closed_loop',
        'model drives held-out scenarios (no ROS); vs expert and single modalities',
    ),
    'eval': (
        'mm_fusion_ros.commands.eval',
        'evaluate on recorded bags (offline replay or online through the nodes), with reports',
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen command's module is imported (and can fail to import)."""
    parser = argparse.ArgumentParser(prog='mm-fusion', description=__doc__)
    parser.add_argument('--version', action='version', version=_version())
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, (module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            mod = importlib.import_module(module)
            mod.add_arguments(sub_parser)
            sub_parser.set_defaults(run=mod.run)
    return parser


def _version() -> str:
    from mm_fusion_ros import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith('-')), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == '__main__':
    raise SystemExit(main())
