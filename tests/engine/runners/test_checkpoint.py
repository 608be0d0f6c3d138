"""The checkpointer: periodic rounds of changed stores, a writer thread, final and restore."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping

import pytest

from floorwalker.engine.runners.checkpoint import Checkpointer
from floorwalker.engine.runners.metrics import Metrics
from floorwalker.errors import GuardStoreError, StateError
from tests.engine.runners.test_metrics import value


class FakeEngine:
    """Stores whose state is a bytes value; ``b"!"`` in a snapshot makes restore refuse it."""

    def __init__(self, *store_ids: str) -> None:
        self.stores: dict[str, object] = {s: object() for s in store_ids}
        self.state: dict[str, bytes] = {s: b"" for s in store_ids}
        self.changed: list[str] = []
        self.snapshots_taken = 0
        self.thread_ids: set[int] = set()
        self.broken: set[str] = set()

    def change(self, store_id: str, state: bytes) -> None:
        self.state[store_id] = state
        if store_id not in self.changed:
            self.changed.append(store_id)

    def snapshot_store(self, store_id: str) -> bytes:
        self.thread_ids.add(threading.get_ident())
        if store_id in self.broken:
            raise RuntimeError("a bug")
        self.snapshots_taken += 1
        return f"{store_id}=".encode() + self.state[store_id]

    def restore_store(self, data: bytes) -> str:
        store_id, _, state = data.partition(b"=")
        if b"!" in state:
            raise StateError("unknown snapshot version")
        self.state[store_id.decode()] = state
        return store_id.decode()

    def changed_stores(self) -> list[str]:
        out, self.changed = self.changed, []
        return out


class FakeSink:
    def __init__(self) -> None:
        self.saved: dict[str, bytes] = {}
        self.writes: list[dict[str, bytes]] = []
        self.fail = 0
        """Fail this many writes (and loads) before succeeding again."""
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        """Set when a write starts."""
        self.thread_ids: set[int] = set()
        self.cond = threading.Condition()

    def save_many(self, snapshots: Mapping[str, bytes]) -> None:
        self.thread_ids.add(threading.get_ident())
        self.entered.set()
        self.gate.wait(5)
        with self.cond:
            if self.fail:
                self.fail -= 1
                self.cond.notify_all()
                raise GuardStoreError("snapshot save failed: ConnectionError")
            self.writes.append(dict(snapshots))
            self.saved.update(snapshots)
            self.cond.notify_all()

    def load_all(self, store_ids: Iterable[str]) -> dict[str, bytes]:
        if self.fail:
            raise GuardStoreError("snapshot load failed: ConnectionError")
        return {s: self.saved[s] for s in store_ids if s in self.saved}

    def wait_writes(self, n: int, timeout: float = 5.0) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.writes) >= n, timeout), self.writes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def checkpointer(
    sink: FakeSink, clock: Clock, every_s: float = 1.0
) -> tuple[Checkpointer, Metrics]:
    metrics = Metrics()
    return Checkpointer(sink, metrics, every_s, clock=clock), metrics


def test_rounds_run_every_interval_and_write_only_changed_stores(clock: Clock) -> None:
    engine, sink = FakeEngine("s001", "s002", "s003"), FakeSink()
    cp, metrics = checkpointer(sink, clock)
    cp.start()
    engine.change("s001", b"a")
    assert not cp.tick(engine), "not due before the first interval"
    clock.now += 1.0
    assert cp.tick(engine)
    sink.wait_writes(1)
    assert sink.writes == [{"s001": b"s001=a"}]
    assert not cp.tick(engine), "due again only one interval later"
    clock.now += 1.0
    assert cp.tick(engine)  # nothing changed: a round with nothing to write
    engine.change("s002", b"b")
    engine.change("s003", b"c")
    clock.now += 1.0
    assert cp.tick(engine)
    sink.wait_writes(2)
    assert sink.writes[1] == {"s002": b"s002=b", "s003": b"s003=c"}
    assert cp.wait_idle(5)
    assert len(sink.writes) == 2
    assert sink.thread_ids.isdisjoint(engine.thread_ids), "Redis is written off the core thread"
    assert engine.thread_ids == {threading.get_ident()}
    assert value(metrics, "floorwalker_snapshot_seconds_count") == 2
    assert value(metrics, "floorwalker_snapshot_bytes", store="s003") == len(b"s003=c")
    assert value(metrics, "floorwalker_snapshot_errors_total") == 0
    assert cp.final(engine)


def test_the_newest_snapshot_of_a_store_wins_while_redis_is_slow(clock: Clock) -> None:
    engine, sink = FakeEngine("s001", "s002"), FakeSink()
    cp, _ = checkpointer(sink, clock)
    cp.start()
    sink.gate.clear()  # the first write hangs
    engine.change("s001", b"1")
    clock.now += 1.0
    cp.tick(engine)
    assert sink.entered.wait(5)
    for i in range(2, 6):  # rounds pile up while Redis is slow: one entry per store
        engine.change("s001", str(i).encode())
        engine.change("s002", str(i).encode())
        clock.now += 1.0
        cp.tick(engine)
    sink.gate.set()
    assert cp.wait_idle(5)
    assert sink.writes == [{"s001": b"s001=1"}, {"s001": b"s001=5", "s002": b"s002=5"}]
    assert cp.final(engine)


def test_a_failed_write_is_counted_and_retried_next_interval(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    engine, sink = FakeEngine("s001", "s002"), FakeSink()
    cp, metrics = checkpointer(sink, clock, every_s=0.05)
    sink.fail = 3
    cp.start()
    engine.change("s001", b"x")
    clock.now += 1.0
    with caplog.at_level(logging.WARNING, "floorwalker.checkpoint"):
        cp.tick(engine)
        sink.wait_writes(1)  # the writer retried on its own until Redis answered
    assert sink.saved == {"s001": b"s001=x"}
    assert value(metrics, "floorwalker_snapshot_errors_total") == 3
    assert cp.errors == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per outage, not one per attempt"

    # A store changed again during an outage: its newer snapshot is the one retried.
    sink.fail = 1
    sink.gate.clear()
    engine.change("s002", b"old")
    clock.now += 1.0
    cp.tick(engine)
    engine.change("s002", b"new")
    clock.now += 1.0
    cp.tick(engine)
    sink.gate.set()
    assert cp.wait_idle(5)
    assert sink.saved["s002"] == b"s002=new"
    assert cp.final(engine)


def test_final_writes_what_the_writer_held_and_what_changed_since(clock: Clock) -> None:
    engine, sink = FakeEngine("s001", "s002", "s003"), FakeSink()
    cp, _ = checkpointer(sink, clock)
    cp.start()
    sink.fail = 1_000_000  # Redis down: the writer keeps the snapshot of s001
    engine.change("s001", b"held")
    clock.now += 1.0
    cp.tick(engine)
    with sink.cond:
        sink.cond.wait_for(lambda: sink.fail < 1_000_000, 5)
    engine.change("s002", b"late")  # changed after the last round
    sink.fail = 0
    assert cp.final(engine)
    assert sink.saved == {"s001": b"s001=held", "s002": b"s002=late"}
    assert cp.final(engine), "a second final has nothing more to write"
    assert len(sink.writes) == 1


def test_final_reports_a_failed_write(clock: Clock) -> None:
    engine, sink = FakeEngine("s001"), FakeSink()
    cp, metrics = checkpointer(sink, clock)
    engine.change("s001", b"x")
    sink.fail = 1
    assert not cp.final(engine)
    assert value(metrics, "floorwalker_snapshot_errors_total") == 1


def test_a_store_that_fails_to_serialize_is_skipped_and_tried_again(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    engine, sink = FakeEngine("s001", "s002"), FakeSink()
    cp, _ = checkpointer(sink, clock)
    cp.start()
    engine.broken.add("s001")
    engine.change("s001", b"a")
    engine.change("s002", b"b")
    clock.now += 1.0
    with caplog.at_level(logging.ERROR, "floorwalker.checkpoint"):
        cp.tick(engine)
    assert "could not snapshot store s001" in caplog.text
    assert cp.wait_idle(5)
    assert sink.saved == {"s002": b"s002=b"}
    engine.broken.clear()
    clock.now += 1.0
    cp.tick(engine)  # s001 did not change again, it is retried all the same
    assert cp.wait_idle(5)
    assert sink.saved["s001"] == b"s001=a"
    assert cp.final(engine)


def test_zero_interval_means_no_periodic_rounds(clock: Clock) -> None:
    engine, sink = FakeEngine("s001"), FakeSink()
    cp, _ = checkpointer(sink, clock, every_s=0.0)
    cp.start()
    engine.change("s001", b"a")
    clock.now += 100.0
    assert not cp.tick(engine)
    assert sink.writes == []
    assert cp.final(engine)
    assert sink.saved == {"s001": b"s001=a"}


def test_restore_puts_snapshots_back_and_skips_refused_ones(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FakeSink()
    sink.saved = {
        "s001": b"s001=dwell",
        "s002": b"s002=v9!",  # the engine refuses it
        "s-gone": b"s-gone=x",  # a store this runner does not serve
    }
    engine = FakeEngine("s001", "s002", "s003")
    cp, _ = checkpointer(sink, clock)
    with caplog.at_level(logging.ERROR, "floorwalker.checkpoint"):
        report = cp.restore(engine)
    assert report.restored == ["s001"]
    assert report.refused == ["s002"]
    assert report.size == len(b"s001=dwell")
    assert engine.state == {"s001": b"dwell", "s002": b"", "s003": b""}
    assert "snapshot of store s002 refused" in caplog.text


def test_restore_with_redis_down_starts_empty(clock: Clock) -> None:
    sink = FakeSink()
    sink.saved = {"s001": b"s001=dwell"}
    sink.fail = 1
    engine = FakeEngine("s001")
    cp, metrics = checkpointer(sink, clock)
    report = cp.restore(engine)
    assert report.restored == [] and engine.state == {"s001": b""}
    assert value(metrics, "floorwalker_snapshot_errors_total") == 1
