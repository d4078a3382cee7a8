"""Managed-node plumbing shared by fusion_node and decision_node: transitions and `main()`.

Both nodes are rclpy `LifecycleNode`s: constructing one declares its parameters only;
configure loads what it needs (the model, the safety layer) and creates its topics, activate
starts publishing, deactivate stops, cleanup frees. A launch file's LifecycleNode, `mm-fusion
up` or `ros2 lifecycle set` drive the transitions; `ros2 run ... --autostart` does it itself.
"""

from collections.abc import Callable, Sequence
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.utilities import remove_ros_args

from mm_fusion_ros.errors import UserInputError
from mm_fusion_ros.params.spec import ParamError

EXIT_CONFIG_ERROR = 2  # a parameter, checkpoint or preset the node cannot start with


class StartError(UserInputError, RuntimeError):
    """A managed node could not reach the active state; the message says why."""


def start(node: LifecycleNode) -> None:
    """Unconfigured -> inactive -> active; raises StartError when a transition fails."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        reason = getattr(node, 'configure_error', '')
        raise StartError(f'{node.get_name()}: configure failed' + (f': {reason}' if reason
                                                                    else ''))
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        raise StartError(f'{node.get_name()}: activate failed')


def is_managed(node: object) -> bool:
    return isinstance(node, LifecycleNode)


def node_main(make_node: Callable[[], LifecycleNode], name: str,
              args: Sequence[str] | None = None) -> int:
    """`ros2 run` entry point: spin the node; with `--autostart`, configure and activate it."""
    from mm_fusion_ros.ros.runner import DEFAULT_EXECUTOR, make_executor, spin

    argv = list(sys.argv if args is None else args)
    autostart = '--autostart' in remove_ros_args(argv)[1:]
    rclpy.init(args=argv)
    node = None
    try:
        node = make_node()
        if autostart:
            start(node)
        executor = make_executor(DEFAULT_EXECUTOR, node.context)
        executor.add_node(node)
        spin(executor, node.context)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ParamError, StartError) as exc:
        rclpy.logging.get_logger(name).fatal(f'cannot start: {exc}')
        return EXIT_CONFIG_ERROR
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
