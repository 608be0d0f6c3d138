"""The edge runner's per-message path, without a broker: step, publish, dead letter, ack."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from floorwalker.devices.decode import Decoder
from floorwalker.devices.events import Event
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.engine.runners.edge import EdgeRunner
from floorwalker.engine.runners.metrics import OUTCOMES, Metrics
from floorwalker.engine.runners.mqtt import Inbound
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import PROFILES, STORE


class FakeLink:
    def __init__(self) -> None:
        self.published: list[tuple[str, Any]] = []
        self.acked: list[int] = []

    def publish(self, topic: str, payload: bytes, key: str | None = None) -> int:
        self.published.append((topic, orjson.loads(payload)))
        return len(self.published)

    def ack(self, item: Inbound) -> None:
        self.acked.append(item.mid)

    def flush(self) -> None:
        """The core-thread link writes here; nothing to write for a fake."""


class FakeHistory:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    def observe(self, event: Event) -> None:
        self.seen.append(event)


def runner(
    catalog: RuleSet, history: FakeHistory | None = None, *, shed_after_s: float = 0.0
) -> tuple[EdgeRunner, FakeLink]:
    registry = Registry.from_mapping(STORE)
    edge = EdgeRunner.__new__(EdgeRunner)  # no broker, no settings file: just the core path
    edge.settings = SimpleNamespace(prefix="fw")  # type: ignore[assignment]
    edge.metrics = Metrics()
    edge.breaker = None
    edge.outcomes = dict.fromkeys(OUTCOMES, 0)
    edge._letters = 0
    edge._shed_after = shed_after_s
    link = FakeLink()
    edge.link = link  # type: ignore[assignment]
    edge.history = history
    edge.recorder = None
    edge.engine = Engine(
        catalog, {"s001": registry}, profiles=ProfileBook({p.shopper: p for p in PROFILES})
    )
    edge.decoder = Decoder({"s001": registry})
    edge.registries = {"s001": registry}
    edge.step = edge._make_step(edge.engine)
    return edge, link


def message(topic: str, payload: dict[str, Any], mid: int) -> Inbound:
    return Inbound(topic, orjson.dumps(payload), time.time(), mid, 1)


def test_a_message_is_decided_published_observed_and_acked(catalog: RuleSet) -> None:
    history = FakeHistory()
    edge, link = runner(catalog, history)
    assert edge.engine is not None
    now = time.time()
    edge._handle_safely(edge.engine, message("fw/s001/bell/bell-dairy", {"id": "p", "ts": now}, 1))
    pos = {"id": "l1", "ts": now, "receipt": "r", "sku": "x", "category": "fruit"}
    edge._handle_safely(edge.engine, message("fw/s001/pos/pos-1", pos, 2))
    edge._handle_safely(edge.engine, message("fw/s001/pos/pos-1", pos, 3))  # redelivered
    edge._handle_safely(edge.engine, message("fw/s001/pos/nowhere", pos, 4))
    topics = [t for t, _ in link.published]
    assert topics[0].startswith("fw/s001/band/") and topics[0].endswith("/alert")
    assert [p["reason"] for t, p in link.published if t == "fw/s001/deadletter"] == [
        "duplicate",
        "unknown_device",
    ]
    assert link.acked == [1, 2, 3, 4]
    assert [type(e).__name__ for e in history.seen] == ["PosItem"]  # accepted POS only


def test_an_internal_error_is_dead_lettered_acked_and_the_next_message_served(
    catalog: RuleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge, link = runner(catalog)
    engine = edge.engine
    assert engine is not None
    real = engine.ingest

    def ingest(event: Event) -> str | None:
        if event.ts == 1.0e9 + 5:
            raise RuntimeError("boom")
        return real(event)

    monkeypatch.setattr(engine, "ingest", ingest)
    now = time.time()
    bad = message("fw/s001/bell/bell-dairy", {"id": "x", "ts": 1.0e9 + 5}, 1)
    edge._handle_safely(engine, bad)
    edge._handle_safely(engine, message("fw/s001/bell/bell-dairy", {"id": "p", "ts": now}, 2))
    dead = [p for t, p in link.published if t == "fw/_unknown/deadletter"]
    assert [(p["reason"], p["ts"]) for p in dead] == [("internal_error", bad.arrival)]
    assert any(t.endswith("/alert") for t, _ in link.published)
    assert link.acked == [1, 2]


def sightings(ages: list[float], now: float) -> list[dict[str, Any]]:
    return [
        {"ts": now - age, "beacon": "b-dairy", "rssi": -60, "shopper": f"app-{i}"}
        for i, age in enumerate(ages)
    ]


def test_every_message_ends_in_exactly_one_outcome(catalog: RuleSet) -> None:
    """processed, deadlettered (any of it rejected) or shed (all sightings stale), then acked."""
    edge, link = runner(catalog, shed_after_s=30.0)
    assert edge.engine is not None
    now = time.time()
    beacon = "fw/s001/beacon/gw-1"
    batches: list[Any] = [
        sightings([1.0], now),  # fresh: processed
        sightings([40.0, 50.0], now),  # all stale: shed
        sightings([40.0, 1.0], now),  # one fresh: processed, the stale one too
        [*sightings([1.0], now), {"ts": now, "beacon": "b-dairy"}],  # one bad item
        {"id": "p", "ts": now},  # a bell press on a gateway topic: rejected
    ]
    for mid, body in enumerate(batches, start=1):
        edge._handle_safely(edge.engine, Inbound(beacon, orjson.dumps(body), now, mid, 1))
    edge._handle_safely(edge.engine, message("fw/s001/bell/bell-dairy", {"id": "q", "ts": now}, 6))
    assert edge.outcomes == {"processed": 3, "deadlettered": 2, "shed": 1}
    assert sum(edge.outcomes.values()) == 6
    assert link.acked == [1, 2, 3, 4, 5, 6]
    dead = [p for t, p in link.published if t.endswith("/deadletter")]
    assert len(dead) == 2


def test_shedding_off_processes_stale_sightings(catalog: RuleSet) -> None:
    edge, link = runner(catalog, shed_after_s=0.0)
    assert edge.engine is not None
    now = time.time()
    body = orjson.dumps(sightings([40.0], now))
    edge._handle_safely(edge.engine, Inbound("fw/s001/beacon/gw-1", body, now, 1, 1))
    assert edge.outcomes == {"processed": 1, "deadlettered": 0, "shed": 0}
    assert link.acked == [1]
