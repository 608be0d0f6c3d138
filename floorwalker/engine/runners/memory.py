"""Give memory back to the system once a backlog is over.

During an overload the runner's heap grows: the inbox fills with payloads
(up to its byte bound), paho's buffers and the decoder's lists grow with
them. When the backlog is gone, CPython frees those objects, but the memory
mostly stays with the process: payloads over 512 bytes live in glibc's heap,
which gives pages back only from its top, and a few live objects keep whole
pymalloc arenas. So after a drain RSS stayed about 28 MB above the baseline
(docs/reliability.md) although nothing held the data any more.

:class:`MemoryRelease` watches for the end of a backlog (the intake had to
wait, or shed, and then the inbox stayed empty for ``quiet_s``) and then runs
one full ``gc.collect()`` and glibc's ``malloc_trim(0)``, which returns every
free page of the heap, not only its top. It costs a few tens of milliseconds
once per backlog, never during one, and nothing while the runner keeps up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("floorwalker.memory")

DEFAULT_QUIET_S = 5.0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


@dataclass
class MemoryRelease:
    """Call :meth:`tick` about once a second with the intake's counters."""

    quiet_s: float = DEFAULT_QUIET_S
    released: int = 0
    """Times memory was given back (a backlog ended)."""
    _pressure: int = 0
    _backlog: bool = False
    _quiet_since: float | None = None

    def __post_init__(self) -> None:
        self._trim = _malloc_trim()

    def tick(self, now: float, pressure: int, queued: int) -> bool:
        """``pressure``: a count that grows while the intake is behind (inbox waits plus
        messages shed); ``queued``: messages in the inbox now. True if it released."""
        if pressure != self._pressure:
            self._pressure, self._backlog, self._quiet_since = pressure, True, None
            return False
        if not self._backlog or queued:
            self._quiet_since = None
            return False
        if self._quiet_since is None:
            self._quiet_since = now
            return False
        if now - self._quiet_since < self.quiet_s:
            return False
        self._backlog, self._quiet_since = False, None
        self.release()
        return True

    def release(self) -> None:
        """One full collection, then hand the heap's free pages back."""
        collected = gc.collect()
        trimmed = self._trim(0) if self._trim is not None else 0
        self.released += 1
        log.info(
            "backlog over: memory released (%d objects collected, trim %d)", collected, trimmed
        )
