"""Build this repo with colcon the way a ROS 2 workspace would, against the venv's ROS prefix.

Shows the distro path without a distro: colcon (from PyPI) builds mm_fusion_msgs
(ament_cmake + rosidl) and mm_fusion_ros (ament_python) into <workspace>/install, with the
console scripts in install/mm_fusion_ros/lib/mm_fusion_ros/ where `ros2 run` looks for them.
colcon stops crawling at a package root, and this repo's root is the mm_fusion_ros package,
so the nested interface package is named as a second base path.
"""

import argparse
import os
from pathlib import Path
import subprocess
import sys

REPO = Path(__file__).resolve().parents[1]


def colcon_build(workspace: Path) -> Path:
    """Run `colcon build` for both packages; return the install base."""
    workspace.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    prefix = sys.prefix
    for var in ('AMENT_PREFIX_PATH', 'CMAKE_PREFIX_PATH'):
        env[var] = os.pathsep.join(p for p in (prefix, env.get(var)) if p)
    cmd = [
        sys.executable,
        '-m',
        'colcon',
        'build',
        '--base-paths',
        str(REPO),
        str(REPO / 'mm_fusion_msgs'),
        '--cmake-args',
        '-DBUILD_TESTING=OFF',
        f'-DPython3_EXECUTABLE={sys.executable}',
    ]
    subprocess.run(cmd, cwd=workspace, env=env, check=True)
    return workspace / 'install'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--workspace', type=Path, required=True)
    args = parser.parse_args()
    install = colcon_build(args.workspace)
    scripts = sorted(p.name for p in (install / 'mm_fusion_ros/lib/mm_fusion_ros').iterdir())
    print(f'installed into {install}; console scripts: {", ".join(scripts)}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
