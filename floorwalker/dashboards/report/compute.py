"""The campaign report's numbers, per rule and per store day: pure computation, no I/O.

Definitions (the report states them too):

* **Candidate**: one firing of a rule (its decisions share a ``candidate`` id).
  Each candidate has one outcome: **sent** if any of its actions went out; else
  **audience** ("not for them") if every action was refused for who the shopper
  is (the rule's ``if`` / ``unless`` conditions, no marketing consent, no
  shopper); else **holdout** if it was held out; else **blocked**, under the
  reason of its first refused action (caps, cooldown, budget, fatigue, quiet
  hours, outranked, already open, no staff available, ...). Escalation steps
  of an alert are not candidates.
* **Redeemed**: the first POS ``coupon`` line with a code the rule issued, at
  or before the coupon's expiry (later lines of that code, unknown codes and
  late ones are not redemptions, as the guard store decides). Counted on the
  day the coupon was issued; **redemption rate** = redeemed / coupons issued.
* **Attributed revenue**: for each redemption, the checkout of the receipt the
  coupon was redeemed on, else the redeeming shopper's first checkout within
  the window after it; a checkout counts once per rule.
* **Holdout lift**: treated shoppers (sent at least one of the rule's offers
  that day) against holdout shoppers (held out by the rule that day). A
  shopper *converts* with a checkout of theirs (loyalty scan, or a coupon of
  theirs on the receipt) within the window after their first such decision.
  Lift = conversion(treated) - conversion(holdout), with Newcombe's 95 %
  hybrid score interval (:mod:`.lift`).
* **Budget** (rules with one): coupons issued and their cost; redeemed and their
  cost; used = reserved (issued, not redeemed, not expired) + spent (redeemed)
  at the end of the day, and remaining = limit - used, by the guard store's
  reservation rule. The ``all`` row stands as of the report's end (or, from a
  live runner, as the shared guard store says).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from floorwalker.dashboards.report.lift import Lift
from floorwalker.dashboards.report.records import (
    CheckoutRec,
    OfferRec,
    RedemptionRec,
    ReportInput,
    RuleInfo,
)
from floorwalker.engine.core.actions import Decision, reason_class
from floorwalker.engine.core.guards import BudgetState

ALL_DAYS = "all"
"""The ``day`` of a rule's row over the whole period."""


@dataclass(frozen=True)
class ReportSettings:
    window_s: float = 86400.0
    """Conversion and attribution window after a decision (or redemption)."""
    as_of: float | None = None
    """Budgets of the ``all`` rows stand as of this time (default: the last record)."""
    day: str | None = None
    """Only candidates of this store day (``YYYY-MM-DD``), e.g. today on the live page."""

    def __post_init__(self) -> None:
        if self.window_s <= 0:
            raise ValueError("the window must be positive")


@dataclass(frozen=True)
class BudgetRow:
    coupons: int | None
    amount: float | None
    issued: int
    issued_amount: float
    redeemed: int
    redeemed_amount: float
    used: int
    used_amount: float

    @property
    def remaining_coupons(self) -> int | None:
        return None if self.coupons is None else self.coupons - self.used

    @property
    def remaining_amount(self) -> float | None:
        return None if self.amount is None else round(self.amount - self.used_amount, 2)


@dataclass(frozen=True)
class RuleDay:
    """One rule over one store day (or ``all`` days)."""

    rule: str
    day: str
    kinds: tuple[str, ...]
    candidates: int
    audience: Mapping[str, int]
    holdout: int
    blocked: Mapping[str, int]
    sent: int
    coupons: int
    redeemed: int
    revenue: float
    lift: Lift | None
    """None when the rule has no holdout."""
    budget: BudgetRow | None

    @property
    def audience_filtered(self) -> int:
        return sum(self.audience.values())

    @property
    def guard_suppressed(self) -> int:
        return sum(self.blocked.values())

    @property
    def redemption_rate(self) -> float | None:
        return self.redeemed / self.coupons if self.coupons else None


