from glob import glob

from setuptools import find_packages, setup

package_name = 'mm_fusion_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(include=[package_name, package_name + '.*']),
    package_data={package_name: ['checkpoints/*.pt', 'checkpoints/*.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        # Node parameters, radar and bag presets, the DDS profile; training recipes
        # (config/training, config/experiments) stay in the source tree.
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
        ('share/' + package_name + '/config/radar_presets', glob('config/radar_presets/*.yaml')),
        ('share/' + package_name + '/config/bag_topics', glob('config/bag_topics/*.yaml')),
    ],
    # The ROS 2 Python packages (rclpy, message packages) are deliberately absent: a ROS distro
    # provides them; without a distro, `make` installs the PyPI ros-* wheels from
    # requirements/ros.txt.
    install_requires=[
        'setuptools',
        'numpy>=1.24',
        'pyyaml>=6',
        'pillow>=9',
        'torch==2.13.0',  # the CPU wheel on this project's machines; unpinned pulls a CUDA build
        'rosbags>=0.10',
        'tqdm>=4.60',
        'matplotlib>=3.6',
    ],
    extras_require={
        'open3d': ['open3d-cpu>=0.18'],
        'onnx': ['onnx>=1.15', 'onnxruntime>=1.17'],
        'ray': ['ray>=2.9'],
        # Live view (`mm-fusion up/demo --view`): the Rerun SDK, its server and web viewer.
        'view': ['rerun-sdk>=0.41,<0.42'],
    },
    zip_safe=True,
    maintainer='mm_fusion_ros developers',
    maintainer_email='dev@mm-fusion.invalid',
    description='Camera + radar attention fusion for driving decisions, with ROS 2 nodes.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'mm-fusion = mm_fusion_ros.cli:main',
            'fusion_node = mm_fusion_ros.ros.fusion_node:main',
            'decision_node = mm_fusion_ros.ros.decision_node:main',
            'sim_node = mm_fusion_ros.ros.sim_node:main',
            'view_node = mm_fusion_ros.ros.view_node:main',
        ],
    },
)
