"""Engine features beyond the catalog, each with small rule files written for the test.

Composite triggers, every guard (budget, cross-rule cap, fatigue, quiet hours,
priority), the clock (skew, duplicates, timers with no event to carry them,
the reorder window), operations (reload, forget) and the decision record.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from floorwalker.devices.events import Event
from floorwalker.engine.core.actions import Alert, Decision, Offer
from floorwalker.engine.core.profiles import Profile
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import DAY, PERMISSIVE_POLICY, PROFILES, STORE, place_staff, write_rules

HOUR = 3600.0
MINUTE = 60.0

SHOPPERS = [Profile(f"app-{i}", marketing=True) for i in range(10)]


def pos_rule(
    rule_id: str, category: str, *, priority: int = 0, limits: str = "", cost: float = 0.0
) -> str:
    """A rule that offers a coupon whenever an item of ``category`` is scanned."""
    text = (
        f"id: {rule_id}\n"
        f"priority: {priority}\n"
        f"when:\n  pos_item: {{category: {category}}}\n"
        f"offer:\n  id: {rule_id}-offer\n  message: Deal for {{category}}\n"
        f"  expires: 1h\n  cost: {cost}\n"
    )
    if limits:
        text += "limits:\n" + "".join(f"  {line}\n" for line in limits.strip().splitlines())
    return text


def make(
    tmp_path: Path,
    rules: dict[str, str],
    *,
    policy: str | None = PERMISSIVE_POLICY,
    profiles: list[Profile] | None = None,
    settings: EngineSettings | None = None,
) -> StoreScenario:
    ruleset = write_rules(tmp_path / "rules", rules, policy)
    return StoreScenario(
        ruleset, STORE, profiles=profiles if profiles is not None else SHOPPERS, settings=settings
    )


def reasons(sc: StoreScenario, rule: str | None = None) -> list[str]:
    return sc.suppressed(rule)


def offer_times(sc: StoreScenario, rule: str | None = None) -> list[float]:
    return [o.ts for o in sc.offers(rule)]


# =========================================================================== sequence

SEQUENCE = """\
id: coffee-then-pastry
when:
  sequence:
    first: {enter: {zone_tag: coffee-bar}}
    then: {pos_item: {category: pastry}}
    within: 10m
offer:
  id: pastry-refill
  message: Free coffee refill with your pastry.
  expires: 1h
"""


def test_sequence_fires_when_second_follows_within_window(tmp_path: Path) -> None:
    sc = make(tmp_path, {"seq": SEQUENCE})
    sc.linger("app-1", "b-coffee", start=T0, seconds=5)
    sc.pos_item(T0 + 9 * MINUTE, category="pastry", shopper="app-1")
    sc.run_until(T0 + HOUR)
    (offer,) = sc.offers("coffee-then-pastry")
    assert (offer.shopper, offer.offer, offer.ts) == ("app-1", "pastry-refill", T0 + 9 * MINUTE)


def test_sequence_silent_when_second_comes_too_late(tmp_path: Path) -> None:
    sc = make(tmp_path, {"seq": SEQUENCE})
    sc.linger("app-1", "b-coffee", start=T0, seconds=5)
    sc.pos_item(T0 + 11 * MINUTE, category="pastry", shopper="app-1")
    sc.run_until(T0 + HOUR)
    assert sc.offers() == []
    assert sc.decisions == []


def test_sequence_needs_the_right_order_and_the_same_shopper(tmp_path: Path) -> None:
    sc = make(tmp_path, {"seq": SEQUENCE})
    sc.pos_item(T0, category="pastry", shopper="app-1")  # before entering: no
    sc.linger("app-1", "b-coffee", start=T0 + 10, seconds=5)
    sc.pos_item(T0 + 60, category="pastry", shopper="app-2")  # someone else: no
    sc.pos_item(T0 + 70, category="bread", shopper="app-1")  # another category: no
    sc.run_until(T0 + HOUR)
    assert sc.offers() == []
    sc.pos_item(T0 + HOUR + 1, category="pastry", shopper="app-1")  # 1 h later: too late
    sc.run_until(T0 + 2 * HOUR)
    assert sc.offers() == []


# =========================================================================== count

COUNT = """\
id: snack-streak
when:
  count:
    of: {pos_item: {category: snack}}
    at_least: 3
    within: 10m
offer:
  id: snack-bundle
  message: That is {count} snacks - have a bundle deal.
  expires: 1h
"""


def test_count_uses_a_sliding_window(tmp_path: Path) -> None:
    sc = make(tmp_path, {"count": COUNT})
    for minute in (0, 5, 11):  # at 11 min the first is out of the window
        sc.pos_item(T0 + minute * MINUTE, category="snack", shopper="app-1")
    sc.run_until(T0 + 11 * MINUTE + 30)
    assert sc.offers() == []
    sc.pos_item(T0 + 12 * MINUTE, category="snack", shopper="app-1")  # 5, 11, 12
    sc.run_until(T0 + 13 * MINUTE)
    (offer,) = sc.offers()
    assert offer.ts == T0 + 12 * MINUTE
    assert offer.message == "That is 3 snacks - have a bundle deal."


def test_count_starts_afresh_after_firing_and_counts_per_shopper(tmp_path: Path) -> None:
    sc = make(tmp_path, {"count": COUNT})
    for i in range(5):
        sc.pos_item(T0 + i * MINUTE, category="snack", shopper="app-1")
    sc.pos_item(T0 + 30, category="snack", shopper="app-2")
    sc.pos_item(T0 + 90, category="snack", shopper="app-2")
    sc.run_until(T0 + HOUR)
    # app-1: fires on the third; the fourth and fifth are a fresh count of two
    assert [(o.shopper, o.ts) for o in sc.offers()] == [("app-1", T0 + 2 * MINUTE)]


# =========================================================================== absence


ABSENCE = """\
id: bell-unanswered
when:
  absence:
    after: {bell: {}}
    missing: {staff_ack: {action: [ack, done]}}
    within: 45s
    by: bell
