"""Rule conditions, evaluated on store-local time: birthdays, dayparts, visits, ..."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from floorwalker.engine.core.conditions import Facts, holds
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
    Pattern,
    SegmentIn,
    StaffInZone,
    TierIn,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC_ZONE = ZoneInfo("UTC")
DAY = 86400.0


def noon(year: int, month: int, day: int, tz: ZoneInfo = SHANGHAI) -> float:
    return datetime(year, month, day, 12, tzinfo=tz).timestamp()


def facts(
    ts: float,
    profile: Profile | None = None,
    *,
    tz: ZoneInfo = SHANGHAI,
    previous_visit: float | None = None,
    staff: bool = False,
    bought_at: float | None = None,
) -> Facts:
    return Facts(ts, Calendar(tz), profile, previous_visit, lambda: staff, lambda _cond: bought_at)


def born(month: int, day: int) -> Profile:
    return Profile("app-1", marketing=True, birthday=(month, day))


# --------------------------------------------------------------------------- birthdays


@pytest.mark.parametrize(
    ("birthday", "today", "days", "expected"),
    [
        ((12, 30), (2026, 1, 2), 3, True),  # wraps back into last year
        ((12, 30), (2026, 1, 2), 2, False),
        ((1, 2), (2025, 12, 31), 2, True),  # wraps forward into next year
        ((1, 2), (2025, 12, 31), 1, False),
        ((11, 25), (2025, 11, 23), 3, True),
        ((11, 25), (2025, 11, 23), 1, False),
        ((11, 20), (2025, 11, 23), 3, True),  # either side
        ((12, 20), (2025, 11, 23), 3, False),
        ((11, 23), (2025, 11, 23), 0, True),
    ],
)
def test_birthday_within_days(
    birthday: tuple[int, int], today: tuple[int, int, int], days: int, expected: bool
) -> None:
    assert holds(BirthdayWithin(days), facts(noon(*today), born(*birthday))) is expected


@pytest.mark.parametrize(
    ("today", "days", "expected"),
    [
        ((2026, 2, 28), 0, True),  # common year: celebrated on the 28th
        ((2026, 3, 1), 1, True),
        ((2026, 3, 1), 0, False),
        ((2026, 2, 26), 2, True),
        ((2026, 2, 26), 1, False),
        ((2028, 2, 29), 0, True),  # leap year: the day itself
        ((2028, 2, 28), 0, False),
        ((2028, 3, 2), 2, True),
        ((2028, 3, 2), 1, False),
    ],
)
def test_birthday_on_29_february(today: tuple[int, int, int], days: int, expected: bool) -> None:
    assert holds(BirthdayWithin(days), facts(noon(*today), born(2, 29))) is expected


def test_birthday_uses_the_store_local_date() -> None:
    # 2025-11-22 17:00 UTC is already 2025-11-23 01:00 in Shanghai
    ts = datetime(2025, 11, 22, 17, tzinfo=UTC).timestamp()
    profile = born(11, 26)
    assert holds(BirthdayWithin(3), facts(ts, profile, tz=SHANGHAI))
    assert not holds(BirthdayWithin(3), facts(ts, profile, tz=UTC_ZONE))


def test_birthday_needs_a_profile_with_a_birthday() -> None:
    ts = noon(2025, 11, 23)
    assert not holds(BirthdayWithin(183), facts(ts, None))
    assert not holds(BirthdayWithin(183), facts(ts, Profile("app-1", marketing=True)))


# --------------------------------------------------------------------------- dayparts


def at_local(hour: int, minute: int, second: int = 0) -> float:
    return datetime(2025, 11, 23, hour, minute, second, tzinfo=SHANGHAI).timestamp()


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ((7, 59, 59), False),
        ((8, 0, 0), True),
        ((9, 59, 59), True),
        ((10, 0, 0), False),
    ],
)
def test_daypart_is_half_open(moment: tuple[int, int, int], expected: bool) -> None:
    assert holds(Daypart(8 * 60, 10 * 60), facts(at_local(*moment))) is expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ((21, 59, 59), False),
        ((22, 0, 0), True),
        ((0, 0, 0), True),
        ((6, 59, 59), True),
        ((7, 0, 0), False),
        ((12, 0, 0), False),
    ],
)
def test_daypart_wrapping_midnight(moment: tuple[int, int, int], expected: bool) -> None:
    assert holds(Daypart(22 * 60, 7 * 60), facts(at_local(*moment))) is expected


def test_daypart_uses_store_time() -> None:
    ts = at_local(9, 0)  # 01:00 UTC
    assert holds(Daypart(8 * 60, 10 * 60), facts(ts, tz=SHANGHAI))
    assert not holds(Daypart(8 * 60, 10 * 60), facts(ts, tz=UTC_ZONE))


def test_days_of_week_use_store_time() -> None:
    # Monday 2025-11-24 00:30 in Shanghai is still Sunday in UTC
    ts = datetime(2025, 11, 24, 0, 30, tzinfo=SHANGHAI).timestamp()
    assert holds(DaysOfWeek(frozenset({0})), facts(ts))
    assert not holds(DaysOfWeek(frozenset({6})), facts(ts))
    assert holds(DaysOfWeek(frozenset({6})), facts(ts, tz=UTC_ZONE))


def test_campaign_dates_are_inclusive_and_local() -> None:
    camp = Campaign(date(2025, 11, 24), date(2025, 11, 30))
    assert not holds(camp, facts(datetime(2025, 11, 23, 23, 59, tzinfo=SHANGHAI).timestamp()))
    assert holds(camp, facts(datetime(2025, 11, 24, 0, 0, tzinfo=SHANGHAI).timestamp()))
    assert holds(camp, facts(datetime(2025, 11, 30, 23, 59, tzinfo=SHANGHAI).timestamp()))
    assert not holds(camp, facts(datetime(2025, 12, 1, 0, 0, tzinfo=SHANGHAI).timestamp()))
    assert holds(Campaign(None, date(2025, 11, 30)), facts(noon(2020, 1, 1)))
    assert not holds(Campaign(date(2025, 11, 24), None), facts(noon(2025, 11, 23)))


# --------------------------------------------------------------------------- profile facts

NOW = noon(2025, 11, 23)


def test_first_visit() -> None:
    known = Profile("app-1", first_visit=NOW - 100 * DAY)
    unknown_first = Profile("app-2", marketing=True)
    assert holds(FirstVisit(True), facts(NOW, None))
    assert holds(FirstVisit(True), facts(NOW, unknown_first))
    assert not holds(FirstVisit(True), facts(NOW, known))
    # seen by the engine before: no longer a first visit, profile or not
    assert not holds(FirstVisit(True), facts(NOW, None, previous_visit=NOW - 3600))
    assert not holds(FirstVisit(True), facts(NOW, unknown_first, previous_visit=NOW - 3600))
    assert holds(FirstVisit(False), facts(NOW, known))
    assert not holds(FirstVisit(False), facts(NOW, None))


def test_days_since_last_visit_takes_the_latest_known_visit() -> None:
    profile = Profile("app-1", last_visit=NOW - 200 * DAY)
    cond = DaysSinceLastVisit(at_least=180)
    assert holds(cond, facts(NOW, profile))
    assert not holds(cond, facts(NOW, profile, previous_visit=NOW - 2 * DAY))
    assert not holds(cond, facts(NOW, None))  # never seen: unknown, not "long ago"
    assert holds(DaysSinceLastVisit(at_most=3), facts(NOW, None, previous_visit=NOW - 2 * DAY))
    assert not holds(DaysSinceLastVisit(at_most=1), facts(NOW, None, previous_visit=NOW - 2 * DAY))


def test_lifetime_value_bounds_inclusive() -> None:
    rich = Profile("app-1", lifetime_value=5000.0)
    assert holds(LifetimeValue(at_least=5000), facts(NOW, rich))
    assert not holds(LifetimeValue(at_least=5000.01), facts(NOW, rich))
    assert holds(LifetimeValue(at_most=5000), facts(NOW, rich))
    assert not holds(LifetimeValue(at_least=1), facts(NOW, None))
    assert holds(LifetimeValue(at_most=10), facts(NOW, None))


def test_tier_segment_and_consent() -> None:
    gold = Profile("app-1", tier="gold", segment="loyal", marketing=True)
    shy = Profile("app-2", tier="vip", segment="dormant", marketing=False)
    assert holds(TierIn(frozenset({"gold", "vip"})), facts(NOW, gold))
    assert not holds(TierIn(frozenset({"vip"})), facts(NOW, gold))
    assert not holds(TierIn(frozenset({"member"})), facts(NOW, None))
    assert holds(SegmentIn(frozenset({"dormant"})), facts(NOW, shy))
    assert not holds(SegmentIn(frozenset({"regular"})), facts(NOW, None))
    assert holds(MarketingConsent(True), facts(NOW, gold))
    assert not holds(MarketingConsent(True), facts(NOW, shy))
    assert not holds(MarketingConsent(True), facts(NOW, None))
    assert holds(MarketingConsent(False), facts(NOW, None))


def test_bought_within_window() -> None:
    cond = Bought(Pattern("pos_item", categories=frozenset({"yogurt"})), 1800.0)
    assert holds(cond, facts(NOW, bought_at=NOW - 1800))
    assert not holds(cond, facts(NOW, bought_at=NOW - 1801))
    assert not holds(cond, facts(NOW, bought_at=None))
    assert not holds(cond, facts(NOW, bought_at=NOW + 5))  # not in the future


def test_staff_in_zone() -> None:
    assert holds(StaffInZone(True), facts(NOW, staff=True))
    assert not holds(StaffInZone(True), facts(NOW, staff=False))
    assert holds(StaffInZone(False), facts(NOW, staff=False))


def test_unknown_condition_type_is_an_error() -> None:
    class Strange:
        pass

    bogus: Condition = Strange()  # type: ignore[assignment]
    with pytest.raises(TypeError):
        holds(bogus, facts(NOW))
