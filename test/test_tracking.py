"""Radar tracker: confirmation, clutter and ghost rejection, cut-ins, the safety layer on top."""

from dataclasses import replace
import math

import numpy as np
import pytest

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.safety import SafetyConfig, SafetyLayer, track_time_to_collision
from mm_fusion_ros.tracking import (
    RadarTracker,
    Track,
    TrackerConfig,
    cluster_returns,
    valid_returns,
)

NS = 1_000_000_000
DT = 0.05  # [s] 20 Hz radar
EGO = 14.0  # [m/s] ego speed: static returns close at this speed
CORRIDOR = 1.6


def _returns(x, y, vx, vy, rng, n=3, width=1.8):
    """N returns over the rear face of an object at (x, y) moving at (vx, vy) relative."""
    px = x + 0.3 * rng.random(n)
    py = y + rng.uniform(-0.5, 0.5, n) * width
    r = np.hypot(px, py)
    vr = (px * vx + py * vy) / r + 0.1 * rng.standard_normal(n)
    return np.stack([px, py, np.full(n, 0.3), vr, np.full(n, 10.0)], axis=1)


def _clutter(rng, n=45):
    """The simulator's clutter: anywhere in the 60-degree field of view, 70 % static."""
    r = rng.uniform(4.0, 120.0, n)
    a = np.radians(rng.uniform(-60.0, 60.0, n))
    x, y = r * np.cos(a), r * np.sin(a)
    v = np.where((rng.random(n) < 0.3)[:, None], rng.normal(0.0, 3.0, (n, 2)), 0.0)
    vr = ((v[:, 0] - EGO) * x + v[:, 1] * y) / r
    return np.stack([x, y, rng.uniform(-0.4, 1.5, n), vr, rng.uniform(-15.0, 2.0, n)], axis=1)


def _stamp(k):
    return round(k * DT * NS)


def test_constant_velocity_target_confirms_after_m_frames_and_its_ttc_converges():
    rng = np.random.default_rng(0)
    cfg = TrackerConfig()
    tracker = RadarTracker(cfg)
    x0, closing = 40.0, 8.0
    confirmed_at = None
    for k in range(40):
        x = x0 - closing * k * DT
        tracks = tracker.update(_stamp(k), _returns(x, 0.0, -closing, 0.0, rng))
        if tracks and confirmed_at is None:
            confirmed_at = k + 1
    assert confirmed_at == cfg.confirm_hits
    (track,) = tracks
    true_ttc = x / closing
    assert track_time_to_collision(track, CORRIDOR) == pytest.approx(true_ttc, rel=0.05)
    assert track.vx == pytest.approx(-closing, abs=0.3) and abs(track.vy) < 0.5
    assert track.closing_speed == pytest.approx(closing, abs=0.3)
    assert abs(track.x - (x + 0.15)) < 0.3


def test_coasting_track_predicts_its_object_and_is_dropped_after_max_misses():
    rng = np.random.default_rng(1)
    cfg = TrackerConfig(max_misses=4)
    tracker = RadarTracker(cfg)
    for k in range(10):
        tracker.update(_stamp(k), _returns(30.0 - 10.0 * k * DT, 0.0, -10.0, 0.0, rng))
    for k in range(10, 10 + cfg.max_misses):
        (track,) = tracker.update(_stamp(k), np.zeros((0, 5), np.float32))
        assert track.misses == k - 9 and not len(track.returns)
        assert track.x == pytest.approx(30.0 - 10.0 * k * DT + 0.15, abs=0.5)
        # coasting: the TTC comes from the predicted nearest point
        assert track_time_to_collision(track, CORRIDOR) == pytest.approx(
            (30.0 - 10.0 * k * DT) / 10.0, abs=0.1)
    assert tracker.update(_stamp(10 + cfg.max_misses), None) == []


def test_random_clutter_never_confirms_a_threat():
    """45 clutter returns a frame for 30 s: no confirmed track in the corridor below 1.2 s."""
    rng = np.random.default_rng(2)
    tracker = RadarTracker()
    confirmed = threats = 0
    for k in range(600):
        tracks = tracker.update(_stamp(k), _clutter(rng))
        confirmed += len(tracks)
        threats += sum(track_time_to_collision(t, CORRIDOR) < 1.2 and not t.misses
                       for t in tracks)
    assert threats == 0
    assert confirmed / 600 < 0.5, confirmed  # a confirmed clutter track is rare anywhere


