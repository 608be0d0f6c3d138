"""Every shipped catalog rule: when it fires, what it sends, and when it stays silent.

All scenarios run on the ready-made store of ``conftest.py`` (timezone
Asia/Shanghai; ``T0`` is Monday 2026-11-23 09:00:00 there). Shoppers' phones and
staff bands report about once a second; presence needs three points to enter
(a sighting at rssi >= -60 counts two), the dwell is counted from the first
sighting of the run, and a subject unseen for 10 s has left.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from floorwalker.engine.core.actions import Alert, Decision, Offer
from floorwalker.engine.core.profiles import Profile
from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import DAY, PROFILES, STORE, place_staff, write_rules

HOUR = 3600.0
MINUTE = 60.0
SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> float:
    """Epoch seconds of a store-local (Asia/Shanghai) wall time."""
    return datetime(year, month, day, hour, minute, sec, tzinfo=SHANGHAI).timestamp()


def test_t0_is_the_documented_monday_morning() -> None:
    # floorwalker.engine.core.testing documents T0 as 2026-11-23 09:00:00 Asia/Shanghai,
    # "a Monday morning"; weekday and calendar tests rely on that.
    assert datetime.fromtimestamp(T0, SHANGHAI) == datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
    assert datetime.fromtimestamp(T0, SHANGHAI).weekday() == 0


def scenario(catalog: RuleSet, *extra: Profile) -> StoreScenario:
    return StoreScenario(catalog, STORE, profiles=[*PROFILES, *extra])


def decisions(sc: StoreScenario, rule: str, kind: str | None = None) -> list[Decision]:
    return [d for d in sc.decisions if d.rule == rule and kind in (None, d.kind)]


def reasons(sc: StoreScenario, rule: str, kind: str | None = None) -> list[str]:
    return [d.reason for d in decisions(sc, rule, kind) if not d.sent]


def only_offer(sc: StoreScenario, rule: str) -> Offer:
    offers = sc.offers(rule)
    assert len(offers) == 1, offers
    return offers[0]


# =========================================================================== chilled-dwell-bogo


def test_chilled_coupon_at_exactly_first_sighting_plus_10s(store: StoreScenario) -> None:
    # Reports every 1.5 s: sightings at +9.0 and +10.5, none at +10.0.
    store.linger("app-loyal", "b-dairy", start=T0, seconds=15, every=1.5)
    assert store.run_until(T0 + 9.999) == []
    got = store.run_until(T0 + 10.0)
    assert [a.rule for a in got] == ["chilled-dwell-bogo"]
    offer = got[0]
    assert isinstance(offer, Offer)
    assert offer.shopper == "app-loyal"
    assert offer.offer == "yogurt-bogo"
    assert offer.ts == T0 + 10.0
    assert offer.expires == T0 + 10.0 + 2 * HOUR
    assert offer.code
    assert offer.topic() == "fw/s001/shopper/app-loyal/offer"
    store.run_until(T0 + 60)
    assert len(store.offers("chilled-dwell-bogo")) == 1
    sent = [d for d in decisions(store, "chilled-dwell-bogo") if d.sent]
    assert [(d.subject, d.action_id, d.reason) for d in sent] == [("app-loyal", offer.id, "sent")]


def test_chilled_dwell_is_counted_from_first_sighting_not_from_entering(
    store: StoreScenario,
) -> None:
    # Weak sightings: the zone is only entered at the third (T0 + 2), but the
    # shopper was there from T0.
    store.linger("app-loyal", "b-dairy", start=T0, seconds=14, rssi=-80)
    store.run_until(T0 + 60)
    assert [o.ts for o in store.offers("chilled-dwell-bogo")] == [T0 + 10.0]


def test_chilled_short_stop_gets_nothing(store: StoreScenario) -> None:
    store.linger("app-loyal", "b-dairy", start=T0, seconds=5)
    store.run_until(T0 + 120)
    assert store.offers("chilled-dwell-bogo") == []
    assert decisions(store, "chilled-dwell-bogo") == []


def test_chilled_neighbour_flicker_does_not_restart_the_dwell(store: StoreScenario) -> None:
    sightings = [
        store.sighting(T0 + i, "app-loyal", "b-coffee" if i in (4, 7) else "b-dairy")
        for i in range(14)
    ]
    store.send(*sightings)
    store.run_until(T0 + 60)
    assert [o.ts for o in store.offers("chilled-dwell-bogo")] == [T0 + 10.0]


def test_chilled_cap_one_per_store_local_day(store: StoreScenario) -> None:
    # 09:00 local: the first coupon.
    store.linger("app-loyal", "b-dairy", start=T0, seconds=12)
    # 10:00 local, a second dwell the same day: capped.
    store.linger("app-loyal", "b-dairy", start=T0 + HOUR, seconds=12)
    # 00:30 local the next day -- still 2026-11-23 in UTC (16:30Z): a new day.
    next_day = T0 + 15.5 * HOUR
    store.linger("app-loyal", "b-dairy", start=next_day, seconds=12)
    store.run_until(next_day + 60)
    assert [o.ts for o in store.offers("chilled-dwell-bogo")] == [T0 + 10, next_day + 10]
    assert reasons(store, "chilled-dwell-bogo") == ["cap"]
    capped = [d for d in decisions(store, "chilled-dwell-bogo") if not d.sent]
    assert capped[0].ts == T0 + HOUR + 10


@pytest.mark.parametrize("shopper", ["app-nocons", "app-anon"])
def test_chilled_no_offer_without_marketing_consent(store: StoreScenario, shopper: str) -> None:
    store.linger(shopper, "b-dairy", start=T0, seconds=12)
    store.run_until(T0 + 60)
    assert store.offers() == []
    assert reasons(store, "chilled-dwell-bogo") == ["no_consent"]


def test_chilled_suppressed_by_yogurt_bought_29_min_ago(store: StoreScenario) -> None:
    store.pos_item(T0, category="yogurt", shopper="app-loyal")
    # dwell completes 29 min after the purchase
    store.linger("app-loyal", "b-dairy", start=T0 + 29 * MINUTE - 10, seconds=12)
    store.run_until(T0 + 40 * MINUTE)
    assert store.offers("chilled-dwell-bogo") == []
    assert reasons(store, "chilled-dwell-bogo") == ["unless:bought"]


def test_chilled_not_suppressed_by_yogurt_bought_31_min_ago(store: StoreScenario) -> None:
    store.pos_item(T0, category="yogurt", shopper="app-loyal")
    store.linger("app-loyal", "b-dairy", start=T0 + 31 * MINUTE - 10, seconds=12)
    store.run_until(T0 + 40 * MINUTE)
    assert [o.ts for o in store.offers("chilled-dwell-bogo")] == [T0 + 31 * MINUTE]


def test_chilled_not_suppressed_by_someone_elses_yogurt(store: StoreScenario) -> None:
    store.pos_item(T0, category="yogurt", shopper="app-vip")
    store.pos_item(T0 + 1, category="yogurt")  # an anonymous line
    store.linger("app-loyal", "b-dairy", start=T0 + 5 * MINUTE, seconds=12)
    store.run_until(T0 + 10 * MINUTE)
    assert len(store.offers("chilled-dwell-bogo")) == 1


# =========================================================================== service-bell

STAFF_FOR_DAIRY = {"band-07": "b-dairy", "band-08": "b-coffee", "band-01": "b-back"}
"""band-07 in the bell's zone, band-08 next door, the manager in the back office."""


