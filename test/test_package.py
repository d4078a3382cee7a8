"""Package metadata: the message, the action set, package.xml and setup.py agree."""

from pathlib import Path
import xml.etree.ElementTree as ET

import pytest

from mm_fusion_ros.actions import Action, LaneChangeIntent

REPO = Path(__file__).resolve().parents[1]


def _msg_constants() -> dict[str, int]:
    constants = {}
    for line in (REPO / 'mm_fusion_msgs/msg/DrivingDecision.msg').read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if '=' in line:
            name, value = line.split(None, 1)[1].split('=')
            constants[name.strip()] = int(value)
    return constants


def test_action_ids_match_message_constants():
    constants = _msg_constants()
    for action in Action:
        assert constants[f'ACTION_{action.name}'] == action.value
    for intent in LaneChangeIntent:
        assert constants[f'LANE_CHANGE_{intent.name}'] == intent.value
    assert len([k for k in constants if k.startswith('ACTION_')]) == len(Action)


def test_generated_message_matches_action_set():
    msg = pytest.importorskip('mm_fusion_msgs.msg', reason='interface package not built')
    for action in Action:
        assert getattr(msg.DrivingDecision, f'ACTION_{action.name}') == action.value


def test_package_xml_format_and_names():
    for path, name, build_type in (
        (REPO / 'package.xml', 'mm_fusion_ros', 'ament_python'),
        (REPO / 'mm_fusion_msgs/package.xml', 'mm_fusion_msgs', 'ament_cmake'),
    ):
        root = ET.parse(path).getroot()
        assert root.get('format') == '3'
        assert root.findtext('name') == name
        assert root.find('export/build_type').text == build_type
    deps = {e.text for e in ET.parse(REPO / 'package.xml').getroot() if e.tag == 'exec_depend'}
    assert {'rclpy', 'sensor_msgs', 'mm_fusion_msgs', 'python3-numpy'} <= deps


def test_ros_wheels_stay_out_of_install_requires():
    setup_py = (REPO / 'setup.py').read_text()
    requires = setup_py.split('install_requires=[', 1)[1].split(']', 1)[0]
    assert 'ros-' not in requires and 'rclpy' not in requires


def test_resource_marker_and_setup_cfg():
    assert (REPO / 'resource/mm_fusion_ros').is_file()
    cfg = (REPO / 'setup.cfg').read_text()
    assert 'script_dir=$base/lib/mm_fusion_ros' in cfg
    assert 'install_scripts=$base/lib/mm_fusion_ros' in cfg
