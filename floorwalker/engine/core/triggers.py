"""From a matched signal to a rule firing: single patterns, sequences, absences, counts.

Every listener the index finds for a signal lands here. A single pattern fires
its rule at once; a composite moves its window on (``first`` seen, ``after``
armed, one more of ``count``) and fires when the window completes. Windows live
in the store's state and absence deadlines on its timer queue, so they survive
a snapshot and a restore like everything else.
"""

from __future__ import annotations

from collections.abc import Callable

from floorwalker.engine.core.awake import Awake, split
from floorwalker.engine.core.context import Context
from floorwalker.engine.core.decide import Decider
from floorwalker.engine.core.index import (
    ABS_AFTER,
    ABS_MISSING,
    BOUGHT,
    COUNT_OF,
    COUNT_RESET,
    EXTRA_KINDS,
    FIRE,
    SEQ_FIRST,
    SEQ_THEN,
    Listener,
    Listeners,
)
from floorwalker.engine.core.ports import Schedule
from floorwalker.engine.core.state import StoreState
from floorwalker.rules.model import Absence, Count, Rule, Sequence

_Window = Callable[[Rule, tuple[str, str], Context], None]


class Triggers:
    __slots__ = ("_awake", "_awake_generation", "_windows", "decider", "schedule", "st")

    def __init__(self, st: StoreState, decider: Decider, schedule: Schedule) -> None:
        self.st = st
        self.decider = decider
        self.schedule = schedule
        self._windows: dict[int, _Window] = {
            SEQ_FIRST: self._seq_first,
            SEQ_THEN: self._seq_then,
            ABS_AFTER: self._abs_after,
            ABS_MISSING: self._abs_missing,
            COUNT_OF: self._count,
            COUNT_RESET: self._count_reset,
        }
        self._awake: dict[int, Awake] = {}
        """id(listener list) -> its split for the current interval (derived, never saved)"""
        self._awake_generation = -1

    def dispatch(self, listeners: Listeners, ctx: Context) -> None:
        st, fire = self.st, self.decider.fire
        if len(listeners) > 1 and self.decider.on_decision is None:
            # Nobody records each decision: count the sleeping rules' refusals in bulk.
            listeners = self._awake_only(listeners, ctx.ts)
        for listener in listeners:
            if listener.pattern.kind in EXTRA_KINDS and not _extra_match(listener, ctx, st):
                continue
            if listener.role == FIRE:
                fire(listener.rule, ctx)  # type: ignore[arg-type]  # FIRE listeners have a rule
            else:
                self._apply(listener, ctx)

    def _awake_only(self, listeners: Listeners, ts: float) -> Listeners:
        st = self.st
        if self._awake_generation != st.generation:
            self._awake.clear()  # a reload: new listener lists, new rules
            self._awake_generation = st.generation
        aw = self._awake.get(id(listeners))
        if aw is None or not (aw.since <= ts < aw.until):
            aw = self._awake[id(listeners)] = split(listeners, ts, st.calendar, st.compiled.gates)
        if aw.asleep:
            stats = self.decider.stats
            triggered, suppressed, filtered = stats.triggered, stats.suppressed, stats.filtered
            for rule, reason, actions in aw.asleep:
                triggered[rule] += 1
                suppressed[(rule, reason)] += actions
                filtered[(rule, reason)] += 1  # as Decider._refuse_all: once per candidate
        return aw.listeners

    def _apply(self, lst: Listener, ctx: Context) -> None:
        role, rule = lst.role, lst.rule
        if role == BOUGHT:
            if ctx.shopper is not None:
                self.st.bought[(lst.slot, ctx.shopper)] = ctx.ts
            return
        assert rule is not None
        if role == FIRE:
            self.decider.fire(rule, ctx)
            return
        trig = rule.when
        key = ctx.key(trig.by) if isinstance(trig, Sequence | Absence | Count) else None
        if key is not None:
            self._windows[role](rule, (rule.id, key), ctx)

    def _seq_first(self, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        self.st.seq_first[key] = ctx.ts

    def _seq_then(self, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        trig = rule.when
        first = self.st.seq_first.get(key)
        if (
            isinstance(trig, Sequence)
            and first is not None
            and 0.0 <= ctx.ts - first <= trig.within_s
        ):
            del self.st.seq_first[key]
            self.decider.fire(rule, ctx)

    def _abs_after(self, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        trig = rule.when
        if isinstance(trig, Absence) and key not in self.st.absence:
            # A second `after` while one is pending does not restart the window.
            self.st.absence[key] = ctx
            self.schedule(ctx.ts + trig.within_s, "absence", (self.st.store, *key, ctx.ts))

    def _abs_missing(self, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        trig = rule.when
        pending = self.st.absence.get(key)
        if (
            isinstance(trig, Absence)
            and pending is not None
            and pending.ts <= ctx.ts <= pending.ts + trig.within_s
        ):
            del self.st.absence[key]

    def _count_reset(self, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        self.st.counts.pop(key, None)

    def _count(self, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        trig = rule.when
        if not isinstance(trig, Count):
            return
        counts = self.st.counts
        window = counts.setdefault(key, [])
        window.append(ctx.ts)
        horizon = ctx.ts - trig.within_s
        window[:] = [t for t in window if t >= horizon]
        if len(window) >= trig.at_least:
            n = len(window)
            del counts[key]  # the next firing needs a fresh `at_least`
            self.decider.fire(rule, ctx.copy(count=n))

    def on_absence(self, rule_id: str, key: str, started: float, due: float) -> None:
        """An absence window ran out: fire unless the missing signal came (or it restarted)."""
        absence = self.st.absence
        pending = absence.get((rule_id, key))
        if pending is None or pending.ts != started:
            return
        del absence[(rule_id, key)]
        rule = self.st.compiled.rules.get(rule_id)
        if rule is not None:
            ctx = pending.copy(ts=due, source=pending.source + ":absence")
            self.decider.fire(rule, ctx)


def _extra_match(lst: Listener, ctx: Context, st: StoreState) -> bool:
    """Constraints the index could not file under a key (checked only for candidates)."""
    p = lst.pattern
    kind = p.kind
    if kind == "bell":
        if not p.zone_tags:
            return True
        zone = st.registry.zones.get(ctx.zone or "")
        return zone is not None and bool(zone.tags & p.zone_tags)
    if kind == "pos_item":
        return not (p.categories and p.skus) or ctx.sku in p.skus
    if kind == "checkout":
        return p.min_total is None or (ctx.total or 0.0) >= p.min_total
    return True