def bell_store(catalog: RuleSet) -> tuple[StoreScenario, float]:
    sc = scenario(catalog)
    place_staff(sc, STAFF_FOR_DAIRY, start=T0, seconds=400)
    press = T0 + 10
    sc.bell(press, "bell-dairy", reason="help")
    return sc, press


def test_service_bell_escalates_nearest_next_then_manager(catalog: RuleSet) -> None:
    sc, press = bell_store(catalog)
    sc.run_until(press + 300)
    pages = sc.alerts("service-bell")
    assert [(a.band, a.step, a.ts) for a in pages] == [
        ("band-07", 1, press),
        ("band-08", 2, press + 30),
        ("band-01", 3, press + 90),
    ]
    assert len({a.id for a in pages}) == 1
    first = pages[0]
    assert first.zone == "dairy-chilled"
    assert first.priority == "high"
    assert first.message == "A customer needs help in dairy-chilled."
    assert first.shopper is None
    assert first.topic() == "fw/s001/band/band-07/alert"
    assert sc.engine.stats.escalations["service-bell"] == 2


@pytest.mark.parametrize("answer", ["ack", "done"])
def test_service_bell_answer_stops_the_escalation(catalog: RuleSet, answer: str) -> None:
    sc, press = bell_store(catalog)
    sc.run_until(press)
    (page,) = sc.alerts("service-bell")
    assert page.band == "band-07"
    sc.ack(press + 20, "band-07", page.id, answer)
    sc.run_until(press + 300)
    assert [(a.band, a.step) for a in sc.alerts("service-bell")] == [("band-07", 1)]
    assert sc.engine.stats.response_s["service-bell"] == [20.0]
    assert sc.engine.stats.escalations["service-bell"] == 0


def test_service_bell_decline_passes_it_on_at_once(catalog: RuleSet) -> None:
    sc, press = bell_store(catalog)
    sc.run_until(press)
    (page,) = sc.alerts("service-bell")
    sc.ack(press + 5, "band-07", page.id, "decline")
    got = sc.run_until(press + 5)
    assert len(got) == 1
    passed = got[0]
    assert isinstance(passed, Alert)
    assert passed.id == page.id
    assert passed.ts == press + 5
    assert passed.band == "band-08"  # the next nearest
    sc.run_until(press + 300)
    later = sc.alerts("service-bell")[2:]
    assert later, "nobody answered, so the escalation goes on"
    assert all(a.band != "band-07" for a in later)
    assert sc.engine.stats.response_s.get("service-bell", []) == []