@dataclass(frozen=True)
class Report:
    rows: list[RuleDay]
    """Per rule (in rule set order): its ``all`` row first, then one per day."""
    never_triggered: list[str]
    days: list[str]
    settings: ReportSettings
    start: float | None
    end: float | None
    source: str = ""
    redemptions_refused: Mapping[str, int] = field(default_factory=dict)
    """POS coupon lines that were not redemptions, by why (unknown, again, expired)."""
    skipped: Mapping[str, int] = field(default_factory=dict)
    """Input lines that could not be used, by file and reason."""
    timezone: tzinfo | None = None
    """The (first) store's timezone: times are shown in store time."""

    def totals(self) -> list[RuleDay]:
        return [r for r in self.rows if r.day == ALL_DAYS]

    def by_day(self) -> list[RuleDay]:
        return [r for r in self.rows if r.day != ALL_DAYS]


# --------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class _Candidate:
    rule: str
    ts: float
    store: str
    day: str
    outcome: str
    """sent | audience | holdout | blocked"""
    reason: str
    subject: str


def _outcome(decisions: Sequence[Decision]) -> tuple[str, str]:
    """(outcome, reason) of one candidate from its decisions; see the module docstring."""
    if any(d.sent for d in decisions):
        return "sent", "sent"
    classes = [reason_class(d.reason) for d in decisions]
    if all(c == "audience" for c in classes):
        return "audience", decisions[0].reason
    if "holdout" in classes:
        return "holdout", "holdout"
    first = next(d for d, c in zip(decisions, classes, strict=True) if c == "blocked")
    return "blocked", first.reason


def _candidates(decisions: Iterable[Decision], day_of: _Days) -> list[_Candidate]:
    """Decisions grouped into candidates, in time order."""
    grouped: dict[str, list[Decision]] = {}
    for d in decisions:
        if d.candidate is not None:
            grouped.setdefault(d.candidate, []).append(d)
    out = []
    for group in grouped.values():
        first = min(group, key=lambda d: d.ts)
        outcome, reason = _outcome(group)
        day = day_of(first.store, first.ts)
        out.append(
            _Candidate(first.rule, first.ts, first.store, day, outcome, reason, first.subject)
        )
    out.sort(key=lambda c: (c.ts, c.rule, c.subject))
    return out


class _Days:
    """Store-local days of timestamps."""

    def __init__(self, timezones: Mapping[str, tzinfo]) -> None:
        self.timezones = timezones

    def __call__(self, store: str, ts: float) -> str:
        tz = self.timezones.get(store)
        return datetime.fromtimestamp(ts, tz).date().isoformat() if tz else _utc_day(ts)

    def end(self, store: str, day: str) -> float:
        """The first moment after ``day`` in the store's time."""
        tz = self.timezones.get(store)
        start = datetime.fromisoformat(day)
        if tz is not None:
            start = start.replace(tzinfo=tz)
        else:
            start = start.replace(tzinfo=datetime.now().astimezone().tzinfo)
        return (start + timedelta(days=1)).timestamp()


def _utc_day(ts: float) -> str:
    from datetime import UTC  # noqa: PLC0415

    return datetime.fromtimestamp(ts, UTC).date().isoformat()


# --------------------------------------------------------------------------- redemptions


@dataclass(frozen=True)
class _Redeemed:
    offer: OfferRec
    at: RedemptionRec


def _redemptions(
    offers: Mapping[str, OfferRec], lines: Iterable[RedemptionRec]
) -> tuple[list[_Redeemed], Counter[str]]:
    """Valid redemptions in time order, and the refused lines by reason."""
    done: set[str] = set()
    out, refused = [], Counter[str]()
    for line in sorted(lines, key=lambda r: r.ts):
        offer = offers.get(line.code)
        if offer is None:
            refused["unknown_coupon"] += 1
        elif line.code in done:
            refused["already_redeemed"] += 1
        elif line.ts > offer.expires:
            refused["expired_coupon"] += 1
        else:
            done.add(line.code)
            out.append(_Redeemed(offer, line))
    return out, refused


