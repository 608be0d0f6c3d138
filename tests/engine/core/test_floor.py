"""The floor picture (floor_view): shoppers per zone, staff, alerts and their schedule, counts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from floorwalker.engine.core.floor import floor_view
from floorwalker.engine.core.testing import T0, StoreScenario
from tests.engine.conftest import PERMISSIVE_POLICY, PROFILES, STORE, place_staff, write_rules

SID = STORE["store"]
BELL = """\
id: bell
when: {bell: {}}
alert:
  to: nearest
  priority: normal
  message: Help in {zone}.
  escalate: [{after: 30s, to: next}, {after: 60s, to: {role: manager}}]
  response_target: 20s
"""
DWELL = """\
id: dwell
when: {dwell: {zone_tag: chilled, at_least: 5s}}
offer: {id: yogurt, message: Yogurt!, expires: 1h}
limits: {per_shopper: []}
"""


def scenario(tmp_path: Path, *texts: str) -> StoreScenario:
    rules = write_rules(tmp_path, {f"r{i}": t for i, t in enumerate(texts)}, PERMISSIVE_POLICY)
    return StoreScenario(rules, STORE, profiles=PROFILES)


def test_every_zone_is_counted_and_a_shopper_unseen_for_the_leave_gap_is_gone(
    tmp_path: Path,
) -> None:
    sc = scenario(tmp_path, BELL)
    sc.linger("app-loyal", "b-dairy", start=T0, seconds=30)
    sc.linger("app-vip", "b-dairy", start=T0, seconds=5)
    sc.linger("app-bday", "b-cosm", start=T0, seconds=30)
    sc.run_until(T0 + 30)
    floor = floor_view(sc.engine)[SID]
    assert set(floor.shoppers) == set(STORE["zones"])
    # app-vip's last sighting was 25 s ago (leave gap 10 s); no rule listens for leave,
    # so no timer has noticed, but the page does not count them.
    assert floor.shoppers["dairy-chilled"] == 1
    assert floor.shoppers["cosmetics"] == 1
    assert floor.shoppers["entrance"] == 0
    assert floor.shoppers_total == 2


def test_an_open_alert_shows_who_was_paged_and_when_it_escalates(tmp_path: Path) -> None:
    sc = scenario(tmp_path, BELL)
    place_staff(sc, {"band-07": "b-dairy", "band-08": "b-cosm"}, start=T0, seconds=300)
    sc.bell(T0 + 10, "bell-dairy")
    sc.run_until(T0 + 12)
    floor = floor_view(sc.engine)[SID]
    (alert,) = floor.alerts
    assert (alert.rule, alert.zone, alert.state) == ("bell", "dairy-chilled", "open")
    assert (alert.step, alert.steps) == (1, 3)
    assert alert.paged == ("band-07",) and alert.holder == "band-07"
    assert alert.next_step_at == pytest.approx(T0 + 40)
    assert alert.ends_at == pytest.approx(T0 + 10 + 60 + 60)
    bands = {b.band: b for b in floor.bands}
    assert bands["band-07"].zone == "dairy-chilled" and bands["band-07"].alerts == (alert.id,)
    assert bands["band-08"].zone == "cosmetics" and bands["band-08"].alerts == ()
    assert bands["band-01"].zone is None and bands["band-01"].name == "Wang Wei"

    sc.run_until(T0 + 41)  # the first escalation: the next nearest band
    (alert,) = floor_view(sc.engine)[SID].alerts
    assert alert.step == 2 and alert.paged == ("band-07", "band-08")
    assert alert.holder == "band-08"
    assert alert.next_step_at == pytest.approx(T0 + 70)


def test_an_answer_ends_the_countdown_and_counts_against_the_target(tmp_path: Path) -> None:
    sc = scenario(tmp_path, BELL)
    place_staff(sc, {"band-07": "b-dairy"}, start=T0, seconds=300)
    sc.bell(T0 + 10, "bell-dairy", id="p1")
    sc.bell(T0 + 11, "bell-appl", id="p2")
    sc.run_until(T0 + 12)
    first, second = (a.id for a in floor_view(sc.engine)[SID].alerts)
    sc.ack(T0 + 25, "band-07", first)  # 15 s: within the 20 s target
    sc.ack(T0 + 45, "band-07", second)  # 34 s: late
    sc.run_until(T0 + 50)
    floor = floor_view(sc.engine)[SID]
    by_id = {a.id: a for a in floor.alerts}
    assert by_id[first].state == "acknowledged"
    assert by_id[first].next_step_at is None and by_id[first].ends_at is None
    assert by_id[first].acked_by == "band-07"
    (response,) = floor.responses
    assert (response.rule, response.answered, response.within) == ("bell", 2, 1)
    assert response.target_s == 20.0 and response.worst_s == pytest.approx(34.0)
    assert {b.band: b.on for b in floor.bands}["band-07"] in {first, second}

    sc.ack(T0 + 60, "band-07", first, "done")
    sc.run_until(T0 + 61)
    assert [a.id for a in floor_view(sc.engine)[SID].alerts] == [second]  # done: off the page


def test_coupons_are_counted_per_store(tmp_path: Path) -> None:
    sc = scenario(tmp_path, DWELL)
    sc.linger("app-loyal", "b-dairy", start=T0, seconds=10)
    sc.run_until(T0 + 12)
    (offer,) = sc.offers("dwell")
    sc.redeem(T0 + 20, offer.code, shopper="app-loyal")
    sc.run_until(T0 + 21)
    floor = floor_view(sc.engine)[SID]
    assert (floor.coupons_issued, floor.coupons_redeemed) == (1, 1)


def test_the_picture_is_frozen_and_equal_when_nothing_changed(tmp_path: Path) -> None:
    sc = scenario(tmp_path, BELL)
    sc.linger("app-loyal", "b-dairy", start=T0, seconds=20)
    sc.run_until(T0 + 5)
    before = floor_view(sc.engine)[SID]
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.coupons_issued = 3  # type: ignore[misc]
    sc.engine.advance_to(T0 + 5.5)  # only the clock moved
    assert floor_view(sc.engine)[SID] == before
    sc.run_until(T0 + 20)
    sc.engine.advance_to(T0 + 40)  # the shopper is gone
    assert floor_view(sc.engine)[SID] != before