def test_service_bell_ack_after_decline_stops_it(catalog: RuleSet) -> None:
    sc, press = bell_store(catalog)
    sc.run_until(press)
    (page,) = sc.alerts("service-bell")
    sc.ack(press + 5, "band-07", page.id, "decline")
    sc.ack(press + 12, "band-08", page.id, "ack")
    sc.run_until(press + 300)
    assert [a.band for a in sc.alerts("service-bell")] == ["band-07", "band-08"]
    assert sc.engine.stats.response_s["service-bell"] == [12.0]


def test_service_bell_skips_an_offline_band(catalog: RuleSet) -> None:
    sc, press = bell_store(catalog)
    sc.status(T0 + 5, "band-07", online=False)
    sc.run_until(press + 300)
    bands = [a.band for a in sc.alerts("service-bell")]
    assert bands[0] == "band-08"
    assert "band-07" not in bands


def test_service_bell_second_press_while_open_does_not_page_again(catalog: RuleSet) -> None:
    sc, press = bell_store(catalog)
    sc.bell(press + 5, "bell-dairy")
    sc.run_until(press + 10)
    assert [(a.band, a.step) for a in sc.alerts("service-bell")] == [("band-07", 1)]
    assert reasons(sc, "service-bell") == ["already_open"]


def test_service_bell_prefers_a_free_band_and_frees_it_on_done(catalog: RuleSet) -> None:
    sc = scenario(catalog)
    place_staff(sc, {"band-07": "b-dairy", "band-08": "b-dairy"}, start=T0, seconds=200)
    p = T0 + 10
    sc.bell(p, "bell-dairy")
    sc.run_until(p)
    (first,) = sc.alerts("service-bell")
    assert first.band == "band-07"  # both free and in the zone: by id
    sc.ack(p + 5, "band-07", first.id)  # on it: band-07 is now busy
    sc.bell(p + 10, "bell-dairy")
    sc.run_until(p + 10)
    second = sc.alerts("service-bell")[-1]
    assert second.id != first.id
    assert second.band == "band-08"  # the free one
    sc.ack(p + 12, "band-08", second.id, "done")
    sc.ack(p + 14, "band-07", first.id, "done")
    sc.bell(p + 20, "bell-dairy")
    sc.run_until(p + 20)
    third = sc.alerts("service-bell")[-1]
    assert third.id not in (first.id, second.id)
    assert third.band == "band-07"  # both free again


def test_ack_for_an_unknown_alert_is_counted(store: StoreScenario) -> None:
    store.ack(T0, "band-07", "al-doesnotexist")
    store.run_until(T0 + 10)
    assert store.engine.stats.rejected["unknown_alert"] == 1
    assert store.rejections == ["unknown_alert"]  # returned, so runners dead-letter it
    assert store.actions == []


# =========================================================================== formula-to-babyfood


def test_formula_line_with_loyalty_shopper_gets_babyfood_coupon(store: StoreScenario) -> None:
    store.pos_item(T0 + 5, category="infant-formula", shopper="app-loyal", receipt="r-9")
    store.run_until(T0 + 60)
    offer = only_offer(store, "formula-to-babyfood")
    assert offer.shopper == "app-loyal"
    assert offer.offer == "babyfood-diapers-10"
    assert offer.ts == T0 + 5
    assert offer.expires == T0 + 5 + 14 * DAY


def test_formula_line_without_shopper_gets_nothing(store: StoreScenario) -> None:
    store.pos_item(T0 + 5, category="infant-formula")
    store.run_until(T0 + 60)
    assert store.offers() == []
    assert reasons(store, "formula-to-babyfood") == ["no_shopper"]


def test_formula_other_categories_and_non_consenting_shoppers(store: StoreScenario) -> None:
    store.pos_item(T0 + 5, category="baby-food", shopper="app-loyal")
    store.pos_item(T0 + 6, category="infant-formula", shopper="app-nocons")
    store.run_until(T0 + 60)
    assert store.offers() == []
    assert reasons(store, "formula-to-babyfood") == ["no_consent"]


def test_formula_capped_once_a_store_local_week(store: StoreScenario) -> None:
    monday = local(2025, 11, 24, 10)
    sunday_night = local(2025, 11, 30, 23, 30)  # still Monday's ISO week
    next_monday = local(2025, 12, 1, 0, 30)  # 2025-11-30 16:30 UTC: a new local week
    for ts in (monday, sunday_night, next_monday):
        store.pos_item(ts, category="infant-formula", shopper="app-loyal")
    store.run_until(next_monday + 60)
    assert [o.ts for o in store.offers("formula-to-babyfood")] == [monday, next_monday]
    assert reasons(store, "formula-to-babyfood") == ["cap"]


