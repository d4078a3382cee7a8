"""Node parameters declared once: a frozen dataclass per node whose fields carry a `Param`.

One spec gives the node's ROS declarations (`mm_fusion_ros.ros.params`), the offline replay's
configuration (`load_params`), the launch and `mm-fusion up` overrides (`graph_overrides`), the
shipped `config/params.yaml` and the README tables (`params_yaml`, `params_markdown`), so a
default, range or description lives in one place. Pure core: no rclpy.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
import math
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mm_fusion_ros.errors import UserInputError

T = TypeVar('T')


class ParamError(UserInputError, ValueError):
    """A parameter value (or params file) the spec refuses; the message names node and key."""


@dataclass(frozen=True)
class Param:
    """What a parameter means and which values it takes."""

    description: str
    unit: str = ''  # '[s]', '[m/s^2]', ... shown in YAML comments and tables
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()  # for string parameters: the accepted values
    check: Callable[[Any], None] | None = None  # raises ValueError for a refused value
    choices_doc: str = ''  # how the accepted values read in docs when `check` decides
    read_only: bool = True  # False: `ros2 param set` applies it at run time
    shared: bool = False  # one value for the whole graph: the params file's `/**` block


def param(default: Any, description: str, **kwargs: Any) -> Any:
    """A dataclass field with its `Param` metadata (lists default through a factory)."""
    meta = {'param': Param(description, **kwargs)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ParamField:
    name: str
    type: type
    default: Any
    info: Param
    item_type: type = str  # list parameters: str (STRING_ARRAY) or float (DOUBLE_ARRAY)


def spec_fields(cls: type) -> list[ParamField]:
    """The parameters of a spec dataclass, in declaration order."""
    out = []
    for f in fields(cls):
        info = f.metadata.get('param')
        if info is None:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()
        item = type(default[0]) if isinstance(default, list) and default else str
        out.append(ParamField(f.name, type(default), default, info, item))
    return out


def _fmt_range(info: Param) -> str:
    if info.choices:
        return ' | '.join(info.choices)
    if info.choices_doc:
        return info.choices_doc
    if info.low is None and info.high is None:
        return ''
    def num(v: float | None, none: str) -> str:
        return none if v is None else str(v) if isinstance(v, int) else f'{v:g}'

    return f'[{num(info.low, "-inf")}, {num(info.high, "inf")}]'


def check_value(node: str, spec: ParamField, value: Any) -> Any:
    """`value` converted to the parameter's type, or ParamError naming node, key and value."""
    name, kind, info = f'{node} parameter {spec.name}', spec.type, spec.info
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list and spec.item_type is float:
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ParamError(f'{name}={value!r}: expected a list of numbers')
        value = [float(v) for v in value]
        if not all(math.isfinite(v) for v in value):
            raise ParamError(f'{name}={value!r}: must be finite')
    elif kind is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ParamError(f'{name}={value!r}: expected a list of strings')
        value = list(value)
    elif not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ParamError(f'{name}={value!r}: expected {kind.__name__}')
    if kind is float and not math.isfinite(value):
        raise ParamError(f'{name}={value!r}: must be finite')
    if (info.low is not None and value < info.low) or (
            info.high is not None and value > info.high):
        raise ParamError(f'{name}={value!r} is outside {_fmt_range(info)} {info.unit}'.rstrip())
    if info.choices and value not in info.choices:
        raise ParamError(f'{name}={value!r} must be one of {list(info.choices)}')
    if info.check is not None:
        try:
            info.check(value)
        except ValueError as exc:
            raise ParamError(f'{name}={value!r}: {exc}') from None
    return value


