"""`mm-fusion`: the command line of the project (demo, train, eval, record, up)."""

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='mm-fusion', description=__doc__)
    parser.add_argument('--version', action='store_true', help='print the version and exit')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        from mm_fusion_ros import __version__

        print(__version__)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
