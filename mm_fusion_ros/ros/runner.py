"""In-process runner: the launch files' node graph in one process (`mm-fusion up GRAPH`).

launch_ros is not installable from PyPI, so without a distro this is how the graph runs: the
same NodeSpecs as the launch files, the same params file and remappings (passed as rcl
arguments), one rclpy context and one executor, like a component container; managed nodes are
configured and activated as the launch files' LifecycleNodes are.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
import importlib
import os
from pathlib import Path
import signal
import tempfile
import threading
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
import yaml

from mm_fusion_ros.dds_env import apply_local_dds_env
from mm_fusion_ros.graph import NodeSpec, graph, node_overrides, ros_args
from mm_fusion_ros.params.nodes import NODE_PARAMS
from mm_fusion_ros.params.spec import load_params
from mm_fusion_ros.paths import resolve_params_file
from mm_fusion_ros.ros.lifecycle import is_managed, start

EXECUTORS = ('single', 'multi', 'events')
# The experimental EventsExecutor dispatches from a C++ event queue: measured with
# bench/e2e_latency.py (2 cores, 60 s at 20 Hz) it hands a camera frame to the inference worker
# in 0.05 ms (p50) against 0.83 ms for SingleThreadedExecutor, whose Python wait-set rebuild
# holds the GIL the worker needs: node overhead 16 % vs 45 % of the model time.
DEFAULT_EXECUTOR = 'events'


def node_class(spec: NodeSpec) -> type[Node]:
    module, name = spec.node_class.split(':')
    return getattr(importlib.import_module(module), name)


def make_executor(kind: str, context: Context) -> Executor:
    if kind == 'single':
        return SingleThreadedExecutor(context=context)
    if kind == 'multi':
        return MultiThreadedExecutor(context=context)
    if kind == 'events':
        from rclpy.experimental import EventsExecutor

        return EventsExecutor(context=context)
    raise ValueError(f'executor must be one of {EXECUTORS}, got {kind!r}')


def spin(executor: Executor, context: Context) -> None:
    """Spin until the context shuts down or the process gets SIGINT / SIGTERM.

    spin_once in a loop: the experimental EventsExecutor's spin() dispatches nothing in the
    rclpy 9.1 wheels, spin_once does (and works for every executor). The signals only end the
    loop: Python's default SIGINT would raise KeyboardInterrupt inside whichever callback runs,
    which the executor reports as a node's fatal exception on every Ctrl-C.
    """
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        while context.ok() and not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def overrides_file(overrides: dict[str, dict], directory: str) -> str | None:
    """Write per-node parameter overrides ({node_name: {param: value}}) as a params file."""
    if not overrides:
        return None
    path = Path(directory) / 'overrides.yaml'
    data = {f'/**/{name}': {'ros__parameters': params} for name, params in overrides.items()}
    path.write_text(yaml.safe_dump(data))
    return str(path)


def merge_overrides(*parts: dict[str, dict]) -> dict[str, dict]:
    merged: dict[str, dict] = {}
    for part in parts:
        for node, params in (part or {}).items():
            merged.setdefault(node, {}).update(params)
    return merged


@contextmanager
def running_graph(
    graph_name: str,
    *,
    settings: dict[str, Any] | None = None,
    overrides: dict[str, dict] | None = None,
    params_file: str | Path | None = None,
    namespace: str = '',
    executor: str = DEFAULT_EXECUTOR,
    use_sim_time: bool = False,
    nodes: Sequence[str] | None = None,
    autostart: bool = True,
) -> Iterator[tuple[Executor, dict[str, Node]]]:
    """Create the graph's nodes in a fresh context; yields (executor, {name: node}).

    `settings` ({param: value}) go to every node that declares them (`graph.node_overrides`),
    `overrides` ({node: {param: value}}) to one node each. With `autostart`, managed nodes are
    configured and activated, as the launch files' LifecycleNodes are (StartError otherwise).
    """
    apply_local_dds_env(os.environ)
    params = str(resolve_params_file(params_file))
    per_node = merge_overrides(node_overrides(graph_name, dict(settings or {})), overrides)
    for spec in graph(graph_name):  # a bad value: one ParamError naming it, before any node
        load_params(NODE_PARAMS[spec.name], spec.name, [params],
                    {k: v for k, v in per_node.get(spec.name, {}).items() if k != 'use_sim_time'})
    context = Context()
    rclpy.init(context=context)
    created: dict[str, Node] = {}
    exe = make_executor(executor, context)
    with tempfile.TemporaryDirectory(prefix='mm_fusion_up_') as tmp:
        try:
            for spec in graph(graph_name):
                if nodes is not None and spec.name not in nodes:
                    continue
                node_params = dict(per_node.get(spec.name, {}))
                if use_sim_time:
                    node_params['use_sim_time'] = True
                files = [params]
                extra = overrides_file({spec.name: node_params} if node_params else {}, tmp)
                if extra:
                    files.append(extra)
                node = node_class(spec)(
                    context=context,
                    cli_args=ros_args(spec, files, namespace),
                    use_global_arguments=False,
                )
                created[spec.name] = node
                exe.add_node(node)
            if autostart:
                for node in created.values():
                    if is_managed(node):
                        start(node)
            yield exe, created
        finally:
            exe.shutdown()
            for node in created.values():
                close = getattr(node, 'close', None)
                if close is not None:
                    close()
                node.destroy_node()
            rclpy.try_shutdown(context=context)
