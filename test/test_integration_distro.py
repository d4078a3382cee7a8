"""The distro path without surprises: rosdep keys that resolve, view_node as a console script.

`RESOLVED` records each rosdep key of package.xml as ros/rosdistro resolved it when it was
checked (rosdep/python.yaml, rosdep/base.yaml and <distro>/distribution.yaml at commit
8468e88c, Aug 2026): a key added to package.xml must be checked and added here.
`python3-pytorch-pip` is end-of-life (`migrate_eol_2025_04_30_python3_pytorch_pip`).
"""

import ast
from pathlib import Path
import xml.etree.ElementTree as ET

from test.setup_py import console_scripts

REPO = Path(__file__).resolve().parents[1]

# key -> what it resolves to (Ubuntu apt package, pip package, or a released ROS package).
RESOLVED = {
    'python3-numpy': 'apt python3-numpy',
    'python3-yaml': 'apt python3-yaml',
    'python3-pil': 'apt python3-pil',
    'python3-matplotlib': 'apt python3-matplotlib',
    'python3-tqdm': 'apt python3-tqdm',
    'python3-torch': 'apt python3-torch (Ubuntu after focal; pip torch==2.13.0 is the tested one)',
    'python3-rosbags-pip': 'pip rosbags',
    'python3-open3d-pip': 'pip open3d',
    'python3-pytest': 'apt python3-pytest',
    'python3-hypothesis': 'apt python3-hypothesis',
}
# ROS packages released for humble, jazzy, kilted and rolling.
RELEASED = {
    'rclpy', 'builtin_interfaces', 'std_msgs', 'sensor_msgs', 'geometry_msgs',
    'diagnostic_msgs', 'visualization_msgs', 'rosgraph_msgs', 'nav_msgs', 'rcl_interfaces',
    'lifecycle_msgs', 'launch', 'launch_ros', 'ament_index_python', 'launch_testing',
    'launch_testing_ros', 'radar_msgs', 'ackermann_msgs', 'tf2_ros', 'tf2_msgs',
}
EOL = {'python3-pytorch-pip', 'python-pytorch-pip'}


def _depends() -> set[str]:
    root = ET.parse(REPO / 'package.xml').getroot()
    return {e.text.strip() for e in root if e.tag.endswith('depend')}


def test_every_package_xml_key_was_checked_against_rosdistro():
    deps = _depends() - {'mm_fusion_msgs'}  # built from this repository
    assert not deps & EOL
    unchecked = deps - set(RESOLVED) - RELEASED
    assert not unchecked, f'check these keys against ros/rosdistro, then record them: {unchecked}'


def test_view_node_is_a_console_script_and_a_launch_argument():
    text = (REPO / 'mm_fusion_ros/ros/view_node.py').read_text()
    assert "executable='view_node'" in text and 'def main(' in text
    assert 'view_node' in console_scripts()
    tree = ast.parse((REPO / 'mm_fusion_ros/ros/launch_common.py').read_text())
    arguments = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     and getattr(n.targets[0], 'id', '') == 'ARGUMENTS')
    names = {ast.literal_eval(t.elts[0]): ast.literal_eval(t.elts[1]) for t in arguments.elts}
    assert names.get('view') == 'false'
