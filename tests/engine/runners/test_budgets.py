"""The budget gauges: used and remaining per rule and unit, every store labelled alike."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from floorwalker.devices.registry import Registry
from floorwalker.engine.core.guards import CouponRecord, InMemoryGuardStore, Ticket, budget_key
from floorwalker.engine.runners.budgets import BudgetWatch
from floorwalker.engine.runners.metrics import Metrics
from tests.engine.conftest import STORE, write_rules

RULE = """\
id: snack-deal
when:
  pos_item: {category: snack}
offer: {id: snack-deal, message: Deal, expires: 1h, cost: 2.5}
limits:
  budget: {coupons: 10, amount: 20}
"""


def _samples(metrics: Metrics, name: str) -> dict[tuple[str, str, str], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name == name:
                out[(s.labels["store"], s.labels["rule"], s.labels["unit"])] = s.value
    return out


def test_gauges_show_used_and_remaining_and_follow_releases(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", {"r": RULE, "other": RULE.replace("snack-", "x-")})
    other = Registry.from_mapping({**STORE, "store": "s002"})
    registries = {"s001": Registry.from_mapping(STORE), "s002": other}
    guards = InMemoryGuardStore()
    for i, expires in enumerate((100.0, 200.0, 300.0)):
        coupon = CouponRecord(f"C{i}", f"a{i}", "snack-deal", "o", "s001", "s1", 0.0, expires, 2.5)
        ticket = Ticket(f"a{i}", budget_key=budget_key("snack-deal"), cost=2.5, coupon=coupon)
        assert guards.admit(ticket, 0.0) is None
    assert guards.redeem("C0", 50.0)[1] is None
    metrics = Metrics()
    watch = BudgetWatch(guards, metrics)
    watch.watch(rules, registries)
    watch.poll(250.0)  # C1 (expires 200) expired unredeemed: released
    used = _samples(metrics, "floorwalker_budget_used")
    left = _samples(metrics, "floorwalker_budget_remaining")
    for store in ("s001", "s002"):  # one chain-wide budget, every store shows it
        assert used[(store, "snack-deal", "coupons")] == 2.0  # C0 spent + C2 reserved
        assert used[(store, "snack-deal", "amount")] == 5.0
        assert left[(store, "snack-deal", "coupons")] == 8.0
        assert left[(store, "snack-deal", "amount")] == 15.0
        assert left[(store, "x-deal", "coupons")] == 10.0  # watched, untouched


def test_a_thread_reads_a_shared_store_and_stops(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", {"r": RULE})
    metrics = Metrics()
    watch = BudgetWatch(InMemoryGuardStore(), metrics, every_s=0.01)
    watch.watch(rules, {"s001": Registry.from_mapping(STORE)})
    watch.start()
    watch.stop()
    assert _samples(metrics, "floorwalker_budget_remaining")[("s001", "snack-deal", "amount")] == 20