# =========================================================================== dormant-welcome-back


def test_dormant_high_value_shopper_gets_welcome_back_and_advisor_told(
    store: StoreScenario,
) -> None:
    store.linger("app-dormant", "b-door", start=T0, seconds=5)
    store.run_until(T0 + 60)
    offer = only_offer(store, "dormant-welcome-back")
    assert offer.shopper == "app-dormant"
    assert offer.offer == "welcome-back-20"
    assert offer.ts == T0  # at the visit's start: the first sighting
    assert offer.expires == T0 + DAY
    (alert,) = store.alerts("dormant-welcome-back")
    assert alert.band == "band-07"  # app-dormant's advisor
    assert alert.step == 1
    assert alert.ts == T0
    assert alert.shopper == {"tier": "gold", "segment": "dormant"}


def test_dormant_rule_silent_for_a_loyal_shopper(store: StoreScenario) -> None:
    store.linger("app-loyal", "b-door", start=T0, seconds=5)
    store.run_until(T0 + 60)
    assert store.offers("dormant-welcome-back") == []
    assert store.alerts("dormant-welcome-back") == []
    assert set(reasons(store, "dormant-welcome-back")) == {"condition:lifetime_value"}


def test_dormant_rule_needs_180_days_away(catalog: RuleSet) -> None:
    recent = Profile(
        "app-rich-recent",
        tier="gold",
        segment="loyal",
        marketing=True,
        first_visit=T0 - 900 * DAY,
        last_visit=T0 - 179 * DAY,
        lifetime_value=9000.0,
        advisor="band-07",
    )
    sc = scenario(catalog, recent)
    sc.linger("app-rich-recent", "b-door", start=T0, seconds=5)
    sc.run_until(T0 + 60)
    assert sc.offers("dormant-welcome-back") == []
    assert set(reasons(sc, "dormant-welcome-back")) == {"condition:days_since_last_visit"}


def test_dormant_welcome_back_not_repeated_two_days_later(store: StoreScenario) -> None:
    # Back after 200 days: welcome back. Back again two days later: that shopper
    # is no longer "away for 180 days" and must not get a second welcome-back.
    store.linger("app-dormant", "b-door", start=T0, seconds=5)
    store.linger("app-dormant", "b-door", start=T0 + 2 * DAY, seconds=5)
    store.run_until(T0 + 2 * DAY + 60)
    assert [o.ts for o in store.offers("dormant-welcome-back")] == [T0]


def test_dormant_rule_fires_once_not_on_every_zone_change(store: StoreScenario) -> None:
    store.linger("app-dormant", "b-door", start=T0, seconds=5)
    store.linger("app-dormant", "b-dairy", start=T0 + 6, seconds=20)
    store.run_until(T0 + 120)
    assert len(store.offers("dormant-welcome-back")) == 1
    assert len(store.alerts("dormant-welcome-back")) == 1


# =========================================================================== vip-advisor


def test_vip_entering_alerts_their_advisor_with_tier_and_segment_only(
    store: StoreScenario,
) -> None:
    store.linger("app-vip", "b-door", start=T0, seconds=5)
    store.run_until(T0 + 60)
    (alert,) = store.alerts("vip-advisor")
    assert alert.band == "band-08"
    assert alert.priority == "high"
    assert alert.step == 1
    assert alert.ts == T0
    assert alert.shopper == {"tier": "vip", "segment": "loyal"}
    payload = alert.payload()
    assert set(payload["shopper"]) == {"tier", "segment"}
    assert "app-vip" not in repr(payload)  # not even the pseudonymous token
    assert store.offers() == []  # the rule only alerts


def test_vip_advisor_offline_is_recorded_not_rerouted(store: StoreScenario) -> None:
    store.status(T0 - 5, "band-08", online=False)
    store.linger("app-vip", "b-door", start=T0, seconds=5)
    store.run_until(T0 + 60)
    assert store.alerts("vip-advisor") == []
    assert reasons(store, "vip-advisor") == ["no_staff_available"]


def test_vip_rule_silent_for_other_tiers(store: StoreScenario) -> None:
    store.linger("app-loyal", "b-door", start=T0, seconds=5)
    store.linger("app-anon", "b-door", start=T0, seconds=5)
    store.run_until(T0 + 60)
    assert store.alerts("vip-advisor") == []
    assert reasons(store, "vip-advisor") == ["condition:tier", "condition:tier"]


def test_vip_alert_once_per_visit(store: StoreScenario) -> None:
    store.linger("app-vip", "b-door", start=T0, seconds=5)
    store.linger("app-vip", "b-dairy", start=T0 + 10, seconds=60)
    # back after more than 30 minutes unseen: a new visit
    store.linger("app-vip", "b-door", start=T0 + 2 * HOUR, seconds=5)
    store.run_until(T0 + 3 * HOUR)
    assert [a.ts for a in store.alerts("vip-advisor")] == [T0, T0 + 2 * HOUR]


