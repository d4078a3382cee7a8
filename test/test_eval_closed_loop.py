"""Closed-loop episodes keep per-frame labels and decisions for the on-policy ablation."""

import pytest

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision
from mm_fusion_ros.evaluation.closed_loop import drive, outcomes_to_rows
from mm_fusion_ros.sim.scenarios import ScenarioConfig, ScenarioType
from mm_fusion_ros.sim.simulator import expert_policy


def test_drive_records_expert_labels_and_decisions_per_frame():
    config = ScenarioConfig(ScenarioType.RED_LIGHT, seed=3, duration=6.0)
    expert = drive(config, expert_policy, render=False)
    n = round(config.duration / config.dt)
    assert len(expert.expert_actions) == len(expert.actions) == n
    assert expert.actions == expert.expert_actions and expert.agreement == 1.0

    def always_cruise(frame):
        return Decision(stamp_ns=round(frame.stamp * 1e9), action=Action.CRUISE)

    cruiser = drive(config, always_cruise, render=False)
    assert set(cruiser.actions) == {int(Action.CRUISE)}
    stops = cruiser.expert_actions.count(int(Action.STOP))
    assert stops > 0  # the light is red ahead, so the expert labels STOP
    assert cruiser.agreement == pytest.approx(1.0 - stops / len(cruiser.actions))

    row = outcomes_to_rows([cruiser])[0]
    assert row['actions'] == '0' * len(cruiser.actions)
    assert [int(c) for c in row['expert_actions']] == cruiser.expert_actions


def test_drive_records_the_model_decision_apart_from_the_final_one():
    class Overridden:
        """A model that says STOP while the layer after it always sends CRUISE."""

        model_decision = None

        def __call__(self, frame):
            stamp = round(frame.stamp * 1e9)
            self.model_decision = Decision(stamp_ns=stamp, action=Action.STOP)
            return Decision(stamp_ns=stamp, action=Action.CRUISE)

    config = ScenarioConfig(ScenarioType.FREE_ROAD, seed=1, duration=2.0)
    out = drive(config, Overridden(), render=False)
    assert set(out.actions) == {int(Action.CRUISE)}
    assert out.model_actions == [int(Action.STOP)] * len(out.actions)
    assert drive(config, expert_policy, render=False).model_actions == []


def test_closed_loop_command_writes_the_on_policy_ablation(tmp_path, capsys):
    import json

    from mm_fusion_ros.cli import main as cli_main

    out = tmp_path / 'cl.json'
    assert cli_main(['closed-loop', '--episodes', '2', '--duration', '0.5', '--num-threads', '1',
                     '--drivers', 'fused,camera,radar,expert', '--json', str(out)]) == 0
    assert 'On policy' in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert [s['driver'] for s in report['summary']] == ['fused', 'camera', 'radar', 'expert']
    ablation = report['on_policy_ablation']
    assert ablation['samples']['all'] == 2 * 10  # 2 episodes x 0.5 s at 20 Hz
    assert set(ablation['macro_f1']) == {'fused', 'camera', 'radar'}
    fused = report['episodes']['fused'][0]
    assert len(fused['model_actions']) == len(fused['actions']) == 10
    assert report['episodes']['expert'][0]['model_actions'] == ''
