"""Store-local calendar periods for caps: which period a moment is in, and when it ends.

"At most one per day" means one per *store-local* day, so a cap resets at the
store's midnight, not at UTC midnight. Period keys are strings so the same
key works in memory and in Redis.

:class:`Calendar` caches what a store asks of its calendar over and over (the
local date, weekday and minute, and each cap period's key and end): they change
at known instants, and converting every timestamp to local time was a tenth of
the time of a large catalog.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from floorwalker.rules.model import Period


def period_key(period: Period, ts: float, tz: ZoneInfo, visit_start: float | None) -> str:
    if period == "visit":
        return f"v{visit_start if visit_start is not None else ts:.0f}"  # short: one per shopper
    if period == "campaign":
        return "campaign"
    local = datetime.fromtimestamp(ts, tz)  # only the calendar periods need local time
    if period == "hour":
        return local.strftime("%Y-%m-%dT%H")
    if period == "day":
        return local.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return local.strftime("%Y-%m")
    return "campaign"


def period_end(period: Period, ts: float, tz: ZoneInfo, visit_gap_s: float) -> float | None:
    """Epoch time the period ends (the counter may expire then); None = never."""
    if period == "visit":
        return ts + visit_gap_s + 86400.0
    if period not in _CACHED_PERIODS:
        return None
    local = datetime.fromtimestamp(ts, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "hour":
        end = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    elif period == "day":
        end = _next_day(midnight)
    elif period == "week":
        end = _next_day(midnight + timedelta(days=6 - local.weekday()))
    else:  # month
        first = midnight.replace(day=1)
        end = (first + timedelta(days=32)).replace(day=1)
    return end.replace(tzinfo=tz).timestamp()


def _next_day(midnight: datetime) -> datetime:
    # Adding 26 h then truncating survives DST days of 23 or 25 hours.
    later = midnight + timedelta(hours=26)
    return later.replace(hour=0, minute=0, second=0, microsecond=0)


class LocalDay(NamedTuple):
    """One store-local day: [start, end) in epoch seconds."""

    start: float
    end: float
    date: date
    weekday: int
    steady: bool
    """No clock change inside the day, so minutes since ``start`` are local minutes."""


_NO_DAY = LocalDay(0.0, 0.0, date(1970, 1, 1), 3, False)
_CACHED_PERIODS = ("hour", "day", "week", "month")


class Calendar:
    """A store's calendar with the answers cached until the instant they change.

    Derived from the timezone alone, so it is never saved: a restored store
    builds it again on first use.
    """

    __slots__ = ("_day", "_periods", "tz")

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._day = _NO_DAY
        self._periods: dict[str, tuple[float, float, str]] = {}
        """period -> (valid from, period end, key)"""

    def day(self, ts: float) -> LocalDay:
        d = self._day
        if d.start <= ts < d.end:
            return d
        d = _local_day(ts, self.tz)
        if d.start <= ts < d.end:
            self._day = d
        return d

    def minute(self, ts: float) -> int:
        """Minute of the local day (0 .. 1439)."""
        d = self.day(ts)
        if d.steady and d.start <= ts < d.end:
            return int((ts - d.start) // 60.0)
        local = datetime.fromtimestamp(ts, self.tz)
        return local.hour * 60 + local.minute

    def period(
        self, period: Period, ts: float, visit_start: float | None, visit_gap_s: float
    ) -> tuple[str, float | None]:
        """The key of the period ``ts`` is in and when it ends (None for never)."""
        if period not in _CACHED_PERIODS:
            key = period_key(period, ts, self.tz, visit_start)
            return key, period_end(period, ts, self.tz, visit_gap_s)
        hit = self._periods.get(period)
        if hit is not None and hit[0] <= ts < hit[1]:
            return hit[2], hit[1]
        key = period_key(period, ts, self.tz, visit_start)
        end = period_end(period, ts, self.tz, 0.0)
        assert end is not None
        self._periods[period] = (ts, end, key)
        return key, end


def _local_day(ts: float, tz: ZoneInfo) -> LocalDay:
    local = datetime.fromtimestamp(ts, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    start = midnight.timestamp()
    end = _next_day(midnight).replace(tzinfo=tz).timestamp()
    steady = midnight.utcoffset() == datetime.fromtimestamp(end - 1.0, tz).utcoffset()
    return LocalDay(start, end, local.date(), local.weekday(), steady)
