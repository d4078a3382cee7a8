"""Safety layer: watchdog fallback, radar TTC override, dwell hysteresis, accel rate limit."""

import math

import numpy as np

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.safety import (
    NS,
    SafetyConfig,
    SafetyLayer,
    continues_track,
    radar_time_to_collision,
)

MS = 1_000_000


def _model(stamp_ns, action=Action.CRUISE, accel=0.5):
    return Decision(stamp_ns=stamp_ns, action=action, target_acceleration=accel, confidence=0.9)


def _far_radar():
    return np.array([[60.0, 0.0, 0.5, 0.0, 10.0]], np.float32)


def _closing_radar(rng=10.0, vr=-10.0):
    return np.array([[rng, 0.2, 0.5, vr, 10.0]], np.float32)


def _fed(layer, t_ns, radar=None, action=Action.CRUISE, accel=0.5):
    layer.on_radar(t_ns, _far_radar() if radar is None else radar)
    layer.on_model_decision(t_ns, _model(t_ns, action, accel))
    return layer.decide(t_ns)


def test_radar_ttc_uses_corridor_and_closing_points_only():
    pts = np.array(
        [
            [20.0, 0.0, 0.0, -10.0, 5.0],  # in path, closing: ttc 2 s
            [5.0, 5.0, 0.0, -10.0, 5.0],  # outside the corridor
            [8.0, 0.0, 0.0, 3.0, 5.0],  # receding
        ],
        np.float32,
    )
    assert math.isclose(radar_time_to_collision(pts, 1.6), 2.0, rel_tol=1e-5)
    assert radar_time_to_collision(np.zeros((0, 5), np.float32), 1.6) == math.inf


def test_no_inputs_gives_degraded_fallback():
    d = SafetyLayer().decide(0)
    assert d.degraded and d.source == DecisionSource.FALLBACK
    assert d.action == Action.STOP and d.target_acceleration < 0
    assert 'no radar' in d.degraded_reason and 'no fusion output' in d.degraded_reason


def test_radar_timeout_switches_to_fallback_and_recovers():
    layer = SafetyLayer(SafetyConfig(radar_timeout=0.075))
    assert not _fed(layer, 0).degraded
    layer.on_model_decision(60 * MS, _model(60 * MS))
    assert not layer.decide(60 * MS).degraded
    layer.on_model_decision(100 * MS, _model(100 * MS))
    d = layer.decide(100 * MS)
    assert d.degraded and 'radar stale' in d.degraded_reason
    assert d.source == DecisionSource.FALLBACK
    d = _fed(layer, 150 * MS, action=Action.STOP, accel=-3.0)
    assert not d.degraded and d.source == DecisionSource.MODEL


def test_ttc_override_needs_confirmation_frames():
    layer = SafetyLayer(SafetyConfig(ttc_confirm_frames=2, ttc_brake_threshold=1.5))
    assert _fed(layer, 0).action == Action.CRUISE
    d = _fed(layer, 50 * MS, radar=_closing_radar(10.0, -10.0))  # ttc 1 s, first frame
    assert d.action == Action.CRUISE
    d = _fed(layer, 100 * MS, radar=_closing_radar(9.5, -10.0))
    assert d.action == Action.EMERGENCY_BRAKE and d.source == DecisionSource.SAFETY_OVERRIDE
    assert d.target_acceleration == SafetyConfig().emergency_acceleration


def _clutter_frames():
    """In-corridor returns below 1.5 s TTC that land somewhere else each frame."""
    for rng, lateral in ((10.0, 0.2), (6.0, -1.0), (12.0, 0.5), (8.0, 1.2)):
        yield np.array([[rng, lateral, 0.5, -10.0, 0.0]], np.float32)


def test_ttc_override_by_default_brakes_for_any_return_in_consecutive_frames():
    layer = SafetyLayer(SafetyConfig(ttc_confirm_frames=2, ttc_brake_threshold=1.5))
    _fed(layer, 0)
    actions = [_fed(layer, (50 + 50 * i) * MS, radar=r).action
               for i, r in enumerate(_clutter_frames())]
    assert actions[0] == Action.CRUISE and actions[1] == Action.EMERGENCY_BRAKE


def test_ttc_track_gate_ignores_threats_that_do_not_persist():
    """Clutter or a ghost in the corridor lands elsewhere each frame: no confirmation."""
    layer = SafetyLayer(SafetyConfig(ttc_confirm_frames=2, ttc_brake_threshold=1.5,
                                     ttc_track_gate=1.0))
    _fed(layer, 0)
    t = 50
    for radar in _clutter_frames():
        assert _fed(layer, t * MS, radar=radar).action == Action.CRUISE, radar
        t += 50
    # the same target moving as its closing speed says confirms on the next frame
    assert _fed(layer, t * MS, radar=_closing_radar(9.0, -10.0)).action == Action.CRUISE
    assert _fed(layer, (t + 50) * MS, radar=_closing_radar(8.5, -10.0)).action == \
        Action.EMERGENCY_BRAKE


def test_ttc_track_gate_follows_the_target_across_a_dropped_frame():
    layer = SafetyLayer(SafetyConfig(ttc_confirm_frames=2, ttc_brake_threshold=1.5,
                                     ttc_track_gate=1.0))
    _fed(layer, 0)
    assert _fed(layer, 50 * MS, radar=_closing_radar(10.0, -10.0)).action == Action.CRUISE
    layer.on_model_decision(100 * MS, _model(100 * MS))  # the radar frame at 100 ms is lost
    d = _fed(layer, 150 * MS, radar=_closing_radar(9.0, -10.0))  # 1 m in 0.1 s at 10 m/s
    assert d.action == Action.EMERGENCY_BRAKE


