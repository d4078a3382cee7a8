"""Thin ROS 2 adapters: nodes that convert messages, call the core and publish."""
