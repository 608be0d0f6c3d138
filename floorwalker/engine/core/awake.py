"""Which of a signal's rules are awake now: campaigns, weekdays and dayparts, per store.

Whether a rule's campaign is running, its weekday has come or its daypart is on
depends on the store-local time alone, and changes only at midnight or at a
daypart's edge. A large catalog is mostly rules asleep at any moment (expired
and future campaigns, other dayparts): firing each one to learn that its
``campaign`` condition fails was a third of all firings in ``bench core``.

So each listener list is split once per such interval into the listeners to
dispatch and the rules asleep, with the reason their first condition gives.
Only leading time conditions put a rule to sleep, so the reason is exactly the
one firing it would have given; the caller counts those refusals in bulk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from floorwalker.engine.core.conditions import Facts, Gate
from floorwalker.engine.core.index import EXTRA_KINDS, FIRE, Listener, Listeners
from floorwalker.engine.core.periods import Calendar
from floorwalker.rules.model import Campaign, Daypart, DaysOfWeek

_TIME_ONLY = (Campaign, DaysOfWeek, Daypart)


class Asleep(NamedTuple):
    rule: str
    reason: str
    actions: int


class Awake(NamedTuple):
    since: float
    until: float
    listeners: Listeners
    """The listeners to dispatch one by one (awake rules, composites, constrained patterns)"""
    asleep: tuple[Asleep, ...]
    source: Listeners
    """The list this split was made of (held, so its id is not reused while cached)"""


def split(listeners: Listeners, ts: float, calendar: Calendar, gates: Mapping[str, Gate]) -> Awake:
    """Split ``listeners`` for the moment ``ts``; valid until the next midnight or daypart edge."""
    facts = Facts(ts, calendar, None, None, _nobody, _never)
    day = calendar.day(ts)
    until = day.end if day.start <= ts < day.end else ts
    awake: list[Listener] = []
    asleep: list[Asleep] = []
    for lst in listeners:
        rule = lst.rule
        if lst.role != FIRE or rule is None or lst.pattern.kind in EXTRA_KINDS:
            awake.append(lst)
            continue
        reason: str | None = None
        for check, cond, must, why in gates[rule.id]:
            if not must or not isinstance(cond, _TIME_ONLY):
                break
            if isinstance(cond, Daypart):
                until = min(until, _next_edge(cond, ts, calendar))
            if check(cond, facts) != must:
                reason = why
                break
        if reason is None:
            awake.append(lst)
        else:
            asleep.append(Asleep(rule.id, reason, len(rule.actions)))
    return Awake(ts, max(until, ts), tuple(awake), tuple(asleep), listeners)


def _next_edge(part: Daypart, ts: float, calendar: Calendar) -> float:
    """When ``part`` next starts or ends after ``ts`` (the next minute on a clock-change day)."""
    day = calendar.day(ts)
    minute = calendar.minute(ts)
    if not (day.steady and day.start <= ts < day.end):
        return ts - ts % 60.0 + 60.0
    edges = [m for m in (part.start_min, part.end_min) if m > minute]
    return day.start + 60.0 * min(edges) if edges else day.end


def _nobody() -> bool:
    return False


def _never(_cond: object) -> None:
    return None