class _Purchases:
    """Checkouts by shopper (time order) and by receipt."""

    def __init__(self, checkouts: Iterable[CheckoutRec], redeemed: Iterable[_Redeemed]) -> None:
        # A receipt a coupon of a known shopper was redeemed on is theirs.
        owner = {(r.at.store, r.at.receipt): r.offer.shopper for r in redeemed}
        self.by_receipt: dict[tuple[str, str], CheckoutRec] = {}
        times: dict[str, list[tuple[float, CheckoutRec]]] = defaultdict(list)
        for c in checkouts:
            self.by_receipt.setdefault((c.store, c.receipt), c)
            shopper = c.shopper or owner.get((c.store, c.receipt))
            if shopper:
                times[shopper].append((c.ts, c))
        self.by_shopper = {s: sorted(v, key=lambda t: t[0]) for s, v in times.items()}
        self._ts = {s: [t for t, _ in v] for s, v in self.by_shopper.items()}

    def first_between(self, shopper: str, start: float, end: float) -> CheckoutRec | None:
        times = self._ts.get(shopper)
        if not times:
            return None
        i = bisect.bisect_left(times, start)
        if i < len(times) and times[i] <= end:
            return self.by_shopper[shopper][i][1]
        return None


# --------------------------------------------------------------------------- the report


def compute_report(data: ReportInput, settings: ReportSettings | None = None) -> Report:
    """Every rule's row over the period and per day; see the module docstring."""
    settings = settings or ReportSettings()
    days_of = _Days(data.timezones)
    decisions = [d for d in data.decisions if settings.day in (None, days_of(d.store, d.ts))]
    candidates = _candidates(decisions, days_of)
    offers_by_code: dict[str, OfferRec] = {}
    for o in sorted(data.offers, key=lambda o: o.ts):
        offers_by_code.setdefault(o.code, o)
    redeemed, refused = _redemptions(offers_by_code, data.redemptions)
    purchases = _Purchases(data.checkouts, redeemed)
    offers = [o for o in offers_by_code.values() if settings.day in (None, days_of(o.store, o.ts))]
    times = [d.ts for d in decisions] + [o.ts for o in offers]
    start, end = (min(times), max(times)) if times else (None, None)
    as_of = settings.as_of if settings.as_of is not None else end
    ctx = _Context(settings, days_of, purchases, redeemed, offers, decisions, as_of)
    ctx.budgets_now = data.budgets
    rows: list[RuleDay] = []
    never: list[str] = []
    all_days: set[str] = set()
    by_rule: dict[str, list[_Candidate]] = defaultdict(list)
    for c in candidates:
        by_rule[c.rule].append(c)
        all_days.add(c.day)
    for info in data.rules:
        mine = by_rule.get(info.id, [])
        if not mine:
            never.append(info.id)
        rows.append(ctx.row(info, ALL_DAYS, mine))
        for day in sorted({c.day for c in mine}):
            rows.append(ctx.row(info, day, [c for c in mine if c.day == day]))
    known = {i.id for i in data.rules}
    for rule in sorted(set(by_rule) - known):  # built-in rules (device health), rules gone
        info = RuleInfo(rule, tuple(sorted({d.kind for d in decisions if d.rule == rule})), 0.0, {})
        rows.append(ctx.row(info, ALL_DAYS, by_rule[rule]))
    return Report(
        rows,
        never,
        sorted(all_days),
        settings,
        start,
        end,
        data.source,
        redemptions_refused=dict(sorted(refused.items())),
        skipped=dict(data.skipped),
        timezone=next(iter(data.timezones.values()), None),
    )


