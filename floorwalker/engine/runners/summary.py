"""The per-rule summary a marketer reads after a replay (and the demo prints)."""

from __future__ import annotations

from floorwalker.engine.core.stats import EngineStats


def format_summary(stats: EngineStats) -> str:
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
        if "response_s" in s:
            rt = s["response_s"]
            lines.append(f"    staff response: {rt['n']} answered, mean {rt['mean']:.1f} s")
        if "escalations" in s:
            lines.append(f"    escalations: {s['escalations']}")
    lines.append("-" * 78)
    total_in = sum(stats.events_in.values())
    lines.append(f"events accepted: {total_in}  {_pairs(stats.events_in)}".rstrip())
    invalid = sum(stats.rejected.values())
    lines.append(f"invalid input:   {invalid}  {_pairs(stats.rejected)}".rstrip())
    if stats.late_accepted:
        lines.append(f"late but accepted (past the reorder window): {stats.late_accepted}")
    if stats.redemptions_refused:
        lines.append("coupon redemptions refused: " + _pairs(stats.redemptions_refused))
    return "\n".join(lines) + "\n"


def _pairs(counter: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items()))
