"""Decision -> ackermann_msgs/AckermannDriveStamped: the longitudinal command of a decision.

ackermann_msgs' semantics (AckermannDrive.msg): `speed` is the speed to reach [m/s];
`acceleration` [m/s^2] and `jerk` [m/s^3] are *magnitudes* the controller should not exceed on
the way (both directions), and zero means "as quickly as possible". A decision carries a
signed target acceleration, so the mapping is:

- speed = max(0, ego speed + target_acceleration * horizon): the controller keeps accelerating
  (or braking) at the target between decisions, which come at the camera rate; STOP and
  EMERGENCY_BRAKE aim at 0; an unknown ego speed (no fresh odometry) aims at 0 too.
- acceleration = |target_acceleration|, at least `MIN_ACCELERATION`, so a zero target (hold
  the speed) never reads as "change speed as quickly as possible".
- jerk = the safety layer's `max_jerk` (what the target acceleration already obeys); 0 ("as
  quickly as possible") for EMERGENCY_BRAKE, which is full braking.
- steering_angle, steering_angle_velocity = 0: lateral control (lane changes) stays with the
  stack's planner, which reads the decision's `lane_change_intent`.

`ackermann_command` is pure and tested everywhere; `to_msg` needs ackermann_msgs (a ROS
distro: it is not among the ROS wheels on PyPI).
"""

from dataclasses import dataclass
import math

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision

MIN_ACCELERATION = 0.5  # [m/s^2] the acceleration limit written for a zero target
ACKERMANN_DRIVE_STAMPED = 'ackermann_msgs/msg/AckermannDriveStamped'


@dataclass(frozen=True)
class AckermannCommand:
    """The fields of an AckermannDriveStamped (header stamp and drive)."""

    stamp_ns: int
    speed: float  # [m/s]
    acceleration: float  # [m/s^2] magnitude limit, > 0
    jerk: float  # [m/s^3] magnitude limit; 0: as quickly as possible
    steering_angle: float = 0.0  # [rad]
    steering_angle_velocity: float = 0.0  # [rad/s]


def ackermann_command(decision: Decision, ego_speed: float | None, horizon: float,
                      max_jerk: float) -> AckermannCommand:
    """The AckermannDrive a decision asks for (see the module doc for the mapping)."""
    accel = float(decision.target_acceleration)
    if not math.isfinite(accel):
        raise ValueError(f'target acceleration {accel} is not finite')
    emergency = decision.action == Action.EMERGENCY_BRAKE
    known = ego_speed is not None and math.isfinite(ego_speed)
    if emergency or decision.action == Action.STOP or not known:
        speed = 0.0
    else:
        speed = max(0.0, float(ego_speed) + accel * horizon)
    return AckermannCommand(
        stamp_ns=int(decision.stamp_ns),
        speed=speed,
        acceleration=max(abs(accel), MIN_ACCELERATION),
        jerk=0.0 if emergency else float(max_jerk),
    )


def to_msg(command: AckermannCommand, frame_id: str = 'base_link'):
    """An ackermann_msgs/AckermannDriveStamped (ImportError without ackermann_msgs)."""
    from ackermann_msgs.msg import AckermannDriveStamped

    from mm_fusion_ros.ros.time import stamp_from_ns

    msg = AckermannDriveStamped()
    msg.header.stamp = stamp_from_ns(command.stamp_ns)
    msg.header.frame_id = frame_id
    msg.drive.speed = command.speed
    msg.drive.acceleration = command.acceleration
    msg.drive.jerk = command.jerk
    msg.drive.steering_angle = command.steering_angle
    msg.drive.steering_angle_velocity = command.steering_angle_velocity
    return msg


def message_type() -> type:
    """AckermannDriveStamped; ValueError naming the package where it is missing."""
    try:
        from ackermann_msgs.msg import AckermannDriveStamped
    except ImportError:
        raise ValueError('ackermann_output needs the ackermann_msgs package (not among the ROS '
                         'wheels on PyPI; install ros-<distro>-ackermann-msgs with a ROS '
                         'distro)') from None
    return AckermannDriveStamped


__all__ = ['AckermannCommand', 'MIN_ACCELERATION', 'ackermann_command', 'message_type',
           'to_msg']