class _Context:
    """What the rows of one report share."""

    def __init__(
        self,
        settings: ReportSettings,
        days_of: _Days,
        purchases: _Purchases,
        redeemed: list[_Redeemed],
        offers: list[OfferRec],
        decisions: list[Decision],
        as_of: float | None,
    ) -> None:
        self.settings, self.days_of, self.purchases = settings, days_of, purchases
        self.as_of = as_of
        self.budgets_now: Mapping[str, BudgetState] | None = None
        self.redeemed: dict[str, list[_Redeemed]] = defaultdict(list)
        for r in redeemed:
            self.redeemed[r.offer.rule].append(r)
        self.offers: dict[str, list[OfferRec]] = defaultdict(list)
        for o in offers:
            self.offers[o.rule].append(o)
        self.firsts: dict[tuple[str, str], dict[str, tuple[float, str]]] = defaultdict(dict)
        """(rule, treated|holdout) -> shopper -> (ts, store) of their first such decision"""
        for d in sorted(decisions, key=lambda d: d.ts):
            if d.kind == "offer" and (d.sent or d.reason == "holdout"):
                group = "treated" if d.sent else "holdout"
                self.firsts[(d.rule, group)].setdefault(d.subject, (d.ts, d.store))

    def _in_day(self, store: str, ts: float, day: str) -> bool:
        return day == ALL_DAYS or self.days_of(store, ts) == day

    def row(self, info: RuleInfo, day: str, candidates: Sequence[_Candidate]) -> RuleDay:
        outcomes = Counter(c.outcome for c in candidates)
        audience = Counter(c.reason for c in candidates if c.outcome == "audience")
        blocked = Counter(c.reason for c in candidates if c.outcome == "blocked")
        offers = [o for o in self.offers.get(info.id, []) if self._in_day(o.store, o.ts, day)]
        redeemed = [
            r
            for r in self.redeemed.get(info.id, [])
            if self._in_day(r.offer.store, r.offer.ts, day)
        ]
        return RuleDay(
            rule=info.id,
            day=day,
            kinds=info.kinds,
            candidates=len(candidates),
            audience=dict(sorted(audience.items())),
            holdout=outcomes["holdout"],
            blocked=dict(sorted(blocked.items())),
            sent=outcomes["sent"],
            coupons=len(offers),
            redeemed=len(redeemed),
            revenue=round(self._revenue(redeemed), 2),
            lift=self._lift(info, day) if info.holdout > 0 else None,
            budget=self._budget(info, day) if info.has_budget else None,
        )

    def _revenue(self, redeemed: Sequence[_Redeemed]) -> float:
        seen: set[tuple[str, str]] = set()
        total = 0.0
        window = self.settings.window_s
        for r in redeemed:
            checkout = self.purchases.by_receipt.get((r.at.store, r.at.receipt))
            if checkout is None:
                checkout = self.purchases.first_between(r.offer.shopper, r.at.ts, r.at.ts + window)
            if checkout is not None and (checkout.store, checkout.receipt) not in seen:
                seen.add((checkout.store, checkout.receipt))
                total += checkout.total
        return total

    def _lift(self, info: RuleInfo, day: str) -> Lift:
        counts = []
        for group in ("treated", "holdout"):
            n = converted = 0
            for shopper, (ts, store) in self.firsts.get((info.id, group), {}).items():
                if not self._in_day(store, ts, day):
                    continue
                n += 1
                end = ts + self.settings.window_s
                converted += self.purchases.first_between(shopper, ts, end) is not None
            counts.append((n, converted))
        (nt, ct), (nh, ch) = counts
        return Lift(nt, ct, nh, ch)

    def _budget(self, info: RuleInfo, day: str) -> BudgetRow:
        offers = self.offers.get(info.id, [])
        redeemed = self.redeemed.get(info.id, [])
        cost = info.costs
        if day == ALL_DAYS:
            at = self.as_of if self.as_of is not None else float("inf")
            issued_now = offers
            redeemed_now = redeemed
        else:
            at = self.days_of.end(offers[0].store, day) if offers else float("inf")
            issued_now = [o for o in offers if self.days_of(o.store, o.ts) == day]
            redeemed_now = [r for r in redeemed if self.days_of(r.at.store, r.at.ts) == day]
        state = budget_at(offers, redeemed, cost, at)
        if day == ALL_DAYS and self.budgets_now is not None and info.id in self.budgets_now:
            state = self.budgets_now[info.id]
        return BudgetRow(
            info.budget_coupons,
            info.budget_amount,
            len(issued_now),
            round(sum(cost.get(o.offer, 0.0) for o in issued_now), 2),
            len(redeemed_now),
            round(sum(cost.get(r.offer.offer, 0.0) for r in redeemed_now), 2),
            state.coupons,
            round(state.amount, 2),
        )


