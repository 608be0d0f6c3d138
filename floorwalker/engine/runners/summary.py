"""The per-rule summary a marketer reads after a replay (and the demo prints).

Every rule of the rule set is listed, a rule that never triggered too (with
zeros and ``never_triggered``), so a dead rule does not look like no rule.
Counts are per candidate (a firing of a rule) where a candidate is the unit:
the rule's own conditions turn a candidate away once, whatever its actions
("not for them", ``audience``); consent, holdout, quiet hours, arbitration,
caps, budgets and staffing stop single actions (``suppressed``, one per
action). A rule with a budget shows where it stands: issued, reserved, spent
(redeemed), released (expired unredeemed) and remaining (see
:mod:`floorwalker.engine.core.guards` for the reservation rule).

Besides the decision counts, every alert rule gets its staff loop: response
times (answered alerts: p50, p90, mean) beside the rule's ``response_target``,
how many answers came within it, escalations and alerts nobody answered; and
the pages each band received (the load per staff member).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from floorwalker.engine.core.actions import reason_class
from floorwalker.engine.core.guards import BudgetState, GuardStore, budget_key
from floorwalker.engine.core.stats import EngineStats
from floorwalker.rules.model import AlertSpec, Budget, RuleSet


def response_targets(ruleset: RuleSet) -> dict[str, float]:
    """rule -> its alert's ``response_target`` (s), for the rules that state one.

    The core learns a rule's target only with its first answer; a replay whose
    alerts nobody answered still shows the target this way."""
    out: dict[str, float] = {}
    for rule in ruleset.rules:
        for action in rule.actions:
            if isinstance(action, AlertSpec) and action.response_target_s is not None:
                out[rule.id] = action.response_target_s
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear between ranks (numpy's default); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def staff_summary(
    stats: EngineStats, rule: str, targets: Mapping[str, float] | None = None
) -> dict[str, Any] | None:
    """The staff loop of one alert rule; None for a rule that never paged anyone.

    ``targets`` (:func:`response_targets`) gives the targets of rules nobody answered yet."""
    times = stats.response_s.get(rule, [])
    target = stats.response_target_s.get(rule)
    if target is None and targets is not None:
        target = targets.get(rule)
    unanswered = stats.unanswered[rule]
    alerts = stats.sent[(rule, "alert")]
    if not (times or alerts or unanswered or stats.escalations[rule]):
        return None
    within = stats.within_target[rule]
    out: dict[str, Any] = {
        "answered": len(times),
        "unanswered": unanswered,
        "escalations": stats.escalations[rule],
        "response_target_s": target,
    }
    if times:
        out["response_s"] = {
            "p50": _round(percentile(times, 50)),
            "p90": _round(percentile(times, 90)),
            "mean": round(sum(times) / len(times), 2),
            "max": round(max(times), 2),
        }
    if target is not None:
        ended = len(times) + unanswered
        out["within_target"] = within
        out["within_target_share"] = round(within / len(times), 4) if times else None
        out["within_target_share_of_ended"] = round(within / ended, 4) if ended else None
    return out


def budget_summary(budget: Budget, state: BudgetState) -> dict[str, Any]:
    """A budget's limits beside where it stands: issued, reserved, spent, released, used
    (reserved + spent, what counts against it) and remaining (None where no limit)."""
    remaining_coupons = None if budget.coupons is None else budget.coupons - state.coupons
    remaining_amount = None if budget.amount is None else round(budget.amount - state.amount, 2)
    return {
        "coupons": budget.coupons,
        "amount": budget.amount,
        "issued": state.issued,
        "issued_amount": round(state.issued_amount, 2),
        "reserved": state.reserved,
        "reserved_amount": round(state.reserved_amount, 2),
        "spent": state.spent,
        "spent_amount": round(state.spent_amount, 2),
        "released": state.released,
        "released_amount": round(state.released_amount, 2),
        "used": state.coupons,
        "used_amount": round(state.amount, 2),
        "remaining_coupons": remaining_coupons,
        "remaining_amount": remaining_amount,
    }


def budget_summaries(
    ruleset: RuleSet, guards: GuardStore, now: float | None = None
) -> dict[str, dict[str, Any]]:
    """rule -> :func:`budget_summary` for every rule with a budget (expired coupons released
    by ``now``)."""
    out: dict[str, dict[str, Any]] = {}
    for rule in ruleset.rules:
        if rule.limits.budget is not None:
            state = guards.budget(budget_key(rule.id), now)
            out[rule.id] = budget_summary(rule.limits.budget, state)
    return out


def never_triggered_records(stats: EngineStats, ruleset: RuleSet) -> list[dict[str, Any]]:
    """The decisions file's last lines: one per rule of the rule set that never triggered,
    shaped like a decision with ``outcome`` and ``reason`` ``never_triggered`` and no
    ``ts``, subject or ids, so a dead rule shows in the file too."""
    out = []
    for rule in ruleset.rules:
        if stats.triggered[rule.id] == 0:
            kinds = sorted({"alert" if isinstance(a, AlertSpec) else "offer" for a in rule.actions})
            out.append(
                {
                    "ts": None,
                    "store": None,
                    "rule": rule.id,
                    "kind": "+".join(kinds),
                    "subject": None,
                    "outcome": "never_triggered",
                    "reason": "never_triggered",
                    "action_id": None,
                    "candidate": None,
                }
            )
    return out


def summary_json(
    stats: EngineStats,
    targets: Mapping[str, float] | None = None,
    *,
    rules: Sequence[str] = (),
    budgets: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``--summary-json``: the core's counters for every rule (``rules``: those of the rule
    set, listed even if they never triggered), each alert rule's staff loop, each
    budget (:func:`budget_summaries`) and the pages per band."""
    out = stats.to_json(rules)
    for rule, row in out["rules"].items():
        staff = staff_summary(stats, rule, targets)
        if staff is not None:
            row["staff"] = staff
        if budgets is not None and rule in budgets:
            row["budget"] = dict(budgets[rule])
    out["never_triggered"] = [r for r, row in out["rules"].items() if row["never_triggered"]]
    out["pages"] = dict(sorted(stats.pages.items()))
    return out


