"""The report on a hand-made record: candidates, redemptions, lift, budget, dead rules."""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

import pytest

from floorwalker.dashboards.report import render_report_html, report_csv
from floorwalker.dashboards.report.compute import ALL_DAYS, ReportSettings, compute_report
from floorwalker.dashboards.report.records import (
    CheckoutRec,
    OfferRec,
    RedemptionRec,
    ReportInput,
    RuleInfo,
)
from floorwalker.engine.core.actions import Decision
from floorwalker.engine.core.testing import T0

DAY = 86400.0
H = 3600.0
TZ = {"s001": ZoneInfo("Asia/Shanghai")}


def _d(
    ts: float, rule: str, kind: str, subject: str, reason: str, candidate: str | None
) -> Decision:
    return Decision(
        ts, "s001", rule, kind, subject, reason == "sent", reason, f"a-{candidate}", candidate
    )


def _offer(ts: float, shopper: str, code: str) -> OfferRec:
    return OfferRec(ts, "s001", shopper, "deal", "deal-offer", code, ts + H)


def _record() -> ReportInput:
    rules = [
        RuleInfo(
            "deal", ("offer",), 0.5, {"deal-offer": 2.0}, budget_coupons=3, budget_amount=10.0
        ),
        RuleInfo("greet", ("alert",), 0.0, {}),
        RuleInfo("dead", ("offer",), 0.0, {"x": 1.0}),
    ]
    decisions = [
        _d(T0, "deal", "offer", "s1", "sent", "c1"),
        _d(T0 + 10, "deal", "offer", "s2", "sent", "c2"),
        _d(T0 + 20, "deal", "offer", "h1", "holdout", "c3"),
        _d(T0 + 21, "deal", "offer", "h2", "holdout", "c4"),
        # one candidate, two actions, turned away once
        _d(T0 + 25, "deal", "offer", "s9", "condition:tier", "c5"),
        _d(T0 + 25, "deal", "alert", "s9", "condition:tier", "c5"),
        _d(T0 + 30, "deal", "offer", "s1", "cap", "c6"),
        _d(T0 + DAY, "deal", "offer", "s3", "sent", "c8"),
        _d(T0 + 40, "greet", "alert", "s4", "sent", "c7"),
        _d(T0 + 70, "greet", "alert", "s4", "sent", None),  # the escalation: no candidate
        _d(T0 + 50, "greet", "alert", "s5", "no_consent", "c9"),
        _d(T0 + 51, "greet", "alert", "s6", "no_staff_available", "c10"),
    ]
    offers = [_offer(T0, "s1", "A"), _offer(T0 + 10, "s2", "B"), _offer(T0 + DAY, "s3", "C")]
    redemptions = [
        RedemptionRec(T0 + 100, "s001", "R1", "A", None),
        RedemptionRec(T0 + 200, "s001", "R9", "A", "s1"),  # again
        RedemptionRec(T0 + 2 * H, "s001", "R2", "B", "s2"),  # expired an hour after issue
        RedemptionRec(T0 + 300, "s001", "R3", "nope", None),
    ]
    checkouts = [
        CheckoutRec(T0 + 110, "s001", "R1", None, 50.0),  # the redemption's receipt: s1's
        CheckoutRec(T0 + 500, "s001", "R4", "h1", 20.0),
        CheckoutRec(T0 + 600, "s001", "R5", "s2", 30.0),
        CheckoutRec(T0 - 600, "s001", "R6", "h2", 99.0),  # before the decision: no conversion
    ]
    return ReportInput(rules, TZ, decisions, offers, redemptions, checkouts, source="test")


def test_counts_per_candidate_and_outcome() -> None:
    report = compute_report(_record())
    deal = next(r for r in report.totals() if r.rule == "deal")
    assert deal.day == ALL_DAYS
    assert deal.candidates == 7
    assert deal.audience == {"condition:tier": 1}  # one candidate, though two actions
    assert (deal.holdout, deal.blocked, deal.sent) == (2, {"cap": 1}, 3)
    assert deal.audience_filtered + deal.holdout + deal.guard_suppressed + deal.sent == 7
    greet = next(r for r in report.totals() if r.rule == "greet")
    assert greet.candidates == 3  # the escalation step is not a candidate
    assert (greet.sent, greet.audience, greet.blocked) == (
        1,
        {"no_consent": 1},
        {"no_staff_available": 1},
    )


