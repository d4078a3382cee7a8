"""`mm-fusion closed-loop --rig`: the simulator drives a foreign rig through the geometry path."""

import json

import numpy as np
import pytest

from mm_fusion_ros.cli import main as cli_main
from mm_fusion_ros.evaluation.closed_loop import drive
from mm_fusion_ros.evaluation.rig_policy import RigInputs
from mm_fusion_ros.sim import ScenarioConfig, ScenarioType
from mm_fusion_ros.sim.camera import CameraConfig, CameraModel
from mm_fusion_ros.sim.conditions import Condition
from mm_fusion_ros.sim.rig import FOREIGN_RIG, RigSensors
from mm_fusion_ros.sim.simulator import SimOptions, Simulator, expert_policy

CONFIG = ScenarioConfig(scenario=ScenarioType.LEAD_BRAKE, condition=Condition.CLEAR, seed=5,
                        duration=3.0)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def test_foreign_rig_inputs_are_the_training_rigs():
    """Rendered as the foreign rig sees it, turned back by its geometry: the training inputs.

    Radar: the carla layout's points through the mount land where the level radar's are (up
    to the rig radar's own x/z, which the model frame keeps), rcs the preset's constant.
    Camera: the canonical view is much closer to the training camera's frame than the rig's
    frame merely resized (the mounts' translations differ, so not equal).
    """
    rig = FOREIGN_RIG
    frame = Simulator(CONFIG, rig.sim_options()).reset()
    training = Simulator(CONFIG, SimOptions()).reset()
    seen = RigInputs(rig, CameraConfig())(RigSensors(rig).frame(frame))
    expected = frame.radar[:, :3] + np.array([rig.radar_mount.x - 2.3, 0.0,
                                              rig.radar_mount.z - 0.5])
    np.testing.assert_allclose(seen.radar[:, :3], expected, atol=1e-3)
    np.testing.assert_allclose(seen.radar[:, 3], frame.radar[:, 3], atol=1e-6)
    assert np.all(seen.radar[:, 4] == 10.0)  # carla: no rcs
    assert seen.rgb.shape == training.rgb.shape == (128, 256, 3)
    from PIL import Image

    resized = np.asarray(Image.fromarray(RigSensors(rig).image(frame.rgb)).resize((256, 128)))
    assert _mad(seen.rgb, training.rgb) < 0.75 * _mad(resized, training.rgb)


def test_drive_renders_the_rig_for_the_policy():
    seen = []

    def policy(frame):
        seen.append(frame)
        return expert_policy(frame)

    outcome = drive(CONFIG, policy, CameraModel(FOREIGN_RIG.render_camera()), rig=FOREIGN_RIG)
    assert len(seen) == len(outcome.actions) == round(CONFIG.duration / CONFIG.dt)
    assert {f.rgb.shape for f in seen} == {(360, 640, 3)}
    radar = [f for f in seen if f.radar is not None]
    assert 0.6 * len(seen) <= len(radar) < len(seen)  # 15 Hz radar under a 20 Hz camera


def _closed_loop(tmp_path, name, *extra):
    out = tmp_path / f'{name}.json'
    assert cli_main(['closed-loop', '--rig', 'foreign', '--episodes', '2', '--duration', '2.0',
                     '--num-threads', '1', '--drivers', 'fused', '--json', str(out),
                     *extra]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope='module')
def serial(tmp_path_factory):
    return _closed_loop(tmp_path_factory.mktemp('rig'), 'serial')


def test_closed_loop_drives_the_foreign_rig(serial):
    assert serial['rig'] == 'foreign'
    rows = serial['episodes']['fused']
    assert len(rows) == 2
    assert all(len(r['model_actions']) == len(r['actions']) == 40 for r in rows)
    assert serial['decision_report']['fused']['frames'] == 80


def test_foreign_rig_ray_rows_equal_the_serial_rows(serial, tmp_path):
    pytest.importorskip('ray', reason="Ray is optional (pip install 'mm_fusion_ros[ray]')")
    parallel = _closed_loop(tmp_path, 'ray', '--ray', '--workers', '2')
    assert parallel['episodes'] == serial['episodes']
    assert parallel['summary'] == serial['summary']
