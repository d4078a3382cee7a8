"""Declare a node's parameters from its spec (`mm_fusion_ros.params`) and apply `ros2 param set`.

Ranges and read-only flags go into each `ParameterDescriptor`, so rclpy itself refuses an
out-of-range value or a set on a read-only parameter; choices, custom checks and cross-field
rules are checked by the spec in the on-set callback, which refuses the whole set with the
spec's message. A successful set reaches the node as a new spec instance.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from mm_fusion_ros.params.spec import ParamError, ParamField, build, spec_fields, with_values

T = TypeVar('T')


def descriptor(spec: ParamField) -> ParameterDescriptor:
    info = spec.info
    text = ' '.join(p for p in (info.description, info.unit) if p)
    d = ParameterDescriptor(description=text, read_only=info.read_only)
    if info.choices or info.choices_doc:
        d.additional_constraints = 'one of: ' + (' | '.join(info.choices) or info.choices_doc)
    if spec.type is float and (info.low is not None or info.high is not None):
        d.floating_point_range = [FloatingPointRange(
            from_value=float(info.low if info.low is not None else -1e308),
            to_value=float(info.high if info.high is not None else 1e308), step=0.0)]
    elif spec.type is int and (info.low is not None or info.high is not None):
        d.integer_range = [IntegerRange(
            from_value=int(info.low if info.low is not None else -2**63),
            to_value=int(info.high if info.high is not None else 2**63 - 1), step=0)]
    return d


def declare_parameters(node: Node, cls: type[T]) -> T:
    """Declare every parameter of `cls`; the values (params files, overrides) as a `cls`.

    Raises ParamError for a value the spec refuses (the node then cannot start).
    """
    values = {}
    for spec in spec_fields(cls):
        value = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
        values[spec.name] = list(value) if spec.type is list else value
    return build(cls, node.get_name(), values)


def on_parameters_set(node: Node, current: Callable[[], T], apply: Callable[[T], None]) -> None:
    """Check each `ros2 param set` against the spec; `apply` gets the new values when it holds.

    rclpy has already refused read-only and out-of-range values by then (descriptors).
    """
    names = {s.name for s in spec_fields(type(current()))}

    def check(params: list[Parameter]) -> SetParametersResult:
        changes: dict[str, Any] = {
            p.name: list(p.value) if isinstance(p.value, (list, tuple)) else p.value
            for p in params if p.name in names}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            updated = with_values(current(), node.get_name(), changes)
        except ParamError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        apply(updated)
        node.get_logger().info(f'parameters set: {changes}')
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(check)
