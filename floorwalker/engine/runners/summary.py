"""The per-rule summary a marketer reads after a replay (and the demo prints).

Besides the decision counts, every alert rule gets its staff loop: response
times (answered alerts: p50, p90, mean) beside the rule's ``response_target``,
how many answers came within it, escalations and alerts nobody answered; and
the pages each band received (the load per staff member).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from floorwalker.engine.core.stats import EngineStats
from floorwalker.rules.model import AlertSpec, RuleSet


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


def summary_json(stats: EngineStats, targets: Mapping[str, float] | None = None) -> dict[str, Any]:
    """``--summary-json``: the core's counters plus each alert rule's staff loop and pages."""
    out = stats.to_json()
    for rule, row in out["rules"].items():
        staff = staff_summary(stats, rule, targets)
        if staff is not None:
            row["staff"] = staff
    out["pages"] = dict(sorted(stats.pages.items()))
    return out


def format_summary(stats: EngineStats, targets: Mapping[str, float] | None = None) -> str:
    lines = ["", "Per-rule summary", "=" * 78]
    header = (
        f"{'rule':<24}{'fired':>7}{'offers':>8}{'alerts':>8}"
        f"{'coupons':>9}{'spent':>10}{'redeemed':>10}"
    )
    lines.append(header)
    lines.append("-" * 78)
    for rule in stats.rules():
        s = stats.rule_summary(rule)
        lines.append(
            f"{rule:<24}{s['triggered']:>7}{s['offers']:>8}{s['alerts']:>8}"
            f"{s['coupons']:>9}{s['budget_spent']:>10.2f}{s['redeemed']:>10}"
        )
        for reason, n in s["suppressed"].items():
            lines.append(f"    suppressed {reason:<40}{n:>8}")
        staff = staff_summary(stats, rule, targets)
        if staff is not None:
            lines.extend(_staff_lines(staff))
    lines.append("-" * 78)
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


__all__ = ["format_summary", "percentile", "response_targets", "staff_summary", "summary_json"]