# =========================================================================== new-visitor-greet

STAFF_FOR_ENTRANCE = {"band-07": "b-dairy", "band-08": "b-appl", "band-01": "b-back"}
"""band-07 next to the entrance, band-08 four zones away, the manager unreachable."""


def greet_store(catalog: RuleSet, *extra: Profile) -> StoreScenario:
    sc = scenario(catalog, *extra)
    place_staff(sc, STAFF_FOR_ENTRANCE, start=T0, seconds=300)
    return sc


def test_new_visitor_greeted_by_nearest_staff_then_escalated(catalog: RuleSet) -> None:
    sc = greet_store(catalog)
    arrive = T0 + 10
    sc.linger("app-anon", "b-door", start=arrive, seconds=30)
    sc.run_until(arrive + 120)
    pages = sc.alerts("new-visitor-greet")
    assert [(a.band, a.step) for a in pages] == [("band-07", 1), ("band-08", 2)]
    first, second = pages
    assert arrive <= first.ts <= arrive + 2  # as soon as presence at the entrance is sure
    assert second.ts == first.ts + 10
    assert first.zone == "entrance"
    assert first.message == (
        "A first-time visitor is at entrance - please greet them within 10 seconds."
    )
    assert first.id == second.id


def test_new_visitor_ack_stops_escalation(catalog: RuleSet) -> None:
    sc = greet_store(catalog)
    sc.linger("app-anon", "b-door", start=T0 + 10, seconds=30)
    sc.run_until(T0 + 13)
    (page,) = sc.alerts("new-visitor-greet")
    sc.ack(page.ts + 4, "band-07", page.id)
    sc.run_until(T0 + 120)
    assert [a.step for a in sc.alerts("new-visitor-greet")] == [1]
    assert sc.engine.stats.response_s["new-visitor-greet"] == [4.0]


def test_profile_without_first_visit_counts_as_new(catalog: RuleSet) -> None:
    sc = greet_store(catalog, Profile("app-newbie", marketing=True))
    sc.linger("app-newbie", "b-door", start=T0 + 10, seconds=5)
    sc.run_until(T0 + 60)
    assert [a.band for a in sc.alerts("new-visitor-greet")][:1] == ["band-07"]


def test_known_shopper_not_greeted(catalog: RuleSet) -> None:
    sc = greet_store(catalog)
    sc.linger("app-loyal", "b-door", start=T0 + 10, seconds=20)
    sc.run_until(T0 + 60)
    assert sc.alerts("new-visitor-greet") == []
    assert reasons(sc, "new-visitor-greet") == ["condition:first_visit"]


def test_anonymous_second_visit_same_day_not_greeted(catalog: RuleSet) -> None:
    sc = greet_store(catalog)
    sc.linger("app-anon", "b-door", start=T0 + 10, seconds=10)
    sc.run_until(T0 + 13)
    (page,) = sc.alerts("new-visitor-greet")
    sc.ack(page.ts + 3, "band-07", page.id, "done")
    back = T0 + 2 * HOUR  # more than 30 minutes unseen: a new visit, same day
    place_staff(sc, STAFF_FOR_ENTRANCE, start=back - 10, seconds=60)
    sc.linger("app-anon", "b-door", start=back, seconds=10)
    sc.run_until(back + 60)
    assert len(sc.alerts("new-visitor-greet")) == 1
    assert reasons(sc, "new-visitor-greet") == ["condition:first_visit"]


def test_new_visitor_not_greeted_twice_in_one_visit(catalog: RuleSet) -> None:
    sc = greet_store(catalog)
    sc.linger("app-anon", "b-door", start=T0 + 10, seconds=10)
    sc.run_until(T0 + 13)
    (page,) = sc.alerts("new-visitor-greet")
    sc.ack(page.ts + 3, "band-07", page.id, "done")
    # out to the chilled shelf and back to the entrance, same visit
    sc.linger("app-anon", "b-dairy", start=T0 + 25, seconds=30)
    sc.linger("app-anon", "b-door", start=T0 + 60, seconds=10)
    sc.run_until(T0 + 120)
    assert len(sc.alerts("new-visitor-greet")) == 1
    assert reasons(sc, "new-visitor-greet") == ["cap"]


# =========================================================================== hesitant-tester


def test_hesitant_tester_gets_sample_coupon_15_min_after_dwell(store: StoreScenario) -> None:
    store.linger("app-loyal", "b-cosm", start=T0, seconds=25)
    moment = T0 + 20  # the 20 s dwell completes
    assert store.run_until(moment + 15 * MINUTE - 0.001) == []
    got = store.run_until(moment + 15 * MINUTE)
    assert [a.rule for a in got] == ["hesitant-tester"]
    offer = got[0]
    assert isinstance(offer, Offer)
    assert offer.shopper == "app-loyal"
    assert offer.offer == "cosmetics-sample"
    assert offer.ts == moment + 15 * MINUTE
    assert offer.expires == moment + 15 * MINUTE + DAY


