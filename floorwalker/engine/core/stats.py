"""Counters the core keeps about itself: the decision record in aggregate.

Runners turn these into Prometheus metrics; replay prints them as the per-rule
summary. Plain dicts, so the hot path pays one dict update per fact. Each store
keeps its own (metrics carry a ``store`` label); :meth:`EngineStats.merged` sums
them for a summary of the whole engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from floorwalker.devices.events import Sighting
from floorwalker.engine.core.actions import is_condition, reason_class

MERGE = "merge"
"""Field metadata: how :meth:`EngineStats.merged` combines a field (default: add up)."""


@dataclass
class EngineStats:
    events_by_type: dict[type, int] = field(default_factory=dict)
    """Accepted events by event class (the hot path counts by type, not by name)."""
    sightings: int = 0
    """Sightings taken with no reorder window, shoppers' and staff bands' (a plain int:
    cheapest to count; :meth:`accepted_by_type` folds them in)."""
    rejected: Counter[str] = field(default_factory=Counter)
    triggered: Counter[str] = field(default_factory=Counter)
    """rule -> candidates: firings of the rule (each may carry several actions)"""
    filtered: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(rule, condition:* | unless:*) -> candidates refused by the rule's own audience
    conditions, once per candidate (``suppressed`` counts them once per action)"""
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(rule, offer|alert) -> count"""
    suppressed: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(rule, reason) -> count"""
    coupons: Counter[str] = field(default_factory=Counter)
    store_coupons: Counter[str] = field(default_factory=Counter)
    """store -> coupons issued there (the floor page's "today")"""
    store_redeemed: Counter[str] = field(default_factory=Counter)
    """store -> coupons redeemed there"""
    spent: dict[str, float] = field(default_factory=dict)
    """rule -> cost of the coupons this engine issued (reserved against a budget)"""
    redeemed: Counter[str] = field(default_factory=Counter)
    redeemed_amount: dict[str, float] = field(default_factory=dict)
    """rule -> cost of the coupons redeemed here (what the budget spent)"""
    redemptions_refused: Counter[str] = field(default_factory=Counter)
    response_s: dict[str, list[float]] = field(default_factory=dict)
    escalations: Counter[str] = field(default_factory=Counter)
    unanswered: Counter[str] = field(default_factory=Counter)
    """rule -> alerts whose escalation chain ended with nobody answering"""
    within_target: Counter[str] = field(default_factory=Counter)
    """rule -> answers within the rule's ``response_target``"""
    response_target_s: dict[str, float] = field(default_factory=dict, metadata={MERGE: "max"})
    """rule -> its ``response_target`` (a setting, the same in every store: not summed)"""
    pages: Counter[str] = field(default_factory=Counter)
    """band -> pages sent to it (the load per staff member)"""
    late_accepted: int = 0
    guard_errors: int = 0

    @classmethod
    def merged(cls, parts: Iterable[EngineStats]) -> EngineStats:
        """One set of counters adding up ``parts`` (new, independent of them).

        Numbers and the values of count dicts add up, lists of observations are
        joined, and a field marked ``metadata={MERGE: "max"}`` keeps the largest.
        A field added later merges the same way without a change here.
        """
        out = cls()
        for part in parts:
            for f in fields(cls):
                how = f.metadata.get(MERGE, "add")
                setattr(out, f.name, _merge(getattr(out, f.name), getattr(part, f.name), how))
        return out

    def accepted_by_type(self) -> dict[type, int]:
        """Accepted events by event class, the fast path's sightings folded in."""
        counts = dict(self.events_by_type)
        if self.sightings:
            counts[Sighting] = counts.get(Sighting, 0) + self.sightings
        return counts

    @property
    def events_in(self) -> Counter[str]:
        return Counter({kind.__name__: n for kind, n in self.accepted_by_type().items()})

    def rules(self, known: Iterable[str] = ()) -> list[str]:
        """Rules that did something, plus ``known`` (every rule of the rule set: a rule
        that never triggered is listed too, with zeros)."""
        names = set(self.triggered) | {r for r, _ in self.sent} | {r for r, _ in self.suppressed}
        return sorted(names | set(known))

    def rule_summary(self, rule: str) -> dict[str, Any]:
        """One rule's counts. ``candidates`` (= ``triggered``) are firings; ``audience``
        counts the candidates the rule's own conditions turned away, once each;
        ``suppressed`` counts the other suppressions once per action (consent,
        holdout, quiet hours, arbitration, caps, budget, staffing), and
        ``suppressed_by_class`` sums them as audience / holdout / blocked."""
        times = self.response_s.get(rule, [])
        candidates = self.triggered[rule]
        audience = {reason: n for (r, reason), n in sorted(self.filtered.items()) if r == rule}
        suppressed = {
            reason: n
            for (r, reason), n in sorted(self.suppressed.items())
            if r == rule and not is_condition(reason)
        }
        classes: Counter[str] = Counter()
        for reason, n in suppressed.items():
            classes[reason_class(reason)] += n
        out: dict[str, Any] = {
            "candidates": candidates,
            "triggered": candidates,
            "never_triggered": candidates == 0,
            "audience": audience,
            "offers": self.sent[(rule, "offer")],
            "alerts": self.sent[(rule, "alert")],
            "suppressed": suppressed,
            "suppressed_by_class": dict(sorted(classes.items())),
            "coupons": self.coupons[rule],
            "issued_amount": round(self.spent.get(rule, 0.0), 2),
            "redeemed": self.redeemed[rule],
            "redeemed_amount": round(self.redeemed_amount.get(rule, 0.0), 2),
        }
        if times:
            out["response_s"] = {"n": len(times), "mean": round(sum(times) / len(times), 2)}
        if self.escalations[rule]:
            out["escalations"] = self.escalations[rule]
        return out

    def to_json(self, known: Iterable[str] = ()) -> dict[str, Any]:
        return {
            "events_in": dict(sorted(self.events_in.items())),
            "invalid": dict(sorted(self.rejected.items())),
            "late_accepted": self.late_accepted,
            "guard_errors": self.guard_errors,
            "redemptions_refused": dict(sorted(self.redemptions_refused.items())),
            "rules": {rule: self.rule_summary(rule) for rule in self.rules(known)},
        }


def _merge(mine: Any, theirs: Any, how: str) -> Any:
    if isinstance(theirs, dict):
        out = Counter(mine) if isinstance(mine, Counter) else dict(mine)
        for key, value in theirs.items():
            out[key] = _merge(out[key], value, how) if key in out else _copy(value)
        return out
    if isinstance(theirs, list):
        return [*mine, *theirs]
    if isinstance(theirs, set | frozenset):
        return mine | theirs
    if isinstance(theirs, int | float) and not isinstance(theirs, bool):
        return max(mine, theirs) if how == "max" else mine + theirs
    return theirs


def _copy(value: Any) -> Any:
    if isinstance(value, list | dict | set):
        return value.copy()
    return value
