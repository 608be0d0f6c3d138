"""The worker's per-store engines (no Kafka): replay's actions, checkpoints, wall timers."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from floorwalker.devices.registry import load_registries
from floorwalker.engine.core.guards import GuardStore, InMemoryGuardStore
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.engine.core.testing import T0
from floorwalker.engine.runners.cluster.names import guard_owner
from floorwalker.engine.runners.cluster.shards import Record, Shards, unpack_state
from floorwalker.engine.runners.metrics import Metrics
from floorwalker.engine.runners.replay import CaptureLine, Replay, ReplaySettings, read_capture
from floorwalker.engine.runners.step import reraise
from floorwalker.engine.stores.redis_guards import RedisGuardSettings, RedisGuardStore
from floorwalker.errors import StateError
from floorwalker.rules.loader import load_rules_for
from floorwalker.services import RunningService
from tests.engine.conftest import PROFILES, STORE

ROOT = Path(__file__).resolve().parents[4]
DATA = ROOT / "floorwalker" / "simulators" / "data"
CATALOG = ROOT / "floorwalker" / "rules" / "catalog"
CAPTURE = DATA / "demo-capture.jsonl"
DEMO_PROFILES = DATA / "demo-profiles.jsonl"
CAPTURE_TOPIC = "fw/s001/bell/bell-dairy"


def _replay(lines: list[CaptureLine]) -> list[bytes]:
    regs = load_registries([DATA / "demo-store.yaml"])
    rules = load_rules_for(CATALOG, regs)
    replay = Replay(
        rules, regs, ProfileBook.load(DEMO_PROFILES), ReplaySettings(tail_s=0.0, on_error=reraise)
    )
    out: list[bytes] = []

    def write(at: float, topic: str, payload: object) -> None:
        out.append(orjson.dumps({"at": at, "topic": topic, "payload": payload}))

    for line in lines:
        replay.feed(line, write)
    replay.finish(write)
    return out


def _demo_shards(
    profiles: ProfileBook | None = None, guards: InMemoryGuardStore | None = None
) -> Shards:
    regs = load_registries([DATA / "demo-store.yaml"])
    return Shards(
        load_rules_for(CATALOG, regs),
        regs,
        profiles=profiles or ProfileBook.load(DEMO_PROFILES),
        guards=guards,
        on_error=reraise,
    )


def _lines() -> list[CaptureLine]:
    return [line for line in read_capture(CAPTURE) if isinstance(line, CaptureLine)]


def _values(records: list[Record]) -> list[bytes]:
    return [value for _store, value in records]


def test_the_actions_of_replay_up_to_the_last_event() -> None:
    lines = _lines()
    shards = _demo_shards()
    got: list[bytes] = []
    for line in lines:
        got.extend(_values(shards.handle(line.topic, line.payload).records))
    engine = shards.engine("s001")
    assert engine is not None
    last = engine.clock
    want = [r for r in _replay(lines) if orjson.loads(r)["at"] <= last]
    assert len(want) > 10
    assert got == want


@pytest.mark.parametrize("lag", [0, 37])
def test_a_store_restored_from_a_checkpoint_goes_on_as_if_never_moved(lag: int) -> None:
    """Checkpoints every 100 records; the new owner restores the last one and gets the
    records from ``lag`` before it again (the committed offset trails the table)."""
    lines = _lines()
    half = len(lines) // 2
    table: dict[str, bytes] = {}
    # Guards and profiles are not in the table: the workers share them (Redis, live).
    book, guards = ProfileBook.load(DEMO_PROFILES), InMemoryGuardStore()
    first, second = _demo_shards(book, guards), _demo_shards(book, guards)
    got: list[bytes] = []
    for offset, line in enumerate(lines[:half]):
        got.extend(_values(first.handle(line.topic, line.payload, offset, 0).records))
        if offset % 100 == 99:
            table.update(first.checkpoint())
    saved, _snapshot = unpack_state(table["s001"])
    assert saved == half - half % 100 - 1
    assert first.checkpoint() != [], "records since the last checkpoint changed the store"
    assert first.checkpoint() == [], "nothing changed since"
    # The new owner: what the dead worker decided after its checkpoint is decided again.
    got = got[: _count_through(lines, saved)]
    second.own({"s001": (0, table["s001"])})
    for offset, line in enumerate(lines[saved + 1 - lag :], start=saved + 1 - lag):
        got.extend(_values(second.handle(line.topic, line.payload, offset, 0).records))
    assert (second.restored, second.skipped) == (1, lag)
    whole = _demo_shards()
    want: list[bytes] = []
    for line in lines:
        want.extend(_values(whole.handle(line.topic, line.payload).records))
    assert got == want


def _count_through(lines: list[CaptureLine], last: int) -> int:
    """How many records one worker writes for ``lines[: last + 1]``."""
    shards = _demo_shards()
    return sum(len(shards.handle(li.topic, li.payload).records) for li in lines[: last + 1])


def test_a_foreign_table_value_is_refused() -> None:
    with pytest.raises(StateError):
        _demo_shards().own({"s001": (0, b"not ours")})


def test_a_record_of_an_unknown_store_is_a_dead_letter() -> None:
    outcome = _demo_shards().handle("fw/nowhere/bell/b1", b'{"id":"x","ts":1.0}')
    (record,) = _values(outcome.records)
    assert orjson.loads(record)["payload"]["reason"] == "unknown_store"


def test_stores_not_assigned_any_more_are_dropped_and_revoked_ones_not_saved() -> None:
    shards = _demo_shards()
    line = _lines()[0]
    shards.handle(line.topic, line.payload, 0, 3)
    shards.release()
    assert shards.checkpoint() == [], "revoked: its state is the next owner's now"
    shards.own({"s001": (3, None)})
    assert [store for store, _value in shards.checkpoint()] == ["s001"], "kept, still dirty"
    shards.own({})
    assert shards.stores == []


# --------------------------------------------------------------------------- wall clock


class FakeClock:
    def __init__(self, now: float) -> None:
        self.t = now

    def __call__(self) -> float:
        return self.t


def _store_shards(tmp_path: Path, clock: FakeClock, guards: GuardStore) -> Shards:
    regs = load_registries([_registry_file(tmp_path)])
    return Shards(
        load_rules_for(CATALOG, regs),
        regs,
        profiles=ProfileBook({p.shopper: p for p in PROFILES}),
        guards=guards,
        on_error=reraise,
        now=clock,
    )


def _sighting(subject: str, beacon: str, ts: float, *, staff: bool = False) -> tuple[str, bytes]:
    body = {"ts": ts, "beacon": beacon, "rssi": -55, ("band" if staff else "shopper"): subject}
    return "fw/s001/beacon/gw-1", orjson.dumps(body)


def _bell(ts: float) -> tuple[str, bytes]:
    return "fw/s001/bell/bell-dairy", orjson.dumps({"id": "press-1", "ts": ts, "reason": "help"})


def _alert_steps(records: list[Record]) -> list[tuple[float, int]]:
    out = []
    for value in _values(records):
        rec = orjson.loads(value)
        if rec["topic"].endswith("/alert"):
            out.append((rec["at"], rec["payload"]["step"]))
    return out


def test_wall_clock_timers_fire_at_their_due_time_without_another_event(tmp_path: Path) -> None:
    """A bell with nobody answering: the escalation steps fire from fire_due, at due."""
    clock = FakeClock(T0)
    shards = _store_shards(tmp_path, clock, InMemoryGuardStore())
    for i in range(3):
        clock.t = T0 + i
        shards.handle(*_sighting("band-07", "b-dairy", clock.t, staff=True), i, 0)
    clock.t = T0 + 3
    outcome = shards.handle(*_bell(clock.t), 3, 0)
    assert _alert_steps(outcome.records) == [(T0 + 3, 1)]
    assert outcome.wake is not None and outcome.wake <= T0 + 33
    fired: list[Record] = []
    while (wake := shards.next_wake()) is not None and wake <= T0 + 100:
        clock.t = wake
        fired.extend(shards.fire_due(clock.t))
    steps = _alert_steps(fired)
    assert steps[:2] == [(T0 + 33, 2), (T0 + 93, 3)], steps


def test_a_restored_store_catches_up_on_event_time_before_the_wall_clock(tmp_path: Path) -> None:
    """The dead worker's backlog is 12 s of a shopper lingering (longer than the 10 s
    leave gap): replayed on the wall clock the records come after the shopper timed out
    and the dwell never completes; caught up on event time it completes once, on time."""
    clock, guards = FakeClock(T0), InMemoryGuardStore()
    first = _store_shards(tmp_path, clock, guards)
    records = [_sighting("app-loyal", "b-dairy", T0 + i) for i in range(16)]
    for offset, (topic, payload) in enumerate(records[:3]):
        clock.t = T0 + offset
        first.handle(topic, payload, offset, 0)
    ((store, value),) = first.checkpoint()
    # Killed now; the records keep coming while nobody owns the partition.
    clock.t = T0 + 16.5
    second = _store_shards(tmp_path, clock, guards)
    second.own({store: (0, value)}, backlog={0: len(records)})
    assert second.catching_up("s001")
    assert second.next_wake() is None, "no wall timers before the backlog is done"
    out: list[Record] = []
    for offset, (topic, payload) in enumerate(records[3:], start=3):
        out.extend(second.handle(topic, payload, offset, 0).records)
    assert not second.catching_up("s001")
    out.extend(second.fire_due(clock.t))
    offers = [orjson.loads(v) for v in _values(out) if b"/offer" in v]
    assert [(o["payload"]["rule"], o["at"]) for o in offers] == [("chilled-dwell-bogo", T0 + 10)]


@pytest.mark.parametrize("owner", [guard_owner("floorwalker"), None])
def test_a_press_taken_again_after_a_move_pages_again(
    tmp_path: Path, redis_service: RunningService, unique_prefix: str, owner: str | None
) -> None:
    """The worker that recorded a bell press in the shared guards is killed before its
    next checkpoint; the new owner takes the press again from the partition. With the
    workers' common owner it pages again (same alert id: the bridge sends it once);
    without one the guards call the press a duplicate (dead-lettered) and the alert is
    lost: the ``kill -9`` handoff's lost alert of issue #9."""
    settings = RedisGuardSettings(prefix=f"{unique_prefix}:guard:", owner=owner)
    guards = RedisGuardStore.from_url(redis_service.url, settings)
    clock = FakeClock(T0)
    try:
        first = _store_shards(tmp_path, clock, guards)
        for i in range(3):
            clock.t = T0 + i
            first.handle(*_sighting("band-07", "b-dairy", clock.t, staff=True), i, 0)
        ((store, value),) = first.checkpoint()
        clock.t = T0 + 3
        paged = first.handle(*_bell(clock.t), 3, 0).records
        assert _alert_steps(paged) == [(T0 + 3, 1)]
        second = _store_shards(tmp_path, clock, guards)
        second.own({store: (0, value)})
        again = second.handle(*_bell(clock.t), 3, 0).records
    finally:
        guards.close()
    if owner is None:
        assert _alert_steps(again) == []
        assert [orjson.loads(v)["payload"]["reason"] for v in _values(again)] == ["duplicate"]
    else:
        assert _values(again) == _values(paged)