alert:
  to: {role: manager}
  priority: urgent
  message: Nobody answered the bell in {zone}.
"""


def test_absence_fires_when_window_closes_without_the_missing_signal(tmp_path: Path) -> None:
    sc = make(tmp_path, {"absence": ABSENCE, "bell": BELL})
    place_staff(sc, {"band-07": "b-dairy", "band-01": "b-back"}, start=T0)
    sc.bell(T0 + 10, "bell-dairy")
    sc.run_until(T0 + 54.999)
    assert sc.alerts("bell-unanswered") == []
    sc.run_until(T0 + 100)
    (alert,) = sc.alerts("bell-unanswered")
    assert (alert.band, alert.ts, alert.zone) == ("band-01", T0 + 55, "dairy-chilled")


def test_absence_cancelled_by_the_missing_signal(tmp_path: Path) -> None:
    sc = make(tmp_path, {"absence": ABSENCE, "bell": BELL})
    place_staff(sc, {"band-07": "b-dairy", "band-01": "b-back"}, start=T0)
    sc.bell(T0 + 10, "bell-dairy")
    sc.run_until(T0 + 10)
    (page,) = sc.alerts("plain-bell")
    sc.ack(T0 + 30, "band-07", page.id)
    sc.run_until(T0 + 200)
    assert sc.alerts("bell-unanswered") == []


# =========================================================================== budget

BUDGET_COUPONS = pos_rule("budget-n", "snack", cost=2.5, limits="budget: {coupons: 3}")
BUDGET_AMOUNT = pos_rule("budget-amount", "snack", cost=2.0, limits="budget: {amount: 5.0}")


def test_campaign_budget_in_coupons(tmp_path: Path) -> None:
    sc = make(tmp_path, {"budget": BUDGET_COUPONS})
    for i in range(5):
        sc.pos_item(T0 + i, category="snack", shopper=f"app-{i}")
    sc.run_until(T0 + 60)
    assert [o.shopper for o in sc.offers()] == ["app-0", "app-1", "app-2"]
    assert reasons(sc, "budget-n") == ["budget", "budget"]
    stats = sc.engine.stats
    assert stats.coupons["budget-n"] == 3
    assert stats.spent["budget-n"] == pytest.approx(7.5)
    summary = stats.rule_summary("budget-n")
    assert summary["issued_amount"] == pytest.approx(7.5)
    assert summary["offers"] == 3
    assert summary["suppressed"] == {"budget": 2}


def test_campaign_budget_in_money(tmp_path: Path) -> None:
    sc = make(tmp_path, {"budget": BUDGET_AMOUNT})
    for i in range(4):
        sc.pos_item(T0 + i, category="snack", shopper=f"app-{i}")
    sc.run_until(T0 + 60)
    assert len(sc.offers()) == 2
    assert reasons(sc) == ["budget", "budget"]
    row = sc.engine.stats.to_json()["rules"]["budget-amount"]
    assert row["issued_amount"] == pytest.approx(4.0)


def test_budget_not_spent_by_suppressed_offers(tmp_path: Path) -> None:
    sc = make(tmp_path, {"budget": BUDGET_COUPONS}, profiles=[*SHOPPERS, *PROFILES])
    sc.pos_item(T0, category="snack", shopper="app-nocons")  # no consent
    sc.pos_item(T0 + 1, category="snack")  # nobody
    for i in range(4):
        sc.pos_item(T0 + 10 + i, category="snack", shopper=f"app-{i}")
    sc.run_until(T0 + 60)
    assert [o.shopper for o in sc.offers()] == ["app-0", "app-1", "app-2"]
    assert reasons(sc) == ["no_consent", "no_shopper", "budget"]


# =========================================================================== caps across rules

CROSS_CAP_POLICY = "offers_per_shopper:\n  - {count: 2, per: day}\nfatigue: off\n"


def test_policy_caps_offers_across_rules(tmp_path: Path) -> None:
    rules = {f"r{c}": pos_rule(f"rule-{c}", c) for c in ("apple", "bread", "cheese")}
    sc = make(tmp_path, rules, policy=CROSS_CAP_POLICY)
    for i, category in enumerate(("apple", "bread", "cheese")):
        sc.pos_item(T0 + i * MINUTE, category=category, shopper="app-1")
    sc.pos_item(T0 + 3 * MINUTE, category="cheese", shopper="app-2")  # per shopper
    next_day = T0 + 15.5 * HOUR  # 00:30 local, same UTC day
    sc.pos_item(next_day, category="cheese", shopper="app-1")
    sc.run_until(next_day + 60)
    assert [(o.rule, o.shopper, o.ts) for o in sc.offers()] == [
        ("rule-apple", "app-1", T0),
        ("rule-bread", "app-1", T0 + MINUTE),
        ("rule-cheese", "app-2", T0 + 3 * MINUTE),
        ("rule-cheese", "app-1", next_day),
    ]
    assert reasons(sc) == ["cap_all_rules"]
    assert sc.decisions[2].rule == "rule-cheese"


def test_default_policy_is_three_offers_a_day(tmp_path: Path) -> None:
    rules = {f"r{c}": pos_rule(f"rule-{c}", c) for c in "abcd"}
    sc = make(tmp_path, rules, policy=None)
    for i, category in enumerate("abcd"):
        sc.pos_item(T0 + i, category=category, shopper="app-1")
    sc.run_until(T0 + 60)
    assert len(sc.offers()) == 3
    assert reasons(sc) == ["cap_all_rules"]


def test_per_rule_cap_per_hour(tmp_path: Path) -> None:
    rule = pos_rule("hourly", "snack", limits="per_shopper:\n  - {count: 2, per: hour}")
    sc = make(tmp_path, {"hourly": rule})
    for minute in (0, 10, 20, 59, 60, 61):
        sc.pos_item(T0 + minute * MINUTE, category="snack", shopper="app-1")
    sc.run_until(T0 + 2 * HOUR)
    assert offer_times(sc) == [T0, T0 + 10 * MINUTE, T0 + 60 * MINUTE, T0 + 61 * MINUTE]
    assert reasons(sc) == ["cap", "cap"]


# =========================================================================== cooldown

COOLDOWN = pos_rule("cool", "snack", limits="cooldown: 1h")


def test_cooldown_per_shopper(tmp_path: Path) -> None:
    sc = make(tmp_path, {"cool": COOLDOWN})
    sc.pos_item(T0, category="snack", shopper="app-1")
    sc.pos_item(T0 + 59 * MINUTE, category="snack", shopper="app-1")
    sc.pos_item(T0 + 59 * MINUTE, category="snack", shopper="app-2")
    sc.pos_item(T0 + 60 * MINUTE, category="snack", shopper="app-1")
    sc.run_until(T0 + 2 * HOUR)
    assert [(o.shopper, o.ts) for o in sc.offers()] == [
        ("app-1", T0),
        ("app-2", T0 + 59 * MINUTE),
        ("app-1", T0 + 60 * MINUTE),
    ]
    assert reasons(sc) == ["cooldown"]


# =========================================================================== fatigue

FATIGUE_POLICY = "offers_per_shopper: []\nfatigue: {streak: 3, backoff: 7d}\n"
FATIGUE_RULE = pos_rule("nudge", "snack")


def test_fatigue_after_three_ignored_offers_one_a_week(tmp_path: Path) -> None:
    sc = make(tmp_path, {"nudge": FATIGUE_RULE}, policy=FATIGUE_POLICY)
    times = [T0, T0 + HOUR, T0 + 2 * HOUR]  # three offers, none redeemed
    last = times[-1]
    times += [
        last + HOUR,  # backed off
        last + 7 * DAY - 1,  # still inside the week
        last + 7 * DAY,  # a week after the last offer: one more
        last + 7 * DAY + HOUR,  # and backed off again
        last + 14 * DAY,  # the week after
    ]
    for ts in times:
        sc.pos_item(ts, category="snack", shopper="app-1")
    sc.run_until(times[-1] + 60)
    assert offer_times(sc) == [*times[:3], last + 7 * DAY, last + 14 * DAY]
    assert reasons(sc) == ["fatigue", "fatigue", "fatigue"]


def test_fatigue_is_per_shopper(tmp_path: Path) -> None:
    sc = make(tmp_path, {"nudge": FATIGUE_RULE}, policy=FATIGUE_POLICY)
    for i in range(4):
        sc.pos_item(T0 + i * HOUR, category="snack", shopper="app-1")
    sc.pos_item(T0 + 4 * HOUR, category="snack", shopper="app-2")
    sc.run_until(T0 + 5 * HOUR)
    assert [o.shopper for o in sc.offers()] == ["app-1", "app-1", "app-1", "app-2"]


def test_redemption_resets_fatigue_and_is_attributed_to_the_rule(tmp_path: Path) -> None:
    sc = make(tmp_path, {"nudge": FATIGUE_RULE}, policy=FATIGUE_POLICY)
    for i in range(3):
        sc.pos_item(T0 + i * HOUR, category="snack", shopper="app-1")
    sc.run_until(T0 + 2 * HOUR + 60)
    offers = sc.offers()
    assert len(offers) == 3
    # the latest coupon, still valid (each is valid for an hour)
    sc.redeem(T0 + 2 * HOUR + 120, offers[2].code, shopper="app-1", receipt="r-7")
    sc.pos_item(T0 + 3 * HOUR, category="snack", shopper="app-1")
    sc.run_until(T0 + 3 * HOUR + 60)
    assert offer_times(sc)[-1] == T0 + 3 * HOUR
    assert "fatigue" not in reasons(sc)
    stats = sc.engine.stats
    assert stats.redeemed["nudge"] == 1
    assert stats.rule_summary("nudge")["redeemed"] == 1


def test_redemption_of_unknown_or_used_codes_is_refused(tmp_path: Path) -> None:
    sc = make(tmp_path, {"nudge": FATIGUE_RULE}, policy=FATIGUE_POLICY)
    sc.pos_item(T0, category="snack", shopper="app-1")
    sc.run_until(T0 + 1)
    (offer,) = sc.offers()
    sc.redeem(T0 + 10, offer.code)
    sc.redeem(T0 + 20, offer.code)
    sc.redeem(T0 + 30, "NOPE-NOPE-NOPE")
    sc.redeem(T0 + 2 * HOUR, offer.code)  # expired as well as used
    sc.run_until(T0 + 3 * HOUR)
    stats = sc.engine.stats
    assert stats.redeemed["nudge"] == 1
    assert stats.redemptions_refused["already_redeemed"] == 2
    assert stats.redemptions_refused["unknown_coupon"] == 1


def test_expired_coupon_is_refused(tmp_path: Path) -> None:
    sc = make(tmp_path, {"nudge": FATIGUE_RULE}, policy=FATIGUE_POLICY)
    sc.pos_item(T0, category="snack", shopper="app-1")
    sc.run_until(T0 + 1)
    (offer,) = sc.offers()
    sc.redeem(offer.expires + 1, offer.code)
    sc.run_until(offer.expires + 60)
    assert sc.engine.stats.redeemed["nudge"] == 0
    assert sc.engine.stats.redemptions_refused["expired_coupon"] == 1


# =========================================================================== quiet hours


def test_rule_quiet_hours_wrapping_midnight(tmp_path: Path) -> None:
    rule = pos_rule("quiet", "snack", limits='quiet_hours: [{from: "22:00", to: "07:00"}]')
    sc = make(tmp_path, {"quiet": rule})
    moments = {
        T0: True,  # 09:00
        T0 + 13 * HOUR - 1: True,  # 21:59:59
        T0 + 13 * HOUR: False,  # 22:00
        T0 + 17 * HOUR: False,  # 02:00
        T0 + 22 * HOUR - 1: False,  # 06:59:59
        T0 + 22 * HOUR: True,  # 07:00
    }
    for i, ts in enumerate(moments):
        sc.pos_item(ts, category="snack", shopper=f"app-{i}")
    sc.run_until(T0 + DAY)
    assert offer_times(sc) == [ts for ts, sent in moments.items() if sent]
    assert reasons(sc) == ["quiet_hours"] * 3


def test_policy_quiet_hours_apply_to_every_rule(tmp_path: Path) -> None:
    policy = 'offers_per_shopper: []\nfatigue: off\nquiet_hours: [{from: "08:30", to: "09:30"}]\n'
    sc = make(tmp_path, {"a": pos_rule("a", "snack"), "b": pos_rule("b", "bread")}, policy=policy)
    sc.pos_item(T0, category="snack", shopper="app-1")
    sc.pos_item(T0 + 60, category="bread", shopper="app-2")
    sc.pos_item(T0 + HOUR, category="bread", shopper="app-3")  # 10:00
    sc.run_until(T0 + 2 * HOUR)
    assert [o.shopper for o in sc.offers()] == ["app-3"]
    assert reasons(sc) == ["quiet_hours", "quiet_hours"]


def test_quiet_hours_do_not_silence_staff_alerts(tmp_path: Path) -> None:
    policy = 'offers_per_shopper: []\nfatigue: off\nquiet_hours: [{from: "08:00", to: "10:00"}]\n'
    sc = make(tmp_path, {"bell": BELL}, policy=policy)
    place_staff(sc, {"band-07": "b-dairy"}, start=T0)
    sc.bell(T0 + 10, "bell-dairy")
    sc.run_until(T0 + 20)
    assert [a.band for a in sc.alerts()] == ["band-07"]


# =========================================================================== priority


def test_higher_priority_wins_the_moment(tmp_path: Path) -> None:
    rules = {
        "low": pos_rule("aa-low", "snack", priority=10),
        "high": pos_rule("zz-high", "snack", priority=20),
        "none": pos_rule("mm-none", "snack"),
    }
    sc = make(tmp_path, rules)
    sc.pos_item(T0, category="snack", shopper="app-1")
    sc.pos_item(T0, category="snack", shopper="app-2")
    sc.run_until(T0 + 60)
    assert sorted((o.shopper, o.rule) for o in sc.offers()) == [
        ("app-1", "zz-high"),
        ("app-2", "zz-high"),
    ]
    outranked = sorted((d.subject, d.rule) for d in sc.decisions if d.reason == "outranked")
    assert outranked == [
        ("app-1", "aa-low"),
        ("app-1", "mm-none"),
        ("app-2", "aa-low"),
        ("app-2", "mm-none"),
    ]


def test_when_the_best_offer_is_capped_the_next_one_is_sent(tmp_path: Path) -> None:
    rules = {
        "low": pos_rule("low", "snack", priority=10),
        "high": pos_rule(
            "high", "snack", priority=20, limits="per_shopper:\n  - {count: 1, per: day}"
        ),
    }
    sc = make(tmp_path, rules)
    sc.pos_item(T0, category="snack", shopper="app-1")
    sc.pos_item(T0 + HOUR, category="snack", shopper="app-1")
    sc.run_until(T0 + 2 * HOUR)
    assert [(o.rule, o.ts) for o in sc.offers()] == [("high", T0), ("low", T0 + HOUR)]
    assert [(d.rule, d.reason) for d in sc.decisions if not d.sent] == [
        ("low", "outranked"),
        ("high", "cap"),
    ]


def test_different_moments_are_not_arbitrated_together(tmp_path: Path) -> None:
    rules = {"a": pos_rule("a", "snack", priority=1), "b": pos_rule("b", "bread", priority=2)}
    sc = make(tmp_path, rules)
    sc.pos_item(T0, category="snack", shopper="app-1")
    sc.pos_item(T0 + 1, category="bread", shopper="app-1")
    sc.run_until(T0 + 60)
    assert [o.rule for o in sc.offers()] == ["a", "b"]


# =========================================================================== holdout (tmp rule)


def test_holdout_decision_reason_and_no_offer(tmp_path: Path) -> None:
    rule = pos_rule("held", "snack", limits='holdout: "50%"')
    profiles = [Profile(f"app-{i}", marketing=True) for i in range(60)]
    sc = make(tmp_path, {"held": rule}, profiles=profiles)
    for i in range(60):
        sc.pos_item(T0 + i, category="snack", shopper=f"app-{i}")
    sc.run_until(T0 + 120)
    held = {d.subject for d in sc.decisions if d.reason == "holdout"}
    got = {o.shopper for o in sc.offers()}
    assert held and got
    assert held.isdisjoint(got)
    assert held | got == {f"app-{i}" for i in range(60)}


# =========================================================================== the clock

BELL = """\
id: plain-bell
when:
  bell: {}
