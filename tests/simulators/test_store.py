"""The store simulator: determinism, batches, ground truth, the large store, live mode."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from floorwalker import cli
from floorwalker.devices.decode import Decoder
from floorwalker.devices.events import Rejection, Sighting
from floorwalker.devices.registry import load_registry
from floorwalker.devices.topics import offer_topic
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.mqtt import MqttClient
from floorwalker.rules.loader import load_rules_for
from floorwalker.rules.model import Pattern
from floorwalker.simulators.store import (
    LARGE_REGISTRY,
    SimulationSettings,
    run_live,
    simulate,
)
from floorwalker.simulators.traffic import TrafficSettings, load_layout

CATALOG = Path(cli.__file__).parent / "rules" / "catalog"
SMALL = SimulationSettings(shoppers=40, minutes=4.0, seed=3, sigma_db=6.0, stores=2)


def test_same_seed_same_traffic_and_truth() -> None:
    layout = load_layout(LARGE_REGISTRY)
    a, b = simulate(layout, SMALL), simulate(layout, SMALL)
    assert list(a.published()) == list(b.published())
    assert a.truth == b.truth
    assert a.profiles == b.profiles
    c = simulate(layout, replace(SMALL, seed=4))
    assert [t.intervals for t in c.truth] != [t.intervals for t in a.truth]


def test_batches_decode_with_no_rejections() -> None:
    sim = simulate(load_layout(LARGE_REGISTRY), SMALL)
    decoder = Decoder(sim.registries)
    events = arrays = 0
    last_at = float("-inf")
    for msg in sim.published():
        assert msg.at >= last_at  # publish order
        last_at = msg.at
        items = decoder.decode(msg.topic, orjson.dumps(msg.payload), msg.at)
        assert not [i for i in items if isinstance(i, Rejection)]
        assert len(items) == msg.events
        if isinstance(msg.payload, list):
            arrays += 1
            sightings = [i for i in items if isinstance(i, Sighting)]
            assert len(sightings) == len(items)
            assert all(msg.at - 1.0 <= i.ts <= msg.at for i in sightings)
            assert len({i.gateway for i in sightings}) == 1
        events += len(items)
    assert events == len(sim.traffic)
    assert arrays > 0
    assert {r.store for r in sim.registries.values()} == {"s001", "s002"}


def test_ground_truth_explains_every_sighting() -> None:
    sim = simulate(load_layout(LARGE_REGISTRY), SMALL)
    truth = {(t.store, t.subject): t for t in sim.truth}
    home = total = 0
    for ev in sim.events():
        if not isinstance(ev, Sighting):
            continue
        t = truth[(ev.store, ev.subject)]
        assert t.staff == ev.is_staff
        zone = t.zone_at(ev.ts)
        if zone is None:  # rounded to the millisecond just past the interval's end
            zone = t.zone_at(ev.ts - 0.001)
        assert zone is not None
        reg = sim.registries[ev.store]
        assert ev.zone == zone or reg.hops(ev.zone, zone) == 1
        home += ev.zone == zone
        total += 1
    assert home / total > 0.85
    for t in sim.truth:
        for a, b in zip(t.intervals, t.intervals[1:], strict=False):
            assert a.leave == pytest.approx(b.enter) and a.zone != b.zone
            assert a.dwell > 0


def test_clean_signal_has_no_neighbour_sightings() -> None:
    cfg = replace(SMALL, sigma_db=0.0, traffic=TrafficSettings(neighbour_share=0.0, miss_share=0.0))
    sim = simulate(load_layout(LARGE_REGISTRY), cfg)
    truth = {(t.store, t.subject): t for t in sim.truth}
    for ev in sim.events():
        if isinstance(ev, Sighting):
            t = truth[(ev.store, ev.subject)]
            assert ev.zone == (t.zone_at(ev.ts) or t.zone_at(ev.ts - 0.001))


def test_large_store_has_every_catalog_tag() -> None:
    reg = load_registry(LARGE_REGISTRY)
    assert len(reg.zones) >= 35 and len(reg.beacons) >= 55 and len(reg.gateways) >= 8
    assert len(reg.bells) >= 10 and len(reg.terminals) >= 8 and len(reg.staff) >= 15
    assert all(reg.hops(a, b) < 1000 for a in reg.zones for b in reg.zones)  # connected
    ruleset = load_rules_for(CATALOG, {reg.store: reg})
    used: set[str] = set()
    for rule in ruleset.rules:
        when = rule.when
        for name in ("pattern", "first", "then", "after", "missing", "of", "reset_on"):
            pattern = getattr(when, name, None)
            if isinstance(pattern, Pattern):
                used |= pattern.zone_tags
    assert {"chilled", "coffee-bar", "cosmetics-testers", "entrance", "high-consideration"} <= used
    assert used <= reg.tags
    assert {"entrance", "checkout"} <= reg.tags
    assert len(ruleset.rules) == 11
    roles = {m.role for m in reg.staff.values()}
    assert {"manager", "advisor", "associate"} <= roles


def test_cli_writes_capture_truth_and_profiles(tmp_path: Path) -> None:
    capture, truth, profiles = tmp_path / "c.jsonl", tmp_path / "t.jsonl", tmp_path / "p.jsonl"
    code = cli.main(
        ["simulate", "--registry", str(LARGE_REGISTRY), "--shoppers", "15", "--minutes", "2",
         "--seed", "5", "--capture", str(capture), "--truth", str(truth),
         "--profiles-out", str(profiles), "--sigma", "6", "--stores", "2"]
    )  # fmt: skip
    assert code == 0
    lines = [orjson.loads(line) for line in capture.read_bytes().splitlines()]
    assert any(isinstance(rec["payload"], list) for rec in lines)
    subjects = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
    assert {s["kind"] for s in subjects} == {"shopper", "staff"}
    assert sum(s["kind"] == "shopper" for s in subjects) == 30
    first = subjects[0]["intervals"][0]
    assert set(first) == {"zone", "enter", "leave", "dwell"}
    people = [orjson.loads(line) for line in profiles.read_bytes().splitlines()]
    assert len(people) == 30 and {p["tier"] for p in people} <= {"member", "silver", "gold", "vip"}


def test_live_mode_publishes_and_redeems(tester: BrokerAddress, unique_prefix: str) -> None:
    sim = simulate(
        load_layout(LARGE_REGISTRY),
        SimulationSettings(shoppers=3, minutes=0.2, seed=1, redeem_share=1.0,
                           redeem_delay_s=(0.0, 0.1)),
    )  # fmt: skip
    got: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    publishing = threading.Event()

    def on(topic: str, payload: bytes) -> None:
        with lock:
            got.append((topic, payload))
        if "/beacon/" in topic:
            publishing.set()  # the simulator is connected and subscribed

    probe = MqttClient(
        f"{unique_prefix}-probe", tester,
        subscriptions=(f"{unique_prefix}/#",), on_message=on,
    ).connect()  # fmt: skip
    stop = threading.Event()
    shopper = next(t.subject for t in sim.truth if not t.staff)
    offer = offer_topic("s001", shopper, prefix=unique_prefix)

    def send_offer() -> None:
        publishing.wait(20.0)
        probe.publish(offer, orjson.dumps({"id": "of-1", "code": "ABCD-EFGH-IJKL"}))

    threading.Thread(target=send_offer, daemon=True).start()
    try:
        rate = len(sim.traffic) / 3.0  # about 3 s of publishing
        result = run_live(sim, tester, rate=rate, prefix=unique_prefix,
                          stop=stop, client_id=f"{unique_prefix}-sim")  # fmt: skip
    finally:
        time.sleep(0.3)
        probe.close()
    assert result.events == len(sim.traffic) + result.redeemed
    with lock:
        topics = [t for t, _ in got]
    assert any("/beacon/" in t for t in topics)
    assert result.offers_received == 1 and result.redeemed == 1
    coupons = [orjson.loads(p) for t, p in got if "/pos/" in t and b"coupon" in p]
    assert coupons and coupons[0]["coupon"] == "ABCD-EFGH-IJKL"
    assert coupons[0]["shopper"] == shopper
