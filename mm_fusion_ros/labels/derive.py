"""Per camera frame: a decision and a target acceleration from what the recorded ego did.

See the package docstring for the rules. Pure numpy: `derive_labels` takes the odometry
series, the radar frames (vehicle-frame points) and the camera stamps, nothing of ROS.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mm_fusion_ros.actions import NUM_ACTIONS, Action
from mm_fusion_ros.labels.config import LabelConfig
from mm_fusion_ros.labels.lane_change import LaneChange, detect_lane_changes
from mm_fusion_ros.labels.lead import LeadSeries, lead_at
from mm_fusion_ros.labels.odometry import (
    GAP,
    JUMP,
    NS,
    OdometrySeries,
    commanded_accel,
    lateral_offset,
    speed_at,
    step_breaks,
)

UNLABELLED = -1
# Why a frame has no label; a frame's reason code is an index into this fixed table, so
# counts from different bags merge as they are.
UNLABELLED_REASONS: tuple[str, ...] = (
    'before_odometry',   # its past window starts before the first odometry reading
    'end_of_odometry',   # its future window runs past the last reading (end of the bag)
    'odometry_gap',      # a stamp gap inside the frame's window
    'odometry_jump',     # a position or speed jump inside the frame's window
    'lateral_move_cut',  # a lateral move cut by the start/end of odometry or a break
    'radar_gap',         # no radar frame within radar_max_gap of the camera stamp
)
_REASON = {name: i for i, name in enumerate(UNLABELLED_REASONS)}


@dataclass(frozen=True)
class DerivedLabels:
    """Per camera frame, in stamp order (the stamps given, sorted, repeats dropped)."""

    stamps_ns: np.ndarray  # (M,) int64
    actions: np.ndarray  # (M,) int8, `Action` value or -1 (unlabelled)
    accels: np.ndarray  # (M,) float32 [m/s^2], NaN where unlabelled
    reasons: np.ndarray  # (M,) int8, index into UNLABELLED_REASONS or -1 (labelled)
    lane_changes: tuple[LaneChange, ...] = ()
    lead: LeadSeries | None = None

    @property
    def labelled(self) -> np.ndarray:
        return self.actions >= 0

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.actions[self.labelled].astype(np.int64),
                             minlength=NUM_ACTIONS)
        return {a.label: int(counts[a]) for a in Action}

    def at(self, stamp_ns: int) -> tuple[int, float, int]:
        """(action, acceleration, reason) of the frame with exactly this camera stamp."""
        i = int(np.searchsorted(self.stamps_ns, stamp_ns))
        if i >= len(self.stamps_ns) or self.stamps_ns[i] != stamp_ns:
            raise KeyError(f'no camera frame at {stamp_ns} ns')
        return int(self.actions[i]), float(self.accels[i]), int(self.reasons[i])

    def reason_counts(self) -> dict[str, int]:
        counts = np.bincount(self.reasons[self.reasons >= 0].astype(np.int64),
                             minlength=len(UNLABELLED_REASONS))
        return {r: int(counts[i]) for i, r in enumerate(UNLABELLED_REASONS)}


def _window_reasons(odo: OdometrySeries, breaks: np.ndarray, stamps: np.ndarray,
                    window_ns: int) -> np.ndarray:
    """Reason code per stamp for its [t - window, t + window] odometry (-1: usable)."""
    reasons = np.full(len(stamps), UNLABELLED, np.int8)
    if len(odo) < 2:
        reasons[:] = _REASON['end_of_odometry'] if len(odo) else _REASON['before_odometry']
        return reasons
    t = odo.stamp_ns
    lo = np.searchsorted(t, stamps - window_ns, 'right') - 1
    hi = np.searchsorted(t, stamps + window_ns, 'left')
    # breaks before each step, cumulated: any break in steps lo..hi-1
    gaps = np.concatenate([[0], np.cumsum(breaks == GAP)])
    jumps = np.concatenate([[0], np.cumsum(breaks == JUMP)])
    ok = (lo >= 0) & (hi < len(t))
    lo_c, hi_c = np.clip(lo, 0, len(t) - 1), np.clip(hi, 0, len(t) - 1)
    has_gap = gaps[hi_c] - gaps[lo_c] > 0
    has_jump = jumps[hi_c] - jumps[lo_c] > 0
    reasons[ok & has_jump] = _REASON['odometry_jump']
    reasons[ok & has_gap] = _REASON['odometry_gap']
    reasons[hi >= len(t)] = _REASON['end_of_odometry']
    reasons[lo < 0] = _REASON['before_odometry']
    return reasons


def _radar_gaps(radar: Sequence[tuple[int, np.ndarray]], stamps: np.ndarray,
                max_gap_ns: int) -> np.ndarray:
    """Stamps with no radar frame within max_gap on either side."""
    if not len(radar):
        return np.ones(len(stamps), bool)
    rt = np.sort(np.asarray([r[0] for r in radar], np.int64))
    i = np.searchsorted(rt, stamps)
    before = np.where(i > 0, stamps - rt[np.maximum(i - 1, 0)], np.iinfo(np.int64).max)
    after = np.where(i < len(rt), rt[np.minimum(i, len(rt) - 1)] - stamps,
                     np.iinfo(np.int64).max)
    return np.minimum(before, after) > max_gap_ns


def derive_labels(
    odometry: OdometrySeries,
    radar: Sequence[tuple[int, np.ndarray]],
    camera_stamps_ns: Sequence[int] | np.ndarray,
    config: LabelConfig | None = None,
    radar_rcs: bool = True,
) -> DerivedLabels:
    """Decision and target acceleration per camera stamp (see the package docstring).

    `radar`: (stamp_ns, points) frames, points (N, >=5) x, y, z, radial_velocity, rcs in the
    vehicle frame; `radar_rcs` False when the rcs column is a preset's constant (no rcs).
    Frames without a label have action -1, acceleration NaN and a reason.
    """
    c = config or LabelConfig()
    stamps = np.unique(np.asarray(camera_stamps_ns, np.int64).ravel())
    m = len(stamps)
    breaks = step_breaks(odometry, c)
    reasons = _window_reasons(odometry, breaks, stamps, round(c.odometry_window * NS))
    reasons[(reasons < 0) & _radar_gaps(radar, stamps, round(c.radar_max_gap * NS))] = \
        _REASON['radar_gap']
    actions = np.full(m, int(Action.CRUISE), np.int8)
    if len(odometry) < 2:
        actions[:] = UNLABELLED
        return DerivedLabels(stamps, actions, np.full(m, np.nan, np.float32), reasons)

    half_ns = int(np.median(np.diff(stamps))) // 2 if m > 1 else odometry.nominal_period_ns // 2
    offset = lateral_offset(odometry, breaks, c)
    changes, cuts = detect_lane_changes(odometry, breaks, offset, c)
    lead = lead_at(radar, stamps, c, radar_rcs)

    accel = commanded_accel(odometry, breaks, stamps, c)
    speed = speed_at(odometry, stamps)
    vehicle = lead.gap <= c.lead_range
    gap, closing = lead.gap, lead.closing
    threat = (lead.ttc < c.emergency_ttc) | (lead.need > c.emergency_required_decel)
    follow = vehicle & ((gap <= c.follow_gap)
                        | ((closing > c.closing_speed) & (gap <= c.follow_closing_gap)))
    hard = accel <= -c.emergency_decel
    stopping = ~vehicle & ((accel < -c.stop_decel)
                           | ((speed <= c.crawl_speed) & (accel <= c.stop_decel)))

    changing = np.zeros(m, np.int8)
    shifted = stamps + half_ns  # a frame belongs to the move when it is nearer its inside
    for lc in changes:
        changing[(shifted >= lc.start_ns) & (shifted < lc.end_ns)] = lc.direction
    for cut in cuts:
        inside = (stamps >= cut.start_ns - half_ns) & (stamps <= cut.end_ns)
        reasons[inside & (reasons < 0)] = _REASON['lateral_move_cut']

    actions[follow] = Action.FOLLOW
    actions[stopping] = Action.STOP
    actions[changing > 0] = Action.CHANGE_LANE_LEFT
    actions[changing < 0] = Action.CHANGE_LANE_RIGHT
    actions[hard & threat] = Action.EMERGENCY_BRAKE
    labelled = reasons < 0
    actions[~labelled] = UNLABELLED
    accels = np.where(labelled, accel, np.nan).astype(np.float32)
    return DerivedLabels(stamps, actions, accels, reasons, tuple(changes), lead)
