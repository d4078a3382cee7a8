"""Camera + radar fusion for driving decisions, with thin ROS 2 adapters over a pure core."""

__version__ = '0.1.0'
