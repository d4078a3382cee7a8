"""Node parameters over real DDS: what `ros2 param set` does, and the live configs.

- a settable parameter set through the node's /set_parameters service takes effect at once;
  a read-only one, an out-of-range one, a bad choice or a cross-field violation is refused
  with the reason, and the node keeps its old value;
- the live nodes build the same PipelineConfig / SafetyConfig as offline replay from the
  same params file.
"""

from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 wheels or a distro) is not installed')
pytest.importorskip(
    'mm_fusion_msgs.msg', reason='the mm_fusion_msgs interface package is not built'
)

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402

from mm_fusion_ros.bags import load_bag_topics  # noqa: E402
from mm_fusion_ros.evaluation.replay import node_configs  # noqa: E402
from mm_fusion_ros.ros.runner import running_graph  # noqa: E402
from test.fuzz_nodes import random_checkpoint  # noqa: E402
from test.ros_graph_utils import spin_until  # noqa: E402

PARAMS = """
/**:
  ros__parameters:
    radar_preset: carla
/**/fusion_node:
  ros__parameters:
    device: cpu
    sync_slop: 0.05
    odometry_max_age: 0.35
    max_radar_points: 300
/**/decision_node:
  ros__parameters:
    ttc_brake_threshold: 1.0
    min_dwell: 0.2
"""


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('params')
    params = Path(tmp / 'params.yaml')
    params.write_text(PARAMS)
    ckpt = random_checkpoint(tmp / 'random.pt')
    with running_graph('fusion', params_file=params,
                       overrides={'fusion_node': {'checkpoint': ckpt}}) as (executor, nodes):
        probe = rclpy.create_node('param_probe', context=nodes['fusion_node'].context)
        executor.add_node(probe)
        yield executor, nodes, probe, params
        executor.remove_node(probe)
        probe.destroy_node()


def _set(executor, probe, node: str, **values):
    client = AsyncParameterClient(probe, node)
    assert spin_until(executor, lambda: client.services_are_ready(), 10.0)
    future = client.set_parameters([Parameter(k, value=v) for k, v in values.items()])
    assert spin_until(executor, future.done, 10.0)
    return future.result().results


def test_live_nodes_build_the_configs_replay_builds(graph):
    _, nodes, _, params = graph
    offline = node_configs(load_bag_topics('carla'), params)
    assert nodes['fusion_node']._pipeline.config == offline.pipeline
    assert nodes['decision_node']._logic.safety.config == offline.safety


def test_settable_parameters_apply_at_run_time(graph):
    executor, nodes, probe, _ = graph
    fusion, decision = nodes['fusion_node'], nodes['decision_node']
    results = _set(executor, probe, 'fusion_node', radar_wait=0.05, odometry_max_age=0.5,
                   queue_size=3)
    assert all(r.successful for r in results), results
    assert (fusion._params.radar_wait, fusion._params.queue_size) == (0.05, 3)
    assert fusion._pipeline.config.odometry_max_age == 0.5
    assert fusion._pipeline.ego_speed.max_age_ns == 500_000_000
    results = _set(executor, probe, 'decision_node', ttc_brake_threshold=2.0,
                   emergency_acceleration=-7.0)
    assert all(r.successful for r in results), results
    config = decision._logic.safety.config
    assert (config.ttc_brake_threshold, config.emergency_acceleration) == (2.0, -7.0)


@pytest.mark.parametrize('node, values, reason', [
    ('fusion_node', {'checkpoint': '/tmp/other.pt'}, 'read-only'),
    ('fusion_node', {'device': 'cuda'}, 'read-only'),
    ('fusion_node', {'queue_size': 0}, ''),  # out of the descriptor's range
    ('decision_node', {'radar_lost_timeout': 0.05}, 'radar_lost_timeout'),  # < radar_timeout
    ('decision_node', {'radar_preset': 'sim'}, 'read-only'),
])
def test_refused_sets_keep_the_old_value(graph, node, values, reason):
    executor, nodes, probe, _ = graph
    before = nodes[node]._params
    results = _set(executor, probe, node, **values)
    assert not all(r.successful for r in results), results
    assert reason in ' '.join(r.reason for r in results)
    assert nodes[node]._params == before
