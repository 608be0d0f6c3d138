"""The record every candidate action ends in, and the guard store's verdict on it.

Shared by the offer path (:mod:`.decide`) and the alert path (:mod:`.paging`):
each candidate ends in exactly one :class:`~floorwalker.engine.core.actions.Decision`,
counted in the stats and handed to the decision listener when there is one.
"""

from __future__ import annotations

from floorwalker.engine.core.actions import Decision, stable_id
from floorwalker.engine.core.context import Context
from floorwalker.engine.core.guards import CounterLimit, Ticket
from floorwalker.engine.core.ports import Ports
from floorwalker.engine.core.state import StoreState
from floorwalker.errors import GuardStoreError
from floorwalker.rules.model import Cap


class Verdicts:
    __slots__ = ("on_decision", "ports", "resend", "stats", "store")

    def __init__(self, store: str, ports: Ports, *, resend: bool = False) -> None:
        self.store = store
        self.ports = ports
        self.resend = resend
        self.stats = ports.stats
        self.on_decision = ports.on_decision

    def admit(self, ticket: Ticket, ts: float, *, fail_open: bool) -> str | None:
        """The guard store's answer: None if admitted (and recorded), else the reason."""
        try:
            reason = self.ports.guards.admit(ticket, ts)
        except GuardStoreError:
            self.stats.guard_errors += 1
            return None if fail_open else "guard_store_unavailable"
        if reason == "duplicate" and self.resend:
            return None  # decided before (and maybe lost): the transport drops a second copy
        return reason

    def decide(
        self,
        ts: float,
        rule: str,
        kind: str,
        subject: str,
        sent: bool | None,
        reason: str | None,
        action_id: str,
        source: str | None = None,
    ) -> None:
        """Record one decision; ``source`` (the firing's ``ctx.source``) names its candidate,
        None for follow-ups (escalation steps)."""
        sent_ok = bool(sent)
        why = reason or ("sent" if sent_ok else "suppressed")
        stats = self.stats
        if sent_ok:
            stats.sent[(rule, kind)] += 1
        else:
            stats.suppressed[(rule, why)] += 1
        if self.on_decision is not None:
            candidate = None if source is None else candidate_id(rule, self.store, source)
            self.on_decision(
                Decision(ts, self.store, rule, kind, subject, sent_ok, why, action_id, candidate)
            )


def cap_counters(
    st: StoreState,
    visit_gap_s: float,
    caps: tuple[Cap, ...],
    prefix: str,
    shopper: str,
    ctx: Context,
    reason: str,
) -> tuple[CounterLimit, ...]:
    """The guard counters of ``caps`` for one shopper at the moment of ``ctx``."""
    if not caps:
        return ()
    period, ts = st.calendar.period, ctx.ts
    visit = st.visit_start(shopper)
    out = []
    for cap in caps:
        key, end = period(cap.period, ts, visit, visit_gap_s)
        out.append(CounterLimit(f"{prefix}:{cap.period}:{shopper}:{key}", cap.count, end, reason))
    return tuple(out)


def candidate_id(rule: str, store: str, source: str) -> str:
    """The id every decision of one firing of ``rule`` shares."""
    return stable_id("c-", rule, store, source)


def subject_of(ctx: Context) -> str:
    """Who or what a decision is about: the shopper, else the bell, zone or receipt."""
    return ctx.shopper or ctx.bell or ctx.zone or ctx.receipt or "-"