alert:
  to: nearest
  priority: high
  message: Help needed in {zone}.
  escalate:
    - {after: 30s, to: next}
"""


def test_events_too_late_or_too_early_are_rejected_as_clock_skew(tmp_path: Path) -> None:
    sc = make(tmp_path, {"snack": pos_rule("snack", "snack")})
    now = T0 + 1000
    sc.engine.advance_to(now)
    cases: list[tuple[Event, str | None]] = [
        (sc.pos_item(now - 61, category="snack", shopper="app-1"), "clock_skew"),
        (sc.pos_item(now + 31, category="snack", shopper="app-2"), "clock_skew"),
        (sc.pos_item(now - 60, category="snack", shopper="app-3"), None),
        (sc.pos_item(now + 30, category="snack", shopper="app-4"), None),
        (sc.pos_item(now, category="snack", shopper="app-5"), None),
    ]
    got = [(sc.deliver(event), want) for event, want in cases]
    assert [g for g, _ in got] == [w for _, w in got]
    assert sc.engine.stats.rejected["clock_skew"] == 2
    assert sorted(o.shopper for o in sc.offers()) == ["app-3", "app-4", "app-5"]
    assert sc.engine.stats.events_in["PosItem"] == 3


def test_a_sighting_off_the_clock_is_rejected_even_on_the_router_fast_path(
    tmp_path: Path,
) -> None:
    # The fast path works the skew window out from the clock: same limits as the rest.
    sc = make(tmp_path, {"snack": pos_rule("snack", "snack")})
    for i in range(4):
        sc.engine.advance_to(T0 + i)
        assert sc.deliver(sc.sighting(T0 + i, "app-1", "b-dairy", -60)) is None
    placed = sc.engine.stores[sc.store].state.presence.states["app-1"]
    assert placed.zone is not None and placed.cand is None
    now = T0 + 10
    sc.engine.advance_to(now)
    assert sc.deliver(sc.sighting(now + 31, "app-1", "b-dairy", -60)) == "clock_skew"
    assert sc.deliver(sc.sighting(now - 61, "app-1", "b-dairy", -60)) == "clock_skew"
    assert placed.seen == T0 + 3  # neither touched presence
    assert sc.deliver(sc.sighting(now + 30, "app-1", "b-dairy", -60)) is None
    assert placed.seen == now + 30
    assert sc.engine.stats.rejected["clock_skew"] == 2


def test_skew_limits_are_settings(tmp_path: Path) -> None:
    settings = EngineSettings(max_late_s=5.0, max_future_s=1.0)
    sc = make(tmp_path, {"snack": pos_rule("snack", "snack")}, settings=settings)
    sc.engine.advance_to(T0)
    assert sc.deliver(sc.pos_item(T0 - 6, category="snack", shopper="app-1")) == "clock_skew"
    assert sc.deliver(sc.pos_item(T0 + 2, category="snack", shopper="app-1")) == "clock_skew"
    assert sc.deliver(sc.pos_item(T0 - 4, category="snack", shopper="app-1")) is None
    assert sc.engine.stats.rejected["clock_skew"] == 2


def test_duplicate_message_id_is_rejected(tmp_path: Path) -> None:
    sc = make(tmp_path, {"bell": BELL, "snack": pos_rule("snack", "snack")})
    press = sc.bell(T0, "bell-dairy", id="press-1")
    line = sc.pos_item(T0, category="snack", shopper="app-1", id="line-1")
    sc.engine.advance_to(T0)
    assert sc.deliver(press) is None
    assert sc.deliver(line) is None
    sc.engine.advance_to(T0 + 3)
    assert sc.deliver(press) == "duplicate"
    assert sc.deliver(line) == "duplicate"
    other = sc.pos_item(T0 + 3, category="snack", shopper="app-1", id="line-2")
    assert sc.deliver(other) is None
    sc.engine.advance_to(T0 + 60)
    sc.actions.extend(sc.engine.drain())
    assert sc.engine.stats.rejected["duplicate"] == 2
    assert len(sc.offers()) == 2
    assert len({a.id for a in sc.alerts("plain-bell")}) == 1


def test_same_message_id_from_different_devices_is_not_a_duplicate(tmp_path: Path) -> None:
    # Simple devices number their own messages; "p-1" from two bells, or line "1"
    # from two tills, are two different messages, not a QoS 1 redelivery.
    store = {**STORE, "terminals": ["pos-1", "pos-2"]}
    ruleset = write_rules(tmp_path / "rules", {"bell": BELL, "snack": pos_rule("snack", "snack")})
    sc = StoreScenario(ruleset, store, profiles=SHOPPERS)
    place_staff(sc, {"band-07": "b-dairy", "band-08": "b-appl"}, start=T0)
    sc.bell(T0 + 10, "bell-dairy", id="p-1")
    sc.bell(T0 + 10, "bell-appl", id="p-1")
    sc.pos_item(T0 + 10, category="snack", shopper="app-1", terminal="pos-1", id="1")
    sc.pos_item(T0 + 10, category="snack", shopper="app-2", terminal="pos-2", id="1")
    sc.run_until(T0 + 20)
    assert sc.rejections == []
    assert sorted(a.zone for a in sc.alerts("plain-bell")) == ["appliances", "dairy-chilled"]
    assert sorted(o.shopper for o in sc.offers()) == ["app-1", "app-2"]


def test_event_for_an_unknown_store_is_rejected(tmp_path: Path) -> None:
    sc = make(tmp_path, {"snack": pos_rule("snack", "snack")})
    line = sc.pos_item(T0, category="snack", shopper="app-1")._replace(store="s999")
    sc.engine.advance_to(T0)
    assert sc.deliver(line) == "unknown_store"
    assert sc.engine.stats.rejected["unknown_store"] == 1
    assert sc.offers() == []


def test_dwell_timer_fires_at_its_due_time_with_no_event_after(catalog: RuleSet) -> None:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    sc.linger("app-loyal", "b-dairy", start=T0, seconds=9)  # last seen within the grace
    sc.run_until(T0 + 9)
    assert sc.offers() == []
    sc.engine.advance_to(T0 + 9.999)
    assert sc.engine.drain() == []
    sc.engine.advance_to(T0 + 10)
    got = sc.engine.drain()
    assert [(a.rule, a.ts) for a in got] == [("chilled-dwell-bogo", T0 + 10)]


def test_escalation_timer_fires_with_no_event_after(tmp_path: Path) -> None:
    sc = make(tmp_path, {"bell": BELL})
    place_staff(sc, {"band-07": "b-dairy", "band-08": "b-coffee"}, start=T0, seconds=12)
    sc.bell(T0 + 12, "bell-dairy")
    sc.run_until(T0 + 12)
    assert [a.band for a in sc.alerts()] == ["band-07"]
    sc.engine.advance_to(T0 + 41.999)
    assert sc.engine.drain() == []
    sc.engine.advance_to(T0 + 42)
    got = sc.engine.drain()
    assert len(got) == 1
    page = got[0]
    assert isinstance(page, Alert)
    assert (page.step, page.ts) == (2, T0 + 42)
    assert page.band != "band-07"


def test_jumping_the_clock_fires_every_timer_at_its_own_time(catalog: RuleSet) -> None:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    place_staff(sc, {"band-07": "b-dairy", "band-08": "b-coffee"}, start=T0, seconds=12)
    sc.linger("app-loyal", "b-dairy", start=T0, seconds=12)
    press = T0 + 12
    sc.bell(press, "bell-dairy")
    sc.run_until(press)
    sc.engine.advance_to(press + 600)
    got = sc.engine.drain()
    assert [(type(a).__name__, a.rule, a.ts) for a in got] == [
        ("Alert", "service-bell", press + 30),
        ("Alert", "service-bell", press + 90),
    ]
    assert [(o.rule, o.ts) for o in sc.offers()] == [("chilled-dwell-bogo", T0 + 10)]


HELLO = """\
id: hello
when:
  visit_start: {}
