"""Safety layer: watchdog fallback, radar TTC override, dwell hysteresis, accel rate limit.

Every published decision names who made it: where it differs from the model's, its source is
the override, the fallback, the dwell hold or the radar-out caution, never the model.
"""

import math

import numpy as np
import pytest

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.safety import (
    NS,
    DecisionLogic,
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
    assert d.source == DecisionSource.RADAR_OUT_CAUTION
    d = _fed(layer, 150 * MS, action=Action.STOP, accel=-3.0)
    assert not d.degraded and d.source == DecisionSource.MODEL


# Returns mode (ttc_use_tracks false): the override as it was before tracking.
def _returns_mode(**kwargs):
    return SafetyConfig(ttc_use_tracks=False, **kwargs)


def test_ttc_override_needs_confirmation_frames():
    layer = SafetyLayer(_returns_mode(ttc_confirm_frames=2, ttc_brake_threshold=1.5))
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


def test_ttc_override_on_returns_brakes_for_any_return_in_consecutive_frames():
    layer = SafetyLayer(_returns_mode(ttc_confirm_frames=2, ttc_brake_threshold=1.5))
    _fed(layer, 0)
    actions = [_fed(layer, (50 + 50 * i) * MS, radar=r).action
               for i, r in enumerate(_clutter_frames())]
    assert actions[0] == Action.CRUISE and actions[1] == Action.EMERGENCY_BRAKE


def test_ttc_track_gate_ignores_threats_that_do_not_persist():
    """Clutter or a ghost in the corridor lands elsewhere each frame: no confirmation."""
    layer = SafetyLayer(_returns_mode(ttc_confirm_frames=2, ttc_brake_threshold=1.5,
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
    layer = SafetyLayer(_returns_mode(ttc_confirm_frames=2, ttc_brake_threshold=1.5,
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


def test_emergency_brake_brakes_fully_and_eases_off_at_the_jerk_limit():
    layer = SafetyLayer(SafetyConfig(emergency_acceleration=-7.5, min_dwell=0.3, max_jerk=10.0))
    _fed(layer, 0, accel=0.0)
    d = _fed(layer, 50 * MS, action=Action.EMERGENCY_BRAKE, accel=-4.8)
    assert d.action == Action.EMERGENCY_BRAKE and d.target_acceleration == -7.5
    assert _fed(layer, 100 * MS, action=Action.EMERGENCY_BRAKE, accel=-9.0).target_acceleration \
        == -9.0  # never softer than the model asks
    # The emergency is over when the model says so (no dwell hold of an emergency brake), and
    # the braking eases off at max_jerk: 10 m/s^3 x 50 ms.
    d = _fed(layer, 150 * MS, action=Action.STOP, accel=-3.0)
    assert d.action == Action.STOP and d.source == DecisionSource.MODEL
    assert d.target_acceleration == pytest.approx(-8.5)


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
        assert d.degraded and d.source == DecisionSource.RADAR_OUT_CAUTION
        assert d.action == Action.FOLLOW and d.target_acceleration <= 0.0
    # Sustained loss: controlled stop.
    layer.on_model_decision(600 * MS, _model(600 * MS, Action.CRUISE, 1.0))
    d = layer.decide(600 * MS)
    assert d.action == Action.STOP and d.target_acceleration < 0 and d.degraded
    assert d.source == DecisionSource.FALLBACK


def _target(k, rng=10.0, vr=-10.0, lateral=0.2):
    """A car ahead closing at -vr, three returns over its rear, at radar frame k (50 ms)."""
    x = rng + vr * 0.05 * k
    return np.array([[x, lateral + dy, 0.5, vr, 10.0] for dy in (-0.6, 0.0, 0.6)], np.float32)


def test_ttc_override_on_tracks_brakes_once_the_track_is_confirmed():
    cfg = SafetyConfig(ttc_brake_threshold=1.5)
    assert cfg.ttc_use_tracks  # the default
    layer = SafetyLayer(cfg)
    actions = [_fed(layer, k * 50 * MS, radar=_target(k)).action for k in range(8)]
    first = actions.index(Action.EMERGENCY_BRAKE)
    assert first == cfg.track_confirm_hits + cfg.ttc_confirm_frames - 2  # frame index
    assert all(a == Action.EMERGENCY_BRAKE for a in actions[first:])
    (track, ttc), = layer.track_ttcs()
    assert layer.tracks == [track] and track.confirmed
    assert ttc == pytest.approx(layer.radar_ttc) and ttc < 1.5
    stats = layer.tracking_stats()
    assert stats['confirmed_tracks'] == 1 and stats['radar_ttc'] == pytest.approx(ttc)


def test_ttc_override_on_tracks_ignores_clutter_that_lands_elsewhere_each_frame():
    layer = SafetyLayer(SafetyConfig(ttc_brake_threshold=1.5))
    _fed(layer, 0)
    t = 50
    for _ in range(5):
        for radar in _clutter_frames():
            assert _fed(layer, t * MS, radar=radar).action == Action.CRUISE
            t += 50
    assert layer.tracks == []


def test_ttc_override_holds_through_one_missed_detection_but_not_two():
    layer = SafetyLayer(SafetyConfig(ttc_brake_threshold=1.5))
    for k in range(5):
        _fed(layer, k * 50 * MS, radar=_target(k))
    assert layer.ttc_override_active
    layer.on_radar(250 * MS, np.zeros((0, 5), np.float32))  # the car is missed once: coasting
    assert layer.ttc_override_active
    layer.on_radar(300 * MS, np.zeros((0, 5), np.float32))
    assert not layer.ttc_override_active


def test_a_car_moving_into_the_corridor_counts_before_it_is_in_it():
    """Lateral prediction: a confirmed track beside the corridor, moving in, with a short TTC."""
    def car(k):  # starts 3.3 m to the left, moves right at 2 m/s, 12 m ahead closing at 8 m/s
        return _target(k, rng=12.0, vr=-8.0, lateral=3.3 - 2.0 * 0.05 * k)

    predicted = SafetyLayer(SafetyConfig())
    present = SafetyLayer(SafetyConfig(ttc_predict_lateral=False))
    onset = {}
    for name, layer in (('predicted', predicted), ('present', present)):
        for k in range(25):
            if _fed(layer, k * 50 * MS, radar=car(k)).action == Action.EMERGENCY_BRAKE:
                onset[name] = k
                break
    # its returns reach the corridor (|y| < 1.6 m) at k = 9, 2.4 m ahead: with the prediction
    # the override has braked well before, without it not before then
    assert onset['present'] >= 9
    assert onset['predicted'] <= onset['present'] - 3


def test_overhead_structure_never_triggers_the_override():
    layer = SafetyLayer(SafetyConfig())
    for k in range(10):
        gantry = _target(k, rng=15.0, vr=-14.0, lateral=0.0)
        gantry[:, 2] = 5.3  # a sign gantry the ego drives under
        assert _fed(layer, k * 50 * MS, radar=gantry).action == Action.CRUISE


def test_a_fallback_is_not_held_by_the_dwell():
    """A one-tick fallback STOP (no fusion output yet) ends when the model decides."""
    layer = SafetyLayer(SafetyConfig(min_dwell=0.3))
    layer.on_radar(0, _far_radar())
    d = layer.decide(0)
    assert d.action == Action.STOP and d.source == DecisionSource.FALLBACK
    d = _fed(layer, 50 * MS, action=Action.CRUISE)
    assert d.action == Action.CRUISE and d.source == DecisionSource.MODEL


def test_radar_out_caution_is_not_held_by_the_dwell_either():
    layer = SafetyLayer(SafetyConfig(radar_timeout=0.075, min_dwell=0.3))
    _fed(layer, 0, action=Action.CHANGE_LANE_LEFT)
    layer.on_model_decision(100 * MS, _model(100 * MS, Action.CHANGE_LANE_LEFT))
    d = layer.decide(100 * MS)  # no lane change while the radar is out
    assert d.action == Action.FOLLOW and d.source == DecisionSource.RADAR_OUT_CAUTION
    d = _fed(layer, 150 * MS, action=Action.CHANGE_LANE_LEFT)
    assert d.action == Action.CHANGE_LANE_LEFT and d.source == DecisionSource.MODEL


def test_a_held_decision_is_published_as_the_dwell_hold():
    layer = SafetyLayer(SafetyConfig(min_dwell=0.3, max_jerk=1000.0))
    assert _fed(layer, 0, action=Action.FOLLOW, accel=-1.0).source == DecisionSource.MODEL
    d = _fed(layer, 50 * MS, action=Action.CRUISE)
    assert d.action == Action.FOLLOW and d.source == DecisionSource.DWELL_HOLD
    assert d.target_acceleration == -1.0


def test_every_decision_that_differs_from_the_model_names_why():
    """Random model decisions, threats and input gaps: final != model is never source MODEL."""
    rng = np.random.default_rng(0)
    layer = SafetyLayer(SafetyConfig(radar_timeout=0.075, min_dwell=0.3))
    seen = set()
    threat_until = radar_gap_until = fusion_gap_until = -1
    for k in range(3000):
        t = k * 50 * MS
        if k % 40 == 0:  # a new event every 2 s: a threat, a radar gap, a fusion gap or none
            event = rng.integers(4)
            end = k + int(rng.integers(1, 15))
            threat_until = end if event == 1 else threat_until
            radar_gap_until = end if event == 2 else radar_gap_until
            fusion_gap_until = end if event == 3 else fusion_gap_until
        if k > radar_gap_until:
            layer.on_radar(t, _target(k - threat_until + 14, rng=12.0) if k <= threat_until
                           else _far_radar())
        if k > fusion_gap_until:
            model = Action(int(rng.integers(len(Action))) if rng.random() < 0.3
                           else Action.CRUISE)
            layer.on_model_decision(t, _model(t, model, float(rng.uniform(-3.0, 1.0))))
        d = layer.decide(t)
        model = layer.model_decision
        if model is None or d.action != model.action:
            assert d.source != DecisionSource.MODEL, (k, d, model)
            seen.add(d.source)
    assert seen == {DecisionSource.SAFETY_OVERRIDE, DecisionSource.FALLBACK,
                    DecisionSource.DWELL_HOLD, DecisionSource.RADAR_OUT_CAUTION}


def test_decision_logic_publishes_the_override_onset_at_once():
    logic = DecisionLogic(SafetyConfig(ttc_brake_threshold=1.5, ttc_confirm_frames=2))
    published = []
    for k in range(8):
        t = k * 50 * MS
        published.append(logic.on_radar(t, _target(k)))
        logic.on_model_decision(t + MS, _model(t + MS))
    onsets = [d for d in published if d is not None]
    assert len(onsets) == 1 and onsets[0].source == DecisionSource.SAFETY_OVERRIDE
