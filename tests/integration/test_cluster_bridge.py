"""The MQTT <-> Kafka bridge on real Mosquitto and tansu.

In: a device message becomes an events record keyed by store with the MQTT topic
in a header (what ``kafka load`` produces). Out: actions records go to MQTT once
each, however often a worker produced them (dedup by topic, id and step); dead
letters always go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from floorwalker import services
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.cluster.bridge import Bridge, BridgeSettings, Dedup
from floorwalker.engine.runners.cluster.names import action_record, header
from floorwalker.engine.runners.cluster.tansu import tansu
from floorwalker.engine.runners.mqtt import MqttClient

pytestmark = pytest.mark.integration
BRIDGE = [sys.executable, "-m", "floorwalker.cli", "bridge"]


@contextlib.contextmanager
def _bridge(settings: BridgeSettings) -> Iterator[Bridge]:
    bridge = Bridge(settings)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(bridge.run(stop))
        except BaseException as exc:  # reported by the test below
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield bridge
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=20)
        loop.close()
    assert not failed, failed


def _wait(cond: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


async def _events(
    kafka: str, n: int, timeout_s: float = 20.0
) -> list[tuple[bytes | None, bytes | None, str | None]]:
    consumer = AIOKafkaConsumer(
        "fw.events", bootstrap_servers=kafka, auto_offset_reset="earliest", fetch_max_wait_ms=50
    )
    await consumer.start()
    got: list[tuple[bytes | None, bytes | None, str | None]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(got) < n and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got.extend((r.key, r.value, header(r.headers)) for r in records)
    finally:
        await consumer.stop()
    return got


async def _produce(kafka: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait("fw.actions", value, key=b"s001")
    finally:
        await producer.stop()


def test_the_bridge_forwards_events_and_publishes_each_action_once(tmp_path: Path) -> None:
    received: list[tuple[str, bytes]] = []
    with (
        tansu(tmp_path / "tansu.log") as kafka,
        services.mosquitto(services.MosquittoSettings(persistence=False), tmp_path) as mqtt,
    ):
        address = BrokerAddress(mqtt.host, mqtt.port)
        settings = BridgeSettings(mqtt=address, kafka=kafka, partitions=2)
        with (
            _bridge(settings) as bridge,
            MqttClient(
                "probe",
                address,
                subscriptions=["fw/+/shopper/+/offer", "fw/+/deadletter"],
                on_message=lambda t, p: received.append((t, p)),
            ).connect() as probe,
        ):
            _wait(bridge.link.connected.is_set)
            bell = orjson.dumps({"id": "p1", "ts": 1795393800.0})
            probe.publish("fw/s001/bell/bell-dairy", bell)
            (event,) = asyncio.run(_events(kafka, 1))
            assert event == (b"s001", bell, "fw/s001/bell/bell-dairy")
            _wait(lambda: bridge.forwarded == 1)

            offer = {"id": "of-1", "ts": 1.0, "rule": "r", "code": "C1"}
            topic = "fw/s001/shopper/app-1/offer"
            dead = {"ts": 2.0, "topic": "fw/s001/bel/x", "reason": "bad_topic", "raw": "{}"}
            twice = action_record(1.0, topic, offer)
            asyncio.run(
                _produce(
                    kafka, [twice, twice, action_record(2.0, "fw/s001/deadletter", dead), twice]
                )
            )
            _wait(lambda: len(received) >= 2 and bridge.dedup.duplicates == 2)
            time.sleep(0.3)
    assert [(t, orjson.loads(p)) for t, p in received] == [
        (topic, offer),
        ("fw/s001/deadletter", dead),
    ]


def test_dedup_tells_escalation_steps_apart() -> None:
    dedup = Dedup(60.0)
    alert = {"id": "al-1", "step": 1}
    assert dedup.first("fw/s/band/b/alert", alert)
    assert not dedup.first("fw/s/band/b/alert", alert)
    assert dedup.first("fw/s/band/b/alert", {**alert, "step": 2})
    assert dedup.first("fw/s/deadletter", {"reason": "x"})
    assert dedup.first("fw/s/deadletter", {"reason": "x"})


def test_floorwalker_bridge_runs_until_sigterm(tmp_path: Path) -> None:
    with (
        tansu(tmp_path / "tansu.log") as kafka,
        services.mosquitto(services.MosquittoSettings(persistence=False), tmp_path) as mqtt,
    ):
        proc = subprocess.Popen(
            [*BRIDGE, "--mqtt", mqtt.url, "--kafka", kafka, "--partitions", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            address = BrokerAddress(mqtt.host, mqtt.port)
            with MqttClient("probe", address).connect() as probe:
                # QoS 1 to a persistent session that may not exist yet: publish until it lands.
                deadline = time.monotonic() + 30
                got: list[tuple[bytes | None, bytes | None, str | None]] = []
                while not got and time.monotonic() < deadline:
                    probe.publish("fw/s002/pos/pos-1", b'{"id":"x","ts":1.0,"receipt":"r"}')
                    got = asyncio.run(_events(kafka, 1, timeout_s=1.0))
            assert got and got[0][0] == b"s002"
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
