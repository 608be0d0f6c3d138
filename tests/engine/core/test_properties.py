"""Properties of the core that must hold for any traffic (hypothesis).

* The same input gives the same actions (and the same decisions).
* A message delivered twice (same id) never doubles an action.
* With a reorder window L, any arrival order in which no event is more than L
  late yields the same decisions as in-order arrival.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floorwalker.devices.events import Event
from floorwalker.engine.core.actions import Action
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import PROFILES, STORE

SHOPPERS = ["app-loyal", "app-nocons", "app-vip", "app-dormant", "app-bday", "app-anon"]
BEACONS = sorted(STORE["beacons"])
BANDS = sorted(STORE["staff"])
CATEGORIES = ["yogurt", "cosmetics", "infant-formula", "coffee", "bread"]

step = st.one_of(
    st.tuples(
        st.just("see"),
        st.sampled_from(SHOPPERS),
        st.sampled_from(BEACONS),
        st.integers(-92, -50),
        st.integers(1, 12),
    ),
    st.tuples(
        st.just("staff"),
        st.sampled_from(BANDS),
        st.sampled_from(BEACONS),
        st.integers(-80, -50),
        st.integers(1, 12),
    ),
    st.tuples(st.just("bell"), st.sampled_from(["bell-dairy", "bell-appl"])),
    st.tuples(st.just("pos"), st.sampled_from(SHOPPERS), st.sampled_from(CATEGORIES)),
)
scripts = st.lists(st.tuples(st.floats(0.0, 30.0), step), min_size=1, max_size=40)


def build(script: list[tuple[float, Any]]) -> list[Event]:
    """Turn a script into timestamped events (a 'see' step is a run of 1 Hz sightings)."""
    sc = StoreScenario(RuleSet(()), STORE)
    events: list[Event] = []
    t = T0
    for gap, (kind, *args) in script:
        t += gap
        if kind in ("see", "staff"):
            who, beacon, rssi, n = args
            events += [
                sc.sighting(t + i, who, beacon, rssi, staff=kind == "staff") for i in range(n)
            ]
        elif kind == "bell":
            events.append(sc.bell(t, args[0]))
        else:
            shopper, category = args
            events.append(sc.pos_item(t, category=category, shopper=shopper))
    events.sort(key=lambda e: (e.ts, e.order_key))
    return events


def engine(catalog: RuleSet, lateness: float = 0.0) -> tuple[Engine, list[Any]]:
    decisions: list[Any] = []
    eng = Engine(
        catalog,
        {STORE["store"]: StoreScenario(RuleSet(()), STORE).registry},
        profiles=ProfileBook({p.shopper: p for p in PROFILES}),
        # Device health is about wall time passing, not about these events: a
        # redelivery 3 s late moves the clock past a health check in one run only.
        settings=EngineSettings(lateness_s=lateness, device_silence_s=float("inf")),
        on_decision=decisions.append,
    )
    return eng, decisions


def feed(eng: Engine, arrivals: list[tuple[float, Event]]) -> list[Action]:
    out: list[Action] = []
    for at, event in arrivals:
        eng.advance_to(at)
        eng.ingest(event)
        out += eng.drain()
    eng.flush()
    return out + eng.drain()


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(script=scripts)
def test_same_input_same_actions(catalog: RuleSet, script: list[tuple[float, Any]]) -> None:
    events = build(script)
    first, d1 = engine(catalog)
    second, d2 = engine(catalog)
    assert feed(first, [(e.ts, e) for e in events]) == feed(second, [(e.ts, e) for e in events])
    assert d1 == d2


@PROPS
@given(script=scripts, data=st.data())
def test_duplicate_delivery_never_doubles(
    catalog: RuleSet, script: list[tuple[float, Any]], data: st.DataObject
) -> None:
    events = build(script)
    once, _ = engine(catalog)
    expected = feed(once, [(e.ts, e) for e in events])
    twice, _ = engine(catalog)
    arrivals: list[tuple[float, Event]] = []
    for e in events:
        arrivals.append((e.ts, e))
        if data.draw(st.booleans()):
            # QoS 1 redelivery: the same message again, now or a little later.
            arrivals.append((e.ts + data.draw(st.sampled_from([0.0, 0.5, 3.0])), e))
    arrivals.sort(key=lambda a: a[0])
    got = feed(twice, arrivals)
    assert sorted(map(repr, got)) == sorted(map(repr, expected))
    assert len({a.id for a in got if hasattr(a, "code")}) == len(
        [a for a in got if hasattr(a, "code")]
    )


@PROPS
@given(script=scripts, data=st.data())
def test_reordering_within_lateness_changes_nothing(
    catalog: RuleSet, script: list[tuple[float, Any]], data: st.DataObject
) -> None:
    lateness = 2.0
    events = build(script)
    in_order, d_in = engine(catalog, lateness)
    expected = feed(in_order, [(e.ts, e) for e in events])
    shuffled, d_sh = engine(catalog, lateness)
    delays: Callable[[], float] = lambda: data.draw(st.floats(0.0, lateness * 0.999))  # noqa: E731
    arrivals = sorted(((e.ts + delays(), e) for e in events), key=lambda a: a[0])
    assert feed(shuffled, arrivals) == expected
    assert d_sh == d_in
