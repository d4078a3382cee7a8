"""Approximate time sync with message_filters' shape, usable without rclpy.

`ApproximateTimeSynchronizer(fs, queue_size, slop)` connects to any filters that have
`registerCallback(cb, *args)` (message_filters.Subscriber in a node, `SimpleFilter` in tests),
or takes messages directly through `add(msg, index)`. Stamps are read from
`msg.header.stamp.sec/nanosec` and kept as integer nanoseconds, so equality is exact.

Beyond message_filters: a stamp that jumps back by more than `reset_jump` seconds on any
input (bag loop, sim clock reset) clears every queue. Without it the stale future stamps would
stay queued while the new, older ones are evicted first, and sync would stall forever.
"""

from collections.abc import Callable, Sequence
import itertools
import threading
from typing import Any

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time-like (`sec`, `nanosec`) -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def msg_stamp_ns(msg: Any) -> int:
    return stamp_to_ns(msg.header.stamp)


class SimpleFilter:
    """Minimal message_filters.SimpleFilter: fan a message out to registered callbacks."""

    def __init__(self) -> None:
        self.callbacks: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
        self._next_id = 0

    def registerCallback(self, cb: Callable[..., Any], *args: Any) -> int:  # noqa: N802
        """Call `cb(*msgs, *args)` for every signalled message set; returns a connection id."""
        conn = self._next_id
        self._next_id += 1
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msgs: Any) -> None:  # noqa: N802
        for cb, args in list(self.callbacks.values()):
            cb(*(msgs + args))


class Input(SimpleFilter):
    """A source filter fed by hand (what a Subscriber is in a node); for tests and adapters."""

    def add(self, msg: Any) -> None:
        self.signalMessage(msg)


class ApproximateTimeSynchronizer(SimpleFilter):
    """Emit one message per input whose stamps all lie within `slop` seconds of each other.

    Matching runs when a message arrives: other inputs' queued stamps within `slop` of it are
    tried nearest first, the first set with `max - min < slop` is emitted in input order and
    removed. Each input keeps at most `queue_size` messages (oldest stamp dropped); a second
    message with the same stamp on an input replaces the first. Callbacks run outside the
    lock, so a callback may call back into the synchronizer.
    """

    def __init__(
        self, fs: Sequence[Any], queue_size: int, slop: float, reset_jump: float | None = 1.0,
    ) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        if slop < 0:
            raise ValueError(f'slop must be >= 0 s, got {slop}')
        self.queue_size = int(queue_size)
        self.slop = float(slop)
        self._slop_ns = round(slop * NS_PER_S)
        self._reset_jump_ns = None if reset_jump is None else round(reset_jump * NS_PER_S)
        self._lock = threading.Lock()
        self.queues: list[dict[int, Any]] = [{} for _ in fs]
        self._latest: list[int | None] = [None for _ in fs]
        self.input_connections = [f.registerCallback(self.add, i) for i, f in enumerate(fs)]

    def connectInput(self, fs: Sequence[Any]) -> None:  # noqa: N802
        """Reconnect to new filters (message_filters API); clears queued messages."""
        with self._lock:
            self.queues = [{} for _ in fs]
            self._latest = [None for _ in fs]
        self.input_connections = [f.registerCallback(self.add, i) for i, f in enumerate(fs)]

    def clear(self) -> None:
        with self._lock:
            for q in self.queues:
                q.clear()
            self._latest = [None for _ in self.queues]

    def add(self, msg: Any, index: int) -> None:
        """Queue `msg` for input `index` and emit a matched set if one is complete."""
        stamp = msg_stamp_ns(msg)
        with self._lock:
            matched = self._add_locked(msg, index, stamp)
        if matched is not None:
            self.signalMessage(*matched)

    def _add_locked(self, msg: Any, index: int, stamp: int) -> list[Any] | None:
        latest = self._latest[index]
        if (self._reset_jump_ns is not None and latest is not None
                and latest - stamp > self._reset_jump_ns):
            for q in self.queues:
                q.clear()
            self._latest = [None for _ in self.queues]
        if self._latest[index] is None or stamp > self._latest[index]:
            self._latest[index] = stamp
        queue = self.queues[index]
        queue[stamp] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]
        if stamp not in queue:
            return None  # it was the oldest of a full queue
        candidates = []
        for i, q in enumerate(self.queues):
            if i == index:
                candidates.append([stamp])
                continue
            near = sorted((abs(s - stamp), s) for s in q if abs(s - stamp) <= self._slop_ns)
            if not near:
                return None
            candidates.append([s for _, s in near])
        for combo in itertools.product(*candidates):
            if max(combo) - min(combo) < self._slop_ns or (
                    self._slop_ns == 0 and max(combo) == min(combo)):
                return [q.pop(s) for q, s in zip(self.queues, combo, strict=True)]
        return None
