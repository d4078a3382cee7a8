"""Typed parameter declaration with descriptors and ranges, the way ROS 2 nodes document them."""

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node


def declare_float(
    node: Node, name: str, default: float, description: str, low: float, high: float
) -> float:
    descriptor = ParameterDescriptor(
        description=description,
        floating_point_range=[FloatingPointRange(from_value=low, to_value=high, step=0.0)],
    )
    return float(node.declare_parameter(name, float(default), descriptor).value)


def declare_int(node: Node, name: str, default: int, description: str, low: int, high: int) -> int:
    descriptor = ParameterDescriptor(
        description=description,
        integer_range=[IntegerRange(from_value=low, to_value=high, step=1)],
    )
    return int(node.declare_parameter(name, int(default), descriptor).value)


def declare_choice(
    node: Node, name: str, default: str, description: str, choices: tuple[str, ...]
) -> str:
    descriptor = ParameterDescriptor(
        description=f'{description} One of: {", ".join(choices)}.',
        additional_constraints=f'one of {list(choices)}',
    )
    value = node.declare_parameter(name, default, descriptor).value
    if value not in choices:
        raise ValueError(f'parameter {name}={value!r} must be one of {list(choices)}')
    return value


def declare_value(node: Node, name: str, default: Any, description: str) -> Any:
    """Strings, bools and lists: typed by their default."""
    return node.declare_parameter(
        name, default, ParameterDescriptor(description=description)
    ).value
