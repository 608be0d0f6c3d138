"""From a fired rule to sent or suppressed actions, with a reason for each.

A rule that fires yields candidate actions. Each candidate passes, in order:
the rule's conditions, consent (offers), the holdout, quiet hours, then the
*moment's* arbitration (one offer per shopper per moment, highest priority
first) and finally the guard store (dedup, cooldown, caps, budget, fatigue),
checked and recorded atomically. Whatever stops it is its reason; every
candidate ends in exactly one :class:`~floorwalker.engine.core.actions.Decision`.

Offers fail closed when the guard store is unreachable (no coupon without a
cap check); staff alerts fail open (a customer waiting at a bell matters more
than a duplicate page).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, NamedTuple

from floorwalker.devices.events import StaffAck
from floorwalker.engine.core.actions import Action, Alert, Decision, Offer, coupon_code, stable_id
from floorwalker.engine.core.alerts import OpenAlert
from floorwalker.engine.core.conditions import Facts, holds, in_daypart, local_time
from floorwalker.engine.core.context import Context
from floorwalker.engine.core.guards import CounterLimit, CouponRecord, Ticket, fatigue_key
from floorwalker.engine.core.periods import period_end, period_key
from floorwalker.engine.core.ports import Ports, Schedule
from floorwalker.engine.core.profiles import Profile
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.state import StoreState
from floorwalker.errors import GuardStoreError
from floorwalker.rules.model import AlertSpec, Cap, NextNearest, OfferSpec, Rule


class _Candidate(NamedTuple):
    rule: Rule
    spec: OfferSpec
    ctx: Context
    shopper: str
    action_id: str


class Decider:
    """The decisions of one store: it sees that store's state and its ports, nothing more."""

    def __init__(
        self,
        st: StoreState,
        ports: Ports,
        settings: EngineSettings,
        emit: Callable[[Action], None],
        schedule: Schedule,
    ) -> None:
        self.st = st
        self.ports = ports
        self.stats = ports.stats
        self.on_decision = ports.on_decision
        self.settings = settings
        self.emit = emit
        self.schedule = schedule
        self._moment: list[_Candidate] = []
        self.pending = False
        """True while the current moment has offer candidates awaiting arbitration."""

    # ------------------------------------------------------------------ firing

    def fire(self, rule: Rule, ctx: Context) -> None:
        st = self.st
        self.stats.triggered[rule.id] += 1
        shopper = ctx.shopper
        profile = self.ports.profiles.get(shopper) if shopper else None
        slots = st.compiled.bought_slots
        facts = Facts(
            ctx.ts,
            st.registry.tzinfo,
            profile,
            st.previous_visit(shopper),
            lambda: st.staff.anyone_in(ctx.zone),
            lambda cond: st.bought.get((slots[cond], shopper)) if shopper else None,
        )
        for named in rule.conditions:
            if not holds(named.condition, facts):
                self._refuse_all(rule, ctx, f"condition:{named.name}")
                return
        for named in rule.unless:
            if holds(named.condition, facts):
                self._refuse_all(rule, ctx, f"unless:{named.name}")
                return
        for spec in rule.actions:
            if isinstance(spec, OfferSpec):
                self._consider_offer(rule, spec, ctx, profile)
            else:
                self._raise_alert(rule, spec, ctx, profile)

    def _refuse_all(self, rule: Rule, ctx: Context, reason: str) -> None:
        stats, store = self.stats, self.st.store
        for spec in rule.actions:
            if self.on_decision is None:
                # Most firings end here (a profile condition fails); nobody reads the
                # record, so count it and skip building the id and the Decision.
                stats.suppressed[(rule.id, reason)] += 1
                continue
            kind = "offer" if isinstance(spec, OfferSpec) else "alert"
            action_id = stable_id("of-" if kind == "offer" else "al-", rule.id, store, ctx.source)
            self.decide(ctx.ts, store, rule.id, kind, _subject(ctx), None, reason, action_id)

    # ------------------------------------------------------------------ offers

    def _consider_offer(
        self, rule: Rule, spec: OfferSpec, ctx: Context, profile: Profile | None
    ) -> None:
        shopper, store = ctx.shopper, self.st.store
        action_id = stable_id("of-", rule.id, store, shopper or "-", ctx.source)
        reason = self._offer_precheck(rule, ctx, profile)
        if reason is not None or shopper is None:
            self.decide(ctx.ts, store, rule.id, "offer", _subject(ctx), None, reason, action_id)
            return
        self._moment.append(_Candidate(rule, spec, ctx, shopper, action_id))
        self.pending = True

    def _offer_precheck(self, rule: Rule, ctx: Context, profile: Profile | None) -> str | None:
        if ctx.shopper is None:
            return "no_shopper"
        if profile is None or not profile.marketing:
            return "no_consent"
        if rule.limits.holdout > 0.0 and in_holdout(ctx.shopper, rule.id, rule.limits.holdout):
            return "holdout"
        st = self.st
        quiet = rule.limits.quiet_hours + st.compiled.ruleset.policy.quiet_hours
        if quiet:
            moment = local_time(ctx.ts, st.registry.tzinfo)
            if any(in_daypart(q, moment) for q in quiet):
                return "quiet_hours"
        return None

    def settle(self, now: float) -> None:
        """End of a moment: send at most one offer per shopper, best priority first."""
        if not self._moment:
            return
        moment = sorted(self._moment, key=lambda c: (c.shopper, -c.rule.priority, c.rule.id))
        self._moment = []
        self.pending = False
        served: set[str] = set()
        for cand in moment:
            store, rule, ctx = self.st.store, cand.rule, cand.ctx
            if cand.shopper in served:
                reason: str | None = "outranked"
            else:
                reason = self._admit(self._offer_ticket(cand), ctx.ts, fail_open=False)
            if reason is None:
                served.add(cand.shopper)
                self._send_offer(cand)
            else:
                self.decide(
                    ctx.ts, store, rule.id, "offer", cand.shopper, None, reason, cand.action_id
                )

    def _offer_ticket(self, c: _Candidate) -> Ticket:
        rule, ctx, st = c.rule, c.ctx, self.st
        policy = st.compiled.ruleset.policy
        counters = self._caps(rule.limits.per_shopper, f"cap:{rule.id}:o", c.shopper, ctx, "cap")
        counters += self._caps(policy.per_shopper, "cap:*", c.shopper, ctx, "cap_all_rules")
        budget = rule.limits.budget
        code = coupon_code(c.action_id, c.spec.code_prefix)
        return Ticket(
            action_id=c.action_id,
            counters=counters,
            cooldown_key=f"cooldown:{rule.id}:{c.shopper}" if rule.limits.cooldown_s else None,
            cooldown_s=rule.limits.cooldown_s or 0.0,
            budget_key=f"budget:{rule.id}" if budget else None,
            budget_coupons=budget.coupons if budget else None,
            budget_amount=budget.amount if budget else None,
            cost=c.spec.cost,
            fatigue_key=fatigue_key(c.shopper) if policy.fatigue else None,
            fatigue_streak=policy.fatigue.streak if policy.fatigue else 0,
            fatigue_backoff_s=policy.fatigue.backoff_s if policy.fatigue else 0.0,
            coupon=CouponRecord(
                code,
                c.action_id,
                rule.id,
                c.spec.offer,
                st.store,
                c.shopper,
                ctx.ts,
                ctx.ts + c.spec.expires_s,
            ),
        )

    def _caps(
        self,
        caps: tuple[Cap, ...],
        prefix: str,
        shopper: str,
        ctx: Context,
        reason: str,
    ) -> tuple[CounterLimit, ...]:
        st = self.st
        tz = st.registry.tzinfo
        visit = st.visit_start(shopper)
        gap = self.settings.presence.visit_gap_s
        return tuple(
            CounterLimit(
                f"{prefix}:{cap.period}:{shopper}:{period_key(cap.period, ctx.ts, tz, visit)}",
                cap.count,
                period_end(cap.period, ctx.ts, tz, gap),
                reason,
            )
            for cap in caps
        )

    def _send_offer(self, c: _Candidate) -> None:
        stats, store = self.stats, self.st.store
        ctx, spec = c.ctx, c.spec
        offer = Offer(
            id=c.action_id,
            store=store,
            shopper=c.shopper,
            ts=ctx.ts,
            rule=c.rule.id,
            offer=spec.offer,
            code=coupon_code(c.action_id, spec.code_prefix),
            message=render(spec.message, ctx),
            expires=ctx.ts + spec.expires_s,
        )
        stats.coupons[c.rule.id] += 1
        stats.spent[c.rule.id] = stats.spent.get(c.rule.id, 0.0) + spec.cost
        self.emit(offer)
        self.decide(ctx.ts, store, c.rule.id, "offer", c.shopper, True, "sent", c.action_id)

    def redeem(self, code: str, ts: float) -> tuple[CouponRecord | None, str | None]:
        stats = self.stats
        try:
            record, refused = self.ports.guards.redeem(code, ts)
        except GuardStoreError:
            stats.guard_errors += 1
            record, refused = None, "guard_store_unavailable"
        if record is not None and refused is None:
            stats.redeemed[record.rule] += 1
        else:
            stats.redemptions_refused[refused or "unknown_coupon"] += 1
        return record, refused

    # ------------------------------------------------------------------ alerts

    def raise_builtin(self, rule: Rule, ctx: Context) -> None:
        """An alert the engine raises itself (device health), outside the rule set."""
        self.stats.triggered[rule.id] += 1
        for spec in rule.actions:
            if isinstance(spec, AlertSpec):
                self._raise_alert(rule, spec, ctx, None)

    def _raise_alert(
        self, rule: Rule, spec: AlertSpec, ctx: Context, profile: Profile | None
    ) -> None:
        st = self.st
        source_key = ctx.bell or ctx.shopper or ctx.device or ctx.zone or "-"
        alert_id = stable_id("al-", rule.id, st.store, source_key, ctx.source)
        subject = _subject(ctx)
        if st.alerts.open_for(rule.id, source_key) is not None:
            self.decide(ctx.ts, st.store, rule.id, "alert", subject, None, "already_open", alert_id)
            return
        counters: tuple[CounterLimit, ...] = ()
        if ctx.shopper:
            prefix = f"cap:{rule.id}:a"
            counters = self._caps(rule.limits.per_shopper, prefix, ctx.shopper, ctx, "cap")
        ticket = Ticket(action_id=alert_id, counters=counters)
        reason = self._admit(ticket, ctx.ts, fail_open=True)
        if reason is not None:
            self.decide(ctx.ts, st.store, rule.id, "alert", subject, None, reason, alert_id)
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
            self.decide(
                ctx.ts, st.store, rule.id, "alert", subject, None, "no_staff_available", alert_id
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
        self.decide(ts, alert.store, alert.rule, "alert", subject, True, "sent", page.delivery_id)

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
            self.decide(ts, alert.store, alert.rule, "alert", subject, None, reason, alert.id)
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

    # ------------------------------------------------------------------ records

    def _admit(self, ticket: Ticket, ts: float, *, fail_open: bool) -> str | None:
        try:
            return self.ports.guards.admit(ticket, ts)
        except GuardStoreError:
            self.stats.guard_errors += 1
            return None if fail_open else "guard_store_unavailable"

    def decide(
        self,
        ts: float,
        store: str,
        rule: str,
        kind: str,
        subject: str,
        sent: bool | None,
        reason: str | None,
        action_id: str,
    ) -> None:
        sent_ok = bool(sent)
        why = reason or ("sent" if sent_ok else "suppressed")
        stats = self.stats
        if sent_ok:
            stats.sent[(rule, kind)] += 1
        else:
            stats.suppressed[(rule, why)] += 1
        if self.on_decision is not None:
            self.on_decision(Decision(ts, store, rule, kind, subject, sent_ok, why, action_id))


def _subject(ctx: Context) -> str:
    return ctx.shopper or ctx.bell or ctx.zone or ctx.receipt or "-"


def in_holdout(shopper: str, rule: str, share: float) -> bool:
    """Deterministic per shopper and rule: the same shopper is always in or out."""
    digest = hashlib.blake2b(f"holdout\x1f{rule}\x1f{shopper}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, ctx: Context) -> str:
    try:
        return template.format_map(_Blank(ctx.fields()))
    except (ValueError, IndexError, AttributeError):
        return template