def format_summary(
    stats: EngineStats,
    targets: Mapping[str, float] | None = None,
    *,
    rules: Sequence[str] = (),
    budgets: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    lines = ["", "Per-rule summary (candidates: firings of a rule)", "=" * 82]
    header = (
        f"{'rule':<24}{'cands':>7}{'offers':>8}{'alerts':>8}"
        f"{'coupons':>9}{'issued':>10}{'redeemed':>10}"
    )
    lines.append(header)
    lines.append("-" * 82)
    never: list[str] = []
    for rule in stats.rules(rules):
        s = stats.rule_summary(rule)
        if s["never_triggered"]:
            never.append(rule)
            continue
        lines.append(
            f"{rule:<24}{s['candidates']:>7}{s['offers']:>8}{s['alerts']:>8}"
            f"{s['coupons']:>9}{s['issued_amount']:>10.2f}{s['redeemed']:>10}"
        )
        lines.extend(_suppression_lines(s))
        if budgets is not None and rule in budgets:
            lines.append("    " + budget_line(budgets[rule]))
        staff = staff_summary(stats, rule, targets)
        if staff is not None:
            lines.extend(_staff_lines(staff))
    for rule in never:
        lines.append(f"{rule:<24}{'never triggered':>22}")
        if budgets is not None and rule in budgets:
            lines.append("    " + budget_line(budgets[rule]))
    lines.append("-" * 82)
    if stats.pages:
        lines.append("pages per band: " + _pairs(dict(stats.pages)))
    total_in = sum(stats.events_in.values())
    lines.append(f"events accepted: {total_in}  {_pairs(stats.events_in)}".rstrip())
    invalid = sum(stats.rejected.values())
    lines.append(f"invalid input:   {invalid}  {_pairs(stats.rejected)}".rstrip())
    if stats.late_accepted:
        lines.append(f"late but accepted (past the reorder window): {stats.late_accepted}")
    if stats.redemptions_refused:
        lines.append("coupon redemptions refused: " + _pairs(stats.redemptions_refused))
    return "\n".join(lines) + "\n"


def _suppression_lines(s: Mapping[str, Any]) -> list[str]:
    """Not for them (per candidate), then the suppressed actions by class and reason."""
    lines = []
    if s["audience"]:
        turned = sum(s["audience"].values())
        lines.append(
            f"    not for them: {turned} of {s['candidates']} candidates ("
            + ", ".join(f"{k} {v}" for k, v in s["audience"].items())
            + ")"
        )
    by_class: dict[str, list[str]] = {}
    for reason, n in s["suppressed"].items():
        by_class.setdefault(reason_class(reason), []).append(f"{reason} {n}")
    titles = {"audience": "no consent / shopper", "holdout": "holdout", "blocked": "blocked"}
    for cls in ("audience", "holdout", "blocked"):
        if cls in by_class:
            lines.append(f"    {titles[cls]} (actions): " + ", ".join(by_class[cls]))
    return lines


def budget_line(b: Mapping[str, Any]) -> str:
    """``budget: 12 of 100 coupons used (5 reserved, 7 spent, 3 released), 88 left``."""
    parts = []
    if b["coupons"] is not None:
        parts.append(
            f"{b['used']} of {b['coupons']} coupons used, {b['remaining_coupons']} remaining"
        )
    if b["amount"] is not None:
        parts.append(
            f"{b['used_amount']:.2f} of {b['amount']:.2f} used, "
            f"{b['remaining_amount']:.2f} remaining"
        )
    detail = (
        f"issued {b['issued']} ({b['issued_amount']:.2f}), reserved {b['reserved']}"
        f" ({b['reserved_amount']:.2f}), spent {b['spent']} ({b['spent_amount']:.2f}),"
        f" released {b['released']} ({b['released_amount']:.2f})"
    )
    return "budget: " + "; ".join(parts) + f" [{detail}]"


def _staff_lines(staff: dict[str, Any]) -> list[str]:
    target = staff["response_target_s"]
    aim = f"target {target:g} s" if target is not None else "no target"
    rt = staff.get("response_s")
    if rt is None:
        lines = [f"    staff response: none answered ({aim})"]
    else:
        lines = [
            f"    staff response: {staff['answered']} answered, p50 {rt['p50']:.1f} s, "
            f"p90 {rt['p90']:.1f} s, mean {rt['mean']:.1f} s ({aim})"
        ]
    if target is not None and staff["answered"]:
        share = staff["within_target_share"]
        lines.append(
            f"    within target: {staff['within_target']} of {staff['answered']} answered "
            f"({share:.0%})"
        )
    lines.append(f"    unanswered: {staff['unanswered']}")
    if staff["escalations"]:
        lines.append(f"    escalations: {staff['escalations']}")
    return lines


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _pairs(counter: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items()))


__all__ = [
    "budget_line",
    "budget_summaries",
    "budget_summary",
    "format_summary",
    "never_triggered_records",
    "percentile",
    "response_targets",
    "staff_summary",
    "summary_json",
]