def test_hesitant_tester_who_buys_cosmetics_gets_nothing(store: StoreScenario) -> None:
    store.linger("app-loyal", "b-cosm", start=T0, seconds=25)
    store.pos_item(T0 + 20 + 14 * MINUTE, category="cosmetics", shopper="app-loyal")
    store.run_until(T0 + HOUR)
    assert store.offers("hesitant-tester") == []
    assert decisions(store, "hesitant-tester") == []


def test_hesitant_tester_other_purchases_do_not_cancel(store: StoreScenario) -> None:
    store.linger("app-loyal", "b-cosm", start=T0, seconds=25)
    store.pos_item(T0 + 5 * MINUTE, category="yogurt", shopper="app-loyal")
    store.pos_item(T0 + 6 * MINUTE, category="cosmetics", shopper="app-vip")
    store.pos_item(T0 + 7 * MINUTE, category="cosmetics")
    store.run_until(T0 + HOUR)
    assert [o.ts for o in store.offers("hesitant-tester")] == [T0 + 20 + 15 * MINUTE]


def test_hesitant_tester_short_look_starts_nothing(store: StoreScenario) -> None:
    store.linger("app-loyal", "b-cosm", start=T0, seconds=8)
    store.run_until(T0 + HOUR)
    assert store.offers("hesitant-tester") == []


# =========================================================================== birthday-week


def test_birthday_week_member_gets_gift(store: StoreScenario) -> None:
    store.linger("app-bday", "b-door", start=T0, seconds=5)
    store.run_until(T0 + 60)
    offer = only_offer(store, "birthday-week")
    assert offer.shopper == "app-bday"
    assert offer.offer == "birthday-gift"
    assert offer.ts == T0
    assert offer.expires == T0 + 7 * DAY


@pytest.mark.parametrize(
    ("birthday", "fires"),
    [((12, 20), False), ((11, 26), True), ((11, 27), False), ((11, 20), True), ((11, 19), False)],
)
def test_birthday_week_window(catalog: RuleSet, birthday: tuple[int, int], fires: bool) -> None:
    profile = Profile(
        "app-b",
        tier="member",
        segment="regular",
        marketing=True,
        birthday=birthday,
        first_visit=T0 - 50 * DAY,
        last_visit=T0 - 5 * DAY,
    )
    sc = scenario(catalog, profile)
    sc.linger("app-b", "b-door", start=T0, seconds=5)
    sc.run_until(T0 + 60)
    assert len(sc.offers("birthday-week")) == int(fires)
    if not fires:
        assert reasons(sc, "birthday-week") == ["condition:birthday_within_days"]


def test_birthday_gift_once_a_month(store: StoreScenario) -> None:
    store.linger("app-bday", "b-door", start=T0, seconds=5)
    store.linger("app-bday", "b-door", start=T0 + DAY, seconds=5)
    store.run_until(T0 + DAY + 60)
    assert len(store.offers("birthday-week")) == 1
    assert reasons(store, "birthday-week") == ["cap"]


# =========================================================================== daypart-breakfast


@pytest.mark.parametrize(
    ("completes", "fires"),
    [
        (T0 + 3599, True),  # 09:59:59
        (T0 + 3600, False),  # 10:00:00
        (T0 - 3601, False),  # 07:59:59
        (T0 - 3600, True),  # 08:00:00
    ],
)
def test_daypart_breakfast_boundaries(catalog: RuleSet, completes: float, fires: bool) -> None:
    sc = scenario(catalog)
    sc.linger("app-loyal", "b-coffee", start=completes - 5, seconds=8)
    sc.run_until(completes + 60)
    offers = sc.offers("daypart-breakfast")
    if fires:
        assert [(o.ts, o.offer, o.shopper) for o in offers] == [
            (completes, "breakfast-combo", "app-loyal")
        ]
    else:
        assert offers == []
        assert reasons(sc, "daypart-breakfast") == ["condition:daypart"]


def test_daypart_breakfast_needs_five_seconds(store: StoreScenario) -> None:
    store.linger("app-loyal", "b-coffee", start=T0, seconds=1)
    store.run_until(T0 + 60)
    assert store.offers("daypart-breakfast") == []


# =========================================================================== assist-long-dwell


def test_long_dwell_with_no_staff_pages_nearest(catalog: RuleSet) -> None:
    sc = scenario(catalog)
    place_staff(
        sc, {"band-08": "b-cosm", "band-07": "b-dairy", "band-01": "b-back"}, start=T0, seconds=120
    )
    sc.linger("app-anon", "b-appl", start=T0 + 5, seconds=70)
    assert sc.run_until(T0 + 64.999) == []
    sc.run_until(T0 + 120)
    (alert,) = sc.alerts("assist-long-dwell")
    assert alert.band == "band-08"  # in cosmetics, next to appliances
    assert alert.ts == T0 + 65
    assert alert.zone == "appliances"
    assert alert.step == 1
    assert "appliances" in alert.message


