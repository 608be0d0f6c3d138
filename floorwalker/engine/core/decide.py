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
from typing import NamedTuple

from floorwalker.engine.core.actions import Action, Offer, coupon_code, stable_id
from floorwalker.engine.core.conditions import Facts, in_minutes
from floorwalker.engine.core.context import Context
from floorwalker.engine.core.guards import CouponRecord, Ticket, budget_key, fatigue_key
from floorwalker.engine.core.paging import Pager, render
from floorwalker.engine.core.ports import Ports, Schedule
from floorwalker.engine.core.profiles import Profile
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.state import StoreState
from floorwalker.engine.core.verdicts import Verdicts, cap_counters, subject_of
from floorwalker.errors import GuardStoreError
from floorwalker.rules.model import OfferSpec, Rule


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
        self.verdicts = Verdicts(st.store, ports, resend=settings.resend_decided)
        self.pager = Pager(st, ports, settings, emit, schedule, self.verdicts)
        self._moment: list[_Candidate] = []
        self.pending = False
        """True while the current moment has offer candidates awaiting arbitration."""
        self._facts: Facts | None = None
        self._facts_ctx: Context | None = None
        """The facts of the last context fired, kept for the next rule on the same signal"""

    # ------------------------------------------------------------------ firing

    def fire(self, rule: Rule, ctx: Context) -> None:
        self.stats.triggered[rule.id] += 1
        facts = self._facts_for(ctx)
        for check, cond, must, reason in self.st.compiled.gates[rule.id]:
            if check(cond, facts) != must:
                self._refuse_all(rule, ctx, reason)
                return
        for spec in rule.actions:
            if isinstance(spec, OfferSpec):
                self._consider_offer(rule, spec, ctx, facts.profile)
            else:
                self.pager.raise_alert(rule, spec, ctx, facts.profile)

    def _facts_for(self, ctx: Context) -> Facts:
        """One signal's facts, shared by every rule it fires (hundreds, in a big catalog)."""
        facts = self._facts
        if facts is not None and self._facts_ctx is ctx and facts.ts == ctx.ts:
            return facts
        st, shopper = self.st, ctx.shopper
        slots = st.compiled.bought_slots
        facts = self._facts = Facts(
            ctx.ts,
            st.calendar,
            self.ports.profiles.get(shopper) if shopper else None,
            st.previous_visit(shopper),
            lambda: st.staff.anyone_in(ctx.zone, ctx.ts),
            lambda cond: st.bought.get((slots[cond], shopper)) if shopper else None,
        )
        self._facts_ctx = ctx
        return facts

    def _refuse_all(self, rule: Rule, ctx: Context, reason: str) -> None:
        stats, store = self.stats, self.st.store
        stats.filtered[(rule.id, reason)] += 1  # once per candidate, whatever its actions
        for spec in rule.actions:
            if self.on_decision is None:
                # Most firings end here (a profile condition fails); nobody reads the
                # record, so count it and skip building the id and the Decision.
                stats.suppressed[(rule.id, reason)] += 1
                continue
            kind = "offer" if isinstance(spec, OfferSpec) else "alert"
            action_id = stable_id("of-" if kind == "offer" else "al-", rule.id, store, ctx.source)
            subject = subject_of(ctx)
            self.verdicts.decide(
                ctx.ts, rule.id, kind, subject, None, reason, action_id, ctx.source
            )

    # ------------------------------------------------------------------ offers

    def _consider_offer(
        self, rule: Rule, spec: OfferSpec, ctx: Context, profile: Profile | None
    ) -> None:
        shopper, store = ctx.shopper, self.st.store
        action_id = stable_id("of-", rule.id, store, shopper or "-", ctx.source)
        reason = self._offer_precheck(rule, ctx, profile)
        if reason is not None or shopper is None:
            subject = subject_of(ctx)
            verdicts = self.verdicts
            verdicts.decide(ctx.ts, rule.id, "offer", subject, None, reason, action_id, ctx.source)
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
            minute = st.calendar.minute(ctx.ts)
            if any(in_minutes(q, minute) for q in quiet):
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
            rule, ctx = cand.rule, cand.ctx
            if cand.shopper in served:
                reason: str | None = "outranked"
            else:
                code = coupon_code(cand.action_id, cand.spec.code_prefix)
                reason = self.verdicts.admit(
                    self._offer_ticket(cand, code), ctx.ts, fail_open=False
                )
            if reason is None:
                served.add(cand.shopper)
                self._send_offer(cand, code)
            else:
                self.verdicts.decide(
                    ctx.ts, rule.id, "offer", cand.shopper, None, reason, cand.action_id, ctx.source
                )

    def _offer_ticket(self, c: _Candidate, code: str) -> Ticket:
        rule, ctx, st = c.rule, c.ctx, self.st
        policy = st.compiled.ruleset.policy
        gap = self.settings.presence.visit_gap_s
        counters = cap_counters(
            st, gap, rule.limits.per_shopper, f"cap:{rule.id}:o", c.shopper, ctx, "cap"
        )
        counters += cap_counters(
            st, gap, policy.per_shopper, "cap:*", c.shopper, ctx, "cap_all_rules"
        )
        budget = rule.limits.budget
        return Ticket(
            action_id=c.action_id,
            counters=counters,
            cooldown_key=f"cooldown:{rule.id}:{c.shopper}" if rule.limits.cooldown_s else None,
            cooldown_s=rule.limits.cooldown_s or 0.0,
            budget_key=budget_key(rule.id) if budget else None,
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
                c.spec.cost,
            ),
        )

    def _send_offer(self, c: _Candidate, code: str) -> None:
        stats, store = self.stats, self.st.store
        ctx, spec = c.ctx, c.spec
        offer = Offer(
            id=c.action_id,
            store=store,
            shopper=c.shopper,
            ts=ctx.ts,
            rule=c.rule.id,
            offer=spec.offer,
            code=code,
            message=render(spec.message, ctx),
            expires=ctx.ts + spec.expires_s,
        )
        stats.coupons[c.rule.id] += 1
        stats.store_coupons[store] += 1
        stats.spent[c.rule.id] = stats.spent.get(c.rule.id, 0.0) + spec.cost
        self.emit(offer)
        self.verdicts.decide(
            ctx.ts, c.rule.id, "offer", c.shopper, True, "sent", c.action_id, ctx.source
        )

    def redeem(self, code: str, ts: float) -> tuple[CouponRecord | None, str | None]:
        stats = self.stats
        try:
            record, refused = self.ports.guards.redeem(code, ts)
        except GuardStoreError:
            stats.guard_errors += 1
            record, refused = None, "guard_store_unavailable"
        if record is not None and refused is None:
            stats.redeemed[record.rule] += 1
            stats.store_redeemed[self.st.store] += 1
            stats.redeemed_amount[record.rule] = (
                stats.redeemed_amount.get(record.rule, 0.0) + record.cost
            )
        else:
            stats.redemptions_refused[refused or "unknown_coupon"] += 1
        return record, refused


def in_holdout(shopper: str, rule: str, share: float) -> bool:
    """Deterministic per shopper and rule: the same shopper is always in or out."""
    digest = hashlib.blake2b(f"holdout\x1f{rule}\x1f{shopper}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share