def build(cls: type[T], node: str, values: Mapping[str, Any]) -> T:
    """A spec instance from `values` (missing keys keep their default; unknown keys refused)."""
    specs = {s.name: s for s in spec_fields(cls)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ParamError(f'{node}: unknown parameter(s) {unknown} (known: {sorted(specs)})')
    checked = {k: check_value(node, specs[k], v) for k, v in values.items()}
    try:
        return cls(**checked)
    except ParamError:
        raise
    except ValueError as exc:  # cross-field checks in __post_init__
        raise ParamError(f'{node}: {exc}') from None


def with_values(params: T, node: str, values: Mapping[str, Any]) -> T:
    """`params` with some values changed, checked like `build`."""
    specs = {s.name: s for s in spec_fields(type(params))}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ParamError(f'{node}: unknown parameter(s) {unknown}')
    checked = {k: check_value(node, specs[k], v) for k, v in values.items()}
    try:
        return replace(params, **checked)
    except ValueError as exc:
        raise ParamError(f'{node}: {exc}') from None


# -- params files ---------------------------------------------------------------------------
SHARED_KEY = '/**'


def _applies_to(key: str, node: str) -> bool:
    """Whether a params-file block applies to a node, the way rcl matches its keys."""
    key = key.strip()
    return key in (SHARED_KEY, node, f'/{node}', f'{SHARED_KEY}/{node}')


def read_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """{block key: ros__parameters} of a ROS 2 params file; ParamError for a broken one."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ParamError(f'params file {path}: {exc.strerror or exc}') from None
    except yaml.YAMLError as exc:
        raise ParamError(f'params file {path}: not valid YAML ({exc})'.replace('\n', ' ')) \
            from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamError(f'params file {path}: expected node blocks, got {type(data).__name__}')
    blocks = {}
    for key, block in data.items():
        params = block.get('ros__parameters') if isinstance(block, dict) else None
        if not isinstance(params, dict):
            raise ParamError(f'params file {path}: block {key!r} has no ros__parameters mapping')
        blocks[str(key)] = params
    return blocks


def file_values(blocks: Mapping[str, Mapping[str, Any]], node: str,
                known: Iterable[str]) -> dict[str, Any]:
    """The values a node takes from a params file's blocks, shared block first.

    Shared keys the node does not declare are skipped (they are for other nodes), as rcl does.
    """
    known = set(known)
    values: dict[str, Any] = {}
    for key, params in blocks.items():
        if not _applies_to(key, node):
            continue
        shared = key.strip() == SHARED_KEY
        values.update({k: v for k, v in params.items() if not shared or k in known})
    values.pop('use_sim_time', None)  # rclpy's own parameter, not part of the spec
    return values


def load_params(cls: type[T], node: str, paths: Iterable[str | Path] = (),
                overrides: Mapping[str, Any] | None = None) -> T:
    """A node's parameters as the node would declare them from these params files."""
    names = [s.name for s in spec_fields(cls)]
    values: dict[str, Any] = {}
    for path in paths:
        from_file = file_values(read_params_file(path), node, names)
        build(cls, f'{path}: {node}', from_file)  # a bad key or value names its file
        values.update(from_file)
    values.update(overrides or {})
    return build(cls, node, values)


# -- generated docs -------------------------------------------------------------------------
def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix(
        '\n...').removesuffix('...').strip()


def _comment(spec: ParamField) -> str:
    info = spec.info
    parts = [info.unit, info.description]
    if info.choices or info.choices_doc:
        parts.append(f'One of: {_fmt_range(info)}.')
    if not info.read_only:
        parts.append('(settable at run time)')
    return ' '.join(p for p in parts if p)


def params_yaml(nodes: Mapping[str, type], header: str = '') -> str:
    """The params file for a graph: shared parameters in `/**`, then one block per node."""
    lines = [f'# {line}' if line else '#' for line in header.splitlines()]
    shared: dict[str, ParamField] = {}
    for cls in nodes.values():
        for s in spec_fields(cls):
            if s.info.shared:
                shared.setdefault(s.name, s)

    def block(key: str, specs: list[ParamField]) -> None:
        lines.append(f'{key}:')
        lines.append('  ros__parameters:')
        width = max(len(f'{s.name}: {_yaml_scalar(s.default)}') for s in specs)
        for s in specs:
            entry = f'{s.name}: {_yaml_scalar(s.default)}'
            lines.append(f'    {entry.ljust(width)}  # {_comment(s)}')

    if shared:
        block(SHARED_KEY, list(shared.values()))
    for node, cls in nodes.items():
        specs = [s for s in spec_fields(cls) if not s.info.shared]
        if specs:
            block(f'{SHARED_KEY}/{node}', specs)
    return '\n'.join(lines) + '\n'


def params_markdown(cls: type) -> str:
    """A README table of one node's parameters."""
    rows = ['| parameter | default | values | run time | description |',
            '|---|---|---|---|---|']
    for s in spec_fields(cls):
        info = s.info
        values = ' '.join(p for p in (_fmt_range(info), info.unit) if p).replace('|', '\\|')
        rows.append(f'| `{s.name}` | `{_yaml_scalar(s.default)}` | {values} | '
                    f'{"settable" if not info.read_only else "read-only"} | '
                    f'{info.description}{" (shared)" if info.shared else ""} |')
    return '\n'.join(rows)


def graph_overrides(nodes: Mapping[str, type], values: Mapping[str, Any]) -> dict[str, dict]:
    """{node: {key: value}}: each value goes to every node whose spec declares it.

    Launch arguments, `mm-fusion up` options and the bag player all route overrides through
    this, so which node takes which setting is read off the specs, never listed by hand. A key
    no node declares is refused.
    """
    out: dict[str, dict] = {}
    taken = set()
    for node, cls in nodes.items():
        names = {s.name for s in spec_fields(cls)}
        mine = {k: v for k, v in values.items() if k in names}
        taken |= set(mine)
        if mine:
            out[node] = mine
    unknown = sorted(set(values) - taken)
    if unknown:
        raise ParamError(f'no node of the graph takes {unknown}')
    return out


def is_spec(cls: Any) -> bool:
    return is_dataclass(cls) and any('param' in f.metadata for f in fields(cls))
