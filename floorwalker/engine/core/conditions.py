"""Evaluating rule conditions against the facts of one moment.

Conditions only ever look at the trigger's own time (device or timer time, never
the wall clock), converted to store-local time, so dayparts, weekdays and
birthdays mean what the marketer meant in that store's timezone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from floorwalker.engine.core.periods import Calendar
from floorwalker.engine.core.profiles import Profile
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
    Rule,
    SegmentIn,
    StaffInZone,
    TierIn,
)

DAY = 86400.0


class Facts:
    """What conditions may look at: the moment (on the store's calendar) and the shopper."""

    __slots__ = ("bought_at", "calendar", "previous_visit", "profile", "staff_in_zone", "ts")

    def __init__(
        self,
        ts: float,
        calendar: Calendar,
        profile: Profile | None,
        previous_visit: float | None,
        staff_in_zone: Callable[[], bool],
        bought_at: Callable[[Bought], float | None],
    ) -> None:
        self.ts = ts
        self.calendar = calendar
        self.profile = profile
        self.previous_visit = previous_visit
        self.staff_in_zone = staff_in_zone
        self.bought_at = bought_at

    @property
    def today(self) -> date:
        return self.calendar.day(self.ts).date

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
    return in_minutes(part, minute_of_day(moment))


def in_minutes(part: Daypart, minute: int) -> bool:
    if part.start_min <= part.end_min:
        return part.start_min <= minute < part.end_min
    return minute >= part.start_min or minute < part.end_min


def holds(cond: Condition, facts: Facts) -> bool:
    return _check_of(cond)(cond, facts)


Check = Callable[[Any, Facts], bool]
Gate = tuple[tuple[Check, Condition, bool, str], ...]
"""A rule's conditions then its unless clauses, in order: (check, condition, must hold, reason)."""


def gate_of(rule: Rule) -> Gate:
    """Compiled once per rule: no lookup of the check and no reason string per firing."""
    return tuple(
        (_check_of(n.condition), n.condition, must, f"{label}:{n.name}")
        for label, must, named in (
            ("condition", True, rule.conditions),
            ("unless", False, rule.unless),
        )
        for n in named
    )


def _check_of(cond: Condition) -> Check:
    check = _CHECKS.get(type(cond))
    if check is None:
        raise TypeError(f"unknown condition {cond!r}")
    return check


def _consent(c: MarketingConsent, f: Facts) -> bool:
    return (f.profile is not None and f.profile.marketing) == c.required


def _tier(c: TierIn, f: Facts) -> bool:
    return f.profile is not None and f.profile.tier in c.tiers


def _segment(c: SegmentIn, f: Facts) -> bool:
    return f.profile is not None and f.profile.segment in c.segments


def _first_visit(c: FirstVisit, f: Facts) -> bool:
    first = f.profile is None or f.profile.first_visit is None
    return (first and f.previous_visit is None) == c.expected


def _ltv(c: LifetimeValue, f: Facts) -> bool:
    return _between(f.profile.lifetime_value if f.profile else 0.0, c.at_least, c.at_most)


def _since_visit(c: DaysSinceLastVisit, f: Facts) -> bool:
    last = f.last_visit()
    return last is not None and _between((f.ts - last) / DAY, c.at_least, c.at_most)


def _birthday(c: BirthdayWithin, f: Facts) -> bool:
    return f.profile is not None and _birthday_near(f.profile, f.today, c.days)


def _weekday(c: DaysOfWeek, f: Facts) -> bool:
    return f.calendar.day(f.ts).weekday in c.days


def _campaign(c: Campaign, f: Facts) -> bool:
    today = f.today
    return (c.start is None or today >= c.start) and (c.end is None or today <= c.end)


def _bought(c: Bought, f: Facts) -> bool:
    at = f.bought_at(c)
    return at is not None and 0.0 <= f.ts - at <= c.within_s


def _staff(c: StaffInZone, f: Facts) -> bool:
    return f.staff_in_zone() == c.expected


_CHECKS: dict[type, Callable[[Any, Facts], bool]] = {
    MarketingConsent: _consent,
    TierIn: _tier,
    SegmentIn: _segment,
    FirstVisit: _first_visit,
    LifetimeValue: _ltv,
    DaysSinceLastVisit: _since_visit,
    BirthdayWithin: _birthday,
    Daypart: lambda c, f: in_minutes(c, f.calendar.minute(f.ts)),
    DaysOfWeek: _weekday,
    Campaign: _campaign,
    Bought: _bought,
    StaffInZone: _staff,
}


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
