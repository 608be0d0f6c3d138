"""A time budget and a circuit breaker for the Redis calls the engine waits on.

The edge runner's core thread calls Redis inline for a few decisions (the
guard store's ``first_seen``, ``admit`` and ``redeem``; the alert journal's
``save`` and ``drop``). A paused or unreachable Redis must not hold a staff
alert back, so every such call goes through one :class:`RedisBreaker`:

* **Per-attempt timeout**: the clients of those calls are built with
  ``call_timeout_s`` (20 ms) as their socket and connect timeouts.
* **Per-event budget**: the runner calls :meth:`RedisBreaker.begin` before
  each inbound message and each round of due timers; an attempt starts only
  if what the event already lost on *failed* attempts plus one attempt
  timeout fits in ``budget_s`` (50 ms). So a Redis that does not answer costs
  one event at most the budget, however many calls it makes; the calls it
  cannot make fail at once. Answers are not charged: a round of due timers
  that admits sixty offers at once, each in a millisecond, is work, not
  waiting (and an answer slower than the attempt timeout is a failure).
* **One retry** for an idempotent call (``retry=True``) whose attempt timed
  out or lost its connection, if the budget has room: a loaded machine's
  occasional slow reply (tens of milliseconds) costs a retry, not a decision.
  The guard store's calls are idempotent only with an owner (see
  :mod:`~floorwalker.engine.stores.redis_guards`); ``redeem`` never retries.
* **Circuit breaker**: two failed attempts in a row (timeouts, connection
  errors) *open* the circuit: every call fails at once (no waiting) for
  ``retry_after_s`` (1 s). Then the next call is let through as a probe
  (*half open*, one attempt): success closes the circuit, failure opens it
  for another ``retry_after_s``. A probe costs at most one attempt timeout,
  once a second, within the budget of the event that makes it. Recovery needs
  no restart and no extra thread.

With Redis paused, the first event spends about 40 ms on two timed-out attempts
and opens the circuit; every later one waits on nothing until the probe.

Each failure is a :class:`~floorwalker.errors.GuardStoreError`, as before, so
the engine's policies hold: offers fail closed (``guard_store_unavailable``),
alerts fail open (the page goes out), a missed journal write is queued by the
journal and written when Redis answers again. An error Redis *answered* (a
script error, a wrong type) is not retried and does not count toward opening
the circuit: Redis is there.

One breaker per Redis, shared by every store adapter on the core thread; not
thread-safe (the core thread is the only caller).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from floorwalker.errors import GuardStoreError

log = logging.getLogger("floorwalker.redis")

T = TypeVar("T")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    budget_s: float = 0.05
    """Most time one event (a message, a timer round) may wait on Redis in all."""
    call_timeout_s: float = 0.02
    """Socket and connect timeout of each attempt (two attempts and some lateness fit)."""
    retry_after_s: float = 1.0
    """How long an open circuit fails calls at once before it lets a probe through."""

    def __post_init__(self) -> None:
        if not 0 < self.call_timeout_s <= self.budget_s:
            raise ValueError("the Redis call timeout must be above 0 and within the budget")
        if self.retry_after_s <= 0:
            raise ValueError("the circuit's retry interval must be above 0")


class RedisBreaker:
    """See the module docstring."""

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self.state = CLOSED
        self._retry_at = 0.0
        self._spent = 0.0
        self._failed_in_a_row = 0
        self.trips = 0
        """Times the circuit opened."""
        self.refused: dict[str, int] = {"open": 0, "budget": 0}
        """Calls failed at once: circuit open, or the event's budget spent."""
        self.failures = 0
        """Attempts that timed out or lost their connection."""

    def begin(self) -> None:
        """A new event: its budget is whole again."""
        self._spent = 0.0

    def call(self, operation: str, attempt: Callable[[], T], *, retry: bool = False) -> T:
        """``attempt()`` within the event's budget; raises :class:`GuardStoreError` on failure."""
        s = self.settings
        started = self._clock()
        if self.state == OPEN:
            if started < self._retry_at:
                self.refused["open"] += 1
                raise GuardStoreError(f"{operation} not tried: Redis is not answering")
            self.state = HALF_OPEN  # this call is the probe: one attempt
            retry = False
        tries = 2 if retry else 1
        while True:
            if self._spent + s.call_timeout_s > s.budget_s + 1e-9:
                self.refused["budget"] += 1
                raise GuardStoreError(f"{operation} not tried: this event's Redis budget is spent")
            started = self._clock()
            try:
                result = attempt()
            except (RedisTimeoutError, RedisConnectionError) as exc:
                self._spent += max(0.0, self._clock() - started)
                self.failures += 1
                self._failed_in_a_row += 1
                tries -= 1
                if self.state == HALF_OPEN or self._failed_in_a_row >= 2:
                    self._open(started, exc)
                if tries > 0 and self.state != OPEN:
                    continue
                raise GuardStoreError(f"{operation} failed: {type(exc).__name__}: {exc}") from exc
            except RedisError as exc:
                self._answered()  # an error, but Redis answered it
                raise GuardStoreError(f"{operation} failed: {type(exc).__name__}: {exc}") from exc
            self._answered()
            return result

    def _answered(self) -> None:
        self._failed_in_a_row = 0
        if self.state == HALF_OPEN:
            self._close()

    @property
    def is_open(self) -> bool:
        """True while calls fail at once (until the next probe)."""
        return self.state == OPEN and self._clock() < self._retry_at

    def _open(self, now: float, exc: Exception) -> None:
        if self.state != OPEN:
            if self.state == CLOSED:
                self.trips += 1
                log.warning(
                    "Redis not answering (%s): failing its calls at once, probing every %.1f s",
                    type(exc).__name__,
                    self.settings.retry_after_s,
                )
            self.state = OPEN
        self._retry_at = now + self.settings.retry_after_s

    def _close(self) -> None:
        self.state = CLOSED
        log.info("Redis answers again")
