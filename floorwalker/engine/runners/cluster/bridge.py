"""``floorwalker bridge``: MQTT in to the events topic, the actions topic back out to MQTT.

Inbound: every device message (QoS 1, manual acks, persistent session, as the
edge runner subscribes) is produced to ``{prefix}.events`` as ``kafka load``
does: the payload bytes, keyed by store, the MQTT topic in a header,
``acks=all``. Its MQTT PUBACK goes out only once Kafka acknowledged the record,
so a bridge that dies in between gets the message redelivered.

Outbound: the actions topic (consumer group ``{app}-bridge``) is published to
MQTT with QoS 1, the record's ``payload`` on its ``topic``. A worker that
reprocesses records after a crash or a rebalance produces the same actions
again (same ids); the bridge publishes each (topic, id, step) once within
``dedup_ttl_s``: a ``SET NX EX`` in Redis with ``redis_url`` (shared by every
bridge), else in this process's memory. Dead letters carry no id and always go
out. Offsets are committed once every publish of a batch has its PUBACK (or the
wait timed out): at least once to the broker, at most once to the device within
the dedup window.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from floorwalker.devices.topics import DEFAULT_PREFIX, inbound_filters
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.cluster.kafka import ensure_topics
from floorwalker.engine.runners.cluster.names import (
    DEFAULT_PARTITIONS,
    TOPIC_HEADER,
    actions_topic,
    event_key,
    events_topic,
)
from floorwalker.engine.runners.mqtt import Inbound, LinkSettings, MqttLink

log = logging.getLogger("floorwalker.bridge")


@dataclass(frozen=True)
class BridgeSettings:
    mqtt: BrokerAddress
    kafka: str
    prefix: str = DEFAULT_PREFIX
    app_id: str = "floorwalker"
    client_id: str = "floorwalker-bridge"
    partitions: int = DEFAULT_PARTITIONS
    redis_url: str | None = None
    redis_prefix: str = "fw:"
    dedup_ttl_s: float = 86400.0
    queue_size: int = 10_000
    puback_wait_s: float = 10.0


class Dedup:
    """Has an action (topic, id, step) gone out within the TTL? Redis or this process."""

    def __init__(self, ttl_s: float, redis_url: str | None = None, prefix: str = "fw:") -> None:
        self.ttl_s = ttl_s
        self.prefix = prefix + "sent:"
        self._seen: dict[str, float] = {}
        self._redis: Any = None
        if redis_url is not None:
            import redis  # noqa: PLC0415

            self._redis = redis.Redis.from_url(redis_url)
        self.duplicates = 0

    @staticmethod
    def key(topic: str, payload: object) -> str | None:
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
            return None
        return f"{topic}|{payload['id']}|{payload.get('step', '')}"

    def first(self, topic: str, payload: object) -> bool:
        """True the first time this action is seen (and marks it), False for a repeat."""
        key = self.key(topic, payload)
        if key is None:
            return True
        if self._redis is not None:
            fresh = bool(
                self._redis.set(self.prefix + key, b"1", nx=True, px=int(self.ttl_s * 1000))
            )
        else:
            now = time.monotonic()
            if len(self._seen) > 100_000:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            fresh = self._seen.get(key, 0.0) <= now
            if fresh:
                self._seen[key] = now + self.ttl_s
        if not fresh:
            self.duplicates += 1
        return fresh


class Bridge:
    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        self.inbox: queue.Queue[Inbound] = queue.Queue(maxsize=settings.queue_size)
        link = LinkSettings.to(
            settings.mqtt, settings.client_id, inbound_filters(prefix=settings.prefix)
        )
        self.link = MqttLink(link, self.inbox)
        self.dedup = Dedup(settings.dedup_ttl_s, settings.redis_url, settings.redis_prefix)
        self.forwarded = 0
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        await ensure_topics(
            s.kafka, [events_topic(s.prefix), actions_topic(s.prefix)], s.partitions
        )
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka, acks="all", linger_ms=2)
        consumer = AIOKafkaConsumer(
            actions_topic(s.prefix),
            bootstrap_servers=s.kafka,
            group_id=f"{s.app_id}-bridge",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        await producer.start()
        await consumer.start()
        self.link.start()
        try:
            await asyncio.gather(self._inbound(producer, stop), self._outbound(consumer, stop))
        finally:
            self.link.stop()
            await consumer.stop()
            await producer.stop()

    async def _inbound(self, producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
        topic, prefix = events_topic(self.settings.prefix), self.settings.prefix
        while not stop.is_set():
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.005)
                continue
            headers = [(TOPIC_HEADER, item.topic.encode())]
            sent = await producer.send(
                topic, item.payload, key=event_key(item.topic, prefix), headers=headers
            )
            sent.add_done_callback(lambda fut, item=item: self._acked(fut, item))

    def _acked(self, fut: asyncio.Future[Any], item: Inbound) -> None:
        if fut.cancelled() or fut.exception() is not None:
            log.error("events record not acknowledged by Kafka; MQTT will redeliver %s", item.topic)
            return
        self.link.ack(item)  # only now: the broker redelivers it if we die before
        self.forwarded += 1

    async def _outbound(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            if not batches:
                continue
            for records in batches.values():
                for record in records:
                    self._publish(record.value)
            deadline = time.monotonic() + self.settings.puback_wait_s
            while self.link.pending and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            await consumer.commit()

    def _publish(self, value: bytes | None) -> None:
        try:
            record = orjson.loads(value or b"")
            topic, payload = record["topic"], record["payload"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.error("actions record is not {at, topic, payload}: %r", (value or b"")[:200])
            return
        if self.dedup.first(topic, payload):
            self.link.publish(topic, orjson.dumps(payload))
            self.published += 1


def run_bridge(settings: BridgeSettings) -> int:
    """Run until SIGINT/SIGTERM."""
    import signal  # noqa: PLC0415

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Bridge(settings).run(stop)

    asyncio.run(main())
    return 0
