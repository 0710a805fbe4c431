"""One timer heap for every transport: callbacks due at a time on some clock.

The IRC connection, console mode and the test plugin's fake transport all keep
their timers here, on their own clock (monotonic, or the test's fake one). It is
plain data, not thread-safe: each owner uses it from one thread or under its own
lock. (A worker process keeps module timers of its own: ``bot.remote``.)
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable


class TimerHeap:
    """Callbacks by due time; equal times run in the order they were added."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` ``delay`` seconds from now (on this heap's clock)."""
        self.add_at(self.clock() + max(0.0, delay), fn)

    def add_at(self, due: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), fn))

    def wait_time(self, longest: float) -> float:
        """How long the owner may sleep before the next timer is due (at most ``longest``)."""
        if not self._heap:
            return longest
        return min(longest, max(0.0, self._heap[0][0] - self.clock()))

    def pop_due(self, until: float | None = None) -> tuple[float, Callable[[], None]] | None:
        """The next callback due by ``until`` (default: now) with its due time, or None."""
        limit = self.clock() if until is None else until
        if not self._heap or self._heap[0][0] > limit:
            return None
        due, _, fn = heapq.heappop(self._heap)
        return due, fn
