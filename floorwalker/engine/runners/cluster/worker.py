"""``floorwalker worker``: a faust-streaming app running the engine core per store.

One agent consumes the events topic (keyed by store, so a store's messages come
in order from one partition). Per record it finds the store's engine
(:class:`~floorwalker.engine.runners.cluster.shards.Shards`: restored from the
state table the first time the store is seen after start or a rebalance), runs
the :class:`~floorwalker.engine.runners.step.Step` with the event clock, produces
every action and dead letter to the actions topic keyed by store (replay's
``{"at","topic","payload"}``), then writes the store's snapshot
(``engine.snapshot_store``) back to the table.

The table (``engine-state``, key = store id, value = the events offset the state
includes and the ``snapshot_store`` bytes, :func:`.shards.pack_state`) is a faust
Table backed by a changelog topic co-partitioned with the events topic; faust
recovers it from the changelog when partitions move. For now the snapshot is
written after every record: simple and always current, at the cost of one
changelog record per event (a per-N-records or per-interval checkpoint with
replay of the records since is the optimisation, not built yet).

Several workers of one app id share the partitions (one consumer group). Each
runs with faust's web server off and its own data directory (a temp dir unless
given), so any number can run on one machine.

Not built yet: the wall clock (``--clock wall``: timers firing when no event
comes), exactly-once (the bridge dedups actions by id instead).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.types import StreamT
from faust.worker import Worker

from floorwalker.engine.runners.cluster.kafka import ensure_topics
from floorwalker.engine.runners.cluster.names import (
    DEFAULT_PARTITIONS,
    TOPIC_HEADER,
    actions_topic,
    events_topic,
    header,
)
from floorwalker.engine.runners.cluster.shards import Shards

log = logging.getLogger("floorwalker.worker")

STATE_TABLE = "engine-state"


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
    session_timeout_s: float = 10.0
    """A worker that stopped heartbeating loses its partitions after this long."""


def build_app(shards: Shards, settings: WorkerSettings) -> faust.App:
    """The faust app: the events agent and the state table (not started)."""
    datadir = settings.datadir or Path(tempfile.mkdtemp(prefix="floorwalker-worker-"))
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka}",
        store="memory://",
        web_enabled=False,
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        # A worker that joins or leaves moves partitions within seconds, not a minute.
        broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 4),
    )
    events = app.topic(
        events_topic(settings.prefix),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    actions = app.topic(
        actions_topic(settings.prefix),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    table = app.Table(
        STATE_TABLE,
        default=None,
        key_type=str,
        value_type=bytes,  # faust's codec for bytes is "raw"
        partitions=settings.partitions,
    )

    def load(store: str) -> bytes | None:
        data = table.get(store)
        return data if isinstance(data, bytes) else None

    async def process(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            topic = header(event.headers, TOPIC_HEADER) or ""
            value = event.value if isinstance(event.value, bytes) else b""
            offset = event.message.offset
            outcome = shards.handle(topic, value, load, offset)
            key = (outcome.store or "_unknown").encode()
            for record in outcome.records:
                await actions.send(key=key, value=record)
            if outcome.snapshot is not None:
                table[outcome.store] = outcome.snapshot

    app.agent(events, name="floorwalker.events")(process)

    def assigned(_sender: Any, *args: Any, signal: Any = None, **_kw: Any) -> None:
        shards.forget()
        tps = args[0] if args else _kw.get("assigned", ())
        parts = sorted(tp.partition for tp in tps if tp.topic == events.get_topic_name())
        print(f"floorwalker worker: assigned partitions {parts}", file=sys.stderr, flush=True)

    def revoked(_sender: Any, *_args: Any, signal: Any = None, **_kw: Any) -> None:
        shards.forget()

    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]
    app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]
    return app


def run_worker(shards: Shards, settings: WorkerSettings) -> int:
    """Run a worker until SIGINT/SIGTERM."""
    # The events topic with its partition count before faust would auto-create it
    # with the broker's default (the state table's changelog follows it).
    names = [events_topic(settings.prefix), actions_topic(settings.prefix)]
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(ensure_topics(settings.kafka, names, settings.partitions))
    finally:
        loop.close()
    app = build_app(shards, settings)
    worker = Worker(app, loglevel=settings.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0  # pragma: no cover (execute_from_commandline exits)
