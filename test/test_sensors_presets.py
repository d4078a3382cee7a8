"""Radar presets: loading, validation, CARLA and nuScenes layouts to canonical features."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from mm_fusion_ros.sensors.pointcloud import (
    FLOAT32,
    PointCloudMsg,
    PointFieldSpec,
    create_cloud,
    dtype_from_fields,
    make_fields,
)
from mm_fusion_ros.sensors.radar_features import CANONICAL_RADAR_FEATURES
from mm_fusion_ros.sensors.radar_presets import (
    MissingRadarFieldError,
    RadarPresetError,
    list_presets,
    load_preset,
    preset_from_dict,
)

PRESET_DIR = Path(__file__).resolve().parents[1] / 'config' / 'radar_presets'


def cloud_from(fields, point_step, columns):
    n = len(next(iter(columns.values())))
    pts = np.zeros(n, dtype_from_fields(fields, point_step))
    for name, values in columns.items():
        pts[name] = values
    msg = create_cloud(None, fields, pts, msg_type=PointCloudMsg)
    msg.point_step = point_step  # keep trailing padding as the sensor does
    pad = np.zeros((n, point_step), np.uint8)
    pad[:, :pts.dtype.itemsize] = np.frombuffer(pts.tobytes(), np.uint8).reshape(n, -1)
    msg.data, msg.row_step = pad.tobytes(), point_step * n
    return msg


def test_shipped_presets_load():
    assert {'sim', 'carla', 'nuscenes'} <= set(list_presets())
    for name in ('sim', 'carla', 'nuscenes'):
        preset = load_preset(name)
        assert preset.name == name and set(CANONICAL_RADAR_FEATURES) <= set(preset.sources)
    assert load_preset(PRESET_DIR / 'sim.yaml').name == 'sim'


def test_sim_layout_is_dense_float32():
    preset = load_preset('sim')
    assert preset.point_step == 20
    assert [(f.name, f.offset, f.datatype) for f in preset.layout_fields()] == [
        (n, 4 * i, FLOAT32) for i, n in enumerate(CANONICAL_RADAR_FEATURES)]
    cols = {n: np.arange(3, dtype=np.float32) + i for i, n in enumerate(CANONICAL_RADAR_FEATURES)}
    out = preset.converter()(cloud_from(preset.layout_fields(), 20, cols))
    np.testing.assert_array_equal(out, np.stack(list(cols.values()), 1))


def test_carla_cloud_to_canonical():
    preset = load_preset('carla')
    fields = preset.layout_fields()
    assert preset.point_step == 32 and fields[-1].offset == 28  # the 4-byte gap
    velocity = np.array([-3.0, 2.0], np.float32)  # CARLA: negative when approaching
    cloud = cloud_from(fields, 32, {
        'x': [10, 20], 'y': [1, -1], 'z': [0.5, 0], 'Range': [10.06, 20.02],
        'Velocity': velocity, 'AzimuthAngle': [0.1, -0.05], 'ElevationAngle': [0.05, 0]})
    out = preset.converter()(cloud)
    assert out.shape == (2, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :3], [[10, 1, 0.5], [20, -1, 0]])
    # Canonical radial velocity is positive when receding: approaching stays negative.
    np.testing.assert_allclose(out[:, 3], velocity)
    assert (out[:, 4] == preset.sources['rcs'].constant).all()


def test_nuscenes_cloud_derives_radial_velocity():
    preset = load_preset('nuscenes')
    assert preset.point_step == 43  # packed, unaligned floats
    x = np.array([10.0, 0.0, 3.0, 0.0], np.float32)
    y = np.array([0.0, 5.0, 4.0, 0.0], np.float32)
    vx = np.array([-2.0, 1.0, 3.0, 1.0], np.float32)
    vy = np.array([7.0, 2.0, 4.0, 1.0], np.float32)
    ground = np.full(4, 9.0, np.float32)
    cloud = cloud_from(preset.layout_fields(), 43, {
        'x': x, 'y': y, 'z': np.zeros(4), 'dyn_prop': [0, 1, 2, 3], 'id': [1, 2, 3, 4],
        'rcs': [5, 6, 7, 8], 'vx': vx, 'vy': vy, 'vx_comp': ground, 'vy_comp': -ground})
    conv = preset.converter(CANONICAL_RADAR_FEATURES + ('vx', 'vy'))
    out = conv(cloud)
    # radial = v . p / |p| of the relative velocity: approaching along x -> -2; along y -> 2;
    # (3,4).(3,4)/5 = 5; a point at the origin has no direction -> 0.
    np.testing.assert_allclose(out[:, 3], [-2, 2, 5, 0])
    np.testing.assert_allclose(out[:, 4], [5, 6, 7, 8])
    # The over-ground (compensated) velocity only in its own columns.
    np.testing.assert_allclose(out[:, 5:], np.stack([ground, -ground], 1))


SPEED = 12.0  # [m/s] the ego's
AZIMUTH = np.radians([-40.0, -10.0, 0.0, 15.0, 35.0])


def _static_targets_as_reported(preset: str):
    """Static targets seen from an ego at SPEED, as each sensor reports them.

    In each sensor's own documented convention, the ego moving along the sensor's x.
    """
    rng = np.array([12.0, 30.0, 55.0, 20.0, 8.0])
    x, y = rng * np.cos(AZIMUTH), rng * np.sin(AZIMUTH)
    doppler = -SPEED * np.cos(AZIMUTH)  # relative speed along the ray, closing
    layout = load_preset(preset)
    if preset == 'sim':
        columns = {'x': x, 'y': y, 'radial_velocity': doppler, 'rcs': np.full(5, 10.0)}
    elif preset == 'carla':  # CARLA: Velocity is the relative speed on the ray, < 0 closing
        columns = {'x': x, 'y': y, 'Range': rng, 'Velocity': doppler,
                   'AzimuthAngle': AZIMUTH}
    else:  # nuScenes: (vx, vy) relative to the ego; the compensated velocity of a static
        columns = {'x': x, 'y': y, 'vx': np.full(5, -SPEED), 'vy': np.zeros(5),
                   'vx_comp': np.zeros(5), 'vy_comp': np.zeros(5), 'rcs': np.full(5, 5.0)}
    return cloud_from(layout.layout_fields(), layout.point_step, columns)


@pytest.mark.parametrize('preset', sorted(list_presets(PRESET_DIR)))
def test_every_preset_gives_a_static_target_minus_v_cos_azimuth(preset):
    """One meaning per canonical feature: relative radial velocity, positive receding."""
    out = load_preset(preset).converter()(_static_targets_as_reported(preset))
    np.testing.assert_allclose(out[:, 3], -SPEED * np.cos(AZIMUTH), rtol=1e-5, atol=1e-4)


def test_missing_fields_fail_at_configuration_time():
    carla = load_preset('carla')
    sim_fields = [f.name for f in load_preset('sim').layout_fields()]
    with pytest.raises(MissingRadarFieldError, match=r"\['Velocity'\]"):
        carla.converter(field_names=sim_fields)
    with pytest.raises(MissingRadarFieldError, match=r"\['vx', 'vy'\]"):
        load_preset('nuscenes').check_fields(['x', 'y', 'z', 'rcs'])
    carla.check_fields(f.name for f in carla.layout_fields())  # complete: no error


def test_converter_checks_first_cloud_and_layout_changes():
    preset = load_preset('sim')
    conv = preset.converter()
    good = cloud_from(make_fields(CANONICAL_RADAR_FEATURES), 20, {'x': [1.0]})
    assert conv(good).shape == (1, 5)
    bad = cloud_from(make_fields(['x', 'y', 'z', 'rcs']), 16, {'x': [1.0]})
    with pytest.raises(MissingRadarFieldError, match='radial_velocity'):
        conv(bad)


def test_field_with_count_is_rejected():
    preset = load_preset('sim')
    fields = make_fields(['x', 'y', 'z', 'radial_velocity']) + [PointFieldSpec('rcs', 16, 7, 2)]
    cloud = cloud_from(fields, 24, {'x': [1.0]})
    with pytest.raises(RadarPresetError, match='count > 1'):
        preset.converter()(cloud)


def test_optional_feature_not_provided():
    with pytest.raises(RadarPresetError, match="does not provide 'vx'"):
        load_preset('sim').converter(CANONICAL_RADAR_FEATURES + ('vx',))
    with pytest.raises(RadarPresetError, match='unknown radar feature'):
        load_preset('sim').converter(('x', 'speed'))


def test_scale_and_offset():
    data = yaml.safe_load((PRESET_DIR / 'sim.yaml').read_text())
    data['features']['radial_velocity'] = {'field': 'radial_velocity', 'scale': -1.0}
    data['features']['rcs'] = {'field': 'rcs', 'offset': 3.0}
    preset = preset_from_dict(data)
    cloud = cloud_from(make_fields(CANONICAL_RADAR_FEATURES), 20,
                       {'radial_velocity': [2.0], 'rcs': [1.0]})
    assert preset.converter()(cloud)[0, 3:].tolist() == [-2.0, 4.0]


@pytest.mark.parametrize('data, match', [
    ([], 'mapping'),
    ({'features': None}, 'mapping'),
    ({'features': {'x': {'field': 'x'}}}, 'no source for'),
    ({'features': {'speed': {'field': 's'}}}, 'unknown feature'),
    ({'features': {'x': 'x'}}, 'expected a mapping'),
    ({'features': {'x': {'field': 'x', 'constant': 1}}}, 'exactly one'),
    ({'features': {'x': {}}}, 'exactly one'),
    ({'features': {'x': {'field': 'x', 'gain': 2}}}, 'unknown keys'),
    ({'features': {'x': {'constant': 'abc'}}}, 'could not convert'),
    ({'features': {'x': {'constant': float('nan')}}}, 'finite'),
    ({'features': {'rcs': {'radial_from': ['a']}}}, 'radial_from needs'),
    ({'features': {'rcs': {'radial_from': ['a', 'b']}}}, 'only derives radial_velocity'),
])
def test_malformed_presets(data, match):
    with pytest.raises(RadarPresetError, match=match):
        preset_from_dict(data)


def test_position_cannot_be_derived():
    data = yaml.safe_load((PRESET_DIR / 'sim.yaml').read_text())
    data['features']['x'] = {'radial_from': ['a', 'b']}
    with pytest.raises(RadarPresetError):
        preset_from_dict(data)


def test_bad_layout_and_unknown_preset(tmp_path):
    data = yaml.safe_load((PRESET_DIR / 'sim.yaml').read_text())
    data['point_step'] = 12
    with pytest.raises(RadarPresetError, match='point_step 12'):
        preset_from_dict(data)
    data['layout'] = [{'name': 'x'}]
    with pytest.raises(RadarPresetError, match='bad layout'):
        preset_from_dict(data)
    with pytest.raises(RadarPresetError, match='unknown radar preset'):
        load_preset('no_such_radar')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('features: [unclosed')
    with pytest.raises(RadarPresetError, match='cannot read'):
        load_preset(broken)
    (tmp_path / 'mine.yaml').write_text(yaml.safe_dump(
        yaml.safe_load((PRESET_DIR / 'sim.yaml').read_text()) | {'name': 'mine'}))
    assert load_preset('mine', preset_dir=tmp_path).name == 'mine'
    assert list_presets(tmp_path) == ['broken', 'mine']


def test_plain_namespace_cloud():
    preset = load_preset('sim')
    pts = np.arange(10, dtype=np.float32).reshape(2, 5)
    cloud = SimpleNamespace(height=1, width=2, fields=make_fields(CANONICAL_RADAR_FEATURES),
                            is_bigendian=False, point_step=20, row_step=40,
                            data=pts.tobytes(), is_dense=True)
    np.testing.assert_array_equal(preset.converter()(cloud), pts)
