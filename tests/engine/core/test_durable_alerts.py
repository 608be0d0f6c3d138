"""Alerts written to a journal survive a restart; device health pages the manager."""

from __future__ import annotations

from typing import Any

from floorwalker.engine.core.alerts import OpenAlert
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import PROFILES, STORE


class MemoryJournal:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def save(self, alert: OpenAlert) -> None:
        self.records[alert.id] = alert.to_record()

    def drop(self, store: str, alert_id: str) -> None:
        self.records.pop(alert_id, None)


def staffed(catalog: RuleSet, journal: MemoryJournal) -> StoreScenario:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES, journal=journal)
    for band, beacon in (("band-07", "b-dairy"), ("band-08", "b-coffee"), ("band-01", "b-door")):
        sc.linger(band, beacon, start=T0 - 5, seconds=400, staff=True)
    return sc


def test_restart_neither_loses_nor_repeats_an_escalation(catalog: RuleSet) -> None:
    journal = MemoryJournal()
    before = staffed(catalog, journal)
    before.bell(T0 + 10, "bell-dairy", id="press-1")
    before.run_until(T0 + 45)  # step 1 at +10, step 2 at +40; killed before step 3 (+100)
    assert [a.step for a in before.alerts("service-bell")] == [1, 2]
    (record,) = journal.records.values()
    assert record["step"] == 2

    after = staffed(catalog, journal)  # a new process: empty memory, same journal
    assert after.engine.restore_alerts(list(journal.records.values())) == 1
    after.run_until(T0 + 200)
    steps = [(a.step, a.ts - T0, a.band) for a in after.alerts("service-bell")]
    assert steps == [(3, 100.0, "band-01")]  # only the step not yet sent, at its time


def test_restored_alert_can_be_acknowledged(catalog: RuleSet) -> None:
    journal = MemoryJournal()
    before = staffed(catalog, journal)
    before.bell(T0 + 10, "bell-dairy", id="press-1")
    before.run_until(T0 + 20)
    (page,) = before.alerts("service-bell")
    after = staffed(catalog, journal)
    after.engine.restore_alerts(list(journal.records.values()))
    after.ack(T0 + 25, page.band, page.id)
    after.run_until(T0 + 200)
    assert after.alerts("service-bell") == []
    assert after.engine.stats.response_s["service-bell"] == [15.0]
    assert journal.records[page.id]["acked_by"] == page.band


def test_silent_gateway_pages_the_manager_once(catalog: RuleSet) -> None:
    settings = EngineSettings(device_silence_s=120.0, health_every_s=10.0)
    sc = StoreScenario(catalog, STORE, profiles=PROFILES, settings=settings)
    sc.linger("app-loyal", "b-back", start=T0, seconds=600, every=5.0)  # only gw-1 reports
    sc.run_until(T0 + 600)
    health = sc.alerts("device-health")
    assert [(a.band, a.priority) for a in health] == [("band-01", "high")]
    assert "gw-2" in health[0].message and health[0].ts - T0 <= 130.0
    assert sc.engine.gauges().unhealthy_devices == 1


def test_device_reporting_offline_pages_the_manager(catalog: RuleSet) -> None:
    settings = EngineSettings(device_silence_s=60.0, health_every_s=5.0)
    sc = StoreScenario(catalog, STORE, profiles=PROFILES, settings=settings)
    for gw in ("gw-1", "gw-2"):
        sc.status(T0, gw, online=True)
    sc.status(T0 + 1, "bell-appl", online=False)
    for t in range(0, 200, 20):
        for gw in ("gw-1", "gw-2"):
            sc.status(T0 + t, gw, online=True)
    sc.run_until(T0 + 200)
    health = sc.alerts("device-health")
    assert len(health) == 1 and "bell-appl is offline" in health[0].message
    assert health[0].zone == "appliances"


def test_replay_tail_does_not_page_about_the_end_of_the_capture(catalog: RuleSet) -> None:
    settings = EngineSettings(device_silence_s=60.0, health_every_s=5.0)
    sc = StoreScenario(catalog, STORE, profiles=PROFILES, settings=settings)
    for t in range(0, 50, 5):
        for gw in ("gw-1", "gw-2"):
            sc.status(T0 + t, gw, online=True)
    sc.run_until(T0 + 50)
    sc.engine.flush(3600.0)
    sc.actions.extend(sc.engine.drain())
    assert sc.alerts("device-health") == []
