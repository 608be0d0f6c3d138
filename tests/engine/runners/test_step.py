"""The one step every runner takes: decode, ingest, dead letter, drain."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from floorwalker.devices.decode import Decoder, DecoderSettings
from floorwalker.devices.events import Event, PosItem
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.actions import Action
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.engine.core.testing import T0
from floorwalker.engine.runners.step import (
    DeadLetter,
    EventClock,
    Step,
    WallClock,
    log_and_continue,
    reraise,
)
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import PROFILES, STORE

BELL = "fw/s001/bell/bell-dairy"


class Runner:
    """A step with recording callbacks."""

    def __init__(self, catalog: RuleSet, clock: Any, prefix: str = "fw", **kw: Any) -> None:
        registry = Registry.from_mapping(STORE)
        self.engine = Engine(
            catalog, {"s001": registry}, profiles=ProfileBook({p.shopper: p for p in PROFILES})
        )
        self.actions: list[tuple[list[Action], Event | None, float]] = []
        self.dead: list[DeadLetter] = []
        self.events: list[Event] = []
        self.step = Step(
            self.engine,
            Decoder({"s001": registry}, DecoderSettings(prefix=prefix)),
            clock=clock,
            on_actions=lambda a, cause, arrival: self.actions.append((a, cause, arrival)),
            on_deadletter=self.dead.append,
            on_event=self.events.append,
            **kw,
        )


def bell(pid: str, ts: float) -> bytes:
    return orjson.dumps({"id": pid, "ts": ts})


def test_event_clock_ingests_on_event_time_and_dead_letters_both_kinds(catalog: RuleSet) -> None:
    r = Runner(catalog, EventClock())
    r.step(BELL, bell("p1", T0), 0.0)
    r.step(BELL, bell("p1", T0 + 1), T0)  # same id: the engine's dedup
    r.step("fw/s001/bell/nowhere", b"{}", T0 + 1)  # the decoder's unknown_device
    r.step("fw/s999/bell/b", b"{}", T0 + 1)  # an unknown store has its own dead letters
    r.step("elsewhere/x", b"{}", T0 + 1)  # no store at all: under _unknown
    assert [(a.rule, a.payload()["step"]) for a in r.actions[0][0]] == [("service-bell", 1)]
    assert r.actions[0][1] == r.events[0] and r.actions[0][2] == 0.0
    assert [(d.topic, d.reason, d.at) for d in r.dead] == [
        ("fw/s001/deadletter", "duplicate", T0 + 1),  # event time: the engine clock
        ("fw/s001/deadletter", "unknown_device", T0 + 1),  # the arrival given
        ("fw/s999/deadletter", "unknown_store", T0 + 1),
        ("fw/_unknown/deadletter", "bad_topic", T0 + 1),
    ]
    assert r.dead[0].payload() == {
        "ts": T0 + 1,
        "topic": BELL,
        "reason": "duplicate",
        "raw": '{"id":"p1","ts":1795395601.0}',
    }
    assert len(r.events) == 1  # the hook sees accepted events only
    # Decoder rejections are counted here, the engine's once by the engine.
    assert r.engine.stats.rejected == {
        "duplicate": 1,
        "unknown_device": 1,
        "unknown_store": 1,
        "bad_topic": 1,
    }
    # Event time: the escalations fire when a later event moves the clock past them.
    r.step("fw/s001/device/gw-1/status", orjson.dumps({"ts": T0 + 100, "online": True}), T0)
    steps = [a.payload()["step"] for a in r.actions[-1][0]]
    assert steps == [2, 3] and type(r.actions[-1][1]).__name__ == "DeviceStatus"


def test_wall_clock_advances_before_each_message_and_hands_timers_on_alone(
    catalog: RuleSet,
) -> None:
    now = [T0]
    r = Runner(catalog, WallClock(lambda: now[0]))
    r.step(BELL, bell("p1", T0 - 0.2), T0)
    now[0] = T0 + 31.0
    r.step(BELL, bell("p1", T0 - 0.2), T0 + 31.0)  # a QoS 1 redelivery
    first, timers = r.actions[0], r.actions[1]
    assert first[1] is not None and first[2] == T0
    assert timers[1] is None and [a.payload()["step"] for a in timers[0]] == [2]
    assert [(d.reason, d.at) for d in r.dead] == [("duplicate", T0 + 31.0)]  # arrival
    assert r.engine.clock == T0 + 31.0


def test_batch_items_each_get_their_fate(catalog: RuleSet) -> None:
    r = Runner(catalog, EventClock())
    sighting = {"ts": T0, "beacon": "b-door", "rssi": -60, "shopper": "app-loyal"}
    batch = [sighting, {**sighting, "beacon": "b-nowhere"}, {**sighting, "ts": T0 + 1}]
    r.step("fw/s001/beacon/gw-1", orjson.dumps(batch), 5.0)
    assert len(r.events) == 2
    assert [(d.reason, d.at) for d in r.dead] == [("unknown_device", 5.0)]


def test_dead_letters_use_the_decoders_prefix(catalog: RuleSet) -> None:
    r = Runner(catalog, EventClock(), prefix="acme/fw")
    r.step("acme/fw/s001/bell/nowhere", b"{}", 1.0)
    assert [d.topic for d in r.dead] == ["acme/fw/s001/deadletter"]


def test_default_policy_dead_letters_an_internal_error_and_goes_on(
    catalog: RuleSet, caplog: pytest.LogCaptureFixture
) -> None:
    r = Runner(catalog, EventClock(), on_error=log_and_continue)

    def broken(event: Event) -> None:
        if isinstance(event, PosItem):
            raise RuntimeError("boom")
        r.events.append(event)

    r.step.on_event = broken
    pos = {"id": "l1", "ts": T0, "receipt": "r1", "sku": "x", "category": "yogurt"}
    r.step("fw/s001/pos/pos-1", orjson.dumps(pos), 7.0)
    r.step(BELL, bell("p1", T0 + 1), 7.0)
    assert [(d.topic, d.reason, d.at) for d in r.dead] == [
        ("fw/_unknown/deadletter", "internal_error", 7.0)
    ]
    assert r.dead[0].payload()["raw"] == orjson.dumps(pos).decode()
    assert r.engine.stats.rejected["internal_error"] == 1
    assert len(r.events) == 1 and r.actions  # the bell behind it was served
    assert "internal error on a message from fw/s001/pos/pos-1" in caplog.text
    assert "boom" in caplog.text


def test_reraise_policy_lets_the_error_through(catalog: RuleSet) -> None:
    r = Runner(catalog, EventClock(), on_error=reraise)

    def broken(_event: Event) -> None:
        raise RuntimeError("boom")

    r.step.on_event = broken
    with pytest.raises(RuntimeError, match="boom"):
        r.step(BELL, bell("p1", T0), 0.0)
    assert r.dead == []


def test_a_pre_decoded_message_is_not_decoded_again(catalog: RuleSet) -> None:
    r = Runner(catalog, EventClock())
    decoded = r.step.decode(BELL, bell("p1", T0), 0.0)
    r.step.decoder = None  # type: ignore[assignment]  # would fail if used
    r.step(BELL, bell("p1", T0), 0.0, decoded)
    assert len(r.events) == 1 and r.dead == []


def test_timers_due_before_a_refused_event_go_out_before_its_dead_letter(
    catalog: RuleSet,
) -> None:
    r = Runner(catalog, EventClock())
    order: list[str] = []
    r.step.on_actions = lambda a, _c, _t: order.extend(f"step {x.payload()['step']}" for x in a)
    r.step.on_deadletter = lambda d: order.append(d.reason)
    r.step(BELL, bell("p1", T0), 0.0)
    ack = {"id": "a1", "ts": T0 + 31.0, "alert": "al-nope", "action": "ack"}
    r.step("fw/s001/band/band-07/ack", orjson.dumps(ack), T0)
    assert order == ["step 1", "step 2", "unknown_alert"]
