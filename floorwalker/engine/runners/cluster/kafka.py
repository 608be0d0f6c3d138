"""``floorwalker kafka load|actions``: a capture into the events topic, the actions topic out.

``load`` produces every capture line exactly as the bridge will produce an MQTT
message: the payload bytes (what replay feeds the engine), keyed by store, the
MQTT topic in a header, ``acks=all``. It creates the events and actions topics
with ``partitions`` partitions first if they do not exist.

``actions`` prints the actions topic from the beginning as replay's JSON Lines
and returns once no record came for ``idle`` seconds (after the first one; it
waits up to ``wait`` seconds for that).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from floorwalker.devices.topics import DEFAULT_PREFIX
from floorwalker.engine.runners.cluster.names import (
    DEFAULT_PARTITIONS,
    TOPIC_HEADER,
    WORKER_HEADER,
    actions_topic,
    event_key,
    events_topic,
    header,
)
from floorwalker.engine.runners.replay import CaptureLine, read_capture


def partition_of(store: str, partitions: int) -> int:
    """The partition of a store's records: the Java client's (and aiokafka's) default
    partitioner on the key, so the bridge, ``kafka load`` and faust agree."""
    hashed: int = murmur2(store.encode())
    return (hashed & 0x7FFFFFFF) % partitions


async def ensure_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """Create the topics that do not exist yet, with ``partitions`` partitions each."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            # Another loader or worker may win the race.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
                )
    finally:
        await admin.close()


async def load(
    bootstrap: str,
    capture: Path,
    *,
    prefix: str = DEFAULT_PREFIX,
    partitions: int = DEFAULT_PARTITIONS,
) -> tuple[int, int]:
    """Produce a capture to the events topic; (records produced, lines skipped)."""
    topic = events_topic(prefix)
    await ensure_topics(bootstrap, [topic, actions_topic(prefix)], partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent = skipped = 0
    try:
        pending = []
        for line in read_capture(capture):
            if not isinstance(line, CaptureLine):
                skipped += 1  # not a capture record: nothing the bridge could have received
                continue
            headers = [(TOPIC_HEADER, line.topic.encode())]
            key = event_key(line.topic, prefix)
            pending.append(await producer.send(topic, line.payload, key=key, headers=headers))
            sent += 1
        await producer.flush()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent, skipped


async def print_actions(
    bootstrap: str,
    out: IO[bytes],
    *,
    prefix: str = DEFAULT_PREFIX,
    idle: float = 5.0,
    wait: float = 60.0,
) -> int:
    """Write the actions topic as JSON Lines until ``idle`` s pass without a record."""
    consumer = AIOKafkaConsumer(
        actions_topic(prefix),
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    count = 0
    try:
        started = last = time.monotonic()
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    if record.value is not None:
                        out.write(record.value + b"\n")
                        count += 1
                last = now
            out.flush()
            if count == 0 and now - started < wait:
                continue
            if now - last >= idle:
                return count
    finally:
        await consumer.stop()


def run_load(bootstrap: str, capture: Path, *, prefix: str, partitions: int) -> int:
    sent, skipped = asyncio.run(load(bootstrap, capture, prefix=prefix, partitions=partitions))
    print(f"floorwalker kafka load: {sent} records to {events_topic(prefix)}", file=sys.stderr)
    if skipped:
        print(f"floorwalker kafka load: {skipped} lines were not capture records", file=sys.stderr)
    return 0


def run_actions(bootstrap: str, *, prefix: str, idle: float, wait: float) -> int:
    asyncio.run(print_actions(bootstrap, sys.stdout.buffer, prefix=prefix, idle=idle, wait=wait))
    return 0


# --------------------------------------------------------------------------- bench helpers


async def failover_time(
    bootstrap: str,
    *,
    prefix: str,
    store: str,
    survivor: str,
    kill: Callable[[], None],
    period_s: float = 0.02,
    warm_s: float = 2.0,
    timeout_s: float = 90.0,
) -> float:
    """Seconds from ``kill()`` to the first actions record of ``store`` from ``survivor``.

    A record the store's engine dead-letters (a bell no registry has) goes to the
    events topic every ``period_s``, so the store's owner always has something to
    say; ``kill`` runs after ``warm_s``.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(
        actions_topic(prefix),
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        fetch_max_wait_ms=10,
    )
    await producer.start()
    await consumer.start()
    await consumer.seek_to_end()
    topic = f"{prefix}/{store}/bell/no-such-bell"
    stop = asyncio.Event()

    async def pulse() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            value = b'{"id":"pulse-%d","ts":%f}' % (n, time.time())
            await producer.send(
                events_topic(prefix),
                value,
                key=event_key(topic, prefix),
                headers=[(TOPIC_HEADER, topic.encode())],
            )
            await asyncio.sleep(period_s)

    task = asyncio.create_task(pulse())
    try:
        await asyncio.sleep(warm_s)
        await asyncio.get_running_loop().run_in_executor(None, kill)
        killed = time.time()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for r in records:
                    by = header(r.headers, WORKER_HEADER)
                    at = float(r.timestamp) / 1e3
                    if r.key == store.encode() and by == survivor and at >= killed:
                        return at - killed
        raise TimeoutError(f"no record of {store} from {survivor} within {timeout_s:g} s")
    finally:
        stop.set()
        await task
        await consumer.stop()
        await producer.stop()
