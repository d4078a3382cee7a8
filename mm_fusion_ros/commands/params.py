"""`mm-fusion params`: the nodes' parameters (defaults, ranges, run-time settable) from their spec.

Prints the params file of every graph (`config/params.yaml`'s text) or, with `--markdown`, one
table per node (`docs/parameters.md`); `--write PATH` writes it (to start your own params file,
or to refresh the shipped files after changing a spec).
"""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--markdown', action='store_true',
                        help='one table per node (docs/parameters.md) instead of the params file')
    parser.add_argument('--write', metavar='PATH', default=None, help='write to PATH')


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mm_fusion_ros.params.nodes import params_doc, shipped_params_yaml

    text = params_doc() if args.markdown else shipped_params_yaml()
    if args.write:
        Path(args.write).write_text(text)
        print(f'wrote {args.write}')
    else:
        print(text, end='')
    return 0
