"""The runner's inbox: bounded in messages and in bytes, and it blocks instead of dropping.

paho's network thread puts every message it receives; the core thread takes
them. When the inbox is full, :meth:`Inbox.put` waits (with a timeout, so a
stopping link is never stuck): paho's thread then stops reading its socket, so
the broker stops sending. For QoS 1 that happens before the inbox fills: the
broker never has more unacknowledged messages out than its in-flight window
(``max_inflight_messages``, 20), and the core thread acknowledges a message
only after it processed, dead-lettered or shed it. QoS 0 messages have no
window; for them the full inbox and TCP are the back-pressure, and the broker
buffers up to its ``max_queued_messages`` (then drops: QoS 0 is at most once).

The API is :class:`queue.Queue`'s (``put`` raises :class:`queue.Full` on
timeout, ``get`` raises :class:`queue.Empty`), so a runner that uses a plain
queue (the cluster bridge) and one that uses an :class:`Inbox` share the link.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_INBOX_ITEMS = 1000
DEFAULT_INBOX_BYTES = 16 * 1024 * 1024
"""16 MiB: 64 of the largest messages the decoder takes (256 KiB), thousands of usual ones."""


class Inbox(Generic[T]):
    """A FIFO of at most ``max_items`` messages and ``max_bytes`` bytes (``size(item)``).

    One message larger than ``max_bytes`` is still taken when the inbox is
    empty, so nothing is refused for its size here (the decoder does that).
    """

    def __init__(
        self,
        max_items: int = DEFAULT_INBOX_ITEMS,
        max_bytes: int = DEFAULT_INBOX_BYTES,
        *,
        size: Callable[[T], int],
    ) -> None:
        if max_items <= 0 or max_bytes <= 0:
            raise ValueError("an inbox needs room for at least one message")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._size = size
        self._items: collections.deque[tuple[T, int]] = collections.deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self.waits = 0
        """Times a ``put`` found the inbox full and waited (the back-pressure at work)."""

    def _full(self, size: int) -> bool:
        if not self._items:
            return False
        return len(self._items) >= self.max_items or self._bytes + size > self.max_bytes

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; wait up to ``timeout`` for room, then raise :class:`queue.Full`."""
        size = self._size(item)
        with self._not_full:
            if self._full(size):
                self.waits += 1
                if not block:
                    raise queue.Full
                deadline = None if timeout is None else time.monotonic() + timeout
                while self._full(size):
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise queue.Full
                    self._not_full.wait(remaining)
            self._items.append((item, size))
            self._bytes += size
            self._not_empty.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Take the oldest message; wait up to ``timeout``, then raise :class:`queue.Empty`."""
        with self._not_empty:
            if not self._items:
                if not block:
                    raise queue.Empty
                if not self._not_empty.wait_for(lambda: bool(self._items), timeout):
                    raise queue.Empty
            item, size = self._items.popleft()
            self._bytes -= size
            self._not_full.notify()
            return item

    def get_nowait(self) -> T:
        return self.get(block=False)

    def qsize(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        with self._lock:
            return self._bytes
