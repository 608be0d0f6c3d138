"""What a campaign report is computed from: decisions, offers, redemptions, checkouts, rules.

The engine's own :class:`~floorwalker.engine.core.actions.Decision` records and small
frozen records of the rest, read from a replay's files or from a live runner's
record in Redis (:mod:`floorwalker.dashboards.report.sources`), and the rules'
facts the report needs (:class:`RuleInfo`). Nothing here computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from floorwalker.engine.core.actions import Decision
from floorwalker.engine.core.guards import BudgetState
from floorwalker.rules.model import AlertSpec, OfferSpec, RuleSet


def decision_from_json(doc: Mapping[str, Any]) -> Decision | None:
    """A line of the decisions file (``Decision.to_json``) back as a Decision; None for a
    line that is not one (``never_triggered`` lines). A file written before candidate
    ids counts each action as its own candidate."""
    outcome = doc.get("outcome")
    if outcome not in ("sent", "suppressed") or not isinstance(doc.get("ts"), int | float):
        return None
    candidate = doc["candidate"] if "candidate" in doc else doc.get("action_id")
    return Decision(
        float(doc["ts"]),
        str(doc["store"]),
        str(doc["rule"]),
        str(doc["kind"]),
        str(doc.get("subject") or ""),
        outcome == "sent",
        str(doc["reason"]),
        str(doc.get("action_id") or ""),
        None if candidate is None else str(candidate),
    )


@dataclass(frozen=True, slots=True)
class OfferRec:
    """A coupon the engine sent (an action on ``fw/{store}/shopper/{shopper}/offer``)."""

    ts: float
    store: str
    shopper: str
    rule: str
    offer: str
    code: str
    expires: float


@dataclass(frozen=True, slots=True)
class RedemptionRec:
    """A POS ``coupon`` line."""

    ts: float
    store: str
    receipt: str
    code: str
    shopper: str | None


@dataclass(frozen=True, slots=True)
class CheckoutRec:
    """A POS checkout; ``shopper`` from its loyalty scan or an earlier line of its receipt."""

    ts: float
    store: str
    receipt: str
    shopper: str | None
    total: float


@dataclass(frozen=True, slots=True)
class RuleInfo:
    id: str
    kinds: tuple[str, ...]
    """``offer`` and/or ``alert``"""
    holdout: float
    costs: Mapping[str, float]
    """offer id -> its cost (what one coupon reserves of the budget)"""
    budget_coupons: int | None = None
    budget_amount: float | None = None

    @property
    def has_budget(self) -> bool:
        return self.budget_coupons is not None or self.budget_amount is not None


def rule_infos(ruleset: RuleSet) -> list[RuleInfo]:
    """The facts the report needs about each rule, in the rule set's order."""
    out = []
    for rule in ruleset.rules:
        kinds = tuple(
            sorted({"alert" if isinstance(a, AlertSpec) else "offer" for a in rule.actions})
        )
        costs = {a.offer: a.cost for a in rule.actions if isinstance(a, OfferSpec)}
        budget = rule.limits.budget
        out.append(
            RuleInfo(
                rule.id,
                kinds,
                rule.limits.holdout,
                costs,
                budget.coupons if budget else None,
                budget.amount if budget else None,
            )
        )
    return out


@dataclass
class ReportInput:
    """Everything one report is computed from."""

    rules: list[RuleInfo]
    timezones: Mapping[str, tzinfo]
    """store -> its timezone: days are store days"""
    decisions: list[Decision] = field(default_factory=list)
    offers: list[OfferRec] = field(default_factory=list)
    redemptions: list[RedemptionRec] = field(default_factory=list)
    checkouts: list[CheckoutRec] = field(default_factory=list)
    source: str = ""
    """Where the records came from, for the report's header."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Input lines that could not be used, by file and reason."""
    budgets: Mapping[str, BudgetState] | None = None
    """rule -> its budget now, when the guard store itself was read (a live runner);
    the ``all`` rows then show it instead of what the records imply."""
