"""Thresholds of the label derivation, with units; one dataclass, validated like node parameters.

The fields carry `Param` metadata (description, unit, range), so `mm-fusion label --set` checks
an override the way a node parameter is checked, and `params_markdown(LabelConfig)` prints the
table for the docs. Defaults: the expert's own boundaries where the rule mirrors one (gaps,
time-to-collision), the rest calibrated on training-side simulator seeds (see the package
docstring).
"""

from dataclasses import dataclass

from mm_fusion_ros.params.spec import build, param


@dataclass(frozen=True)
class LabelConfig:
    # -- odometry continuity ---------------------------------------------------------------
    gap_periods: float = param(
        3.0, 'a stamp step longer than this many nominal odometry periods is a gap',
        unit='[periods]', low=1.5, high=100.0)
    jump_distance: float = param(
        0.5, 'a position step further than this from speed x time is a jump (plus'
        ' jump_ratio of the expected step)', unit='[m]', low=0.0, high=100.0)
    jump_ratio: float = param(
        0.25, 'relative part of the position-jump tolerance', low=0.0, high=10.0)
    jump_accel: float = param(
        15.0, 'a speed step faster than this acceleration is a jump', unit='[m/s^2]',
        low=1.0, high=1000.0)
    # -- motion ----------------------------------------------------------------------------
    odometry_window: float = param(
        0.05, 'a frame needs continuous odometry this far before and after its stamp (the'
        ' steps its acceleration and ramp test read)', unit='[s]', low=0.0, high=10.0)
    ramp_jerk: float = param(
        5.0, 'acceleration changing faster than this is still on its way to the command',
        unit='[m/s^3]', low=0.1, high=1000.0)
    ramp_window: float = param(
        2.0, 'the furthest ahead a ramp is followed to find the command', unit='[s]',
        low=0.0, high=10.0)
    emergency_decel: float = param(
        4.0, 'braking at least this hard while a vehicle in the lane is a threat is an'
        ' emergency brake', unit='[m/s^2]', low=0.5, high=20.0)
    stop_decel: float = param(
        0.05, 'braking harder than this with no vehicle ahead in the lane is a STOP',
        unit='[m/s^2]', low=0.0, high=10.0)
    crawl_speed: float = param(
        2.0, 'at most this speed, not accelerating (by more than stop_decel), with no vehicle'
        ' ahead in the lane: STOP (waiting, or creeping up to a line)', unit='[m/s]', low=0.0,
        high=10.0)
    standstill_speed: float = param(
        0.1, 'at most this speed the ego stands: coming to rest ends any braking ramp',
        unit='[m/s]', low=0.0, high=5.0)
    # -- radar lead (vehicle-frame points) -------------------------------------------------
    front_offset: float = param(
        0.0, 'x of the front bumper in the frame of the radar points (0: points measured from'
        ' the bumper, as the simulator publishes them)', unit='[m]', low=-10.0, high=10.0)
    search_half_width: float = param(
        3.0, 'radar points within this lateral distance are tracked', unit='[m]', low=0.5,
        high=10.0)
    corridor_half_width: float = param(
        1.15, 'a tracked vehicle whose nearest point is within this lateral distance of the'
        " ego's centre line is in the lane (the expert: half the ego width plus 0.2 m)",
        unit='[m]', low=0.1, high=5.0)
    max_height: float = param(
        3.0, 'points higher than this above the radar are structure (gantries, signs)',
        unit='[m]', low=0.5, high=20.0)
    cluster_length: float = param(
        3.0, 'points closer than this along x (and cluster_width across) join one object',
        unit='[m]', low=0.1, high=20.0)
    cluster_width: float = param(1.2, 'see cluster_length', unit='[m]', low=0.1, high=10.0)
    gate_x: float = param(
        2.0, 'longitudinal association gate (plus gate_ratio of the range)', unit='[m]',
        low=0.1, high=20.0)
    gate_ratio: float = param(0.03, 'range-proportional part of the gate', low=0.0, high=1.0)
    gate_y: float = param(1.0, 'lateral association gate', unit='[m]', low=0.1, high=10.0)
    gate_speed: float = param(
        1.5, 'radial-velocity association gate (plus gate_accel times the time since the last'
        ' detection)', unit='[m/s]', low=0.1, high=50.0)
    gate_accel: float = param(
        5.0, 'relative acceleration the radial-velocity gate allows for', unit='[m/s^2]',
        low=0.0, high=100.0)
    coast_time: float = param(
        1.0, 'a track missing from the radar this long ends', unit='[s]', low=0.05, high=10.0)
    min_hits: int = param(
        4, 'detections a track needs to count (single-frame clutter and ghosts do not)',
        low=1, high=100)
    vehicle_min_rcs: float = param(
        2.5, 'median radar cross-section a track needs to count as a vehicle', unit='[dBsm]',
        low=-50.0, high=50.0)
    vehicle_min_returns: float = param(
        2.0, 'for a radar without rcs (its preset gives a constant): median returns per'
        ' detection a track needs to count as a vehicle (a pedestrian or clutter gives one)',
        low=1.0, high=50.0)
    lateral_smoothing: float = param(
        0.25, "half window of the moving median over a track's lateral position",
        unit='[s]', low=0.0, high=5.0)
    radar_max_gap: float = param(
        1.0, 'a camera frame with no radar frame this close on either side is unlabelled',
        unit='[s]', low=0.05, high=60.0)
    lead_range: float = param(
        200.0, 'a vehicle in the lane within this gap explains braking (not a STOP)',
        unit='[m]', low=1.0, high=500.0)
    # -- the expert's gap rules, read off the radar track ----------------------------------
    follow_gap: float = param(40.0, 'lead in the lane within this gap: FOLLOW', unit='[m]',
                              low=0.0, high=500.0)
    follow_closing_gap: float = param(
        70.0, 'or within this gap while closing faster than closing_speed', unit='[m]',
        low=0.0, high=500.0)
    closing_speed: float = param(1.0, 'see follow_closing_gap', unit='[m/s]', low=0.0,
                                 high=50.0)
    emergency_ttc: float = param(
        2.0, 'time-to-collision to the lead below this is a threat', unit='[s]', low=0.0,
        high=20.0)
    emergency_required_decel: float = param(
        3.5, 'deceleration needed to stop emergency_margin short of the lead above this is a'
        ' threat', unit='[m/s^2]', low=0.0, high=20.0)
    emergency_margin: float = param(3.0, 'gap kept in the required deceleration', unit='[m]',
                                    low=0.0, high=50.0)
    # -- lane changes (lateral motion) -----------------------------------------------------
    lane_width: float = param(3.5, 'lane width', unit='[m]', low=1.0, high=10.0)
    lane_change_min_fraction: float = param(
        0.6, 'a lateral move of at least this share of a lane width is a lane change',
        low=0.1, high=2.0)
    lane_change_max_fraction: float = param(
        1.5, 'and at most this share', low=0.5, high=5.0)
    lane_change_max_duration: float = param(
        8.0, 'the move takes at most this long', unit='[s]', low=0.5, high=60.0)
    lateral_speed: float = param(
        0.25, 'lateral speed above which the ego is moving across the road', unit='[m/s]',
        low=0.01, high=5.0)
    heading_window: float = param(
        8.0, 'window of the moving median that gives the road heading from the course',
        unit='[s]', low=0.5, high=120.0)

    def __post_init__(self) -> None:
        if self.follow_closing_gap < self.follow_gap:
            raise ValueError('follow_closing_gap must be >= follow_gap')
        if self.lane_change_max_fraction <= self.lane_change_min_fraction:
            raise ValueError('lane_change_max_fraction must be > lane_change_min_fraction')


def label_config(values: dict | None = None) -> LabelConfig:
    """A checked config from overrides (unknown keys and values out of range refused)."""
    return build(LabelConfig, 'label', values or {})
