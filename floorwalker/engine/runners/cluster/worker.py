"""``floorwalker worker``: a faust-streaming app running the engine core per store.

One agent consumes the events topic (keyed by store, so a store's messages come
in order from one partition) in small batches and hands each batch to the
worker's **core thread**, the one thread that touches the engines
(:class:`~floorwalker.engine.runners.cluster.shards.Shards`) and so the only one
making the engine's synchronous Redis calls (guards, profiles): the event loop
never waits on Redis, it goes on heartbeating, fetching and producing. Every
action and dead letter goes to the actions topic keyed by store (replay's
``{"at","topic","payload"}``, the worker's name in the ``fw-worker`` header).

State. The table (``engine-state``, key = store id, value = the events offset the
state includes and the ``snapshot_store`` bytes, :func:`.shards.pack_state`) is a
faust Table backed by a changelog topic co-partitioned with the events topic
(the key is the store id, partitioned as the bridge partitions the events).
Every ``checkpoint_every_s`` the worker writes the snapshot of each store that
changed since the last checkpoint, and only then acknowledges the records the
snapshots include: the committed offset never passes a checkpoint, so after a
crash the next owner restores the table and re-processes every record after it
(those the snapshot already holds are skipped by offset). The actions produced
before a checkpoint are flushed to the broker before its snapshots are written,
so a snapshot never holds a decision whose action is not in the topic. It also
checkpoints when partitions are revoked and at shutdown.

Timers (``--clock wall``): one task per worker sleeps until the earliest due
timer of the stores it holds (or until a record brings an earlier one), runs
the due timers in the core thread and produces their actions. When partitions
are assigned (after faust recovered the table), every store of them that has a
value is restored at once, so its timers fire on time even if the store never
sends another message. Re-decided actions after a move carry the ids of the
first decision: the bridge's dedup makes them exactly-once to the devices.

Several workers of one app id share the partitions (one consumer group). Each
runs with faust's web server off and its own data directory (a temp dir unless
given), so any number can run on one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT, StreamT
from faust.worker import Worker

from floorwalker.engine.runners.cluster.kafka import ensure_topics, partition_of
from floorwalker.engine.runners.cluster.names import (
    DEFAULT_PARTITIONS,
    TOPIC_HEADER,
    WORKER_HEADER,
    actions_topic,
    events_topic,
    header,
)
from floorwalker.engine.runners.cluster.recovery import ClearFirstTableManager
from floorwalker.engine.runners.cluster.shards import Record, Shards
from floorwalker.engine.runners.floorfeed import FloorFeed
from floorwalker.errors import ConfigError

log = logging.getLogger("floorwalker.worker")

STATE_TABLE = "engine-state"
T = TypeVar("T")


@dataclass(frozen=True)
class WorkerSettings:
    kafka: str
    """Bootstrap server, ``host:port``."""
    app_id: str = "floorwalker"
    """The faust app id: the consumer group, and the changelog topic's prefix."""
    prefix: str = "fw"
    partitions: int = DEFAULT_PARTITIONS
    """Partitions of the events topic (the state table's changelog gets as many)."""
    datadir: Path | None = None
    """faust's data directory; None makes a temp dir per worker."""
    loglevel: str = "warning"
    name: str = ""
    """This worker's name in the ``fw-worker`` header of its records; default host:pid."""
    checkpoint_every_s: float = 1.0
    """How often the changed stores' snapshots are written (and their records acked)."""
    session_timeout_s: float = 6.0
    """A worker that stopped heartbeating loses its partitions after this long."""
    heartbeat_s: float = 0.5
    fetch_max_wait_ms: int = 20
    """How long the broker may hold a fetch for data (faust's own is 1,500 ms): the
    floor of produce-to-consume latency when traffic is light."""
    batch: int = 200
    """Records handed to the core thread at once, at most."""
    batch_wait_s: float = 0.002
    """How long a batch waits to fill (adds at most this to latency)."""

    def __post_init__(self) -> None:
        if self.checkpoint_every_s <= 0 or self.session_timeout_s <= 0 or self.heartbeat_s <= 0:
            raise ConfigError("checkpoint interval, session timeout and heartbeat must be > 0")
        if self.heartbeat_s * 3 > self.session_timeout_s:
            raise ConfigError(
                "the heartbeat must be at most a third of the session timeout "
                "(e.g. --session-timeout 6s with --heartbeat 0.5s)"
            )
        if self.batch < 1 or self.fetch_max_wait_ms < 0:
            raise ConfigError("batch must be >= 1 and the fetch wait >= 0 ms")

    @property
    def worker_name(self) -> str:
        return self.name or f"{socket.gethostname()}:{os.getpid()}"


