"""Delivery order of a bag's messages: each camera frame after the radar frames that belong to it.

One rule, used by the training cache (`data.cache`), offline replay evaluation and the online
bag player, so a recorded drive gives the model the same radar history everywhere:

- a radar frame belongs to a camera frame when it is stamped at or before it, or up to
  `sync_slop` after it and nearer to it than to the next camera frame;
- camera frames are released in stamp order once the stream is `reorder_window` past them
  (loggers write topics with different delays), each after its radar frames;
- every other message (ground truth, odometry, expert, episode) passes through at once, in
  log order, so it is known before the camera frame it describes is released.

Clock (for replay): camera frames at their stamp, radar frames at their stamp or `radar_lead`
before their camera frame, whichever is earlier; never backwards. Pass-through messages carry
their log time. Memory is bounded by the reorder window.
"""

from collections.abc import Iterator
from typing import Any, NamedTuple

from mm_fusion_ros.bags.reader import BagStream
from mm_fusion_ros.sensors.sync import msg_stamp_ns

NS = 1_000_000_000


class BagEvent(NamedTuple):
    kind: str       # 'camera' | 'radar' | a pass-through kind of `BagMessage`
    clock_ns: int   # bag time at which a graph receives it (monotonic for camera and radar)
    stamp_ns: int   # header stamp (log time for messages without a header)
    msg: Any        # deserialised rosbags message


def delivery_order(
    bag: BagStream, sync_slop: float, reorder_window: float, radar_lead: float = 0.0,
) -> Iterator[BagEvent]:
    """The bag's messages in delivery order (see the module docstring)."""
    slop_ns = round(sync_slop * NS)
    lead_ns = round(radar_lead * NS)
    window_ns = max(round(reorder_window * NS), 2 * slop_ns)
    cams: list[tuple[int, Any]] = []
    radar: list[tuple[int, int, Any]] = []  # (stamp, arrival order, msg)
    clock = -(2**63)
    watermark = -(2**63)
    order = 0

    def release(final: bool) -> Iterator[BagEvent]:
        nonlocal clock
        cams.sort(key=lambda c: c[0])
        while cams and (final or cams[0][0] < watermark - window_ns):
            stamp, msg = cams.pop(0)
            nxt = cams[0][0] if cams else None
            radar.sort(key=lambda r: (r[0], r[1]))
            keep = []
            for r in radar:
                if r[0] <= stamp or (
                        r[0] <= stamp + slop_ns and (nxt is None or r[0] - stamp <= nxt - r[0])):
                    clock = max(clock, min(r[0], stamp - lead_ns))
                    yield BagEvent('radar', clock, r[0], r[2])
                else:
                    keep.append(r)
            radar[:] = keep
            clock = max(clock, stamp)
            yield BagEvent('camera', clock, stamp, msg)
        if final:
            for r in sorted(radar, key=lambda r: (r[0], r[1])):
                clock = max(clock, r[0])
                yield BagEvent('radar', clock, r[0], r[2])
            radar.clear()

    for m in bag.messages():
        if m.kind not in ('image', 'radar'):
            header = getattr(m.msg, 'header', None)
            stamp = msg_stamp_ns(m.msg) if header is not None else m.log_time_ns
            yield BagEvent(m.kind, m.log_time_ns, stamp, m.msg)
            continue
        stamp = msg_stamp_ns(m.msg)
        if m.kind == 'image':
            cams.append((stamp, m.msg))
        else:
            radar.append((stamp, order, m.msg))
            order += 1
        watermark = max(watermark, stamp)
        yield from release(False)
    yield from release(True)
