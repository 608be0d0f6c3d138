"""The staff loop: alert life cycle, who is busy, sharing the load, response targets."""

from __future__ import annotations

from pathlib import Path

from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import PERMISSIVE_POLICY, PROFILES, STORE, place_staff, write_rules

BELL = """\
id: bell
when: {bell: {}}
alert:
  to: nearest
  priority: normal
  message: Help in {zone}.
  escalate: [{after: 30s, to: next}]
  response_target: 20s
"""
GREET = """\
id: greet
when: {enter: {zone_tag: entrance}}
alert:
  to: nearest
  priority: low
  message: Greet at {zone}.
  band_every: 2m
  group_within: 30s
"""


def rules(tmp_path: Path, *texts: str) -> RuleSet:
    return write_rules(tmp_path, {f"r{i}": t for i, t in enumerate(texts)}, PERMISSIVE_POLICY)


def staffed(ruleset: RuleSet, **bands: str) -> StoreScenario:
    sc = StoreScenario(ruleset, STORE, profiles=PROFILES)
    place_staff(sc, bands or {"band-07": "b-dairy", "band-08": "b-dairy"}, start=T0, seconds=900)
    return sc


def test_an_unanswered_chain_ends_and_the_next_press_opens_a_louder_alert(tmp_path: Path) -> None:
    sc = staffed(rules(tmp_path, BELL))
    sc.bell(T0 + 10, "bell-dairy")
    sc.run_until(T0 + 60)
    first = sc.alerts("bell")
    assert [a.step for a in first] == [1, 2]
    sc.bell(T0 + 70, "bell-dairy")  # chain over at 10 + 30 + 60 = 100 s: still open
    sc.run_until(T0 + 80)
    assert sc.suppressed("bell") == ["already_open"]
    sc.run_until(T0 + 101)
    (alert,) = sc.engine.stores[STORE["store"]].state.alerts.alerts.values()
    assert alert.state == "unanswered"
    assert sc.engine.gauges().alerts["unanswered"] == 1 and sc.engine.gauges().open_alerts == 0
    sc.bell(T0 + 120, "bell-dairy")
    sc.run_until(T0 + 121)
    again = sc.alerts("bell")[len(first) :]
    assert len(again) == 1 and again[0].id != first[0].id
    assert again[0].priority == "high"  # nobody came last time
    assert sc.engine.stats.unanswered["bell"] == 1


def test_only_an_acknowledged_alert_makes_a_band_busy(tmp_path: Path) -> None:
    sc = staffed(rules(tmp_path, BELL))
    sc.bell(T0 + 10, "bell-dairy", id="p1")
    sc.run_until(T0 + 11)
    (page,) = sc.alerts("bell")
    assert page.band == "band-07"  # equals: by id
    # An unanswered page does not make band-07 busy, but it holds one open page:
    # the next alert goes to the band holding fewer.
    sc.bell(T0 + 12, "bell-appl", id="p2")
    sc.run_until(T0 + 13)
    assert sc.alerts("bell")[-1].band == "band-08"
    sc.ack(T0 + 14, "band-07", page.id)
    sc.ack(T0 + 14, "band-08", sc.alerts("bell")[-1].id, "done")
    sc.run_until(T0 + 15)
    book = sc.engine.stores[STORE["store"]].state.alerts
    assert book.busy_bands(T0 + 15, 900.0) == {"band-07"}
    sc.bell(T0 + 20, "bell-appl", id="p3")  # band-07 is on it: band-08 gets this one
    sc.run_until(T0 + 21)
    assert sc.alerts("bell")[-1].band == "band-08"
    assert book.busy_bands(T0 + 14 + 901, 900.0) == frozenset()  # the busy timeout


def test_a_declined_page_passes_on_at_once_and_the_decliner_is_not_busy(tmp_path: Path) -> None:
    sc = staffed(rules(tmp_path, BELL))
    sc.bell(T0 + 10, "bell-dairy")
    sc.run_until(T0 + 11)
    (page,) = sc.alerts("bell")
    sc.ack(T0 + 12, page.band, page.id, "decline")
    sc.run_until(T0 + 13)
    assert [(a.band, a.step) for a in sc.alerts("bell")] == [("band-07", 1), ("band-08", 1)]
    book = sc.engine.stores[STORE["store"]].state.alerts
    assert book.busy_bands(T0 + 13, 900.0) == frozenset()
    assert book.load() == {"band-08": 1}


def test_greetings_are_shared_and_grouped(tmp_path: Path) -> None:
    sc = staffed(rules(tmp_path, GREET), **{"band-07": "b-door", "band-08": "b-door"})
    for n, shopper in enumerate(("app-loyal", "app-vip", "app-anon")):
        sc.linger(shopper, "b-door", start=T0 + 100 + n, seconds=5)  # arriving together
    sc.linger("app-bday", "b-door", start=T0 + 200, seconds=5)  # later, alone
    sc.linger("app-dormant", "b-door", start=T0 + 260, seconds=5)
    sc.run_until(T0 + 400)
    bands = [a.band for a in sc.alerts("greet")]
    assert len(bands) == 3  # one for the group, one each for the later two
    assert sc.suppressed("greet").count("grouped") == 2
    assert bands[0] != bands[1]  # the band greeted at 100 s is capped until 220 s
    assert sc.engine.stats.pages == {"band-07": 2, "band-08": 1}


def test_response_times_are_measured_against_the_rules_target(tmp_path: Path) -> None:
    sc = staffed(rules(tmp_path, BELL))
    sc.bell(T0 + 10, "bell-dairy", id="p1")
    sc.bell(T0 + 11, "bell-appl", id="p2")
    sc.run_until(T0 + 12)
    fast, slow = sc.alerts("bell")
    sc.ack(T0 + 20, fast.band, fast.id)
    sc.ack(T0 + 40, slow.band, slow.id)
    sc.run_until(T0 + 41)
    stats = sc.engine.stats
    assert stats.response_s["bell"] == [10.0, 29.0]
    assert stats.response_target_s == {"bell": 20.0}
    assert stats.within_target["bell"] == 1


def test_a_band_unseen_for_its_leave_gap_is_not_in_its_old_zone(tmp_path: Path) -> None:
    sc = StoreScenario(rules(tmp_path, BELL), STORE, profiles=PROFILES)
    place_staff(sc, {"band-07": "b-dairy"}, start=T0, seconds=20)  # then silent
    place_staff(sc, {"band-08": "b-appl"}, start=T0, seconds=900)
    sc.bell(T0 + 120, "bell-dairy")
    sc.run_until(T0 + 121)
    assert sc.alerts("bell")[0].band == "band-08"  # band-07's location is stale


def test_replay_ends_when_a_slow_bands_dwell_timer_is_already_due(tmp_path: Path) -> None:
    # A band reporting every 10 s enters at its second report; a 5 s dwell counted from
    # its first report is due in the past then. The end of a replay still fires it.
    dwell = "id: d\nwhen: {dwell: {zone_tag: dairy, at_least: 5s}}\n"
    dwell += "alert: {to: {role: manager}, message: dwell}\n"
    sc = StoreScenario(rules(tmp_path, dwell), STORE, profiles=PROFILES)
    place_staff(sc, {"band-01": "b-appl"}, start=T0, seconds=60)
    events = [sc.sighting(T0 + 10 * k, "app-loyal", "b-dairy", -70) for k in range(2)]
    actions = sc.engine.run(events)
    assert [a.rule for a in actions] == ["d"]