def test_long_dwell_with_staff_in_zone_is_suppressed(catalog: RuleSet) -> None:
    sc = scenario(catalog)
    place_staff(sc, {"band-08": "b-appl", "band-07": "b-dairy"}, start=T0, seconds=120)
    sc.linger("app-anon", "b-appl", start=T0 + 5, seconds=70)
    sc.run_until(T0 + 120)
    assert sc.alerts("assist-long-dwell") == []
    assert reasons(sc, "assist-long-dwell") == ["condition:staff_in_zone"]


def test_long_dwell_of_59_seconds_is_not_enough(catalog: RuleSet) -> None:
    sc = scenario(catalog)
    place_staff(sc, {"band-08": "b-cosm"}, start=T0, seconds=120)
    sc.linger("app-anon", "b-appl", start=T0 + 5, seconds=50)
    sc.run_until(T0 + 200)
    assert sc.alerts("assist-long-dwell") == []


# =========================================================================== repeated-bell


def repeated_store(catalog: RuleSet) -> StoreScenario:
    sc = scenario(catalog)
    place_staff(sc, STAFF_FOR_DAIRY, start=T0, seconds=600)
    return sc


def test_three_presses_in_two_minutes_page_the_manager(catalog: RuleSet) -> None:
    sc = repeated_store(catalog)
    p = T0 + 10
    for dt in (0, 40, 80):
        sc.bell(p + dt, "bell-dairy")
    sc.run_until(p + 79.999)
    assert sc.alerts("repeated-bell") == []
    sc.run_until(p + 300)
    (alert,) = sc.alerts("repeated-bell")
    assert alert.band == "band-01"
    assert alert.priority == "urgent"
    assert alert.ts == p + 80
    assert alert.zone == "dairy-chilled"
    assert alert.message == "A bell in dairy-chilled was pressed 3 times without an answer."


def test_three_presses_spread_over_three_minutes_do_nothing(catalog: RuleSet) -> None:
    sc = repeated_store(catalog)
    p = T0 + 10
    for dt in (0, 90, 180):
        sc.bell(p + dt, "bell-dairy")
    sc.run_until(p + 400)
    assert sc.alerts("repeated-bell") == []
    assert decisions(sc, "repeated-bell") == []


def test_presses_of_different_bells_are_counted_apart(catalog: RuleSet) -> None:
    sc = repeated_store(catalog)
    p = T0 + 10
    sc.bell(p, "bell-dairy")
    sc.bell(p + 10, "bell-appl")
    sc.bell(p + 20, "bell-dairy")
    sc.run_until(p + 300)
    assert sc.alerts("repeated-bell") == []


def test_ack_between_presses_resets_the_count(catalog: RuleSet) -> None:
    sc = repeated_store(catalog)
    p = T0 + 10
    sc.bell(p, "bell-dairy")
    sc.bell(p + 10, "bell-dairy")
    sc.run_until(p + 10)
    (page,) = sc.alerts("service-bell")
    sc.ack(p + 15, page.band, page.id)
    sc.bell(p + 20, "bell-dairy")
    sc.bell(p + 30, "bell-dairy")
    sc.run_until(p + 35)
    assert sc.alerts("repeated-bell") == []
    # the count restarted at the ack: the third press after it fires
    sc.bell(p + 40, "bell-dairy")
    sc.run_until(p + 300)
    (alert,) = sc.alerts("repeated-bell")
    assert alert.ts == p + 40
    assert "3 times" in alert.message


def test_decline_does_not_reset_the_press_count(catalog: RuleSet) -> None:
    sc = repeated_store(catalog)
    p = T0 + 10
    sc.bell(p, "bell-dairy")
    sc.run_until(p)
    (page,) = sc.alerts("service-bell")
    sc.ack(p + 5, page.band, page.id, "decline")
    sc.bell(p + 20, "bell-dairy")
    sc.bell(p + 40, "bell-dairy")
    sc.run_until(p + 300)
    (alert,) = sc.alerts("repeated-bell")
    assert alert.ts == p + 40


# =========================================================================== one moment, one offer


def test_one_moment_yields_one_offer_highest_priority(catalog: RuleSet) -> None:
    both = Profile(
        "app-both",
        tier="silver",
        segment="dormant",
        marketing=True,
        birthday=(11, 24),
        first_visit=T0 - 1000 * DAY,
        last_visit=T0 - 250 * DAY,
        lifetime_value=7000.0,
        advisor="band-07",
    )
    sc = scenario(catalog, both)
    sc.linger("app-both", "b-door", start=T0, seconds=5)
    sc.run_until(T0 + 60)
    assert [(o.rule, o.offer) for o in sc.offers()] == [("dormant-welcome-back", "welcome-back-20")]
    assert reasons(sc, "birthday-week") == ["outranked"]
    (bday,) = decisions(sc, "birthday-week")
    assert bday.ts == T0
    assert bday.subject == "app-both"
    # the advisor alert is not an offer, so it is not outranked
    assert [a.band for a in sc.alerts("dormant-welcome-back")] == ["band-07"]