def test_a_ghost_that_jumps_never_confirms():
    """Double-bounce ghost of a car 20 m ahead: at 1.6-2.1 x its range, a new factor a frame."""
    rng = np.random.default_rng(3)
    tracker = RadarTracker()
    for k in range(100):
        car = _returns(20.0, 0.0, -2.0, 0.0, rng)
        ghost = car[:1].copy()
        ghost[:, :2] *= rng.uniform(1.6, 2.1)
        tracks = tracker.update(_stamp(k), np.concatenate([car, ghost]))
        assert all(t.x < 25.0 for t in tracks), [(t.x, t.y) for t in tracks]
    assert len(tracks) == 1  # the car


def test_overhead_returns_never_make_a_track():
    rng = np.random.default_rng(4)
    tracker = RadarTracker(TrackerConfig(max_height=2.5))
    for k in range(20):
        gantry = _returns(30.0 - EGO * k * DT, 0.0, -EGO, 0.0, rng)
        gantry[:, 2] = 5.2  # a sign gantry over the road
        assert tracker.update(_stamp(k), gantry) == []


def _cut_in(rng, frames=40):
    """A car appears 9 m ahead in the next lane and moves over into the ego's lane."""
    x, y, closing, lateral = 9.0, 3.0, 6.0, -2.0
    out = []
    for _ in range(frames):
        out.append(_returns(x, y, -closing, lateral, rng, n=4))
        x, y = x - closing * DT, y + lateral * DT
    return out


def _first_override(layer, frames):
    for k, points in enumerate(frames):
        layer.on_radar(_stamp(k), points)
        layer.on_model_decision(_stamp(k), Decision(_stamp(k), Action.CRUISE))
        if layer.decide(_stamp(k)).source == DecisionSource.SAFETY_OVERRIDE:
            return k + 1
    return None


def test_close_cut_in_is_confirmed_within_m_frames_and_brakes_no_later_than_returns_do():
    """K: frames from the car's first return to the override; in 35 clutter returns a frame."""
    rng = np.random.default_rng(5)
    car = _cut_in(rng)
    cluttered = [np.concatenate([c, _clutter(rng, 35)]) for c in car]
    tracker = RadarTracker()
    confirmed_at = next(k + 1 for k, points in enumerate(cluttered)
                        if any(abs(t.y - 3.0) < 1.5 and t.x < 10.0
                               for t in tracker.update(_stamp(k), points)))
    assert confirmed_at == TrackerConfig().confirm_hits
    # The returns-only override on the car's returns alone (no clutter to brake for) is the
    # reference: tracking must not brake later for a car it already follows.
    reference = _first_override(SafetyLayer(SafetyConfig(ttc_use_tracks=False)), car)
    k_frames = _first_override(SafetyLayer(), cluttered)
    assert reference is not None and k_frames is not None
    assert k_frames <= reference, (k_frames, reference)


def test_clustering_joins_one_object_and_keeps_others_apart():
    rng = np.random.default_rng(6)
    car = _returns(20.0, 0.0, -5.0, 0.0, rng, n=4)
    other = _returns(20.0, 3.5, 2.0, 0.0, rng, n=3)  # next lane, receding: its own detection
    cfg = TrackerConfig()
    det = cluster_returns(np.concatenate([car, other]), cfg.cluster_dx, cfg.cluster_dy,
                          cfg.cluster_dv)
    assert len(det) == 2 and sorted(det.count.tolist()) == [3, 4]
    assert np.allclose(sorted(det.position[:, 1]), [0.0, 3.5], atol=0.6)


def test_valid_returns_drop_non_finite_near_far_and_overhead():
    pts = np.array([[10.0, 0.0, 0.0, -1.0, 0.0], [np.nan, 0.0, 0.0, -1.0, 0.0],
                    [0.2, 0.0, 0.0, -1.0, 0.0], [200.0, 0.0, 0.0, -1.0, 0.0],
                    [10.0, 0.0, 6.0, -1.0, 0.0], [10.0, 0.0, 0.0, -np.inf, 0.0]], np.float32)
    kept = valid_returns(pts, 0.5, 100.0, 2.5)
    assert kept.tolist() == [[10.0, 0.0, 0.0, -1.0, 0.0]]
    assert valid_returns(None, 0.5, 100.0, 2.5).shape == (0, 5)


def test_a_gap_in_time_or_time_going_back_restarts_the_tracks():
    rng = np.random.default_rng(7)
    tracker = RadarTracker()
    for k in range(5):
        tracker.update(_stamp(k), _returns(20.0, 0.0, 0.0, 0.0, rng))
    assert len(tracker.confirmed_tracks()) == 1
    assert tracker.update(_stamp(2), _returns(20.0, 0.0, 0.0, 0.0, rng)) == []  # bag loop
    assert len(tracker) == 1 and not tracker.tracks()[0].confirmed
    assert tracker.update(_stamp(2) + 5 * NS, _returns(20.0, 0.0, 0.0, 0.0, rng)) == []