# --------------------------------------------------------------------------- what people see


def test_the_floor_picture_and_metrics_of_the_held_stores(tmp_path: Path) -> None:
    """What a worker's floor page and /metrics show: the store it holds, its open alert,
    the page's decision latency and a timer's lateness, a dead letter."""
    clock = FakeClock(T0)
    regs = load_registries([_registry_file(tmp_path)])
    metrics = Metrics()
    shards = Shards(
        load_rules_for(CATALOG, regs),
        regs,
        profiles=ProfileBook({p.shopper: p for p in PROFILES}),
        on_error=reraise,
        now=clock,
        metrics=metrics,
    )
    assert shards.floors() == {}
    for i in range(3):
        clock.t = T0 + i
        shards.handle(*_sighting("band-07", "b-dairy", clock.t, staff=True), i, 0)
    clock.t = T0 + 3.25  # the press arrived 0.25 s after its ts
    shards.handle(*_bell(T0 + 3), 3, 0)
    shards.handle("fw/s001/bell/bell-dairy", b"{not json", 4, 0)
    clock.t = T0 + 33.5
    shards.fire_due(clock.t)
    shards.sync_metrics()

    floors = shards.floors()
    assert list(floors) == ["s001"]
    (alert,) = floors["s001"].alerts
    assert (alert.zone, alert.step, alert.state) == ("dairy-chilled", 2, "open")
    assert alert.paged[0] == "band-07"

    def value(name: str, **labels: str) -> float:
        got = metrics.registry.get_sample_value(name, {"store": "s001", **labels})
        assert got is not None, name
        return got

    assert value("floorwalker_deadletters_total", reason="malformed_json") == 1
    assert value("floorwalker_decision_latency_seconds_sum", path="device") == pytest.approx(0.25)
    assert value("floorwalker_timer_lateness_seconds_sum") == pytest.approx(0.5)
    assert value("floorwalker_alerts_open") == 1


def _registry_file(tmp_path: Path) -> Path:
    registry = tmp_path / "store.yaml"
    registry.write_text(yaml.safe_dump(STORE, sort_keys=False), encoding="utf-8")
    return registry