def test_continues_track_gates_range_and_lateral_offset():
    previous = np.array([[10.0, 0.0, 10.0]])  # range, lateral, closing speed
    assert continues_track(previous, np.array([[9.6, 0.3, 10.0]]), 0.05, 1.0)
    assert not continues_track(previous, np.array([[8.0, 0.0, 10.0]]), 0.05, 1.0)
    assert not continues_track(previous, np.array([[9.5, 1.4, 10.0]]), 0.05, 1.0)
    assert not continues_track(np.zeros((0, 3)), np.array([[9.5, 0.0, 10.0]]), 0.05, 1.0)
    assert not continues_track(previous, np.array([[9.5, 0.0, 10.0]]), math.inf, 1.0)


def test_dwell_suppresses_flicker_but_not_escalation():
    layer = SafetyLayer(SafetyConfig(min_dwell=0.3, max_jerk=1000.0))
    assert _fed(layer, 0, action=Action.FOLLOW, accel=-1.0).action == Action.FOLLOW
    # A short CRUISE blip does not get through.
    assert _fed(layer, 50 * MS, action=Action.CRUISE).action == Action.FOLLOW
    assert _fed(layer, 100 * MS, action=Action.FOLLOW, accel=-1.0).action == Action.FOLLOW
    # A persistent CRUISE does, after the dwell time.
    t = 150
    actions = []
    while t <= 600:
        actions.append(_fed(layer, t * MS, action=Action.CRUISE).action)
        t += 50
    assert actions[0] == Action.FOLLOW and actions[-1] == Action.CRUISE
    # Escalation to STOP is immediate.
    assert _fed(layer, 650 * MS, action=Action.STOP, accel=-3.0).action == Action.STOP


def test_acceleration_rate_limit():
    layer = SafetyLayer(SafetyConfig(max_jerk=10.0, min_dwell=0.0))
    _fed(layer, 0, accel=0.0)
    d = _fed(layer, 50 * MS, accel=2.0)
    assert math.isclose(d.target_acceleration, 0.5, rel_tol=1e-6)  # 10 m/s^3 * 0.05 s
    d = _fed(layer, 100 * MS, accel=2.0)
    assert math.isclose(d.target_acceleration, 1.0, rel_tol=1e-6)


def test_emergency_brake_is_not_rate_limited():
    layer = SafetyLayer(SafetyConfig(max_jerk=1.0))
    _fed(layer, 0, accel=1.0)
    d = _fed(layer, 50 * MS, action=Action.EMERGENCY_BRAKE, accel=-8.0)
    assert d.target_acceleration == -8.0


def test_emergency_brake_brakes_fully_and_holds_it_while_easing_off():
    layer = SafetyLayer(SafetyConfig(emergency_acceleration=-7.5, min_dwell=0.3))
    _fed(layer, 0, accel=0.0)
    d = _fed(layer, 50 * MS, action=Action.EMERGENCY_BRAKE, accel=-4.8)
    assert d.action == Action.EMERGENCY_BRAKE and d.target_acceleration == -7.5
    assert _fed(layer, 100 * MS, action=Action.EMERGENCY_BRAKE, accel=-9.0).target_acceleration \
        == -9.0  # never softer than the model asks
    d = _fed(layer, 150 * MS, action=Action.STOP, accel=-3.0)  # within the dwell time
    assert d.action == Action.EMERGENCY_BRAKE and d.target_acceleration == -9.0


def test_braking_harder_for_a_stop_is_not_rate_limited_easing_off_is():
    layer = SafetyLayer(SafetyConfig(max_jerk=10.0, min_dwell=0.0))
    _fed(layer, 0, accel=0.0)
    assert _fed(layer, 50 * MS, action=Action.STOP, accel=-5.0).target_acceleration == -5.0
    d = _fed(layer, 100 * MS, action=Action.STOP, accel=-1.0)
    assert math.isclose(d.target_acceleration, -4.5, rel_tol=1e-6)
    # Slowing down for a lead vehicle stays smooth.
    d = _fed(layer, 150 * MS, action=Action.FOLLOW, accel=-8.0)
    assert math.isclose(d.target_acceleration, -5.0, rel_tol=1e-6)


def test_reset_clears_history():
    layer = SafetyLayer()
    _fed(layer, 10 * NS)
    layer.reset()
    assert layer.decide(0).degraded


def test_brief_radar_gap_coasts_and_long_loss_stops():
    layer = SafetyLayer(SafetyConfig(radar_timeout=0.075, radar_lost_timeout=0.5))
    _fed(layer, 0, accel=1.0)
    # Radar gone, camera/model alive: cautious (no acceleration, at least FOLLOW).
    for t_ms in (100, 300):
        layer.on_model_decision(t_ms * MS, _model(t_ms * MS, Action.CRUISE, 1.0))
        d = layer.decide(t_ms * MS)
        assert d.degraded and d.source == DecisionSource.FALLBACK
        assert d.action == Action.FOLLOW and d.target_acceleration <= 0.0
    # Sustained loss: controlled stop.
    layer.on_model_decision(600 * MS, _model(600 * MS, Action.CRUISE, 1.0))
    d = layer.decide(600 * MS)
    assert d.action == Action.STOP and d.target_acceleration < 0 and d.degraded