offer:
  id: hello
  message: Hello!
  expires: 1h
"""


def test_a_visit_starts_after_30_minutes_unseen(tmp_path: Path) -> None:
    sc = make(tmp_path, {"hello": HELLO})
    sc.linger("app-1", "b-door", start=T0, seconds=5)
    # back after 29 min 59 s unseen: the same visit
    sc.linger("app-1", "b-dairy", start=T0 + 5 + 1799, seconds=5)
    # back after exactly 30 min unseen: a new visit
    again = T0 + 5 + 1799 + 5 + 1800
    sc.linger("app-1", "b-door", start=again, seconds=5)
    sc.run_until(again + 60)
    assert offer_times(sc) == [T0, again]


# =========================================================================== reorder window

PAIR = """\
id: a-then-b
when:
  sequence:
    first: {pos_item: {category: apple}}
    then: {pos_item: {category: banana}}
    within: 10m
offer:
  id: fruit
  message: Fruit!
  expires: 1h
"""


def deliver_at(sc: StoreScenario, arrivals: list[tuple[float, Event]], until: float) -> None:
    for at, event in arrivals:
        sc.engine.advance_to(at)
        sc.actions.extend(sc.engine.drain())
        sc.deliver(event)
    sc.engine.advance_to(until)
    sc.actions.extend(sc.engine.drain())


def test_lateness_holds_events_until_the_watermark(tmp_path: Path) -> None:
    settings = EngineSettings(lateness_s=5.0)
    sc = make(tmp_path, {"snack": pos_rule("snack", "snack")}, settings=settings)
    sc.engine.advance_to(T0)
    assert sc.deliver(sc.pos_item(T0, category="snack", shopper="app-1")) is None
    assert sc.offers() == []
    sc.engine.advance_to(T0 + 4.999)
    assert sc.engine.drain() == []
    sc.engine.advance_to(T0 + 5)
    got = sc.engine.drain()
    assert [(a.rule, a.ts) for a in got] == [("snack", T0)]


def test_lateness_reorders_events_within_the_window(tmp_path: Path) -> None:
    arrivals_spec = [(T0 + 2, "banana"), (T0 + 3, "apple")]  # arrival time, category

    def run(lateness: float) -> list[Offer]:
        sc = make(
            tmp_path / f"l{lateness}",
            {"pair": PAIR},
            settings=EngineSettings(lateness_s=lateness),
        )
        # the apple was scanned first (T0 + 1) but its message arrives after the banana's
        events: list[tuple[float, Event]] = [
            (T0 + 2, sc.pos_item(T0 + 2, category="banana", shopper="app-1")),
            (T0 + 3, sc.pos_item(T0 + 1, category="apple", shopper="app-1")),
        ]
        assert [at for at, _ in events] == [at for at, _ in arrivals_spec]
        deliver_at(sc, events, T0 + 60)
        return sc.offers()

    assert run(0.0) == []
    (offer,) = run(5.0)
    assert offer.ts == T0 + 2


def test_lateness_event_older_than_the_window_is_processed_and_counted(tmp_path: Path) -> None:
    sc = make(
        tmp_path, {"snack": pos_rule("snack", "snack")}, settings=EngineSettings(lateness_s=5.0)
    )
    sc.engine.advance_to(T0 + 20)
    assert sc.deliver(sc.pos_item(T0 + 10, category="snack", shopper="app-1")) is None
    assert [o.ts for o in sc.offers()] == [T0 + 10]
    assert sc.engine.stats.late_accepted == 1


# =========================================================================== reload

EXTRA_BABY = """\
id: baby-aisle
when:
  dwell: {zone_tag: baby, at_least: 10s}
