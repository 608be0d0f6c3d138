"""Saving and restoring a store unit.

The property: for any traffic and any cut point, run -> snapshot -> restore into
a fresh engine -> continue gives byte-identical actions and decisions to the
uninterrupted run. The guard store and the profiles are external (Redis when
live) and survive the "crash", so both runs share them; replay's in-memory ones
are saved by their own snapshots, tested here too.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floorwalker.devices.events import Event, Sighting
from floorwalker.engine.core import snapshot as codec
from floorwalker.engine.core.actions import Action, Alert, Decision
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.guards import InMemoryGuardStore
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.errors import StateError
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import PROFILES, STORE
from tests.engine.core.test_properties import build, scripts

SID: str = STORE["store"]


class World:
    """What outlives an engine process: the guard store, the profiles, the output."""

    def __init__(self, catalog: RuleSet, lateness: float) -> None:
        self.catalog = catalog
        self.settings = EngineSettings(lateness_s=lateness, device_silence_s=float("inf"))
        self.registry = StoreScenario(RuleSet(()), STORE).registry
        self.guards = InMemoryGuardStore()
        self.profiles = ProfileBook({p.shopper: p for p in PROFILES})
        self.actions: list[Action] = []
        self.decisions: list[Decision] = []

    def engine(self) -> Engine:
        return Engine(
            self.catalog,
            {SID: self.registry},
            profiles=self.profiles,
            guards=self.guards,
            settings=self.settings,
            on_decision=self.decisions.append,
        )

    def wire(self) -> list[bytes]:
        """The actions as the bytes a runner would publish, and the decision record."""
        out = [orjson.dumps([a.topic(), a.payload()]) for a in self.actions]
        return out + [orjson.dumps(d.to_json()) for d in self.decisions]


def run(world: World, events: list[Event], cut: int | None, pause: float = 0.0) -> None:
    eng = world.engine()
    for i, event in enumerate(events):
        if i == cut:
            eng.advance_to(event.ts - pause)  # time may pass before the snapshot is taken
            world.actions += eng.drain()
            data = eng.snapshot_store(SID)
            eng = world.engine()  # a fresh process: nothing but the bytes
            assert eng.restore_store(data) == SID
        eng.advance_to(event.ts)
        eng.ingest(event)
        world.actions += eng.drain()
    eng.flush()
    world.actions += eng.drain()


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(script=scripts, data=st.data())
def test_restore_at_any_cut_continues_byte_identically(
    catalog: RuleSet, script: list[tuple[float, Any]], data: st.DataObject
) -> None:
    events = build(script)
    lateness = data.draw(st.sampled_from([0.0, 2.0]), label="lateness")
    cut = data.draw(st.integers(0, len(events) - 1), label="cut")
    pause = data.draw(st.sampled_from([0.0, 0.4]), label="pause")
    whole = World(catalog, lateness)
    run(whole, events, None)
    split = World(catalog, lateness)
    run(split, events, cut, pause)
    assert split.wire() == whole.wire()


def busy_engine(catalog: RuleSet) -> tuple[Engine, World]:
    """A store mid-afternoon: shoppers lingering, a bell escalating, staff about."""
    world = World(catalog, 0.0)
    sc = StoreScenario(RuleSet(()), STORE)
    events: list[Event] = []
    for band, beacon in (("band-07", "b-dairy"), ("band-01", "b-door")):
        events += [sc.sighting(T0 + i, band, beacon, -60, staff=True) for i in range(20)]
    for n, shopper in enumerate(p.shopper for p in PROFILES):
        events += [sc.sighting(T0 + n + i, shopper, "b-dairy", -62) for i in range(6)]
    events.append(sc.bell(T0 + 8, "bell-dairy"))
    events.sort(key=lambda e: (e.ts, e.order_key))
    eng = world.engine()
    for e in events:
        eng.feed(e)
        world.actions += eng.drain()
    return eng, world


def test_a_snapshot_holds_timers_alerts_and_presence(catalog: RuleSet) -> None:
    eng, world = busy_engine(catalog)
    data = eng.snapshot_store(SID)
    fresh = world.engine()
    fresh.restore_store(data)
    before, after = eng.stores[SID], fresh.stores[SID]
    assert sorted(after.timers.heap) == sorted(before.timers.heap)
    assert after.state.alerts.alerts.keys() == before.state.alerts.alerts.keys()
    assert after.state.presence.current() == before.state.presence.current()
    assert after.state.alerts.last_paged == before.state.alerts.last_paged
    assert fresh.snapshot_store(SID) == data  # the same state, the same bytes


def test_unknown_versions_and_damage_are_refused(catalog: RuleSet) -> None:
    eng, _ = busy_engine(catalog)
    data = eng.snapshot_store(SID)
    newer = data[:4] + (codec.VERSION + 1).to_bytes(2, "big") + data[6:]
    with pytest.raises(StateError, match=r"schema version 2 is not one this build reads"):
        eng.restore_store(newer)
    with pytest.raises(StateError, match="not a Floorwalker store snapshot"):
        eng.restore_store(b"\x80\x04pickle")
    with pytest.raises(StateError, match="damaged"):
        eng.restore_store(data[:-40])
    other = data.replace(SID.encode(), b"s999", 1)
    with pytest.raises(StateError, match="s999"):
        eng.restore_store(other)


def test_a_newer_compatible_version_reads_old_bytes(
    catalog: RuleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng, world = busy_engine(catalog)
    old = eng.snapshot_store(SID)
    upgraded: list[int] = []

    def v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
        upgraded.append(1)
        return doc

    monkeypatch.setattr(codec, "VERSION", 2)
    monkeypatch.setattr(codec, "MIGRATIONS", {1: v1_to_v2})
    fresh = world.engine()
    fresh.restore_store(old)
    assert upgraded == [1]
    assert fresh.stores[SID].state.presence.current() == eng.stores[SID].state.presence.current()


def test_changed_stores_names_each_change_once(catalog: RuleSet) -> None:
    eng, _ = busy_engine(catalog)
    assert eng.changed_stores() == [SID]
    assert eng.changed_stores() == []
    sc = StoreScenario(RuleSet(()), STORE)
    eng.ingest(sc.sighting(eng.clock, "app-vip", "b-dairy", -60))
    assert eng.changed_stores() == [SID]


def test_a_sighting_the_router_takes_itself_still_marks_its_store_changed() -> None:
    # The router's fast path sets no flag; the store's sighting count tells instead.
    eng = Engine(RuleSet(()), {SID: StoreScenario(RuleSet(()), STORE).registry})
    sc = StoreScenario(RuleSet(()), STORE)
    for i in range(4):
        eng.advance_to(T0 + i)
        eng.ingest(sc.sighting(T0 + i, "app-vip", "b-dairy", -60))
    store = eng.stores[SID]
    placed = store.state.presence.states["app-vip"]
    assert placed.zone is not None and placed.cand is None
    assert eng.changed_stores() == [SID]
    assert eng.changed_stores() == []
    taken_before = store.stats.sightings
    eng.advance_to(T0 + 5)
    eng.ingest(sc.sighting(T0 + 5, "app-vip", "b-dairy", -60))  # again the zone they are in
    assert store.stats.sightings == taken_before + 1 and placed.seen == T0 + 5
    assert not store.changed  # no flag was set: the count says it
    assert eng.changed_stores() == [SID]
    assert eng.changed_stores() == []
    fresh = Engine(RuleSet(()), {SID: sc.registry})
    fresh.restore_store(eng.snapshot_store(SID))
    assert fresh.changed_stores() == []  # a restore is the saved state, not a change


def test_a_staff_sighting_the_router_takes_itself_counts_and_marks_its_store_changed() -> None:
    # The router hands a band's sighting to Store.on_staff_sighting: no flag, the count.
    sc = StoreScenario(RuleSet(()), STORE)
    eng = Engine(RuleSet(()), {SID: sc.registry})
    by_item = Engine(RuleSet(()), {SID: sc.registry})  # the same events through on_item
    for i in range(6):
        event = sc.sighting(T0 + i, "band-07", "b-dairy", -60, staff=True)
        eng.advance_to(T0 + i)
        assert eng.ingest(event) is None
        by_item.advance_to(T0 + i)
        assert by_item.stores[SID].on_item(event, by_item.clock) is None
    store = eng.stores[SID]
    assert eng.changed_stores() == [SID] and eng.changed_stores() == []
    eng.advance_to(T0 + 6)
    eng.ingest(sc.sighting(T0 + 6, "band-07", "b-dairy", -60, staff=True))
    assert not store.changed  # no flag was set: the count says it
    assert eng.changed_stores() == [SID]
    assert store.stats.accepted_by_type()[Sighting] == 7  # counted as accepted sightings
    zone = sc.registry.beacons["b-dairy"]
    assert store.state.staff.presence.current() == [("band-07", zone, T0)]
    assert store.clock == T0 + 6 and store.last_heard[event.gateway] == T0 + 6
    other = by_item.stores[SID]
    assert other.state.staff.presence.current() == [("band-07", zone, T0)]
    assert other.stats.accepted_by_type()[Sighting] == 6


def test_a_restore_under_other_rules_rearms_dwells(catalog: RuleSet) -> None:
    eng, world = busy_engine(catalog)
    sc = StoreScenario(RuleSet(()), STORE)
    for _ in range(4):  # someone just arrived at the chilled shelf: their dwell is pending
        eng.feed(sc.sighting(eng.clock + 1, "app-late", "b-dairy", -60))
    old = eng.stores[SID].state.generation
    assert any(t.kind == "dwell" and t.args[1] == "app-late" for t in eng.stores[SID].timers.heap)
    data = eng.snapshot_store(SID)
    world.catalog = RuleSet(tuple(r for r in catalog.rules if r.id != "hesitant-tester"))
    fresh = world.engine()
    fresh.restore_store(data)
    store = fresh.stores[SID]
    assert store.state.generation == old + 1
    rearmed = [t for t in store.timers.heap if t.kind == "dwell" and t.args[1] == "app-late"]
    assert sorted(int(str(t.args[5])) for t in rearmed) == [old, old + 1]  # the old one is ignored


def test_engine_state_and_replay_stores_round_trip(catalog: RuleSet) -> None:
    eng, world = busy_engine(catalog)
    guards = InMemoryGuardStore()
    guards.restore(world.guards.snapshot())
    assert guards.snapshot() == world.guards.snapshot()
    book = ProfileBook()
    book.restore(world.profiles.snapshot())
    assert all(book.get(p.shopper) == world.profiles.get(p.shopper) for p in PROFILES)
    fresh = world.engine()
    fresh.restore(eng.snapshot())
    assert fresh.clock == eng.clock
    assert fresh.snapshot() == eng.snapshot()
    with pytest.raises(StateError, match="saved guard state is damaged"):
        guards.restore(b"{}")
    with pytest.raises(StateError, match="saved profiles are damaged"):
        book.restore(b'{"tier": 3}\n')


def test_drain_keeps_decision_order_across_stores_that_act_twice(catalog: RuleSet) -> None:
    other = dict(STORE, store="s002")
    world = World(catalog, 0.0)
    regs = {SID: world.registry, "s002": StoreScenario(RuleSet(()), other).registry}
    eng = Engine(catalog, regs, profiles=world.profiles, settings=world.settings)
    a, b = StoreScenario(RuleSet(()), STORE), StoreScenario(RuleSet(()), other)
    for sc in (a, b):
        for band, beacon in (("band-07", "b-dairy"), ("band-08", "b-coffee")):
            for i in range(5):
                eng.feed(sc.sighting(T0 + i, band, beacon, -60, staff=True))
    eng.drain()
    # Two bells in each store, then one clock step fires all four escalations at once.
    for n, sc in enumerate((a, b, a, b)):
        eng.feed(sc.bell(T0 + 10, "bell-dairy" if n < 2 else "bell-appl", id=f"p{n}"))
    first = eng.drain()
    assert [x.store for x in first] == [SID, "s002", SID, "s002"]
    eng.advance_to(T0 + 41)
    steps = eng.drain()
    assert len(steps) == 4 and [x.store for x in steps] == [SID, SID, "s002", "s002"]
    assert all(isinstance(x, Alert) and x.step == 2 for x in steps)
