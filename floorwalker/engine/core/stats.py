"""Counters the core keeps about itself: the decision record in aggregate.

Runners turn these into Prometheus metrics; replay prints them as the per-rule
summary. Plain dicts, so the hot path pays one dict update per fact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from floorwalker.devices.events import Sighting


@dataclass
class EngineStats:
    events_by_type: dict[type, int] = field(default_factory=dict)
    """Accepted events by event class (the hot path counts by type, not by name)."""
    sightings: int = 0
    """Shopper sightings taken by the engine's fast path (a plain int: cheapest to count)."""
    rejected: Counter[str] = field(default_factory=Counter)
    triggered: Counter[str] = field(default_factory=Counter)
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
    redeemed: Counter[str] = field(default_factory=Counter)
    redemptions_refused: Counter[str] = field(default_factory=Counter)
    response_s: dict[str, list[float]] = field(default_factory=dict)
    escalations: Counter[str] = field(default_factory=Counter)
    unanswered: Counter[str] = field(default_factory=Counter)
    """rule -> alerts whose escalation chain ended with nobody answering"""
    within_target: Counter[str] = field(default_factory=Counter)
    """rule -> answers within the rule's ``response_target``"""
    response_target_s: dict[str, float] = field(default_factory=dict)
    pages: Counter[str] = field(default_factory=Counter)
    """band -> pages sent to it (the load per staff member)"""
    late_accepted: int = 0
    guard_errors: int = 0

    def accepted_by_type(self) -> dict[type, int]:
        """Accepted events by event class, the fast path's sightings folded in."""
        counts = dict(self.events_by_type)
        if self.sightings:
            counts[Sighting] = counts.get(Sighting, 0) + self.sightings
        return counts

    @property
    def events_in(self) -> Counter[str]:
        return Counter({kind.__name__: n for kind, n in self.accepted_by_type().items()})

    def rules(self) -> list[str]:
        names = set(self.triggered) | {r for r, _ in self.sent} | {r for r, _ in self.suppressed}
        return sorted(names)

    def rule_summary(self, rule: str) -> dict[str, Any]:
        times = self.response_s.get(rule, [])
        out: dict[str, Any] = {
            "triggered": self.triggered[rule],
            "offers": self.sent[(rule, "offer")],
            "alerts": self.sent[(rule, "alert")],
            "suppressed": {
                reason: n for (r, reason), n in sorted(self.suppressed.items()) if r == rule
            },
            "coupons": self.coupons[rule],
            "budget_spent": round(self.spent.get(rule, 0.0), 2),
            "redeemed": self.redeemed[rule],
        }
        if times:
            out["response_s"] = {"n": len(times), "mean": round(sum(times) / len(times), 2)}
        if self.escalations[rule]:
            out["escalations"] = self.escalations[rule]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "events_in": dict(sorted(self.events_in.items())),
            "invalid": dict(sorted(self.rejected.items())),
            "late_accepted": self.late_accepted,
            "guard_errors": self.guard_errors,
            "redemptions_refused": dict(sorted(self.redemptions_refused.items())),
            "rules": {rule: self.rule_summary(rule) for rule in self.rules()},
        }