offer:
  id: baby-wipes
  message: Wipes on us.
  expires: 1h
"""


def test_reload_keeps_a_pending_escalation(catalog: RuleSet) -> None:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    place_staff(sc, {"band-07": "b-dairy", "band-08": "b-coffee", "band-01": "b-back"}, start=T0)
    press = T0 + 10
    sc.bell(press, "bell-dairy")
    sc.run_until(press + 1)
    bells_only = RuleSet(tuple(r for r in catalog.rules if r.id == "service-bell"), catalog.policy)
    sc.engine.reload(bells_only)
    sc.linger("app-loyal", "b-dairy", start=press + 2, seconds=15)
    sc.run_until(press + 200)
    assert [(a.band, a.step, a.ts) for a in sc.alerts("service-bell")] == [
        ("band-07", 1, press),
        ("band-08", 2, press + 30),
        ("band-01", 3, press + 90),
    ]
    assert sc.offers() == []  # the chilled rule is gone


def test_reload_keeps_presence_and_dwell(catalog: RuleSet, tmp_path: Path) -> None:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    sc.linger("app-vip", "b-dairy", start=T0, seconds=20)
    sc.run_until(T0 + 5)
    assert sc.engine.stores["s001"].state.presence.zone_of("app-vip") == "dairy-chilled"
    assert len(sc.alerts("vip-advisor")) == 1
    sc.engine.reload(load_catalog_plus(tmp_path, catalog))
    assert sc.engine.stores["s001"].state.presence.zone_of("app-vip") == "dairy-chilled"
    sc.run_until(T0 + 60)
    # no second visit start, and the dwell still counts from T0
    assert len(sc.alerts("vip-advisor")) == 1
    assert [(o.rule, o.ts) for o in sc.offers()] == [("chilled-dwell-bogo", T0 + 10)]


def test_reloaded_rule_sees_a_dwell_already_under_way(catalog: RuleSet, tmp_path: Path) -> None:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    sc.linger("app-loyal", "b-baby", start=T0, seconds=20)
    sc.run_until(T0 + 5)
    sc.engine.reload(load_catalog_plus(tmp_path, catalog))
    sc.run_until(T0 + 60)
    # presence is kept, so the shopper has been in the baby aisle since T0
    assert [(o.rule, o.ts) for o in sc.offers()] == [("baby-aisle", T0 + 10)]


def load_catalog_plus(tmp_path: Path, catalog: RuleSet) -> RuleSet:
    extra = write_rules(tmp_path / "extra", {"baby-aisle": EXTRA_BABY})
    return RuleSet(catalog.rules + extra.rules, catalog.policy)


# =========================================================================== forget_shopper


def test_forget_shopper_erases_state_and_pending_work(catalog: RuleSet) -> None:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    sc.linger("app-loyal", "b-cosm", start=T0, seconds=25)  # hesitant-tester pending
    sc.pos_item(T0 + 30, category="yogurt", shopper="app-loyal")
    sc.linger("app-vip", "b-dairy", start=T0, seconds=25)
    sc.run_until(T0 + 30)
    st = sc.engine.stores["s001"].state
    assert st.presence.zone_of("app-loyal") == "cosmetics"
    assert sc.engine.gauges().active_shoppers == 2
    removed = sc.engine.forget_shopper("app-loyal")
    assert removed > 0
    assert st.presence.zone_of("app-loyal") is None
    assert st.visit_start("app-loyal") is None
    assert sc.engine.gauges().active_shoppers == 1
    for table in (st.seq_first, st.absence, st.counts):
        assert all(key[1] != "app-loyal" for key in table)
    assert all(key[1] != "app-loyal" for key in st.bought)
    sc.run_until(T0 + HOUR)
    assert sc.offers("hesitant-tester") == []
    # the other shopper is untouched
    assert st.visit_start("app-vip") == T0
    assert [o.shopper for o in sc.offers("chilled-dwell-bogo")] == ["app-vip"]


def test_forget_shopper_erases_alerts_that_name_them(catalog: RuleSet) -> None:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    sc.linger("app-vip", "b-door", start=T0, seconds=5)
    sc.run_until(T0 + 10)
    assert len(sc.alerts("vip-advisor")) == 1
    sc.engine.forget_shopper("app-vip")
    st = sc.engine.stores["s001"].state
    assert [a.id for a in st.alerts.alerts.values() if a.shopper == "app-vip"] == []
    assert all(key[1] != "app-vip" for key in st.alerts.open_by_source)


# =========================================================================== the decision record


def busy_day(catalog: RuleSet) -> StoreScenario:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    place_staff(sc, {"band-07": "b-dairy", "band-08": "b-cosm"}, start=T0, seconds=200)
    for shopper in ("app-loyal", "app-nocons", "app-vip", "app-dormant", "app-bday", "app-x"):
        sc.linger(shopper, "b-door", start=T0 + 1, seconds=4)
        sc.linger(shopper, "b-dairy", start=T0 + 8, seconds=14)
        sc.linger(shopper, "b-coffee", start=T0 + 25, seconds=8)
        sc.linger(shopper, "b-cosm", start=T0 + 36, seconds=25)
        sc.linger(shopper, "b-appl", start=T0 + 64, seconds=70)
        sc.pos_item(T0 + 140, category="infant-formula", shopper=shopper)
    sc.pos_item(T0 + 141, category="infant-formula")
    sc.bell(T0 + 30, "bell-dairy")
    sc.bell(T0 + 40, "bell-dairy")
    sc.bell(T0 + 50, "bell-dairy")
    sc.run_until(T0 + 2 * HOUR)
    return sc


def test_every_action_has_exactly_one_sent_decision(catalog: RuleSet) -> None:
    sc = busy_day(catalog)
    assert sc.offers() and sc.alerts()
    sent = [d for d in sc.decisions if d.sent]
    assert len(sent) == len(sc.actions)
    ids = [d.action_id for d in sent]
    assert len(set(ids)) == len(ids)
    expected = {a.id if isinstance(a, Offer) else a.delivery_id for a in sc.actions}
    assert set(ids) == expected
    assert all(d.reason == "sent" for d in sent)


def test_every_candidate_offer_is_decided_exactly_once(catalog: RuleSet) -> None:
    sc = busy_day(catalog)
    offers = [d for d in sc.decisions if d.kind == "offer"]
    ids = [d.action_id for d in offers]
    assert len(ids) == len(set(ids))
    assert {d.reason for d in offers if not d.sent} >= {"no_consent", "no_shopper"}
    triggered = sc.engine.stats.triggered
    for rule in catalog.rules:
        if rule.has_offer:
            assert sum(1 for d in offers if d.rule == rule.id) == triggered[rule.id], rule.id


def test_every_decision_is_counted_with_a_reason(catalog: RuleSet) -> None:
    sc = busy_day(catalog)
    assert all(d.reason for d in sc.decisions)
    assert all(d.reason != "sent" for d in sc.decisions if not d.sent)
    stats = sc.engine.stats
    assert sum(stats.sent.values()) + sum(stats.suppressed.values()) == len(sc.decisions)
    for (rule, reason), n in stats.suppressed.items():
        assert n == sum(1 for d in sc.decisions if (d.rule, d.reason) == (rule, reason))


def test_same_input_same_decisions_and_ids(catalog: RuleSet) -> None:
    first, second = busy_day(catalog), busy_day(catalog)
    assert first.actions == second.actions
    assert first.decisions == second.decisions


def test_decision_json_shape() -> None:
    d = Decision(T0, "s001", "r", "offer", "app-1", False, "cap", "of-1", "c-1")
    assert d.to_json() == {
        "ts": T0,
        "store": "s001",
        "rule": "r",
        "kind": "offer",
        "subject": "app-1",
        "outcome": "suppressed",
        "reason": "cap",
        "action_id": "of-1",
        "candidate": "c-1",
    }


# =========================================================================== single-signal triggers

ENTER = """\
id: coffee-hello
when:
  enter: {zone_tag: coffee-bar}
