"""builtin_interfaces/Time <-> integer nanoseconds."""

from builtin_interfaces.msg import Time


def stamp_to_ns(stamp: Time) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def stamp_from_ns(ns: int) -> Time:
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)