def budget_at(
    offers: Sequence[OfferRec],
    redeemed: Sequence[_Redeemed],
    costs: Mapping[str, float],
    at: float,
) -> BudgetState:
    """Where a budget stood at ``at`` under the reservation rule, from the records."""
    spent_codes = {r.offer.code: r.at.ts for r in redeemed if r.at.ts <= at}
    issued = [o for o in offers if o.ts <= at]
    reserved = [o for o in issued if o.code not in spent_codes and o.expires >= at]
    spent = [o for o in issued if o.code in spent_codes]

    def money(items: Sequence[OfferRec]) -> float:
        return sum(costs.get(o.offer, 0.0) for o in items)

    return BudgetState(
        len(issued), money(issued), len(reserved), money(reserved), len(spent), money(spent)
    )


def as_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (the CSV and the live page's JSON use it)."""
    return {
        "start": report.start,
        "end": report.end,
        "window_s": report.settings.window_s,
        "never_triggered": report.never_triggered,
        "rows": [row_dict(r) for r in report.rows],
        "redemptions_refused": dict(report.redemptions_refused),
        "skipped": dict(report.skipped),
    }


def row_dict(r: RuleDay) -> dict[str, Any]:
    lift = r.lift
    ci = lift.interval if lift is not None else None
    b = r.budget
    return {
        "rule": r.rule,
        "day": r.day,
        "kinds": "+".join(r.kinds),
        "candidates": r.candidates,
        "audience_filtered": r.audience_filtered,
        "audience": dict(r.audience),
        "holdout": r.holdout,
        "guard_suppressed": r.guard_suppressed,
        "blocked": dict(r.blocked),
        "sent": r.sent,
        "coupons": r.coupons,
        "redeemed": r.redeemed,
        "redemption_rate": None if r.redemption_rate is None else round(r.redemption_rate, 4),
        "attributed_revenue": r.revenue,
        "treated_shoppers": None if lift is None else lift.treated,
        "treated_converted": None if lift is None else lift.treated_converted,
        "holdout_shoppers": None if lift is None else lift.holdout,
        "holdout_converted": None if lift is None else lift.holdout_converted,
        "lift": None if lift is None or lift.difference is None else round(lift.difference, 4),
        "lift_ci_low": None if ci is None else round(ci.low, 4),
        "lift_ci_high": None if ci is None else round(ci.high, 4),
        "budget_coupons": None if b is None else b.coupons,
        "budget_amount": None if b is None else b.amount,
        "budget_issued": None if b is None else b.issued,
        "budget_issued_amount": None if b is None else b.issued_amount,
        "budget_redeemed": None if b is None else b.redeemed,
        "budget_redeemed_amount": None if b is None else b.redeemed_amount,
        "budget_used": None if b is None else b.used,
        "budget_used_amount": None if b is None else b.used_amount,
        "budget_remaining_coupons": None if b is None else b.remaining_coupons,
        "budget_remaining_amount": None if b is None else b.remaining_amount,
        "never_triggered": r.day == ALL_DAYS and r.candidates == 0,
    }
