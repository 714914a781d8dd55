"""Is the run over? Its end marker when it has one, else an idle time learnt from its cadence.

An Eiger run grows by whole data files (100 frames every few seconds), a CBF folder by one
file at a time, a Zarr store by batches: a fixed idle time either ends a monitor too early or
keeps it waiting long after the end. :class:`RunClock` watches when the frame count grows and
calls the run idle after ``factor`` times the longest pause seen between growths (at least
``min_idle``, at most ``max_idle`` seconds).
"""

from __future__ import annotations

import collections
import time


class RunClock:
    """When the run grew, how long it has been quiet, and when it counts as finished.

    Parameters
    ----------
    min_idle, max_idle
        Bounds (s) of the idle time that ends a run without an end marker.
    factor
        Idle time = ``factor`` x the longest pause between growths seen recently.
    """

    def __init__(self, *, min_idle: float = 2.0, max_idle: float = 120.0, factor: float = 3.0):
        self.min_idle, self.max_idle, self.factor = min_idle, max_idle, factor
        self.n = 0
        self.last_growth: float | None = None
        self.pauses: collections.deque = collections.deque(maxlen=50)
        #: wall-clock time the run was first seen finished (None: not yet)
        self.finished_at: float | None = None

    def observe(self, n: int, now: float | None = None) -> None:
        """Note the frame count ``n`` at time ``now``."""
        now = time.time() if now is None else now
        if n > self.n:
            if self.last_growth is not None:
                self.pauses.append(now - self.last_growth)
            self.n, self.last_growth = n, now
            self.finished_at = None

    @property
    def idle_time(self) -> float:
        """Seconds without growth after which a run without end marker counts as over."""
        longest = max(self.pauses, default=0.0)
        return min(self.max_idle, max(self.min_idle, self.factor * longest))

    def quiet_for(self, now: float | None = None) -> float:
        """Seconds since the run last grew (since the clock started: inf)."""
        if self.last_growth is None:
            return float("inf")
        return (time.time() if now is None else now) - self.last_growth

    def is_over(self, marker: bool | None, now: float | None = None) -> bool:
        """The run has ended: its end marker says so, or (without one) it has been idle for
        :attr:`idle_time`. A marker saying False keeps it going however long it is quiet."""
        now = time.time() if now is None else now
        over = (
            marker if marker is not None else (self.n > 0 and self.quiet_for(now) >= self.idle_time)
        )
        if over and self.finished_at is None:
            self.finished_at = now
        elif not over:
            self.finished_at = None
        return bool(over)