offer: {id: coffee-hello, message: "Hi from {zone}", expires: 1h}
"""
LEAVE = """\
id: coffee-bye
when:
  leave: {zone_tag: coffee-bar}
offer: {id: coffee-bye, message: Bye, expires: 1h}
"""


def test_enter_fires_once_per_entry_with_the_zone_in_the_message(tmp_path: Path) -> None:
    sc = make(tmp_path, {"enter": ENTER})
    sc.linger("app-1", "b-coffee", start=T0, seconds=30)
    sc.linger("app-1", "b-dairy", start=T0 + 40, seconds=10)
    sc.linger("app-1", "b-coffee", start=T0 + 60, seconds=10)
    sc.run_until(T0 + 120)
    offers = sc.offers()
    assert [o.message for o in offers] == ["Hi from coffee-bar"] * 2
    assert offers[0].ts == T0
    assert T0 + 60 <= offers[1].ts <= T0 + 62


def test_leave_fires_when_unseen_for_the_leave_gap(tmp_path: Path) -> None:
    sc = make(tmp_path, {"leave": LEAVE})
    sc.linger("app-1", "b-coffee", start=T0, seconds=20)
    assert sc.run_until(T0 + 29.999) == []
    got = sc.run_until(T0 + 30)
    assert [a.rule for a in got] == ["coffee-bye"]


def test_leave_fires_on_a_move_to_another_zone(tmp_path: Path) -> None:
    sc = make(tmp_path, {"leave": LEAVE})
    sc.linger("app-1", "b-coffee", start=T0, seconds=20)
    sc.linger("app-1", "b-dairy", start=T0 + 21, seconds=20)
    assert sc.run_until(T0 + 22.5) == []
    assert [a.rule for a in sc.run_until(T0 + 23)] == ["coffee-bye"]
    sc.run_until(T0 + 120)
    assert len(sc.offers()) == 1


CHECKOUT = """\
id: big-basket
when:
  checkout: {min_total: 200}