def test_outranked_offer_is_not_counted_against_its_cap(catalog: RuleSet) -> None:
    both = Profile(
        "app-both",
        tier="silver",
        segment="dormant",
        marketing=True,
        birthday=(11, 24),
        first_visit=T0 - 1000 * DAY,
        last_visit=T0 - 250 * DAY,
        lifetime_value=7000.0,
    )
    sc = scenario(catalog, both)
    sc.linger("app-both", "b-door", start=T0, seconds=5)
    # early next morning, a new visit: dormant no longer holds (seen last night),
    # the birthday still does, and its monthly cap was not used by the outranked offer
    later = T0 + 20 * HOUR
    sc.linger("app-both", "b-door", start=later, seconds=5)
    sc.run_until(later + 60)
    assert [(o.rule, o.ts) for o in sc.offers()] == [
        ("dormant-welcome-back", T0),
        ("birthday-week", later),
    ]
    assert reasons(sc, "dormant-welcome-back", "offer") == ["condition:days_since_last_visit"]


# ================================================================ guards on catalog-like rules

HOLDOUT_RULE = """\
id: holdout-hello
when:
  visit_start: {}
offer:
  id: hello
  message: Hello!
  expires: 1h
limits:
  holdout: 50%
"""


def holdout_run(rules: RuleSet, shoppers: list[str], start: float) -> dict[str, str]:
    profiles = [Profile(s, marketing=True) for s in shoppers]
    sc = StoreScenario(rules, STORE, profiles=profiles)
    for i, shopper in enumerate(shoppers):
        sc.send(sc.sighting(start + i, shopper, "b-door"))
    sc.run_until(start + len(shoppers) + 60)
    return {d.subject: d.reason for d in decisions(sc, "holdout-hello", "offer")}


def test_holdout_is_consistent_per_shopper_and_about_half(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", {"holdout-hello": HOLDOUT_RULE})
    shoppers = [f"app-h{i:03d}" for i in range(200)]
    first = holdout_run(rules, shoppers, T0)
    assert set(first) == set(shoppers)
    assert set(first.values()) == {"sent", "holdout"}
    held = sum(1 for r in first.values() if r == "holdout")
    assert 70 <= held <= 130, held
    # Another run, other order, another day: every shopper lands on the same side.
    again = holdout_run(rules, list(reversed(shoppers)), T0 + 3 * DAY)
    assert again == first


def test_holdout_shopper_stays_held_out_on_every_visit(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", {"holdout-hello": HOLDOUT_RULE})
    shoppers = [f"app-h{i:03d}" for i in range(20)]
    profiles = [Profile(s, marketing=True) for s in shoppers]
    sc = StoreScenario(rules, STORE, profiles=profiles)
    for day in range(3):
        for i, shopper in enumerate(shoppers):
            sc.send(sc.sighting(T0 + day * DAY + i, shopper, "b-door"))
    sc.run_until(T0 + 3 * DAY)
    by_shopper: dict[str, set[str]] = {}
    for d in decisions(sc, "holdout-hello"):
        by_shopper.setdefault(d.subject, set()).add(d.reason)
    assert all(len(r) == 1 for r in by_shopper.values()), by_shopper
    assert len(sc.offers()) == 3 * sum(1 for r in by_shopper.values() if r == {"sent"})


COOLDOWN_RULE = """\
id: chilled-cooldown
when:
  dwell: {zone_tag: chilled, at_least: 10s}
offer:
  id: chilled-cool
  message: Cool!
  expires: 1h
limits:
  cooldown: 1h
"""


def test_cooldown_between_offers_to_one_shopper(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", {"chilled-cooldown": COOLDOWN_RULE})
    sc = StoreScenario(rules, STORE, profiles=PROFILES)
    sc.linger("app-loyal", "b-dairy", start=T0, seconds=12)
    sc.linger("app-loyal", "b-dairy", start=T0 + 30 * MINUTE, seconds=12)
    sc.linger("app-vip", "b-dairy", start=T0 + 30 * MINUTE, seconds=12)
    sc.linger("app-loyal", "b-dairy", start=T0 + 61 * MINUTE, seconds=12)
    sc.run_until(T0 + 2 * HOUR)
    assert [(o.shopper, o.ts) for o in sc.offers()] == [
        ("app-loyal", T0 + 10),
        ("app-vip", T0 + 30 * MINUTE + 10),
        ("app-loyal", T0 + 61 * MINUTE + 10),
    ]
    assert reasons(sc, "chilled-cooldown") == ["cooldown"]