def test_tracker_config_refuses_m_larger_than_n():
    with pytest.raises(ValueError):
        TrackerConfig(confirm_hits=5, confirm_window=4)
    with pytest.raises(ValueError):
        SafetyConfig(track_confirm_hits=5, track_confirm_window=4)


def test_track_ttc_is_inf_outside_the_corridor_or_receding():
    rng = np.random.default_rng(8)
    tracker = RadarTracker()
    for k in range(5):
        tracks = tracker.update(_stamp(k), np.concatenate([
            _returns(15.0, 4.0, -5.0, 0.0, rng),  # next lane
            _returns(15.0, 0.0, 3.0, 0.0, rng)]))  # ahead, pulling away
    assert len(tracks) == 2
    assert all(math.isinf(track_time_to_collision(t, CORRIDOR)) for t in tracks)


def _reference_association(tracker, det):
    """What `_associate` computes, the slow way: S and the distance of every pair, greedy."""
    from mm_fusion_ros.tracking.tracker import _measure

    zp, h = _measure(tracker._s)
    s = h @ tracker._p @ h.transpose(0, 2, 1) + tracker._noise()
    z = np.concatenate([det.position, det.doppler[:, None]], axis=1)
    nu = z[None, :, :] - zp[:, None, :]  # (T, D, 3)
    d2 = np.einsum('tdi,tij,tdj->td', nu, np.linalg.inv(s), nu)
    rows, cols = np.nonzero(d2 < tracker.config.gate_chi2)
    assigned = np.full(len(tracker), -1)
    taken = set()
    for k in np.lexsort((d2[rows, cols], ~tracker._confirmed[rows])):
        t, d = rows[k], cols[k]
        if assigned[t] < 0 and d not in taken:
            assigned[t] = d
            taken.add(d)
    return assigned


def test_gated_association_pairs_as_the_full_distance_matrix_does():
    """The position box (no matrix products) only skips pairs outside the chi-square gate."""
    rng = np.random.default_rng(7)
    tracker = RadarTracker()
    checked = paired = 0
    for k in range(120):
        x = 40.0 - 8.0 * k * DT
        frame = np.concatenate([_returns(x, 0.0, -8.0, 0.0, rng),
                                _returns(25.0, 3.5, -2.0, -0.3, rng), _clutter(rng)])
        if len(tracker):
            cfg = tracker.config
            det = cluster_returns(valid_returns(frame, cfg.min_range, cfg.max_range,
                                                cfg.max_height),
                                  cfg.cluster_dx, cfg.cluster_dy, cfg.cluster_dv)
            probe = RadarTracker(cfg)  # a copy of the tracker, predicted to this frame
            probe.__dict__.update({n: v.copy() if isinstance(v, np.ndarray) else v
                                   for n, v in tracker.__dict__.items()})
            probe._predict(DT)
            expected = _reference_association(probe, det)
            np.testing.assert_array_equal(probe._associate(det), expected)
            checked += 1
            paired += int((expected >= 0).sum())
        tracker.update(_stamp(k), frame)
    assert checked == 119 and paired > 2 * checked  # both cars (and some clutter) paired


def test_a_pedestrian_reaching_the_path_as_the_bumper_passes_is_a_threat():
    """A crossing pedestrian that walks into the vehicle's side is a threat (seed 900209).

    It enters the corridor 1.15 s out, the bumper arrives in 0.90 s: counted with the vehicle's
    length, the override brakes.
    """
    track = Track(track_id=1, x=11.5, y=-3.06, vx=-12.8, vy=1.53, position_sigma=0.2,
                  vy_sigma=0.29, near_x=11.5, y_low=-3.14, y_high=-3.02, hits=4, age=8,
                  misses=0, confirmed=True)
    assert math.isinf(track_time_to_collision(track, 1.6, predict_lateral=True))
    ttc = track_time_to_collision(track, 1.6, predict_lateral=True, vehicle_length=4.6)
    assert ttc == pytest.approx(11.5 / 12.8)
    # One that only arrives after the rear has passed is not.
    slow = replace(track, vy=0.6, vy_sigma=0.2)
    assert math.isinf(track_time_to_collision(slow, 1.6, predict_lateral=True,
                                              vehicle_length=4.6))
