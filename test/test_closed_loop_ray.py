"""`mm-fusion closed-loop`: --ray rows equal the serial loop's; rates carry exact intervals."""

import json

import pytest

from mm_fusion_ros.cli import main as cli_main
from mm_fusion_ros.evaluation.closed_loop import clopper_pearson, rate, rate_text


def test_clopper_pearson_matches_the_exact_interval():
    # 0 events: the upper bound is 1 - (alpha/2)^(1/n) (0/1000 -> 0.37 %)
    assert clopper_pearson(0, 1000) == (0.0, pytest.approx(1 - 0.025 ** (1 / 1000), rel=1e-9))
    assert clopper_pearson(1000, 1000) == (pytest.approx(0.025 ** (1 / 1000), rel=1e-9), 1.0)
    # reference values (scipy.stats.beta.ppf)
    assert clopper_pearson(5, 100) == pytest.approx((0.016432, 0.112835), abs=1e-6)
    assert clopper_pearson(3, 10) == pytest.approx((0.066740, 0.652453), abs=1e-6)
    low, high = clopper_pearson(240, 240_000)
    assert low < 0.001 < high and high - low < 3e-4
    assert rate_text(rate(0, 1000)) == '0/1000 (<= 0.37 %)'
    assert rate_text(rate(5, 100)) == '5/100 = 5.00 % [1.64, 11.28]'
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


def _closed_loop(tmp_path, name, *extra):
    out = tmp_path / f'{name}.json'
    assert cli_main(['closed-loop', '--episodes', '3', '--duration', '1.0', '--num-threads', '1',
                     '--drivers', 'fused,expert', '--json', str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_ray_rows_equal_the_serial_rows(tmp_path, capsys):
    pytest.importorskip('ray', reason="Ray is optional (pip install 'mm_fusion_ros[ray]')")
    serial = _closed_loop(tmp_path, 'serial')
    parallel = _closed_loop(tmp_path, 'ray', '--ray', '--workers', '2')
    assert parallel['episodes'] == serial['episodes']
    assert [len(serial['episodes'][d]) for d in ('fused', 'expert')] == [3, 3]
    assert parallel['summary'] == serial['summary']
    assert parallel['rates'] == serial['rates']
    printed = capsys.readouterr().out
    assert 'exact 95 % intervals' in printed and '0/3 (<= 70.76 %)' in printed


def test_rates_and_decision_report_in_the_json(tmp_path):
    report = _closed_loop(tmp_path, 'serial')
    fused = report['rates']['fused']
    assert set(fused) == {'collision_episodes', 'red_light_episodes', 'phantom_eb_episodes',
                          'phantom_eb_frames', 'phantom_eb_clutter_frames',
                          'phantom_stop_frames'}
    assert fused['phantom_eb_frames']['trials'] == 3 * 20  # 3 episodes x 1 s at 20 Hz
    assert 0.0 <= fused['collision_episodes']['low'] <= fused['collision_episodes']['high']
    assert set(report['rates']['expert']) == {'collision_episodes', 'red_light_episodes'}
    assert report['decision_report']['fused']['frames'] == 60
    assert 0.0 <= report['summary'][0]['model_macro_f1'] <= 1.0


def test_workers_without_ray_is_refused(capsys):
    assert cli_main(['closed-loop', '--episodes', '1', '--workers', '2']) == 2
    assert '--workers N (N >= 1) goes with --ray' in capsys.readouterr().err
