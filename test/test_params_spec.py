"""The node parameter specs: one source for the shipped params file, replay, launch and `up`.

- config/params.yaml is what the specs write, and its values are the specs' defaults;
- offline replay builds the nodes' configs from a params file the way the nodes do (the live
  comparison is in test_params_runtime.py);
- values are checked (type, range, choices, cross-field) with the node and key named;
- launch/`up` settings reach exactly the nodes that declare them;
- no node declares a parameter of its own outside the spec.
"""

from dataclasses import fields
from pathlib import Path
import re

import pytest
import yaml

from mm_fusion_ros.bags import load_bag_topics
from mm_fusion_ros.evaluation.replay import node_configs
from mm_fusion_ros.graph import GRAPHS, node_overrides
from mm_fusion_ros.params.nodes import (
    NODE_PARAMS,
    DecisionNodeParams,
    FusionNodeParams,
    SimNodeParams,
    params_doc,
    shipped_params_yaml,
)
from mm_fusion_ros.params.spec import (
    ParamError,
    build,
    load_params,
    params_markdown,
    spec_fields,
    with_values,
)
from mm_fusion_ros.pipeline import PipelineConfig
from mm_fusion_ros.safety import SafetyConfig

REPO = Path(__file__).resolve().parents[1]


def test_shipped_params_file_is_what_the_specs_write():
    text = (REPO / 'config' / 'params.yaml').read_text()
    assert text == shipped_params_yaml(), 'run `mm-fusion params --write config/params.yaml`'


def test_shipped_params_file_values_are_the_spec_defaults():
    data = yaml.safe_load((REPO / 'config' / 'params.yaml').read_text())
    for node, cls in NODE_PARAMS.items():
        values = dict(data['/**']['ros__parameters'])
        values.update(data[f'/**/{node}']['ros__parameters'])
        for spec in spec_fields(cls):
            assert values[spec.name] == spec.default, f'{node}.{spec.name}'
        shipped = load_params(cls, node, [REPO / 'config' / 'params.yaml'])
        assert shipped == cls(), node


def test_core_configs_take_their_defaults_from_the_specs():
    """A default shared by a spec and a core config is written once: both agree."""
    fusion = FusionNodeParams()
    assert fusion.pipeline_config() == PipelineConfig()
    assert {f.name for f in fields(SafetyConfig)} <= {f.name for f in fields(DecisionNodeParams)}
    assert DecisionNodeParams().safety_config() == SafetyConfig()


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / 'params.yaml'
    path.write_text(text)
    return path


def test_replay_reads_every_node_setting_of_a_params_file(tmp_path):
    path = _write(tmp_path, """
/**:
  ros__parameters:
    radar_preset: nuscenes
/**/fusion_node:
  ros__parameters:
    sync_slop: 0.05
    odometry_max_age: 0.35
    max_radar_points: 300
    radar_wait: 0.02
/**/decision_node:
  ros__parameters:
    ttc_brake_threshold: 1.0
    radar_timeout: 0.0
    min_dwell: 0.2
""")
    configs = node_configs(load_bag_topics('nuscenes'), path)
    assert configs.pipeline == PipelineConfig(
        radar_preset='nuscenes', sync_slop=0.05, odometry_max_age=0.35,
        preprocess=PipelineConfig().preprocess.__class__(max_points=300))
    assert configs.radar_wait == 0.02
    safety = configs.safety
    assert (safety.ttc_brake_threshold, safety.min_dwell) == (1.0, 0.2)
    # radar_timeout 0: 1.5 periods of the nuScenes radar's 13 Hz, not the sim's 20 Hz.
    assert safety.radar_timeout_s == pytest.approx(1.5 / 13)


def test_bag_layout_settings_override_the_file_in_replay(tmp_path):
    path = _write(tmp_path, '/**:\n  ros__parameters:\n    radar_preset: sim\n')
    configs = node_configs(load_bag_topics('carla'), path)
    assert configs.pipeline.radar_preset == 'carla'
    assert configs.decision.radar_preset == 'carla'


