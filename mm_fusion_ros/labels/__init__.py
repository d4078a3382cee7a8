"""Labels from logged driving: a decision and a target acceleration per camera frame.

What the recorded ego did (its odometry) and, offline, hindsight over the whole radar recording
give each camera frame one of the six actions and a target acceleration, so bags without an
expert (CARLA, nuScenes, a vehicle's own logs) can be cached and evaluated too. Pure numpy, no
rclpy: `derive_labels(odometry, radar, camera_stamps, config)` is the core, `label_bag(path)`
reads a bag and calls it, `mm-fusion label` prints and scores the result. The derivation never
reads the expert's decision topic; only `score_labels` compares against it.

Inputs: odometry readings (stamp, x, y in the odometry frame, forward speed
`twist.twist.linear.x`; yaw is not needed), radar frames as vehicle-frame points (x forward,
y left: x, y, z, radial velocity relative and positive receding, rcs) and the camera stamps.

Rules, per camera frame (thresholds: `LabelConfig`, with units):

0. Unlabelled, never guessed (action -1, acceleration NaN, one reason counted per frame):
   `before_odometry` / `end_of_odometry` when odometry does not cover `odometry_window`
   before and after the stamp (the first and last frame of a bag); `odometry_gap` when a
   stamp step inside that window is longer than `gap_periods` nominal periods;
   `odometry_jump` when a step inside it moved further from speed x time than `jump_distance`
   + `jump_ratio` of the expected step, or changed speed faster than `jump_accel`;
   `lateral_move_cut` when a lateral move runs into the start or end of continuous odometry
   (a lane change cannot be told from it); `radar_gap` when no radar frame lies within
   `radar_max_gap` of the stamp.
1. Commanded acceleration (also the target acceleration written out): the realised
   acceleration of the odometry step after the stamp; while the acceleration is still ramping
   towards a new command (changing faster than `ramp_jerk`, as a jerk-limited car does for a
   few steps after every change), the value the ramp ends at, at most `ramp_window` ahead and
   before a standstill.
2. Vehicles in the lane, from radar tracks over the whole recording (`lead.py`): clustered
   returns chained by a gated nearest-neighbour tracker; a track counts with `min_hits`
   detections and a median rcs of `vehicle_min_rcs` (a radar without rcs, whose preset gives
   a constant: a median of `vehicle_min_returns` returns per detection, since pedestrians and
   clutter give one), covers every instant between its first and last detection, and is
   in the lane when its nearest return is within
   `corridor_half_width` of the ego's centre line. Gap = range of the rear face, closing speed
   = -radial velocity; per frame the nearest such vehicle is the lead, and the least
   time-to-collision and the largest deceleration needed to stop `emergency_margin` short are
   taken over all of them (the expert's definitions).
3. EMERGENCY_BRAKE: braking at least `emergency_decel` while a vehicle in the lane is a
   threat (time-to-collision below `emergency_ttc` or needed deceleration above
   `emergency_required_decel`).
4. CHANGE_LANE_LEFT / CHANGE_LANE_RIGHT: inside a lane change of the ego (`lane_change.py`):
   a lateral move across the road heading (a moving median of the course, so curves pass) of
   `lane_change_min_fraction`..`lane_change_max_fraction` of `lane_width` within
   `lane_change_max_duration`, faster than `lateral_speed`; its start and end are placed from
   the 10 % and 90 % crossings under a minimum-jerk profile. Left is +y. Braking during a lane
   change is the manoeuvre's (it goes around a slow vehicle), not a STOP.
5. STOP: no vehicle in the lane within `lead_range`, and braking harder than `stop_decel`, or
   at most `crawl_speed` and not accelerating (by more than `stop_decel`): the ego slows,
   waits or creeps for something that is not a vehicle ahead (a light, a pedestrian, a line).
6. FOLLOW: the lead within `follow_gap`, or closing faster than `closing_speed` within
   `follow_closing_gap` (the expert's gap rule, on the radar track).
7. CRUISE otherwise.

Limits: an emergency brake for something the radar does not track (a pedestrian: weak and
often missed) is labelled STOP; the gap rules are the simulator expert's and assume the radar
points are measured from the front bumper (`front_offset` moves that origin); lane changes
assume roughly straight lanes over `heading_window`; noisy odometry needs smoothing before it
comes here (the steps are differentiated as they are).
"""

from mm_fusion_ros.labels.config import LabelConfig, label_config
from mm_fusion_ros.labels.derive import (
    UNLABELLED,
    UNLABELLED_REASONS,
    DerivedLabels,
    derive_labels,
)
from mm_fusion_ros.labels.odometry import OdometrySeries

__all__ = ['UNLABELLED', 'UNLABELLED_REASONS', 'DerivedLabels', 'LabelConfig',
           'OdometrySeries', 'derive_labels', 'label_config']
