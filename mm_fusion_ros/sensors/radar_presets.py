"""Radar presets: map one sensor's PointCloud2 fields to the canonical radar features.

A preset is a YAML file in `config/radar_presets/` (see `sim.yaml` for the format). Each
canonical feature (`radar_features`) comes from one source:

- `field: NAME` with optional `scale` and `offset` (value = field * scale + offset);
- `constant: VALUE` for a channel the sensor lacks (CARLA has no rcs);
- `radial_from: [VX, VY]`: the projection of the planar velocity (VX, VY) on the unit vector
  from the sensor to the point, positive when receding (nuScenes gives vx_comp/vy_comp, not a
  Doppler channel).

Errors surface at configuration time: a malformed preset when it is loaded (`RadarPresetError`,
a `UserInputError`: `mm-fusion` reports it as one line naming the file, exit 2), and a cloud
that lacks a field the preset reads when the converter is bound to that cloud's fields (the
first message, or a declared field list), with the missing and available names in the message.
A cloud that does not fit the preset at run time raises `RadarConversionError`, a
`SensorDecodeError` (reason 'missing_field', 'bad_layout', ...) like every other decode
failure; it is also a `RadarPresetError`, so configuration-time callers catch it as before.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mm_fusion_ros.errors import UserInputError
from mm_fusion_ros.paths import config_dir
from mm_fusion_ros.sensors.errors import SensorDecodeError
from mm_fusion_ros.sensors.pointcloud import (
    DATATYPES,
    PointCloudMsg,
    PointFieldSpec,
    create_cloud,
    read_points_numpy,
)
from mm_fusion_ros.sensors.radar_features import (
    CANONICAL_RADAR_FEATURES,
    OPTIONAL_RADAR_FEATURES,
)

_DATATYPE_NAMES = {
    'int8': 1,
    'uint8': 2,
    'int16': 3,
    'uint16': 4,
    'int32': 5,
    'uint32': 6,
    'float32': 7,
    'float64': 8,
}


DEFAULT_RATE_HZ = 20.0  # a preset without rate_hz: the simulator's radar rate


class RadarPresetError(UserInputError, ValueError):
    """A preset that is malformed, unknown, or asked for a feature it does not provide.

    A user's file or value (one line and exit 2 at the CLI); still a ValueError for callers
    that catch that.
    """


class RadarConversionError(SensorDecodeError, RadarPresetError):
    """A cloud that does not fit the preset (bad content, not a bad preset file)."""


class MissingRadarFieldError(RadarConversionError):
    """A cloud lacks a field that the preset reads."""

    def __init__(self, message: str, reason: str = 'missing_field') -> None:
        super().__init__(message, reason)


@dataclass(frozen=True)
class FeatureSource:
    """Where one canonical feature comes from (exactly one of field/constant/radial_from)."""

    field: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    constant: float | None = None
    radial_from: tuple[str, str] | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        if self.field is not None:
            return (self.field,)
        return self.radial_from or ()


@dataclass(frozen=True)
class RadarPreset:
    """A loaded preset; `layout` is the publisher's documented layout (may be empty)."""

    name: str
    description: str
    sources: Mapping[str, FeatureSource]
    layout: tuple[PointFieldSpec, ...] = ()
    point_step: int | None = None
    rate_hz: float = DEFAULT_RATE_HZ  # nominal frame rate: sensor timeouts scale with it

    def required_fields(
        self,
        features: Sequence[str] = CANONICAL_RADAR_FEATURES,
    ) -> tuple[str, ...]:
        """Cloud fields read to produce `features` (positions included for derived ones)."""
        self._check_features(features)
        names: list[str] = []
        wanted = list(features)
        if any(self.sources[f].radial_from for f in features):
            wanted += ['x', 'y', 'z']
        for feature in wanted:
            for name in self.sources[feature].fields:
                if name not in names:
                    names.append(name)
        return tuple(names)

    def check_fields(
        self,
        field_names: Iterable[str],
        features: Sequence[str] = CANONICAL_RADAR_FEATURES,
    ) -> None:
        """Raise `MissingRadarFieldError` unless every field the preset reads is present."""
        available = list(field_names)
        missing = [n for n in self.required_fields(features) if n not in available]
        if missing:
            raise MissingRadarFieldError(
                f'radar preset {self.name!r} needs fields {missing} missing from the cloud'
                f' (it has {available}); pick another preset or fix the driver'
            )

    def converter(
        self,
        features: Sequence[str] = CANONICAL_RADAR_FEATURES,
        field_names: Iterable[str] | None = None,
    ) -> 'RadarConverter':
        return RadarConverter(self, features, field_names)

    def layout_fields(self) -> list[PointFieldSpec]:
        """The documented publisher layout, e.g. to build test clouds or publish from sim."""
        return list(self.layout)

    def _check_features(self, features: Sequence[str]) -> None:
        known = CANONICAL_RADAR_FEATURES + OPTIONAL_RADAR_FEATURES
        for f in features:
            if f not in known:
                raise RadarPresetError(f'unknown radar feature {f!r} (known: {known})')
            if f not in self.sources:
                raise RadarPresetError(f'radar preset {self.name!r} does not provide {f!r}')


