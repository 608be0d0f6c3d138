"""Action ids and coupon codes: stable for the same cause, distinct for different ones."""

from __future__ import annotations

import re

from floorwalker.engine.core.actions import Alert, Offer, coupon_code, stable_id
from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import PROFILES, STORE

CODE = re.compile(r"^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$")


def test_stable_id_is_deterministic_and_prefixed() -> None:
    a = stable_id("of-", "chilled-dwell-bogo", "s001", "app-1", "dwell:app-1:z:1.0")
    b = stable_id("of-", "chilled-dwell-bogo", "s001", "app-1", "dwell:app-1:z:1.0")
    assert a == b
    # lowercase letters and digits after the prefix, long enough not to collide
    assert re.fullmatch(r"of-[0-9a-z]{12,}", a)
    assert stable_id("al-", "x").startswith("al-")


def test_stable_id_differs_when_any_part_differs() -> None:
    base = ("rule", "s001", "app-1", "src")
    variants = [
        ("rule2", "s001", "app-1", "src"),
        ("rule", "s002", "app-1", "src"),
        ("rule", "s001", "app-2", "src"),
        ("rule", "s001", "app-1", "src2"),
    ]
    ids = {stable_id("of-", *base)} | {stable_id("of-", *v) for v in variants}
    assert len(ids) == 5


def test_stable_id_parts_do_not_run_together() -> None:
    assert stable_id("x-", "ab", "c") != stable_id("x-", "a", "bc")
    assert stable_id("x-", "a", "") != stable_id("x-", "a")


def test_coupon_code_is_stable_and_readable() -> None:
    code = coupon_code("of-abc")
    assert code == coupon_code("of-abc")
    assert CODE.match(code)
    prefixed = coupon_code("of-abc", "YG-")
    assert prefixed == "YG-" + code


def test_coupon_codes_are_distinct() -> None:
    codes = {coupon_code(stable_id("of-", "r", "s001", str(i))) for i in range(20000)}
    assert len(codes) == 20000


def test_offer_and_alert_payloads() -> None:
    offer = Offer("of-1", "s001", "app-1", T0, "r", "o", "AAAA-BBBB-CCCC", "m", T0 + 60)
    assert offer.topic() == "fw/s001/shopper/app-1/offer"
    assert offer.topic("shop") == "shop/s001/shopper/app-1/offer"
    assert offer.payload() == {
        "id": "of-1",
        "ts": T0,
        "rule": "r",
        "offer": "o",
        "code": "AAAA-BBBB-CCCC",
        "message": "m",
        "expires": T0 + 60,
    }
    alert = Alert("al-1", "s001", "band-07", T0, "r", "high", "z", "m", 2, None)
    assert alert.topic() == "fw/s001/band/band-07/alert"
    assert "shopper" not in alert.payload()
    assert alert.payload()["step"] == 2
    with_summary = alert._replace(shopper={"tier": "vip", "segment": "loyal"})
    assert with_summary.payload()["shopper"] == {"tier": "vip", "segment": "loyal"}


def test_alert_delivery_ids_differ_per_band_and_step() -> None:
    a = Alert("al-1", "s001", "band-07", T0, "r", "high", "z", "m", 1, None)
    assert a.delivery_id == "al-1/1/band-07"
    ids = {
        a.delivery_id,
        a._replace(step=2).delivery_id,
        a._replace(band="band-08").delivery_id,
    }
    assert len(ids) == 3


def run_day(catalog: RuleSet) -> StoreScenario:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    for day in range(3):
        start = T0 + day * 86400.0
        for shopper in ("app-loyal", "app-vip", "app-dormant", "app-bday"):
            sc.linger(shopper, "b-dairy", start=start, seconds=12)
            sc.pos_item(start + 20, category="infant-formula", shopper=shopper)
    sc.run_until(T0 + 3 * 86400.0)
    return sc


def test_engine_offer_ids_and_codes_are_stable_across_runs_and_distinct(
    catalog: RuleSet,
) -> None:
    first, second = run_day(catalog), run_day(catalog)
    offers = first.offers()
    assert len(offers) >= 8
    assert [(o.id, o.code) for o in offers] == [(o.id, o.code) for o in second.offers()]
    assert len({o.id for o in offers}) == len(offers)
    assert len({o.code for o in offers}) == len(offers)
    assert all(CODE.match(o.code) for o in offers)
