"""Store-local calendar periods for caps: which period a moment is in, and when it ends.

"At most one per day" means one per *store-local* day, so a cap resets at the
store's midnight, not at UTC midnight. Period keys are strings so the same
key works in memory and in Redis.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from floorwalker.rules.model import Period


def period_key(period: Period, ts: float, tz: ZoneInfo, visit_start: float | None) -> str:
    local = datetime.fromtimestamp(ts, tz)
    if period == "hour":
        return local.strftime("%Y-%m-%dT%H")
    if period == "day":
        return local.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return local.strftime("%Y-%m")
    if period == "visit":
        return f"v{visit_start if visit_start is not None else ts:.0f}"  # short: one per shopper
    return "campaign"


def period_end(period: Period, ts: float, tz: ZoneInfo, visit_gap_s: float) -> float | None:
    """Epoch time the period ends (the counter may expire then); None = never."""
    local = datetime.fromtimestamp(ts, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "hour":
        end = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    elif period == "day":
        end = _next_day(midnight)
    elif period == "week":
        end = _next_day(midnight + timedelta(days=6 - local.weekday()))
    elif period == "month":
        first = midnight.replace(day=1)
        end = (first + timedelta(days=32)).replace(day=1)
    elif period == "visit":
        return ts + visit_gap_s + 86400.0
    else:
        return None
    return end.replace(tzinfo=tz).timestamp()


def _next_day(midnight: datetime) -> datetime:
    # Adding 26 h then truncating survives DST days of 23 or 25 hours.
    later = midnight + timedelta(hours=26)
    return later.replace(hour=0, minute=0, second=0, microsecond=0)
