"""The floor page's feed: the core thread publishes an immutable picture, the web reads it.

The engine belongs to the core thread. :meth:`FloorFeed.tick`, called there
once per loop turn, builds a :class:`FloorSnapshot` with
:func:`~floorwalker.engine.core.floor.floor_view` at most every
``interval_s`` (the rest of the time it compares two floats) and swaps it in
as :attr:`FloorFeed.latest`. A snapshot is never changed after that, so any
other thread may read ``feed.latest`` and everything it holds without a lock:
reading the attribute is atomic, and the values are frozen.

A snapshot's :attr:`~FloorSnapshot.version` moves only when something a
person would see changed (shoppers per zone, bands, alerts, counts), so a
page can push on change and otherwise keep quiet.

Coupons "today": the core counts coupons per store since it started; when
a store's local date changes between two builds, the feed takes the counts
of the last build before it as the new day's base (what came in between
counts for the new day) and reports the difference, with the time it counts
from (store-local midnight, or the runner's start when that was today).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import time as day_time

from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.floor import StoreFloor, floor_view

DEFAULT_INTERVAL_S = 0.5


@dataclass(frozen=True, slots=True)
class DayCount:
    """One store's coupons since ``since`` (store-local midnight, or the runner's start)."""

    issued: int
    redeemed: int
    since: float


@dataclass(frozen=True, slots=True)
class FloorSnapshot:
    version: int
    built_at: float
    """Wall clock when it was built."""
    stores: Mapping[str, StoreFloor]
    today: Mapping[str, DayCount]


@dataclass(slots=True)
class _Day:
    date: str
    issued: int
    """The count today's figure starts from (the last one seen on the day before)."""
    redeemed: int
    since: float
    seen: tuple[int, int] = (0, 0)
    """Counts at the previous build: the base if the day changes before the next."""


class FloorFeed:
    """An engine's latest floor picture: :meth:`tick` on the core thread, `latest` anywhere."""

    def __init__(
        self, interval_s: float = DEFAULT_INTERVAL_S, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.interval_s = interval_s
        self.latest: FloorSnapshot | None = None
        self._clock = clock
        self._next = float("-inf")
        self._days: dict[str, _Day] = {}
        self._version = 0

    def tick(self, engine: Engine, mono: float) -> None:
        """Core thread only: rebuild if ``interval_s`` passed since the last build."""
        if mono < self._next:
            return
        self._next = mono + self.interval_s
        self.publish(engine)

    def publish(self, engine: Engine) -> FloorSnapshot:
        """Core thread only: build a snapshot now and make it the latest."""
        return self.publish_floors(floor_view(engine))

    def publish_floors(self, stores: Mapping[str, StoreFloor]) -> FloorSnapshot:
        """Make these store pictures the latest (a runner with an engine per store,
        such as a cluster worker, builds them itself)."""
        now = self._clock()
        today = {sid: self._today(floor, now) for sid, floor in stores.items()}
        last = self.latest
        if last is None or last.stores != stores or last.today != today:
            self._version += 1
        snap = FloorSnapshot(self._version, now, stores, today)
        self.latest = snap
        return snap

    def _today(self, floor: StoreFloor, now: float) -> DayCount:
        local = datetime.fromtimestamp(now, floor.registry.tzinfo)
        date = local.date().isoformat()
        day = self._days.get(floor.store)
        if day is None:
            # The core's counts start with this runner: today's start is now.
            day = self._days[floor.store] = _Day(date, 0, 0, now)
        elif day.date != date:
            midnight = datetime.combine(local.date(), day_time(0), local.tzinfo).timestamp()
            day.date, day.since = date, midnight
            day.issued, day.redeemed = day.seen  # what came since counts for the new day
        day.seen = (floor.coupons_issued, floor.coupons_redeemed)
        return DayCount(
            floor.coupons_issued - day.issued, floor.coupons_redeemed - day.redeemed, day.since
        )
