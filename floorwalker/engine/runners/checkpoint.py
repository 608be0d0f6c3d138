"""Checkpoints of the engine's stores: the edge runner survives ``kill -9`` with its timers.

The engine is single-threaded, so everything that touches it here runs on the
runner's core thread:

* :meth:`Checkpointer.restore` at start, after the engine is built and before
  the MQTT link takes traffic: every served store's newest snapshot goes back
  into the engine. A snapshot the engine refuses (:class:`~floorwalker.errors.StateError`:
  corrupt, or a version this build does not know) is logged with the store id
  and skipped; that store starts empty. Redis unreachable at start is logged
  and counted, and every store starts empty; nothing here stops the runner.
* :meth:`Checkpointer.tick` on every turn of the core loop: every
  ``every_s`` it serializes the stores changed since the last round
  (``engine.changed_stores()``, ``engine.snapshot_store(id)``) and hands the
  bytes to a writer thread. The core thread only serializes; Redis latency or
  an outage never delays an alert.
* :meth:`Checkpointer.final` at shutdown: the writer is stopped and whatever it
  still held plus the stores changed since, serialized now, are written
  synchronously.

The writer holds at most one snapshot per store (newest wins), so its queue is
bounded by the number of stores whatever Redis does. A failed write is counted
(``floorwalker_snapshot_errors_total``), its snapshots are kept (unless newer
ones came meanwhile) and the write is tried again one interval later. A
snapshot is at most ``every_s`` plus one write old when the runner is killed;
what the engine learned in that time comes back from the broker only for
messages not yet acknowledged, so a timer is at worst re-armed from slightly
older state — a dwell or absence window in progress keeps its start, so its due
time, and a due time that passed while the runner was down fires on the first
turn after the restore. Offers decided twice across a restore keep their action
id, and the shared guard store refuses the second as ``duplicate``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from floorwalker.engine.runners.metrics import Metrics
from floorwalker.errors import GuardStoreError, StateError

log = logging.getLogger("floorwalker.checkpoint")


class SnapshotEngine(Protocol):
    """The engine API a checkpointer uses (:class:`floorwalker.engine.core.Engine` fits)."""

    @property
    def stores(self) -> Mapping[str, object]: ...

    def snapshot_store(self, store_id: str) -> bytes: ...

    def restore_store(self, data: bytes) -> str: ...

    def changed_stores(self) -> list[str]: ...


class SnapshotSink(Protocol):
    """Where snapshots go (a RedisSnapshotStore fits)."""

    def save_many(self, snapshots: Mapping[str, bytes]) -> None: ...

    def load_all(self, store_ids: Iterable[str]) -> dict[str, bytes]: ...


@dataclass(frozen=True, slots=True)
class _Snapshot:
    data: bytes
    serialize_s: float


@dataclass
class RestoreReport:
    restored: list[str]
    refused: list[str]
    size: int
    seconds: float


class Checkpointer:
    """Periodic and final store snapshots of one engine, and their restore."""

    def __init__(
        self,
        sink: SnapshotSink,
        metrics: Metrics,
        every_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.every_s = every_s
        """Seconds between rounds; 0 or less: no periodic rounds (restore and final stay)."""
        self._clock = clock
        self._next = clock() + every_s
        self._retry: set[str] = set()
        """Stores whose snapshot failed to serialize: tried again next round (core thread)."""
        self._pending: dict[str, _Snapshot] = {}
        self._cond = threading.Condition(threading.Lock())
        self._writing = False
        self._failing = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.rounds = 0
        """Writes that reached Redis (periodic and final)."""
        self.errors = 0
        """Writes that failed."""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Checkpointer:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(
                target=self._write_loop, name="floorwalker-snapshots", daemon=True
            )
            self._thread.start()
        return self

    def _stop_writer(self, timeout: float) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # ------------------------------------------------------------------ core thread

    def restore(self, engine: SnapshotEngine) -> RestoreReport:
        """Put the newest snapshot of every store the engine serves back into it."""
        started = time.perf_counter()
        report = RestoreReport([], [], 0, 0.0)
        try:
            found = self.sink.load_all(list(engine.stores))
        except GuardStoreError as exc:
            self.metrics.snapshot_error()
            self.errors += 1
            log.error("store snapshots not restored, every store starts empty: %s", exc)
            return report
        for store_id, data in found.items():
            try:
                restored = engine.restore_store(data)
            except StateError as exc:
                report.refused.append(store_id)
                log.error("snapshot of store %s refused, the store starts empty: %s", store_id, exc)
                continue
            if restored != store_id:
                log.warning("snapshot under store %s was of store %s", store_id, restored)
            report.restored.append(restored)
            report.size += len(data)
        report.seconds = time.perf_counter() - started
        return report

    def tick(self, engine: SnapshotEngine) -> bool:
        """Call on every core-loop turn: a round when one is due. True if one ran."""
        if self.every_s <= 0:
            return False
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self.every_s
        self._hand_over(self.take(engine))
        return True

    def take(self, engine: SnapshotEngine) -> dict[str, _Snapshot]:
        """Serialize the stores changed since the last round (core thread only)."""
        changed = list(dict.fromkeys([*self._retry, *engine.changed_stores()]))
        self._retry.clear()
        out: dict[str, _Snapshot] = {}
        for store_id in changed:
            started = time.perf_counter()
            try:
                data = engine.snapshot_store(store_id)
            except Exception:
                # A bug of ours: keep serving, say so, try the store again next round.
                log.exception("could not snapshot store %s", store_id)
                self._retry.add(store_id)
                continue
            out[store_id] = _Snapshot(data, time.perf_counter() - started)
        return out

    def final(self, engine: SnapshotEngine, timeout: float = 5.0) -> bool:
        """At shutdown: stop the writer, write what it held plus the stores changed since.

        Synchronous, on the core thread (or once it has stopped). True when
        everything reached Redis (or there was nothing to write).
        """
        self._stop_writer(timeout)
        with self._cond:
            batch, self._pending = self._pending, {}
        batch.update(self.take(engine))  # newer than anything the writer held
        if not batch:
            return True
        ok = self._write(batch)
        if ok:
            size = sum(len(s.data) for s in batch.values())
            log.info("final snapshot: %d store(s), %d bytes", len(batch), size)
        return ok

    # ------------------------------------------------------------------ writer thread

    def _hand_over(self, batch: dict[str, _Snapshot]) -> None:
        if not batch:
            return
        with self._cond:
            self._pending.update(batch)  # newest per store wins
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every handed-over snapshot is written; False on timeout (or Redis down)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._writing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return  # final() writes what is left, synchronously
                batch, self._pending = self._pending, {}
                self._writing = True
            try:
                ok = self._write(batch)
            except Exception:  # a bug of ours: the writer must not die silently
                log.exception("snapshot writer failed")
                ok = False
            with self._cond:
                self._writing = False
                if not ok:
                    for store_id, snap in batch.items():
                        self._pending.setdefault(store_id, snap)  # unless a newer one came
                self._cond.notify_all()
                if not ok and not self._stopping:
                    self._cond.wait(max(self.every_s, 0.1))  # retry next interval

    def _write(self, batch: Mapping[str, _Snapshot]) -> bool:
        started = time.perf_counter()
        try:
            self.sink.save_many({store_id: snap.data for store_id, snap in batch.items()})
        except GuardStoreError as exc:
            self.metrics.snapshot_error()
            self.errors += 1
            if not self._failing:
                log.warning("store snapshots not written, retrying every interval: %s", exc)
            self._failing = True
            return False
        if self._failing:
            log.info("store snapshots written again")
            self._failing = False
        written = time.perf_counter() - started
        self.metrics.snapshot_seconds(written + sum(s.serialize_s for s in batch.values()))
        for store_id, snap in batch.items():
            self.metrics.snapshot_bytes(store_id, len(snap.data))
        self.rounds += 1
        return True