class RadarConverter:
    """Cloud -> (N, len(features)) float32 for one preset; re-checks fields when they change."""

    def __init__(
        self,
        preset: RadarPreset,
        features: Sequence[str] = CANONICAL_RADAR_FEATURES,
        field_names: Iterable[str] | None = None,
    ) -> None:
        self.preset = preset
        self.features = tuple(features)
        self.needed = preset.required_fields(self.features)
        self._checked: tuple[str, ...] | None = None
        if field_names is not None:
            self.bind(field_names)

    def bind(self, field_names: Iterable[str]) -> None:
        """Validate a cloud layout's field names once (the configuration-time check)."""
        names = tuple(field_names)
        self.preset.check_fields(names, self.features)
        self._checked = names

    def __call__(self, cloud: Any) -> np.ndarray:
        """Canonical (N, F) features of one cloud.

        A cloud that does not fit raises a SensorDecodeError (PointCloudDecodeError,
        RadarConversionError), never another exception.
        """
        try:
            names = tuple(f.name for f in cloud.fields)
        except (AttributeError, TypeError) as e:
            raise RadarConversionError(f'unreadable PointCloud2 fields: {e}') from e
        if names != self._checked:
            self.bind(names)
        cols = read_points_numpy(cloud, self.needed)
        if cols.shape[1] != len(self.needed):
            raise RadarConversionError(
                f'radar preset {self.preset.name!r} reads {self.needed}, but some of these'
                ' fields have count > 1; a preset field must be a scalar', 'bad_layout'
            )
        column = {name: cols[:, i] for i, name in enumerate(self.needed)}
        n = cols.shape[0]
        out = np.empty((n, len(self.features)), np.float32)
        for i, feature in enumerate(self.features):
            out[:, i] = self._value(feature, column, n)
        return out

    def _value(self, feature: str, column: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        src = self.preset.sources[feature]
        if src.constant is not None:
            return np.full(n, src.constant, np.float32)
        if src.field is not None:
            value = column[src.field]
            if src.scale != 1.0 or src.offset != 0.0:
                value = value * np.float32(src.scale) + np.float32(src.offset)
            return value
        assert src.radial_from is not None
        x, y, z = (self._value(a, column, n) for a in ('x', 'y', 'z'))
        vx, vy = column[src.radial_from[0]], column[src.radial_from[1]]
        rng = np.sqrt(x * x + y * y + z * z)
        with np.errstate(invalid='ignore', divide='ignore'):
            radial = (vx * x + vy * y) / rng
        return np.where(rng > 0, radial, np.float32(0.0))


# Fields some radars report besides the canonical features, from the canonical x, y, z.
_DERIVED_FIELDS = {
    'Range': lambda p: np.linalg.norm(p[:, :3], axis=1),
    'AzimuthAngle': lambda p: np.arctan2(p[:, 1], p[:, 0]),
    'ElevationAngle': lambda p: np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1])),
}


def layout_values(points: np.ndarray, sources: Any) -> dict[str, np.ndarray]:
    """Cloud field -> values of canonical (N, 5) points, inverting the preset's mapping."""
    out = {name: fn(points).astype(np.float32) for name, fn in _DERIVED_FIELDS.items()}
    for i, feature in enumerate(CANONICAL_RADAR_FEATURES[:points.shape[1]]):
        src = sources.get(feature)
        if src is not None and src.field is not None:
            out[src.field] = (points[:, i] - np.float32(src.offset)) / np.float32(src.scale)
    return out


def layout_cloud(preset: RadarPreset, points: np.ndarray) -> PointCloudMsg:
    """Canonical (N, 5) points as a cloud in the preset's documented layout.

    What the sensor's driver would publish (the bag writer fills the same fields): lets the
    simulator feed a rig's radar through the preset's converter, as a recorded bag is.
    Fields the points cannot give are zero.
    """
    fields = preset.layout_fields()
    if not fields:
        raise RadarPresetError(f'radar preset {preset.name!r} documents no layout')
    values = layout_values(points, preset.sources)
    zeros = np.zeros(len(points), np.float32)
    columns = np.stack([values.get(f.name, zeros) for f in fields], axis=1)
    return create_cloud(None, fields, columns, msg_type=PointCloudMsg)


def preset_dirs() -> list[Path]:
    """Where presets are looked up: the package's config/radar_presets."""
    path = config_dir() / 'radar_presets'
    return [path] if path.is_dir() else []


def list_presets(preset_dir: str | Path | None = None) -> list[str]:
    dirs = [Path(preset_dir)] if preset_dir is not None else preset_dirs()
    return sorted({p.stem for d in dirs for p in d.glob('*.yaml')})


