"""The cached store calendar answers exactly what the uncached functions do, DST days included."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from floorwalker.engine.core.periods import Calendar, period_end, period_key

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Shanghai", "UTC"]
# Around both 2026 clock changes in Europe and the US, and a month boundary.
STARTS = [(2026, 3, 7), (2026, 3, 28), (2026, 10, 24), (2026, 10, 31), (2026, 4, 5)]


def sweep(tz: ZoneInfo, y: int, m: int, d: int) -> list[float]:
    start = datetime(y, m, d, 12, tzinfo=tz).timestamp()
    return [start + k * 419.0 for k in range(3 * 86400 // 419)]  # 7 min minus a second


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("start", STARTS)
def test_day_and_minute_match_local_time(zone: str, start: tuple[int, int, int]) -> None:
    tz = ZoneInfo(zone)
    cal = Calendar(tz)
    for ts in sweep(tz, *start):
        local = datetime.fromtimestamp(ts, tz)
        day = cal.day(ts)
        assert (day.date, day.weekday) == (local.date(), local.weekday())
        assert cal.minute(ts) == local.hour * 60 + local.minute


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("period", ["hour", "day", "week", "month", "visit", "campaign"])
def test_period_keys_and_ends_match(zone: str, start: tuple[int, int, int], period: str) -> None:
    tz = ZoneInfo(zone)
    cal = Calendar(tz)
    for ts in sweep(tz, *start):
        expected = (period_key(period, ts, tz, ts - 60.0), period_end(period, ts, tz, 1800.0))  # type: ignore[arg-type]
        assert cal.period(period, ts, ts - 60.0, 1800.0) == expected  # type: ignore[arg-type]


def test_time_going_backwards_is_answered_afresh() -> None:
    tz = ZoneInfo("Europe/Berlin")
    cal = Calendar(tz)
    late = datetime(2026, 5, 2, 23, 59, tzinfo=tz).timestamp()
    early = datetime(2026, 5, 1, 0, 1, tzinfo=tz).timestamp()
    assert cal.period("day", late, None, 0.0)[0] == "2026-05-02"
    assert cal.period("day", early, None, 0.0)[0] == "2026-05-01"
    assert cal.day(early).date.day == 1 and cal.day(late).date.day == 2
