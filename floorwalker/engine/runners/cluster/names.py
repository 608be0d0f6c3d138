"""Kafka topic names, keys and headers of the cluster runner (no Kafka client imported).

* ``{prefix}.events`` - inbound device messages as the bridge produces them: the
  MQTT payload as received (bytes), keyed by store id (so a store's messages stay
  in one partition, in order), the MQTT topic in the :data:`TOPIC_HEADER` header;
* ``{prefix}.actions`` - what the workers decided, keyed by store: one JSON
  document ``{"at", "topic", "payload"}`` per record, exactly a line of
  ``floorwalker replay`` (actions and dead letters alike).

A multi-level MQTT prefix (``acme/fw``) becomes ``acme.fw`` in Kafka names.
"""

from __future__ import annotations

from typing import Any

import orjson

from floorwalker.devices.topics import DEFAULT_PREFIX, store_of

TOPIC_HEADER = "mqtt-topic"
"""The record header holding the MQTT topic of an events record."""
WORKER_HEADER = "fw-worker"
"""The record header naming the worker that produced an actions record."""
UNKNOWN_STORE = "_unknown"
"""The key of an events record whose topic names no store (the worker dead-letters it)."""
DEFAULT_PARTITIONS = 8
"""Partitions of the events and actions topics (and of the state table's changelog)."""


def kafka_prefix(prefix: str = DEFAULT_PREFIX) -> str:
    return prefix.replace("/", ".")


def events_topic(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{kafka_prefix(prefix)}.events"


def actions_topic(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{kafka_prefix(prefix)}.actions"


def guard_owner(app_id: str) -> str:
    """The Redis guard owner every worker of a cluster app shares.

    A store's records after its checkpoint come again to whichever worker takes
    it over; one owner for them all makes a press or a receipt the previous
    worker recorded in the guards one to process again, not a duplicate to drop
    (the store's own dedup, in its snapshot, still stops real repeats)."""
    return f"cluster:{app_id}"


def event_key(mqtt_topic: str, prefix: str = DEFAULT_PREFIX) -> bytes:
    """The record key of an inbound message: its store id."""
    return (store_of(mqtt_topic, prefix) or UNKNOWN_STORE).encode()


def action_record(at: float, topic: str, payload: Any) -> bytes:
    """An actions record's value: one line of replay's output, without the newline."""
    return orjson.dumps({"at": at, "topic": topic, "payload": payload})


def header(headers: Any, name: str = TOPIC_HEADER) -> str | None:
    """A header's text from aiokafka's list of pairs or faust's mapping; None if absent."""
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    for key, value in items:
        if key == name and value is not None:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None
