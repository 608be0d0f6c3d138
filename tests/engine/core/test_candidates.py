"""Counting per candidate, budgets by reservation, and where a POS-triggered alert goes.

A *candidate* is one firing of a rule; its actions share a candidate id in the
decision record, and the rule's own conditions turn it away once, however many
actions it has. Budgets reserve on issue, spend on redemption and release when a
coupon expires unredeemed.
"""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from floorwalker.engine.core.actions import reason_class, wire_payload
from floorwalker.engine.core.guards import budget_key
from floorwalker.engine.core.profiles import Profile
from floorwalker.engine.core.testing import T0, StoreScenario
from tests.engine.conftest import PERMISSIVE_POLICY, STORE, place_staff, write_rules

HOUR = 3600.0

TWO_ACTIONS = """\
id: big-spender
when:
  pos_item: {category: snack}
if:
  lifetime_value: {at_least: 5000}
offer:
  id: thanks
  message: Thank you!
  expires: 1h
alert:
  to: nearest
  message: A big spender at the till.
"""

CHECKOUT_ALERT = """\
id: big-basket
when:
  checkout: {min_total: 100}
alert:
  to: nearest
  message: Help pack a big basket.
"""

BUDGETED = """\
id: snack-deal
when:
  pos_item: {category: snack}
offer:
  id: snack-deal
  message: A snack deal
  expires: 1h
  cost: 3
limits:
  budget: {amount: 6}
"""


def _scenario(
    tmp_path: Path,
    rules: dict[str, str],
    profiles: list[Profile],
    store: dict[str, Any] | None = None,
) -> StoreScenario:
    ruleset = write_rules(tmp_path / "rules", rules, PERMISSIVE_POLICY)
    return StoreScenario(ruleset, store or STORE, profiles=profiles)


def test_conditions_turn_a_candidate_away_once_whatever_its_actions(tmp_path: Path) -> None:
    shoppers = [Profile(f"app-{i}", marketing=True, lifetime_value=100.0) for i in range(4)]
    rich = Profile("app-rich", marketing=True, lifetime_value=9000.0)
    sc = _scenario(tmp_path, {"r": TWO_ACTIONS}, [*shoppers, rich])
    for i in range(4):
        sc.pos_item(T0 + i, category="snack", shopper=f"app-{i}")
    sc.pos_item(T0 + 10, category="snack", shopper="app-rich")
    sc.run_until(T0 + 60)
    stats = sc.engine.stats
    row = stats.rule_summary("big-spender")
    assert row["candidates"] == 5
    assert row["audience"] == {"condition:lifetime_value": 4}  # per candidate, not 8
    assert stats.suppressed[("big-spender", "condition:lifetime_value")] == 8  # per action
    assert "condition:lifetime_value" not in row["suppressed"]
    # Every decision of one firing shares its candidate id; firings differ.
    by_candidate: dict[str | None, list[str]] = {}
    for d in sc.decisions:
        by_candidate.setdefault(d.candidate, []).append(d.kind)
    assert len(by_candidate) == 5 and None not in by_candidate
    assert all(sorted(kinds) == ["alert", "offer"] for kinds in by_candidate.values())


def test_a_rule_that_never_triggered_is_in_the_summary(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, {"r": TWO_ACTIONS}, [])
    sc.run_until(T0 + 60)
    doc = sc.engine.stats.to_json(["big-spender"])
    row = doc["rules"]["big-spender"]
    assert row["never_triggered"] is True and row["candidates"] == 0


@pytest.mark.parametrize(
    ("reason", "cls"),
    [
        ("sent", "sent"),
        ("condition:tier", "audience"),
        ("unless:bought", "audience"),
        ("no_consent", "audience"),
        ("holdout", "holdout"),
        ("cap", "blocked"),
        ("budget", "blocked"),
        ("outranked", "blocked"),
        ("no_staff_available", "blocked"),
    ],
)
def test_reason_classes(reason: str, cls: str) -> None:
    assert reason_class(reason) == cls


def test_an_alert_of_a_checkout_goes_to_the_checkout_zone(tmp_path: Path) -> None:
    store = copy.deepcopy(STORE)
    store["zones"]["backroom"]["tags"] = ["checkout"]
    sc = _scenario(tmp_path, {"r": CHECKOUT_ALERT}, [], store)
    place_staff(sc, {"band-01": "b-back"}, start=T0)
    sc.checkout(T0 + 10, total=150.0)  # no loyalty scan: no shopper, no zone of its own
    sc.run_until(T0 + 30)
    (alert,) = sc.alerts("big-basket")
    assert alert.zone == "backroom"
    assert alert.payload()["zone"] == "backroom"


def test_a_placed_terminal_wins_and_no_zone_is_left_out(tmp_path: Path) -> None:
    store = copy.deepcopy(STORE)
    store["terminals"] = {"pos-1": {"zone": "entrance"}}
    sc = _scenario(tmp_path, {"r": CHECKOUT_ALERT}, [], store)
    place_staff(sc, {"band-01": "b-back"}, start=T0)
    sc.checkout(T0 + 10, total=150.0)
    sc.run_until(T0 + 30)
    assert [a.zone for a in sc.alerts("big-basket")] == ["entrance"]
    plain = _scenario(tmp_path / "plain", {"r": CHECKOUT_ALERT}, [])  # no checkout zone
    place_staff(plain, {"band-01": "b-back"}, start=T0)
    plain.checkout(T0 + 10, total=150.0)
    plain.run_until(T0 + 30)
    (alert,) = plain.alerts("big-basket")
    assert "zone" not in alert.payload()  # never "zone": ""


def test_wire_payload_carries_store_local_time(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, {"r": BUDGETED}, [Profile("app-1", marketing=True)])
    sc.pos_item(T0, category="snack", shopper="app-1")
    sc.run_until(T0 + 1)
    (offer,) = sc.offers()
    tz = ZoneInfo("Asia/Shanghai")
    payload = wire_payload(offer, tz)
    assert payload["ts"] == T0
    assert datetime.fromisoformat(payload["ts_local"]).timestamp() == pytest.approx(T0)
    assert payload["ts_local"].endswith("+08:00")
    assert wire_payload(offer, None) == offer.payload()


def test_budget_reserves_spends_and_releases_in_the_engine(tmp_path: Path) -> None:
    shoppers = [Profile(f"app-{i}", marketing=True) for i in range(5)]
    sc = _scenario(tmp_path, {"r": BUDGETED}, shoppers)
    sc.pos_item(T0, category="snack", shopper="app-0")
    sc.pos_item(T0 + 1, category="snack", shopper="app-1")
    sc.pos_item(T0 + 2, category="snack", shopper="app-2")  # 6 of 6 reserved: refused
    sc.run_until(T0 + 10)
    first, _second = sc.offers()
    assert sc.suppressed("snack-deal") == ["budget"]
    sc.redeem(T0 + 20, first.code, shopper="app-0")
    sc.run_until(T0 + 30)
    state = sc.engine.ports.guards.budget(budget_key("snack-deal"), T0 + 30)
    assert (state.reserved, state.spent, state.amount) == (1, 1, 6.0)
    assert sc.engine.stats.redeemed_amount["snack-deal"] == 3.0
    # The second coupon expires unredeemed an hour later: its 3.0 comes back.
    sc.pos_item(T0 + 1 + HOUR + 1, category="snack", shopper="app-3")
    sc.run_until(T0 + 2 * HOUR)
    assert [o.shopper for o in sc.offers()] == ["app-0", "app-1", "app-3"]