# --------------------------------------------------------------------------- faust plumbing


def _transport(fetch_max_wait_ms: int) -> type[faust_aiokafka.Transport]:
    """faust's aiokafka transport with our fetch wait (faust 0.15 hard-codes 1,500 ms)."""

    class _Thread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by consumer.start()
            return consumer

        async def getmany(self, active_partitions: Any, timeout: float) -> Any:
            # A copy: faust hands aiokafka its live set of active partitions, which a
            # pause (the end of a recovery) can empty while aiokafka waits for records,
            # and aiokafka takes an empty set for "every partition": it drained the
            # paused events partitions too, and faust dropped what it got of them.
            frozen = None if active_partitions is None else set(active_partitions)
            return await super().getmany(frozen, timeout)

    class _Consumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> Any:
            return _Thread(self, loop=self.loop, beacon=self.beacon)

    class _Transport(faust_aiokafka.Transport):
        Consumer = _Consumer

    return _Transport


class _App(faust.App):
    fetch_max_wait_ms = 1500

    def _new_transport(self) -> Any:
        return _transport(self.fetch_max_wait_ms)(self.conf.broker_consumer, self)


def faust_app(settings: WorkerSettings) -> _App:
    datadir = settings.datadir or Path(tempfile.mkdtemp(prefix="floorwalker-worker-"))
    app = _App(
        settings.app_id,
        broker=f"kafka://{settings.kafka}",
        store="memory://",
        web_enabled=False,
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Offsets move only when a checkpoint acks records: committing often is cheap.
        broker_commit_every=10_000,
        broker_commit_interval=min(1.0, settings.checkpoint_every_s),
        broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=max(settings.session_timeout_s, 10.0),
        broker_heartbeat_interval=settings.heartbeat_s,
        # faust's own loses records fetched at the end of a recovery (see .recovery).
        TableManager=ClearFirstTableManager,
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    return app


class RateMeter:
    """Records handled and when the first and the last came (``bench cluster`` reads it)."""

    def __init__(self, who: str = "worker", every_s: float = 2.0) -> None:
        self.who = who
        self.every_s = every_s
        self.count = 0
        self.first = self.last = self._reported = 0.0

    def add(self, n: int) -> None:
        now = time.time()
        if self.count == 0:
            self.first = now
        self.count += n
        self.last = now
        if now - self._reported >= self.every_s:
            self._reported = now
            self.report()

    def report(self) -> None:
        print(
            f"floorwalker {self.who}: handled {self.count} records "
            f"from {self.first:.3f} to {self.last:.3f}",
            file=sys.stderr,
            flush=True,
        )


# --------------------------------------------------------------------------- the worker


class WorkerCore:
    """The worker's side of the event loop: the core thread, checkpoints and timers.

    Every step that touches the engines runs in the core thread, under
    :attr:`lock`, together with producing what it returned: records go to the
    producer in decision order, and a checkpoint sees every action before it
    already handed to the producer.
    """

    def __init__(
        self,
        shards: Shards,
        settings: WorkerSettings,
        app: _App,
        on_stop: Callable[[], None] | None = None,
        feed: FloorFeed | None = None,
    ) -> None:
        self.shards = shards
        self.feed = feed
        """The floor page's pictures of the stores held here, if a page is served."""
        self.on_stop = on_stop
        """Run in the core thread after the final checkpoint (close Redis clients)."""
        self.settings = settings
        self.app = app
        self.name = settings.worker_name
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floorwalker-core")
        self.lock = asyncio.Lock()
        self.held: list[EventT[Any]] = []
        """Records handled since the last checkpoint, acknowledged by the next one."""
        self.rate = RateMeter()
        self.wake = asyncio.Event()
        self.scheduled = float("inf")
        self.stopping = False
        self.next_offset: dict[int, int] = {}
        """partition -> the offset the next record should have (since the assignment)."""
        self.undelivered = 0
        """Records the consumer skipped: offsets it jumped over (see :meth:`_check_order`)."""
        self.events = app.topic(
            events_topic(settings.prefix),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        self.actions = app.topic(
            actions_topic(settings.prefix),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        self.table = app.Table(
            STATE_TABLE,
            default=None,
            key_type=str,
            value_type=bytes,  # faust's codec for bytes is "raw"
            partitions=settings.partitions,
            # The producer's partitioner on the store id, as the bridge's: the key's
            # changelog partition is its events partition, from any task.
            use_partitioner=True,
        )

    async def core(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _produce(self, records: list[Record]) -> None:
        headers = {WORKER_HEADER: self.name.encode()}
        for store, value in records:
            # force: straight to the producer, never held back as an attachment of
            # the current event (sent at its commit, after the checkpoint's flush).
            await self.actions.send(key=store.encode(), value=value, headers=headers, force=True)

    def _schedule(self, wake: float | None) -> None:
        if wake is not None and wake < self.scheduled:
            self.scheduled = wake
            self.wake.set()

    # ------------------------------------------------------------------ records

    async def process(self, stream: StreamT[Any]) -> None:
        """The agent: batches of records through the core thread, held until checkpointed."""
        s = self.settings
        # noack_take: a batch of events that only our checkpoint acknowledges.
        batches = stream.noack_take(s.batch, within=s.batch_wait_s)  # type: ignore[attr-defined]
        async for batch in batches:
            if self.stopping:
                # After the final checkpoint: left unacked, for the next owner to take.
                continue
            items = [
                (
                    header(e.headers, TOPIC_HEADER) or "",
                    e.value if isinstance(e.value, bytes) else b"",
                    e.message.offset,
                    e.message.partition,
                )
                for e in batch
            ]
            self._check_order(items)
            async with self.lock:
                records, wake = await self.core(self.shards.handle_batch, items)
                await self._produce(records)
                self.held.extend(batch)
            self.rate.add(len(batch))
            self._schedule(wake)

    def _check_order(self, items: list[tuple[str, bytes, int, int]]) -> None:
        """Count and report records the consumer jumped over.

        The events topic is written without transactions and never compacted, so
        its offsets have no holes: a jump means records were fetched and dropped
        before the agent saw them (faust did so at the end of a recovery, see
        :mod:`.recovery`), and the stores of that partition missed them.
        """
        for _topic, _value, offset, partition in items:
            expected = self.next_offset.get(partition)
            if expected is not None and offset > expected:
                self.undelivered += offset - expected
                print(
                    f"floorwalker worker: partition {partition}: offsets {expected} to "
                    f"{offset - 1} were never delivered",
                    file=sys.stderr,
                    flush=True,
                )
            if expected is None or offset >= expected:
                self.next_offset[partition] = offset + 1

    # ------------------------------------------------------------------ checkpoints

    async def checkpoint(self) -> int:
        """Write the changed stores' snapshots, then ack the records they include."""
        async with self.lock:
            values = await self.core(self.shards.checkpoint)
            held, self.held = self.held, []
            if values:
                # The actions of these states reach the broker before the states do.
                await self.app.producer.flush()
                await self._save(values)
            for event in held:
                event.ack()
        return len(values)

    async def _save(self, values: list[tuple[str, bytes]]) -> None:
        """Write table values and wait until the broker has every one of them.

        The states reach the broker before the offsets move: a commit past a
        snapshot not yet written would, after a crash, restore the older snapshot
        and skip the records between. faust's ``table[key] = value`` goes through
        its producer buffer, whose flush gives up after 0.1 s without a send and
        returns while the last message is still being handed over; so the
        changelog records are sent here directly and their delivery awaited.
        """
        table = self.table
        sent = [
            # The changelog topic's own serializers, as faust's send_changelog uses.
            await table.changelog_topic.send(key=store, value=value, force=True)
            for store, value in values
        ]
        await self.app.producer.flush()
        await asyncio.gather(*sent)
        for store, value in values:
            table.data[store] = value  # the local copy, without a second changelog record

    async def checkpoints(self) -> None:
        """Every ``checkpoint_every_s``, and at once when a rebalance or shutdown waits
        for the held records to be acked."""
        every = self.settings.checkpoint_every_s
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            urgent = (self.app.rebalancing or self.app.should_stop) and bool(self.held)
            if urgent or time.monotonic() - last >= every:
                last = time.monotonic()
                await self.checkpoint()

    async def final(self) -> None:
        """At shutdown: no more timers; the last snapshots, flushed."""
        self.stopping = True
        self.wake.set()
        written = await self.checkpoint()
        await self.app.producer.flush()
        log.info("final checkpoint: %d store(s)", written)
        self.rate.report()
        if self.on_stop is not None:
            await self.core(self.on_stop)

    # ------------------------------------------------------------------ what people see

    async def observe(self) -> None:
        """The floor page's picture and the metrics, from the core thread, twice a second."""
        every = self.feed.interval_s if self.feed is not None else 1.0
        while not self.stopping:
            await asyncio.sleep(every)
            async with self.lock:
                await self.core(self._observe)

    def _observe(self) -> None:
        self.shards.sync_metrics()
        if self.feed is not None:
            self.feed.publish_floors(self.shards.floors())

    # ------------------------------------------------------------------ timers

    async def timers(self) -> None:
        """Wall clock: fire due timers on time, in whichever worker holds the store."""
        while not self.stopping:
            delay = min(1.0, max(0.0, self.scheduled - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=delay)
            self.wake.clear()
            if self.stopping:
                return
            if self.scheduled > time.time():
                continue
            async with self.lock:
                records = await self.core(self.shards.fire_due, time.time())
                await self._produce(records)
                nxt = await self.core(self.shards.next_wake)
            self.scheduled = float("inf") if nxt is None else nxt

    # ------------------------------------------------------------------ rebalances

    async def revoked(self) -> None:
        """Partitions are leaving: checkpoint what changed, then stop saving any store."""
        await self.checkpoint()
        await self.app.producer.flush()
        async with self.lock:
            await self.core(self.shards.release)

    async def recovered(self) -> None:
        """The table is recovered for the new assignment: restore its stores."""
        events = self.events.get_topic_name()
        tps = {tp for tp in self.app.consumer.assignment() if tp.topic == events}
        parts = {tp.partition for tp in tps}
        n = self.settings.partitions
        assignment: dict[str, tuple[int, bytes | None]] = {}
        for store in self.shards.registries:
            partition = partition_of(store, n)
            if partition in parts:
                value = self.table.get(store)
                assignment[store] = (partition, value if isinstance(value, bytes) else None)
        backlog = await self._backlog(tps) if self.shards.wall and tps else {}
        self.next_offset.clear()  # the partitions start again from their committed offsets
        async with self.lock:
            before = self.shards.restored
            await self.core(self.shards.own, assignment, backlog)
            restored = self.shards.restored - before
            nxt = await self.core(self.shards.next_wake)
        self.scheduled = float("inf")
        self._schedule(nxt)
        print(
            f"floorwalker worker: ready, partitions {sorted(parts)}, "
            f"{restored} store(s) restored, backlog in {sorted(backlog)}",
            file=sys.stderr,
            flush=True,
        )

    async def _backlog(self, tps: set[TP]) -> dict[int, int]:
        """partition -> end offset, for partitions with records after the committed offset."""
        consumer = self.app.consumer
        committed: Mapping[TP, int | None] = await consumer.seek_to_committed()  # type: ignore[attr-defined]
        ends: Mapping[TP, int] = await consumer.highwaters(*tps)
        starts: Mapping[TP, int] = await consumer.earliest_offsets(*tps)
        backlog: dict[int, int] = {}
        for tp in tps:
            start = committed.get(tp)
            if start is None or start < 0:
                start = starts.get(tp, 0)
            end = ends.get(tp, 0)
            if end > start:
                backlog[tp.partition] = end
        return backlog


def build_app(
    shards: Shards,
    settings: WorkerSettings,
    on_stop: Callable[[], None] | None = None,
    feed: FloorFeed | None = None,
) -> faust.App:
    """The faust app: the events agent, the state table, checkpoints and timers (not started)."""
    app = faust_app(settings)
    worker = WorkerCore(shards, settings, app, on_stop, feed)
    app.agent(worker.events, name="floorwalker.events")(worker.process)
    app.task(worker.checkpoints)
    if feed is not None or shards.metrics is not None:
        app.task(worker.observe)
    if shards.wall:
        app.task(worker.timers)
    worker.table.on_recover(worker.recovered)

    def assigned(_sender: Any, *args: Any, signal: Any = None, **_kw: Any) -> None:
        tps = args[0] if args else _kw.get("assigned", ())
        parts = sorted(tp.partition for tp in tps if tp.topic == worker.events.get_topic_name())
        print(f"floorwalker worker: assigned partitions {parts}", file=sys.stderr, flush=True)

    async def revoked(_sender: Any, *_args: Any, signal: Any = None, **_kw: Any) -> None:
        await worker.revoked()

    async def shutdown(_sender: Any, *_args: Any, signal: Any = None, **_kw: Any) -> None:
        await worker.final()

    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]
    app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]
    app.on_before_shutdown.connect(shutdown)  # type: ignore[arg-type]
    return app


def run_worker(
    shards: Shards,
    settings: WorkerSettings,
    on_stop: Callable[[], None] | None = None,
    feed: FloorFeed | None = None,
) -> int:
    """Run a worker until SIGINT/SIGTERM; ``on_stop`` after its final checkpoint; ``feed``
    gets the floor pictures of the stores it holds."""
    # The events topic with its partition count before faust would auto-create it
    # with the broker's default (the state table's changelog follows it).
    names = [events_topic(settings.prefix), actions_topic(settings.prefix)]
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(ensure_topics(settings.kafka, names, settings.partitions))
    finally:
        loop.close()
    app = build_app(shards, settings, on_stop, feed)
    worker = Worker(app, loglevel=settings.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0  # pragma: no cover (execute_from_commandline exits)
