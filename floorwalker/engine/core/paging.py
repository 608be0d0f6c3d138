"""Staff alerts: who is paged, escalation, and what an answer does.

An alert is raised once per bell (or shopper, or device) and rule while it is
unanswered; it pages the nearest available band, escalates on its timers and
stops when someone acknowledges it. Offline bands are never paged; staff
alerts fail open when the guard store is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from floorwalker.devices.events import StaffAck
from floorwalker.engine.core.actions import Action, Alert, stable_id
from floorwalker.engine.core.alerts import OpenAlert
from floorwalker.engine.core.context import Context
from floorwalker.engine.core.guards import CounterLimit, Ticket
from floorwalker.engine.core.ports import Ports, Schedule
from floorwalker.engine.core.profiles import Profile
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.state import StoreState
from floorwalker.engine.core.verdicts import Verdicts, cap_counters, subject_of
from floorwalker.rules.model import AlertSpec, NextNearest, Rule


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
        if st.alerts.open_for(rule.id, source_key) is not None:
            self.verdicts.decide(ctx.ts, rule.id, "alert", subject, None, "already_open", alert_id)
            return
        counters: tuple[CounterLimit, ...] = ()
        if ctx.shopper:
            prefix = f"cap:{rule.id}:a"
            gap = self.settings.presence.visit_gap_s
            caps = rule.limits.per_shopper
            counters = cap_counters(self.st, gap, caps, prefix, ctx.shopper, ctx, "cap")
        ticket = Ticket(action_id=alert_id, counters=counters)
        reason = self.verdicts.admit(ticket, ctx.ts, fail_open=True)
        if reason is not None:
            self.verdicts.decide(ctx.ts, rule.id, "alert", subject, None, reason, alert_id)
            return
        zone = ctx.zone or (st.presence.zone_of(ctx.shopper, ctx.ts) if ctx.shopper else None) or ""
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
        band = st.staff.route(spec.to, zone or None, alert.advisor)
        if band is None:
            self.verdicts.decide(
                ctx.ts, rule.id, "alert", subject, None, "no_staff_available", alert_id
            )
            if not spec.escalate:
                return
        st.alerts.add(alert)
        if band is not None:
            self._page(alert, band, ctx.ts)
        else:
            self.ports.journal_save(alert)
        for k, esc in enumerate(spec.escalate):
            self.schedule(ctx.ts + esc.after_s, "escalate", (st.store, alert_id, k))

    def _page(self, alert: OpenAlert, band: str, ts: float) -> None:
        alert.bands.append(band)
        self.st.staff.busy[band] = alert.id
        self.ports.journal_save(alert)  # before the page is published: write-ahead
        page = Alert(
            id=alert.id,
            store=alert.store,
            band=band,
            ts=ts,
            rule=alert.rule,
            priority=alert.spec.priority,
            zone=alert.zone,
            message=alert.message,
            step=alert.step,
            shopper=alert.summary,
        )
        self.emit(page)
        subject = alert.shopper or alert.bell or alert.zone
        self.verdicts.decide(ts, alert.rule, "alert", subject, True, "sent", page.delivery_id)

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
        band = self.st.staff.route(
            targets, alert.zone or None, alert.advisor, paged, frozenset(alert.declined)
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
        st = self.st
        if ev.action == "decline":
            alert.declined.add(ev.band)
            if st.staff.busy.get(ev.band) == alert.id:
                del st.staff.busy[ev.band]
            if not alert.answered:
                self._reroute(alert, (NextNearest(),), ev.ts)
            self.ports.journal_save(alert)
            return
        if alert.acked_at is None:
            alert.acked_at, alert.acked_by = ev.ts, ev.band
            self.stats.response_s.setdefault(alert.rule, []).append(ev.ts - alert.created)
            st.alerts.answered(alert)
        for band in alert.bands:
            if band != alert.acked_by and st.staff.busy.get(band) == alert.id:
                del st.staff.busy[band]
        if ev.action == "done":
            alert.closed_at = ev.ts
            if alert.acked_by is not None and st.staff.busy.get(alert.acked_by) == alert.id:
                del st.staff.busy[alert.acked_by]
        else:
            st.staff.busy[ev.band] = alert.id
        self.ports.journal_save(alert)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, ctx: Context) -> str:
    try:
        return template.format_map(_Blank(ctx.fields()))
    except (ValueError, IndexError, AttributeError):
        return template