@pytest.mark.parametrize('text, message', [
    ('/**/fusion_node:\n  ros__parameters:\n    sync_slopp: 0.05\n',
     "unknown parameter(s) ['sync_slopp']"),
    ('/**/fusion_node:\n  ros__parameters:\n    sync_slop: 2.0\n',
     'sync_slop=2.0 is outside [0, 1] [s]'),
    ('/**/fusion_node:\n  ros__parameters:\n    queue_size: two\n',
     "queue_size='two': expected int"),
    ('/**/fusion_node:\n  ros__parameters:\n    device: gpu\n', "device='gpu': expected auto"),
    ('/**/fusion_node:\n  ros__parameters:\n    camera_transport: png\n', 'must be one of'),
    ('/**:\n  ros__parameters:\n    radar_preset: lidar\n', "unknown radar preset 'lidar'"),
    ('/**/decision_node:\n  ros__parameters:\n    radar_timeout: 0.6\n', 'radar_lost_timeout'),
    ('/**/sim_node:\n  ros__parameters:\n    scenarios: [highway]\n', "unknown ['highway']"),
    ('- just a list\n', 'expected node blocks'),
    ('/**/fusion_node: {sync_slop: 1}\n', 'has no ros__parameters'),
    ('{{{ not yaml', 'not valid YAML'),
])
def test_a_bad_params_file_names_the_node_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ParamError) as err:
        for node, cls in NODE_PARAMS.items():
            load_params(cls, node, [path])
    assert message in str(err.value)
    assert '\n' not in str(err.value)


def test_a_missing_params_file_is_named(tmp_path):
    with pytest.raises(ParamError, match='missing.yaml'):
        load_params(FusionNodeParams, 'fusion_node', [tmp_path / 'missing.yaml'])


def test_ints_are_taken_for_floats_and_bools_are_not_ints():
    assert build(FusionNodeParams, 'fusion_node', {'sync_slop': 0}).sync_slop == 0.0
    with pytest.raises(ParamError):
        build(FusionNodeParams, 'fusion_node', {'queue_size': True})
    with pytest.raises(ParamError, match='finite'):
        build(DecisionNodeParams, 'decision_node', {'max_jerk': float('nan')})


def test_with_values_checks_like_build():
    params = FusionNodeParams()
    assert with_values(params, 'fusion_node', {'radar_wait': 0.05}).radar_wait == 0.05
    with pytest.raises(ParamError):
        with_values(params, 'fusion_node', {'radar_wait': -1.0})
    with pytest.raises(ParamError):
        with_values(DecisionNodeParams(), 'decision_node', {'radar_lost_timeout': 0.01,
                                                            'radar_timeout': 0.1})


def test_graph_settings_reach_the_nodes_that_declare_them():
    routed = node_overrides('sim', {'radar_preset': 'carla', 'device': 'cpu', 'seed': 5})
    assert routed == {'fusion_node': {'radar_preset': 'carla', 'device': 'cpu'},
                      'decision_node': {'radar_preset': 'carla'},
                      'sim_node': {'seed': 5}}
    assert node_overrides('fusion', {}) == {}
    with pytest.raises(ParamError, match='no node of the graph takes'):
        node_overrides('fusion', {'seed': 5})  # sim_node is not in the fusion graph


def test_every_graph_node_has_a_spec_and_its_tables_are_current():
    readme = (REPO / 'README.md').read_text()
    for graph in GRAPHS.values():
        for spec in graph:
            assert spec.name in NODE_PARAMS
    for cls in (FusionNodeParams, DecisionNodeParams):
        assert params_markdown(cls) in readme, f'README table of {cls.__name__} is stale'
    doc = (REPO / 'docs' / 'parameters.md').read_text()
    assert doc == params_doc(), 'run `mm-fusion params --markdown --write docs/parameters.md`'
    assert params_markdown(SimNodeParams) in doc


def test_nodes_declare_nothing_outside_their_spec():
    """`git grep` finds each node default in one place: nodes declare through the spec only."""
    for path in (REPO / 'mm_fusion_ros' / 'ros').glob('*_node.py'):
        text = path.read_text()
        assert not re.search(r'declare_parameter\(', text), path.name
        assert 'declare_parameters(self, ' in text, path.name
