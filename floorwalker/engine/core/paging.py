"""Staff alerts: who is paged, escalation, and what an answer does.

An alert is raised once per bell (or shopper, or device) and rule while it is
open; it pages the nearest available band, escalates on its timers and stops
when someone acknowledges it. When the chain has run out with no answer
(``unanswered_after_s`` after the last step) the alert is *unanswered*; the
next press opens a new alert, one priority higher. See
:mod:`floorwalker.engine.core.alerts` for the life cycle. Offline bands are
never paged; staff alerts fail open when the guard store is unreachable.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable
from typing import Any

from floorwalker.devices.events import StaffAck
from floorwalker.engine.core.actions import Action, Alert, stable_id
from floorwalker.engine.core.alerts import OpenAlert, raised
from floorwalker.engine.core.context import Context
from floorwalker.engine.core.guards import CounterLimit, Ticket
from floorwalker.engine.core.ports import Ports, Schedule
from floorwalker.engine.core.profiles import Profile
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.staff import Floor
from floorwalker.engine.core.state import StoreState
from floorwalker.engine.core.verdicts import Verdicts, cap_counters, subject_of
from floorwalker.rules.model import AlertSpec, NextNearest, Rule

_NO_BANDS: frozenset[str] = frozenset()


class Pager:
    """The alerts of one store."""

    def __init__(
        self,
        st: StoreState,
        ports: Ports,
        settings: EngineSettings,
        emit: Callable[[Action], None],
        schedule: Schedule,
        verdicts: Verdicts,
    ) -> None:
        self.st = st
        self.ports = ports
        self.stats = ports.stats
        self.settings = settings
        self.emit = emit
        self.schedule = schedule
        self.verdicts = verdicts

    def raise_builtin(self, rule: Rule, ctx: Context) -> None:
        """An alert the engine raises itself (device health), outside the rule set."""
        self.stats.triggered[rule.id] += 1
        for spec in rule.actions:
            if isinstance(spec, AlertSpec):
                self.raise_alert(rule, spec, ctx, None)

    def raise_alert(
        self, rule: Rule, spec: AlertSpec, ctx: Context, profile: Profile | None
    ) -> None:
        st = self.st
        source_key = ctx.bell or ctx.shopper or ctx.device or ctx.zone or "-"
        alert_id = stable_id("al-", rule.id, st.store, source_key, ctx.source)
        subject = subject_of(ctx)
        zone = alert_zone(st, ctx)
        refused = self._refusal(rule, spec, source_key, zone, ctx.ts)
        verdicts, source = self.verdicts, ctx.source
        if refused is not None:
            verdicts.decide(ctx.ts, rule.id, "alert", subject, None, refused, alert_id, source)
            return
        counters: tuple[CounterLimit, ...] = ()
        if ctx.shopper:
            prefix = f"cap:{rule.id}:a"
            gap = self.settings.presence.visit_gap_s
            caps = rule.limits.per_shopper
            counters = cap_counters(self.st, gap, caps, prefix, ctx.shopper, ctx, "cap")
        ticket = Ticket(action_id=alert_id, counters=counters)
        reason = verdicts.admit(ticket, ctx.ts, fail_open=True)
        if reason is not None:
            verdicts.decide(ctx.ts, rule.id, "alert", subject, None, reason, alert_id, source)
            return
        alert = OpenAlert(
            id=alert_id,
            store=st.store,
            rule=rule.id,
            spec=spec,
            zone=zone,
            message=render(spec.message, ctx),
            created=ctx.ts,
            source_key=source_key,
            shopper=ctx.shopper,
            bell=ctx.bell,
            summary=profile.summary() if (profile and spec.include_shopper) else None,
            advisor=profile.advisor if profile else None,
        )
        if (rule.id, source_key) in st.alerts.unanswered:
            alert.priority = raised(spec.priority)  # nobody came last time: louder now
        st.alerts.last_raised[(rule.id, zone)] = ctx.ts
        band = st.staff.route(
            spec.to, zone or None, alert.advisor, floor=self._floor(alert, ctx.ts)
        )
        if band is None:
            verdicts.decide(
                ctx.ts, rule.id, "alert", subject, None, "no_staff_available", alert_id, source
            )
            if not spec.escalate:
                return
        st.alerts.add(alert)
        if band is not None:
            self._page(alert, band, ctx.ts, source)
        else:
            self.ports.journal_save(alert)
        for k, esc in enumerate(spec.escalate):
            self.schedule(ctx.ts + esc.after_s, "escalate", (st.store, alert_id, k))
        self.schedule(self.chain_end(alert), "unanswered", (st.store, alert_id))

    def chain_end(self, alert: OpenAlert) -> float:
        """When an alert nobody answers becomes unanswered: after its last step."""
        last = alert.spec.escalate[-1].after_s if alert.spec.escalate else 0.0
        return alert.created + last + self.settings.unanswered_after_s

    def _refusal(
        self, rule: Rule, spec: AlertSpec, source_key: str, zone: str, ts: float
    ) -> str | None:
        book = self.st.alerts
        if book.open_for(rule.id, source_key) is not None:
            return "already_open"
        grouped = book.last_raised.get((rule.id, zone))
        if spec.group_within_s and grouped is not None and ts - grouped < spec.group_within_s:
            return "grouped"
        return None

    def _floor(self, alert: OpenAlert, now: float) -> Floor:
        book, every = self.st.alerts, alert.spec.band_every_s
        capped = (
            frozenset(
                band
                for (rule, band), at in book.last_paged.items()
                if rule == alert.rule and now - at < every
            )
            if every
            else _NO_BANDS
        )
        busy = book.busy_bands(now, self.settings.busy_timeout_s) if book.acked else _NO_BANDS
        # The live load figures, not a copy: routing reads them and changes nothing.
        return Floor(now, busy, book.held, capped)

    def on_unanswered(self, alert_id: str, due: float) -> None:
        """The chain ran out and nobody answered: the alert ends as unanswered."""
        book = self.st.alerts
        alert = book.alerts.get(alert_id)
        if alert is None or alert.answered or alert.ended_at is not None:
            return
        book.release(alert)
        alert.ended_at = due
        book.answered(alert)  # the next press opens a new alert
        book.unanswered[(alert.rule, alert.source_key)] = due
        self.stats.unanswered[alert.rule] += 1
        self.ports.journal_save(alert)

    def _page(self, alert: OpenAlert, band: str, ts: float, source: str | None = None) -> None:
        """Page ``band``; ``source`` is the firing's cause for a first page, None for a
        follow-up (escalation, re-route)."""
        book = self.st.alerts
        book.release(alert)
        alert.bands.append(band)
        book.hold(alert)
        book.last_paged[(alert.rule, band)] = ts
        self.stats.pages[band] += 1
        self.ports.journal_save(alert)  # before the page is published: write-ahead
        page = Alert(
            id=alert.id,
            store=alert.store,
            band=band,
            ts=ts,
            rule=alert.rule,
            priority=alert.priority,
            zone=alert.zone,
            message=alert.message,
            step=alert.step,
            shopper=alert.summary,
        )
        self.emit(page)
        subject = alert.shopper or alert.bell or alert.zone
        delivery = page.delivery_id
        self.verdicts.decide(ts, alert.rule, "alert", subject, True, "sent", delivery, source)

    def escalate(self, alert_id: str, k: int, due: float) -> None:
        alert = self.st.alerts.alerts.get(alert_id)
        if alert is None or alert.answered or k >= len(alert.spec.escalate):
            return
        if alert.step >= k + 2:
            return  # already taken (a journal restored over a snapshot re-arms it twice)
        alert.step = k + 2
        self.stats.escalations[alert.rule] += 1
        if not self._reroute(alert, alert.spec.escalate[k].to, due):
            self.ports.journal_save(alert)  # the step is spent even with nobody to page

    def _reroute(self, alert: OpenAlert, targets: Any, ts: float) -> bool:
        paged = frozenset(alert.bands) | alert.declined
        floor = self._floor(alert, ts)
        band = self.st.staff.route(
            targets,
            alert.zone or None,
            alert.advisor,
            paged,
            frozenset(alert.declined),
            floor=floor,
        )
        if band is None:
            subject = alert.shopper or alert.bell or alert.zone
            reason = "no_staff_available"
            self.verdicts.decide(ts, alert.rule, "alert", subject, None, reason, alert.id)
            return False
        self._page(alert, band, ts)
        return True

    def answer(self, alert: OpenAlert, ev: StaffAck) -> None:
        """A staff answer: ack/done stop the escalation; decline passes the alert on now."""
        book = self.st.alerts
        book.release(alert)
        if ev.action == "decline":
            alert.declined.add(ev.band)
            book.hold(alert)
            if not alert.answered and alert.ended_at is None:
                self._reroute(alert, (NextNearest(),), ev.ts)
            self.ports.journal_save(alert)
            return
        if alert.acked_at is None:
            alert.acked_at, alert.acked_by = ev.ts, ev.band
            self._record_response(alert, ev.ts - alert.created)
            book.answered(alert)
        if ev.action == "done":
            alert.closed_at = ev.ts
        book.hold(alert)
        self.ports.journal_save(alert)

    def _record_response(self, alert: OpenAlert, seconds: float) -> None:
        stats = self.stats
        stats.response_s.setdefault(alert.rule, []).append(seconds)
        target = alert.spec.response_target_s
        if target is not None:
            stats.response_target_s[alert.rule] = target
            if seconds <= target:
                stats.within_target[alert.rule] += 1


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@functools.lru_cache(maxsize=1024)
def _named_fields(template: str) -> tuple[str, ...] | None:
    """The context fields ``template`` names (None: hand format_map all of them).

    Worked out once per template: building every field of the context for each
    message was a tenth of the cost of raising an alert.
    """
    names: list[str] = []
    try:
        for _text, name, spec, _conv in string.Formatter().parse(template):
            if name is None:
                continue
            if spec and "{" in spec:
                return None  # a nested field in the format spec: the general path
            names.append(re.split(r"[.\[]", name, maxsplit=1)[0])
    except ValueError:
        return None  # malformed: format_map refuses it the same way
    slots = Context.__slots__
    return tuple(n for n in dict.fromkeys(names) if n in slots)


def render(template: str, ctx: Context) -> str:
    names = _named_fields(template)
    fields = (
        ctx.fields()
        if names is None
        else {n: ("" if (v := getattr(ctx, n)) is None else v) for n in names}
    )
    try:
        return template.format_map(_Blank(fields))
    except (ValueError, IndexError, AttributeError):
        return template


POS_KINDS = frozenset({"pos_item", "checkout", "coupon_redeemed"})
"""Contexts a POS line starts; their ``device`` is the terminal."""


def alert_zone(st: StoreState, ctx: Context) -> str:
    """Where an alert sends staff: the trigger's zone, else the shopper's, else (a POS
    trigger) the terminal's; "" only when none is known (the payload then has no zone)."""
    zone = ctx.zone
    if zone is None and ctx.shopper:
        zone = st.presence.zone_of(ctx.shopper, ctx.ts)
    if zone is None and ctx.kind in POS_KINDS:
        zone = st.registry.pos_zone(ctx.device)
    return zone or ""
