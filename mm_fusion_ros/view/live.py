"""The view's worker: a bounded drop-oldest queue, one thread that builds and logs entities.

The ROS callbacks only decode their message and `submit` it; building entities and logging
them to the server happen on this thread, so the view never holds up the graph's executor.
When the viewer side falls behind, the oldest queued items are dropped (counted).
"""

from collections import deque
from collections.abc import Callable
import threading
from typing import Any

from mm_fusion_ros.view.scene import TIMELINE, Entity, LiveScene, blueprint

QUEUE_SIZE = 64  # items (a camera frame, a radar frame, a decision, ...) waiting for the thread


class LiveView:
    """Feeds a `LiveScene` from any thread and logs its entities to a Rerun recording."""

    def __init__(self, recording: Any, scene: LiveScene | None = None,
                 sim_time: bool = False, queue_size: int = QUEUE_SIZE,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.recording = recording
        self.scene = scene or LiveScene()
        self.sim_time = sim_time  # stamps from /clock: a duration from 0, else wall time
        self.counts = {'logged': 0, 'dropped': 0, 'failed': 0}
        self._on_error = on_error
        self._busy = False
        self._queue: deque = deque()
        self._queue_size = queue_size
        self._cond = threading.Condition()
        self._stop = False
        recording.send_blueprint(blueprint(), make_active=True, make_default=True)
        self._log(None, self.scene.start())
        self._thread = threading.Thread(target=self._run, name='live_view', daemon=True)
        self._thread.start()

    def submit(self, stamp_ns: int | None, build: Callable[[LiveScene], list[Entity]]) -> None:
        """Queue `build(scene)` for the worker, at message time `stamp_ns` (None: static)."""
        with self._cond:
            if self._stop:
                return
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.counts['dropped'] += 1
            self._queue.append((stamp_ns, build))
            self._cond.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty (tests, shutdown); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stop)
                if self._stop and not self._queue:
                    return
                stamp_ns, build = self._queue.popleft()
                self._busy = True
            try:
                self._log(stamp_ns, build(self.scene))
            except Exception as exc:  # noqa: BLE001 - one bad message must not end the view
                self.counts['failed'] += 1
                if self._on_error is not None:
                    self._on_error(f'{type(exc).__name__}: {exc}')
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _log(self, stamp_ns: int | None, entities: list[Entity]) -> None:
        rec = self.recording
        if stamp_ns is not None:
            if self.sim_time:
                rec.set_time(TIMELINE, duration=stamp_ns * 1e-9)
            else:
                rec.set_time(TIMELINE, timestamp=stamp_ns * 1e-9)
        for e in entities:
            rec.log(e.path, *e.archetypes, static=e.static)
        self.counts['logged'] += len(entities)