def test_redemptions_revenue_and_refusals() -> None:
    report = compute_report(_record())
    deal = next(r for r in report.totals() if r.rule == "deal")
    assert (deal.coupons, deal.redeemed) == (3, 1)
    assert deal.redemption_rate == pytest.approx(1 / 3)
    assert deal.revenue == 50.0  # the receipt A was redeemed on
    assert report.redemptions_refused == {
        "already_redeemed": 1,
        "expired_coupon": 1,
        "unknown_coupon": 1,
    }


def test_holdout_lift_per_shopper_within_the_window() -> None:
    report = compute_report(_record())
    deal = next(r for r in report.totals() if r.rule == "deal")
    lift = deal.lift
    assert lift is not None
    # treated s1 (its coupon's receipt), s2 (a checkout), s3 (none); holdout h1 yes, h2 no
    assert (lift.treated, lift.treated_converted, lift.holdout, lift.holdout_converted) == (
        3,
        2,
        2,
        1,
    )
    assert lift.difference == pytest.approx(2 / 3 - 1 / 2)
    assert lift.interval is not None and lift.interval.low < 0 < lift.interval.high
    short = compute_report(_record(), ReportSettings(window_s=550.0))
    lift = next(r for r in short.totals() if r.rule == "deal").lift
    assert lift is not None and lift.treated_converted == 1  # s2's checkout is 590 s later
    greet = next(r for r in report.totals() if r.rule == "greet")
    assert greet.lift is None  # no holdout, no lift


def test_budget_used_and_remaining_by_reservation() -> None:
    report = compute_report(_record())
    rows = {r.day: r for r in report.rows if r.rule == "deal"}
    assert sorted(rows) == ["2026-11-23", "2026-11-24", ALL_DAYS]
    total = rows[ALL_DAYS].budget
    assert total is not None
    # A spent; B expired unredeemed (released); C still reserved at the end of the record
    assert (total.issued, total.issued_amount, total.redeemed, total.redeemed_amount) == (
        3,
        6.0,
        1,
        2.0,
    )
    assert (total.used, total.used_amount) == (2, 4.0)
    assert (total.remaining_coupons, total.remaining_amount) == (1, 6.0)
    first = rows["2026-11-23"].budget
    assert first is not None
    # end of the first day: A spent, B released
    assert (first.issued, first.used, first.remaining_coupons) == (2, 1, 2)
    assert (rows["2026-11-23"].candidates, rows["2026-11-24"].candidates) == (6, 1)


def test_rules_that_never_triggered_are_listed() -> None:
    report = compute_report(_record())
    assert report.never_triggered == ["dead"]
    dead = next(r for r in report.totals() if r.rule == "dead")
    assert dead.candidates == 0
    table = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert [r["never_triggered"] for r in table if r["rule"] == "dead"] == ["yes"]
    html = render_report_html(report)
    assert "never triggered" in html and "<ul id='never'><li>dead</li></ul>" in html


def test_one_day_only() -> None:
    report = compute_report(_record(), ReportSettings(day="2026-11-24"))
    deal = next(r for r in report.totals() if r.rule == "deal")
    assert (deal.candidates, deal.sent, deal.coupons) == (1, 1, 1)
    assert report.days == ["2026-11-24"]


def test_csv_has_a_row_per_rule_and_day_and_a_column_per_reason() -> None:
    table = list(csv.DictReader(io.StringIO(report_csv(compute_report(_record())))))
    assert [(r["rule"], r["day"]) for r in table] == [
        ("deal", "all"),
        ("deal", "2026-11-23"),
        ("deal", "2026-11-24"),
        ("greet", "all"),
        ("greet", "2026-11-23"),
        ("dead", "all"),
    ]
    deal = table[0]
    assert deal["audience:condition:tier"] == "1" and deal["blocked:cap"] == "1"
    assert deal["lift"] == str(round(2 / 3 - 1 / 2, 4))
    assert float(deal["lift_ci_low"]) < 0 < float(deal["lift_ci_high"])
    assert deal["budget_remaining_coupons"] == "1" and deal["budget_remaining_amount"] == "6.0"
    assert table[3]["lift"] == ""  # greet: no holdout
