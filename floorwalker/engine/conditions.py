"""Evaluating rule conditions against the facts of one moment.

Conditions only ever look at the trigger's own time (device or timer time, never
the wall clock), converted to store-local time, so dayparts, weekdays and
birthdays mean what the marketer meant in that store's timezone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from floorwalker.engine.profiles import Profile
from floorwalker.rules.model import (
    BirthdayWithin,
    Bought,
    Campaign,
    Condition,
    Daypart,
    DaysOfWeek,
    DaysSinceLastVisit,
    FirstVisit,
    LifetimeValue,
    MarketingConsent,
    SegmentIn,
    StaffInZone,
    TierIn,
)

DAY = 86400.0


class Facts:
    """What conditions may look at; the local time is computed at most once."""

    __slots__ = ("_local", "bought_at", "previous_visit", "profile", "staff_in_zone", "ts", "tz")

    def __init__(
        self,
        ts: float,
        tz: ZoneInfo,
        profile: Profile | None,
        previous_visit: float | None,
        staff_in_zone: Callable[[], bool],
        bought_at: Callable[[Bought], float | None],
    ) -> None:
        self.ts = ts
        self.tz = tz
        self.profile = profile
        self.previous_visit = previous_visit
        self.staff_in_zone = staff_in_zone
        self.bought_at = bought_at
        self._local: datetime | None = None

    @property
    def local(self) -> datetime:
        if self._local is None:
            self._local = local_time(self.ts, self.tz)
        return self._local

    def last_visit(self) -> float | None:
        known = self.profile.last_visit if self.profile else None
        if self.previous_visit is None:
            return known
        return self.previous_visit if known is None else max(known, self.previous_visit)


def local_time(ts: float, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts, tz)


def minute_of_day(moment: datetime) -> int:
    return moment.hour * 60 + moment.minute


def in_daypart(part: Daypart, moment: datetime) -> bool:
    """[start, end) in minutes of the local day; a part that wraps midnight is split."""
    minute = minute_of_day(moment)
    if part.start_min <= part.end_min:
        return part.start_min <= minute < part.end_min
    return minute >= part.start_min or minute < part.end_min


def holds(cond: Condition, facts: Facts) -> bool:  # noqa: C901, PLR0911 - one branch per kind
    profile = facts.profile
    if isinstance(cond, MarketingConsent):
        return (profile is not None and profile.marketing) == cond.required
    if isinstance(cond, TierIn):
        return profile is not None and profile.tier in cond.tiers
    if isinstance(cond, SegmentIn):
        return profile is not None and profile.segment in cond.segments
    if isinstance(cond, FirstVisit):
        first = profile is None or profile.first_visit is None
        return (first and facts.previous_visit is None) == cond.expected
    if isinstance(cond, LifetimeValue):
        return _between(profile.lifetime_value if profile else 0.0, cond.at_least, cond.at_most)
    if isinstance(cond, DaysSinceLastVisit):
        last = facts.last_visit()
        if last is None:
            return False
        return _between((facts.ts - last) / DAY, cond.at_least, cond.at_most)
    if isinstance(cond, BirthdayWithin):
        return profile is not None and _birthday_near(profile, facts.local.date(), cond.days)
    if isinstance(cond, Daypart):
        return in_daypart(cond, facts.local)
    if isinstance(cond, DaysOfWeek):
        return facts.local.weekday() in cond.days
    if isinstance(cond, Campaign):
        today = facts.local.date()
        return (cond.start is None or today >= cond.start) and (cond.end is None or today <= cond.end)
    if isinstance(cond, Bought):
        at = facts.bought_at(cond)
        return at is not None and 0.0 <= facts.ts - at <= cond.within_s
    if isinstance(cond, StaffInZone):
        return facts.staff_in_zone() == cond.expected
    raise TypeError(f"unknown condition {cond!r}")


def _between(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _birthday_near(profile: Profile, today: date, days: int) -> bool:
    if profile.birthday is None:
        return False
    month, day = profile.birthday
    for year in (today.year - 1, today.year, today.year + 1):
        birthday = _date_or_feb28(year, month, day)
        if abs((today - birthday).days) <= days:
            return True
    return False


def _date_or_feb28(year: int, month: int, day: int) -> date:
    """A 29 February birthday is celebrated on the 28th in common years."""
    try:
        return date(year, month, day)
    except ValueError:
        return date(year, 2, 28)
