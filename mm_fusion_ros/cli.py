"""`mm-fusion`: the project's command line; its sub-commands are the `COMMANDS` table below.

`mm-fusion --help` lists them with their one-line help, from that table. A file or value the
user gave that cannot be used (`mm_fusion_ros.errors.UserInputError`: a corrupt checkpoint, a
training config with an unknown key, a cache without a manifest, ...) or an OS error on a path
ends a command with one line `mm-fusion <command>: <message>` on stderr and exit code 2; Ctrl-C
ends it with 130. Any other exception is a bug and keeps its traceback.
"""

import argparse
from collections.abc import Sequence
import importlib
import io
import sys

# Sub-command -> module with `add_arguments(parser)` and `run(args) -> int`. Modules are
# imported only when their command runs, so `mm-fusion eval` never pays for rclpy.
COMMANDS = {
    'demo': (
        'mm_fusion_ros.commands.demo',
        'closed-loop simulation + metrics on the shipped model',
    ),
    'up': ('mm_fusion_ros.commands.up', 'run a node graph (sim, fusion) in one process'),
    'params': ('mm_fusion_ros.commands.params',
               "the nodes' parameters: the params file, or tables (--markdown)"),
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
    'label': ('mm_fusion_ros.commands.label',
              "decisions derived from the recorded ego's motion and radar; scored vs the expert"),
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
    from mm_fusion_ros.errors import UserInputError, one_line

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith('-')), None)
    try:
        args = build_parser(command if command in COMMANDS else None).parse_args(argv)
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130  # the shell's code for SIGINT; the user knows why it stopped
    except UserInputError as exc:
        return _refuse(command, one_line(exc))
    except io.UnsupportedOperation:
        raise  # an OSError, but a bug (fileno of a StringIO, writing a read-only stream)
    except OSError as exc:  # a path that cannot be read or written (exists, no permission, ...)
        return _refuse(command, _os_error(exc))


def _refuse(command: str | None, message: str) -> int:
    print(f'mm-fusion {command}: {message}', file=sys.stderr, flush=True)
    return 2


def _os_error(exc: OSError) -> str:
    """'PATH: reason' (both paths of a rename or copy), else the error's own text."""
    from mm_fusion_ros.errors import one_line

    if exc.filename is None or not exc.strerror:
        return one_line(exc)
    paths = f'{exc.filename}' + (f' -> {exc.filename2}' if exc.filename2 else '')
    return f'{paths}: {exc.strerror}'


if __name__ == '__main__':
    raise SystemExit(main())
