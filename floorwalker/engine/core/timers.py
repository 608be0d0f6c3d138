"""A deterministic timer queue on the engine's clock.

Timers are ``(due, seq, kind, args)`` entries in a binary heap. ``seq`` is an
insertion counter, so timers due at the same instant fire in the order they were
set: the same input always fires the same timers in the same order.

Cancelling is lazy: a handler checks that the state it was set for still holds
(for example the shopper is still in the zone with the same dwell start) and
ignores the timer otherwise. That keeps the hot path free of heap deletions,
which matters because presence changes much more often than timers fire.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import NamedTuple

from floorwalker.devices.events import Event


class Timer(NamedTuple):
    due: float
    seq: int
    kind: str
    args: tuple[Hashable, ...]


class Held(NamedTuple):
    """An event in a store's reorder buffer (lateness > 0), released in timestamp order."""

    ts: float
    order_key: str
    seq: int
    event: Event


_new = tuple.__new__


class TimerQueue:
    __slots__ = ("_seq", "heap")

    def __init__(self) -> None:
        self.heap: list[Timer] = []
        self._seq = 0

    def schedule(self, due: float, kind: str, args: tuple[Hashable, ...]) -> int:
        """Set a timer; return its sequence number (unique within this queue)."""
        self._seq = seq = self._seq + 1
        # tuple.__new__ straight: Timer's own __new__ is one more Python call per timer.
        heapq.heappush(self.heap, _new(Timer, (due, seq, kind, args)))
        return seq

    @property
    def seq(self) -> int:
        """The last sequence number handed out (saved with the queue, so order survives)."""
        return self._seq

    def load(self, timers: list[Timer], seq: int) -> None:
        """Replace the queue's content (restore from a snapshot)."""
        self.heap[:] = timers
        heapq.heapify(self.heap)
        self._seq = seq

    def next_due(self) -> float | None:
        return self.heap[0].due if self.heap else None

    def pop_due(self, now: float) -> Timer | None:
        """Remove and return the earliest timer due at or before ``now``, if any."""
        heap = self.heap
        if heap and heap[0].due <= now:
            return heapq.heappop(heap)
        return None

    def __len__(self) -> int:
        return len(self.heap)

    def snapshot(self) -> list[Timer]:
        """Pending timers in firing order (for persistence and tests)."""
        return sorted(self.heap)