def load_preset(name_or_path: str | Path, preset_dir: str | Path | None = None) -> RadarPreset:
    """A preset by name (`sim`, `carla`, `nuscenes`) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in ('.yaml', '.yml'):
        dirs = [Path(preset_dir)] if preset_dir is not None else preset_dirs()
        candidates = [d / f'{name_or_path}.yaml' for d in dirs]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise RadarPresetError(
                f'unknown radar preset {str(name_or_path)!r}'
                f' (available: {list_presets(preset_dir)})'
            )
        path = found[0]
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise RadarPresetError(f'cannot read radar preset {str(path)!r}: {e}') from e
    try:
        return preset_from_dict(data, default_name=path.stem)
    except RadarPresetError as e:  # name the file, not only the preset's own name
        raise RadarPresetError(f'radar preset {str(path)!r}: {e}') from e


def preset_from_dict(data: Any, default_name: str = 'custom') -> RadarPreset:
    """Validate a parsed preset; every canonical feature must have a source."""
    if not isinstance(data, Mapping) or not isinstance(data.get('features'), Mapping):
        raise RadarPresetError('a radar preset is a mapping with a "features" mapping')
    name = str(data.get('name', default_name))
    known = CANONICAL_RADAR_FEATURES + OPTIONAL_RADAR_FEATURES
    sources: dict[str, FeatureSource] = {}
    for feature, spec in data['features'].items():
        if feature not in known:
            raise RadarPresetError(
                f'preset {name!r}: unknown feature {feature!r} (known: {known})'
            )
        sources[feature] = _source(name, feature, spec)
    missing = [f for f in CANONICAL_RADAR_FEATURES if f not in sources]
    if missing:
        raise RadarPresetError(f'preset {name!r} has no source for {missing}')
    for pos in ('x', 'y', 'z'):
        if sources[pos].radial_from is not None:
            raise RadarPresetError(f'preset {name!r}: {pos} cannot be derived from velocity')
    layout, point_step = _layout(name, data.get('layout'), data.get('point_step'))
    try:
        rate = float(data.get('rate_hz', DEFAULT_RATE_HZ))
    except (TypeError, ValueError):
        rate = math.nan
    if not 0.1 <= rate <= 1000.0:
        raise RadarPresetError(f'preset {name!r}: rate_hz must be in [0.1, 1000] Hz, got'
                               f' {data.get("rate_hz")!r}')
    return RadarPreset(name, str(data.get('description', '')), sources, layout, point_step,
                       rate)


def _source(name: str, feature: str, spec: Any) -> FeatureSource:
    where = f'preset {name!r} feature {feature!r}'
    if not isinstance(spec, Mapping):
        raise RadarPresetError(f'{where}: expected a mapping, got {spec!r}')
    kinds = [k for k in ('field', 'constant', 'radial_from') if k in spec]
    if len(kinds) != 1:
        raise RadarPresetError(f'{where}: give exactly one of field/constant/radial_from')
    unknown = set(spec) - {'field', 'constant', 'radial_from', 'scale', 'offset'}
    if unknown:
        raise RadarPresetError(f'{where}: unknown keys {sorted(unknown)}')
    try:
        scale, offset = float(spec.get('scale', 1.0)), float(spec.get('offset', 0.0))
        if kinds[0] == 'constant':
            value = float(spec['constant'])
            if not math.isfinite(value):
                raise ValueError('constant must be finite')
            return FeatureSource(constant=value)
    except (TypeError, ValueError) as e:
        raise RadarPresetError(f'{where}: {e}') from e
    if kinds[0] == 'field':
        return FeatureSource(field=str(spec['field']), scale=scale, offset=offset)
    pair = spec['radial_from']
    if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
        raise RadarPresetError(f'{where}: radial_from needs [vx_field, vy_field]')
    if feature != 'radial_velocity':
        raise RadarPresetError(f'{where}: radial_from only derives radial_velocity')
    return FeatureSource(radial_from=(str(pair[0]), str(pair[1])))


def _layout(
    name: str,
    layout: Any,
    point_step: Any,
) -> tuple[tuple[PointFieldSpec, ...], int | None]:
    if layout is None:
        return (), None
    fields = []
    try:
        for item in layout:
            datatype = _DATATYPE_NAMES[str(item.get('datatype', 'float32'))]
            fields.append(
                PointFieldSpec(
                    str(item['name']), int(item['offset']), datatype, int(item.get('count', 1))
                )
            )
    except (KeyError, TypeError, AttributeError) as e:
        raise RadarPresetError(f'preset {name!r}: bad layout entry ({e})') from e
    end = max((f.offset + DATATYPES[f.datatype].itemsize * f.count for f in fields), default=0)
    try:
        step = end if point_step is None else int(point_step)
    except (TypeError, ValueError) as e:
        raise RadarPresetError(f'preset {name!r}: point_step {point_step!r} is not an integer'
                               ) from e
    if step < end:
        raise RadarPresetError(f'preset {name!r}: point_step {step} < end of fields {end}')
    return tuple(fields), step
