"""`--view`, `--view-address`, `--view-port`: the options of `mm-fusion up` and `demo`.

The defaults and the exposure warning live here: no rclpy, no rerun, no server code, so
`mm-fusion up --help` stays light.
"""

import argparse
from dataclasses import dataclass
import ipaddress

from mm_fusion_ros.errors import UserInputError
from mm_fusion_ros.view import require_rerun

DEFAULT_ADDRESS = '127.0.0.1'  # loopback: the view is for this machine
DEFAULT_PORT = 9090  # web viewer (HTTP); the data (gRPC) port is the next one
EXPOSURE_RISK = (
    'serves the live camera frames, radar points and decisions to anyone who can reach'
    ' this address, with no authentication or encryption'
)


def is_loopback(address: str) -> bool:
    if address == 'localhost':
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def exposure_warning(address: str) -> str | None:
    """The one-line warning for a bind address other than loopback; None for loopback."""
    if is_loopback(address):
        return None
    return f'warning: the live view listens on {address}: it {EXPOSURE_RISK}.'


@dataclass(frozen=True)
class ViewOptions:
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('live view (needs the view extra: rerun-sdk)')
    group.add_argument('--view', action='store_true',
                       help='serve a live view (camera with radar points, radar in 3D, '
                       'decision, safety) to open in a browser')
    group.add_argument('--view-address', default=DEFAULT_ADDRESS, metavar='ADDRESS',
                       help=f'bind address of the view (default {DEFAULT_ADDRESS}: this machine '
                       f'only); any other {EXPOSURE_RISK}')
    group.add_argument('--view-port', type=int, default=DEFAULT_PORT, metavar='PORT',
                       help=f'web viewer port (default {DEFAULT_PORT}); the data port is PORT+1')


def view_options(args: argparse.Namespace) -> ViewOptions | None:
    """The view to add, or None without --view; refuses (UserInputError) before any start."""
    if not args.view:
        return None
    require_rerun()  # the install hint now, not after the graph has started
    if not 1 <= args.view_port <= 65534:
        raise UserInputError(f'--view-port {args.view_port}: expected 1..65534 (PORT+1 is '
                             'the data port)')
    return ViewOptions(address=args.view_address, port=args.view_port)
