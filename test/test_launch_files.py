"""Launch files: every node names an existing console script and has a params-file block.

The launch files build their nodes from `mm_fusion_ros.graph`, so checking the graph spec
checks the launch files; the AST check makes sure each launch file uses it. When launch_ros is
importable (a ROS distro), the launch descriptions are also built for real.
"""

import ast
import importlib.util
from pathlib import Path

import pytest

from mm_fusion_ros.graph import GRAPHS
from test.setup_py import console_scripts

REPO = Path(__file__).resolve().parents[1]


def _launch_graphs() -> dict[str, str]:
    graphs = {}
    for path in sorted((REPO / 'launch').glob('*.launch.py')):
        tree = ast.parse(path.read_text())
        calls = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'graph_launch_description'
        ]
        assert len(calls) == 1, f'{path.name} must build its nodes from the graph spec'
        graphs[path.name] = ast.literal_eval(calls[0].args[0])
    return graphs


def test_every_launch_file_uses_a_known_graph():
    graphs = _launch_graphs()
    assert {'fusion.launch.py', 'sim.launch.py'} <= set(graphs)
    for name, graph in graphs.items():
        assert graph in GRAPHS, f'{name} launches unknown graph {graph!r}'


def test_graph_nodes_have_console_scripts_configs_and_classes():
    scripts = console_scripts()
    for graph in GRAPHS.values():
        for spec in graph:
            assert spec.executable in scripts, f'{spec.executable} is not a console script'
            module, cls = spec.node_class.split(':')
            assert importlib.util.find_spec(module) is not None, module
            text = (REPO / (module.replace('.', '/') + '.py')).read_text()
            assert f'class {cls}(' in text
            assert f"'{spec.name}'" in text, f'{cls} must be named {spec.name!r}'


def test_params_file_has_a_block_for_every_node_of_every_graph():
    import yaml

    data = yaml.safe_load((REPO / 'config' / 'params.yaml').read_text())
    assert 'ros__parameters' in data['/**']
    for graph in GRAPHS.values():
        for spec in graph:
            assert 'ros__parameters' in data[f'/**/{spec.name}'], spec.name


def test_launch_descriptions_build_when_launch_ros_is_installed():
    pytest.importorskip(
        'launch_ros', reason='launch_ros is not installable from PyPI; needs a distro'
    )
    from launch import LaunchDescription

    for path in sorted((REPO / 'launch').glob('*.launch.py')):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert isinstance(module.generate_launch_description(), LaunchDescription)