offer: {id: big-basket, message: Thanks!, expires: 7d}
"""
REDEEMED = """\
id: thanks-for-redeeming
when:
  coupon_redeemed: {offer: snack-offer}
offer: {id: thanks, message: "Thanks for using {offer}", expires: 7d}
"""
REASON_BELL = """\
id: fitting-room
when:
  bell: {reason: fitting-room}
alert: {to: nearest, message: "Fitting room help in {zone} ({reason})"}
"""


def test_checkout_min_total(tmp_path: Path) -> None:
    sc = make(tmp_path, {"checkout": CHECKOUT})
    sc.checkout(T0, total=199.99, shopper="app-1", receipt="r-1")
    sc.checkout(T0 + 1, total=200.0, shopper="app-2", receipt="r-2")
    sc.checkout(T0 + 2, total=500.0, receipt="r-3")
    sc.run_until(T0 + 60)
    assert [o.shopper for o in sc.offers()] == ["app-2"]
    assert reasons(sc) == ["no_shopper"]


def test_coupon_redeemed_trigger_filters_by_offer(tmp_path: Path) -> None:
    rules = {"snack": pos_rule("snack", "snack"), "bread": pos_rule("bread", "bread")}
    sc = make(tmp_path, {**rules, "redeemed": REDEEMED})
    sc.pos_item(T0, category="snack", shopper="app-1")
    sc.pos_item(T0, category="bread", shopper="app-2")
    sc.run_until(T0 + 1)
    by_shopper = {o.shopper: o for o in sc.offers()}
    sc.redeem(T0 + 60, by_shopper["app-2"].code)  # a bread coupon: not this rule
    sc.redeem(T0 + 70, by_shopper["app-1"].code)  # no shopper on the line: from the coupon
    sc.run_until(T0 + 120)
    (thanks,) = sc.offers("thanks-for-redeeming")
    assert thanks.shopper == "app-1"
    assert thanks.ts == T0 + 70
    assert thanks.message == "Thanks for using snack-offer"


def test_bell_reason_filter(tmp_path: Path) -> None:
    sc = make(tmp_path, {"fitting": REASON_BELL})
    place_staff(sc, {"band-07": "b-dairy"}, start=T0)
    sc.bell(T0 + 10, "bell-dairy", reason="help")
    sc.bell(T0 + 20, "bell-dairy")
    sc.bell(T0 + 30, "bell-dairy", reason="fitting-room")
    sc.run_until(T0 + 60)
    (alert,) = sc.alerts()
    assert alert.ts == T0 + 30
    assert alert.message == "Fitting room help in dairy-chilled (fitting-room)"


# ================================================================ replay-style run and expiry


def test_run_flushes_what_the_events_set_in_motion(catalog: RuleSet) -> None:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    events = sc.linger("app-loyal", "b-cosm", start=T0, seconds=25)
    actions = sc.engine.run(events)
    # the last event is at T0 + 25; the coupon is due 15 min after the 20 s dwell
    assert [(a.rule, a.ts) for a in actions] == [("hesitant-tester", T0 + 20 + 900)]


def test_location_state_expires_after_a_day(catalog: RuleSet) -> None:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    sc.linger("app-anon", "b-dairy", start=T0, seconds=20)
    sc.run_until(T0 + HOUR)
    st = sc.engine.stores["s001"].state
    assert sc.engine.gauges().active_shoppers == 0  # unseen for 30 min: gone
    assert st.visit_start("app-anon") == T0
    sc.run_until(T0 + DAY + 120)
    assert st.visit_start("app-anon") is None
    assert not st.has_state()


def test_unanswered_alert_is_forgotten_after_an_hour(tmp_path: Path) -> None:
    sc = make(tmp_path, {"bell": BELL})
    place_staff(sc, {"band-07": "b-dairy"}, start=T0)
    sc.bell(T0 + 10, "bell-dairy")
    sc.run_until(T0 + 11)
    assert sc.engine.gauges().open_alerts == 1
    sc.run_until(T0 + 10 + HOUR + 120)
    assert sc.engine.gauges().open_alerts == 0
