"""Store-local calendar periods: keys and period ends, including DST days."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from floorwalker.engine.core.periods import period_end, period_key
from floorwalker.rules.model import Period

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
GAP = 1800.0
HOUR = 3600.0


def at(tz: ZoneInfo, *fields: int) -> float:
    """Epoch seconds of a wall time (year, month, day[, hour, minute, second]) in ``tz``."""
    year, month, day, *rest = fields
    hour, minute, second = (*rest, 0, 0, 0)[:3]
    return datetime(year, month, day, hour, minute, second, tzinfo=tz).timestamp()


def utc(*fields: int) -> float:
    return at(ZoneInfo("UTC"), *fields)


# --------------------------------------------------------------------------- keys


def test_day_key_is_the_store_local_date() -> None:
    late = at(SHANGHAI, 2025, 11, 23, 23, 30)
    after_midnight = at(SHANGHAI, 2025, 11, 24, 0, 30)
    # both are 2025-11-23 in UTC
    assert datetime.fromtimestamp(after_midnight, UTC).date().isoformat() == "2025-11-23"
    assert period_key("day", late, SHANGHAI, None) == "2025-11-23"
    assert period_key("day", after_midnight, SHANGHAI, None) == "2025-11-24"


def test_hour_and_month_keys() -> None:
    ts = at(SHANGHAI, 2025, 11, 30, 23, 59, 59)
    assert period_key("hour", ts, SHANGHAI, None) == "2025-11-30T23"
    assert period_key("month", ts, SHANGHAI, None) == "2025-11"
    assert period_key("month", ts + 1, SHANGHAI, None) == "2025-12"


@pytest.mark.parametrize(
    ("day", "key"),
    [
        ((2025, 11, 23), "2025-W47"),  # Sunday
        ((2025, 11, 24), "2025-W48"),  # Monday
        ((2026, 12, 31), "2026-W53"),
        ((2027, 1, 1), "2026-W53"),  # ISO year, not calendar year
        ((2024, 12, 30), "2025-W01"),
    ],
)
def test_week_key_is_the_iso_week_of_the_local_date(day: tuple[int, int, int], key: str) -> None:
    assert period_key("week", at(SHANGHAI, *day, 12), SHANGHAI, None) == key


def test_week_key_changes_at_local_not_utc_midnight() -> None:
    sunday_night = at(SHANGHAI, 2025, 11, 23, 23, 59)
    monday_early = at(SHANGHAI, 2025, 11, 24, 0, 1)
    assert period_key("week", sunday_night, SHANGHAI, None) == "2025-W47"
    assert period_key("week", monday_early, SHANGHAI, None) == "2025-W48"


def test_visit_and_campaign_keys() -> None:
    ts = at(SHANGHAI, 2025, 11, 23, 9)
    assert period_key("visit", ts, SHANGHAI, ts - 100.0) == f"v{ts - 100.0:.0f}"
    assert period_key("visit", ts, SHANGHAI, None) == f"v{ts:.0f}"
    assert period_key("visit", ts, SHANGHAI, 1.0) != period_key("visit", ts, SHANGHAI, 2.0)
    assert period_key("campaign", ts, SHANGHAI, None) == "campaign"


def test_berlin_day_keys_around_the_spring_change() -> None:
    assert period_key("day", at(BERLIN, 2026, 3, 29, 23, 30), BERLIN, None) == "2026-03-29"
    # 2026-03-30 00:30 CEST is still 2026-03-29 in UTC
    early = at(BERLIN, 2026, 3, 30, 0, 30)
    assert datetime.fromtimestamp(early, UTC).day == 29
    assert period_key("day", early, BERLIN, None) == "2026-03-30"


# --------------------------------------------------------------------------- ends


def test_day_end_is_the_next_local_midnight() -> None:
    ts = at(SHANGHAI, 2025, 11, 23, 9)
    assert period_end("day", ts, SHANGHAI, GAP) == at(SHANGHAI, 2025, 11, 24)
    # one second before midnight still ends at that midnight
    assert period_end("day", at(SHANGHAI, 2025, 11, 23, 23, 59, 59), SHANGHAI, GAP) == at(
        SHANGHAI, 2025, 11, 24
    )


def test_berlin_spring_forward_day_is_23_hours() -> None:
    ts = at(BERLIN, 2026, 3, 29, 12)  # CEST since 02:00 that night
    end = period_end("day", ts, BERLIN, GAP)
    assert end == utc(2026, 3, 29, 22)  # 2026-03-30 00:00 CEST
    start = period_end("day", at(BERLIN, 2026, 3, 28, 12), BERLIN, GAP)
    assert start == utc(2026, 3, 28, 23)  # 2026-03-29 00:00 CET
    assert end is not None and start is not None
    assert end - start == 23 * HOUR


def test_berlin_fall_back_day_is_25_hours() -> None:
    ts = at(BERLIN, 2026, 10, 25, 12)
    end = period_end("day", ts, BERLIN, GAP)
    assert end == utc(2026, 10, 25, 23)  # 2026-10-26 00:00 CET
    start = period_end("day", at(BERLIN, 2026, 10, 24, 12), BERLIN, GAP)
    assert start == utc(2026, 10, 24, 22)  # 2026-10-25 00:00 CEST
    assert end is not None and start is not None
    assert end - start == 25 * HOUR


def test_day_end_late_in_the_fall_back_day() -> None:
    ts = at(BERLIN, 2026, 10, 25, 23, 30)
    assert period_end("day", ts, BERLIN, GAP) == utc(2026, 10, 25, 23)


@pytest.mark.parametrize(
    ("tz", "moment", "end"),
    [
        # Wednesday before the spring change -> Monday 2026-03-30 00:00 CEST
        (BERLIN, (2026, 3, 25, 10), (2026, 3, 29, 22)),
        # Sunday evening of the change itself
        (BERLIN, (2026, 3, 29, 20), (2026, 3, 29, 22)),
        # a Monday in Shanghai -> the next Monday 00:00 local
        (SHANGHAI, (2025, 11, 24, 0, 0, 1), (2025, 11, 30, 16)),
    ],
)
def test_week_ends_at_local_monday_midnight(
    tz: ZoneInfo, moment: tuple[int, ...], end: tuple[int, ...]
) -> None:
    assert period_end("week", at(tz, *moment), tz, GAP) == utc(*end)


def test_month_ends_across_dst() -> None:
    assert period_end("month", at(BERLIN, 2026, 3, 15), BERLIN, GAP) == utc(2026, 3, 31, 22)
    assert period_end("month", at(BERLIN, 2026, 10, 31, 23, 30), BERLIN, GAP) == utc(
        2026, 10, 31, 23
    )
    assert period_end("month", at(SHANGHAI, 2025, 12, 31, 12), SHANGHAI, GAP) == at(
        SHANGHAI, 2026, 1, 1
    )


def test_hour_end() -> None:
    ts = at(SHANGHAI, 2025, 11, 23, 9, 59, 59)
    assert period_end("hour", ts, SHANGHAI, GAP) == at(SHANGHAI, 2025, 11, 23, 10)


def test_hour_end_across_spring_forward() -> None:
    # 01:30 CET; the next wall hour 02:00 does not exist, 03:00 CEST is the same instant
    ts = at(BERLIN, 2026, 3, 29, 1, 30)
    assert period_end("hour", ts, BERLIN, GAP) == utc(2026, 3, 29, 1)


def test_visit_and_campaign_ends() -> None:
    ts = at(SHANGHAI, 2025, 11, 23, 9)
    end = period_end("visit", ts, SHANGHAI, GAP)
    assert end is not None and end > ts + GAP
    assert period_end("campaign", ts, SHANGHAI, GAP) is None


@pytest.mark.parametrize("month", [3, 10])
@pytest.mark.parametrize("period", ["hour", "day", "week", "month"])
@pytest.mark.parametrize("tz", [SHANGHAI, BERLIN])
def test_every_moment_of_a_period_has_its_key_and_end(
    period: Period, tz: ZoneInfo, month: int
) -> None:
    # Walk a DST-spanning stretch in 20-minute steps: the key changes exactly when
    # the previous period's end is reached, and the end is always in the future.
    ts = utc(2026, month, 20)
    stop = utc(2026, month + 1, 5)
    key = period_key(period, ts, tz, None)
    end = period_end(period, ts, tz, GAP)
    while ts < stop:
        assert end is not None and end > ts
        ts += 1200.0
        new_key = period_key(period, ts, tz, None)
        if ts < end:
            assert new_key == key, (period, ts)
        else:
            assert new_key != key, (period, ts)
            key, end = new_key, period_end(period, ts, tz, GAP)
