"""CoreLoopLink: the runner's MQTT link driven by the core thread, on real Mosquitto brokers."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from floorwalker import services
from floorwalker.devices.broker_config import ANY_PREFIX, TESTER_USER, write_broker_config
from floorwalker.devices.registry import load_registry
from floorwalker.devices.topics import alert_topic, bell_topic, subscription_filter
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.inbox import Inbox
from floorwalker.engine.runners.mqtt import CoreLoopLink, Inbound, LinkSettings, MqttClient
from tests.engine.conftest import STORE

pytestmark = pytest.mark.integration


def _link(
    broker: BrokerAddress, client_id: str, prefix: str
) -> tuple[CoreLoopLink, queue.Queue[Inbound]]:
    inbox: queue.Queue[Inbound] = queue.Queue()
    subs = (subscription_filter("bell", prefix=prefix),)
    return CoreLoopLink(LinkSettings.to(broker, client_id, subs), inbox), inbox


def _drive(link: CoreLoopLink, until: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            return False
        link.poll(0.05)
        link.flush()
    return True


def _drain(inbox: queue.Queue[Inbound]) -> list[Inbound]:
    out = []
    while not inbox.empty():
        out.append(inbox.get_nowait())
    return out


def test_reads_acks_and_publishes_on_the_callers_thread(
    tester: BrokerAddress, unique_prefix: str
) -> None:
    link, inbox = _link(tester, f"{unique_prefix}-core", unique_prefix)
    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(_topic: str, payload: bytes) -> None:
        got.append(payload)
        arrived.set()

    band = alert_topic("s001", "band-1", prefix=unique_prefix)
    watcher = MqttClient(f"{unique_prefix}-w", tester, subscriptions=(band,), on_message=on_message)
    link.start()
    try:
        assert link.connected.is_set()
        own = f"paho-mqtt-client-{unique_prefix}-core"
        assert not any(t.name == own for t in threading.enumerate())  # no thread of its own
        with watcher, MqttClient(f"{unique_prefix}-dev", tester) as device:
            for k in range(50):
                device.publish(bell_topic("s001", "bell-1", prefix=unique_prefix), b"%d" % k)
            items: list[Inbound] = []

            def take_and_ack() -> bool:
                # The broker sends no more than its in-flight window (20) before acks.
                for item in _drain(inbox):
                    items.append(item)
                    link.ack(item)
                return len(items) >= 50

            assert _drive(link, take_and_ack)
            assert [i.payload for i in items] == [b"%d" % k for k in range(50)]
            link.publish(band, b'{"id": "a1"}')
            assert link.client.want_write()  # queued until this wake-up's flush
            link.flush()
            assert _drive(link, lambda: link.pending == 0 and arrived.is_set())
        assert got == [b'{"id": "a1"}']
    finally:
        link.stop()


def test_unacknowledged_messages_come_back_with_the_next_session(
    tester: BrokerAddress, unique_prefix: str
) -> None:
    client_id = f"{unique_prefix}-persistent"
    first, inbox = _link(tester, client_id, unique_prefix)
    first.start()
    with MqttClient(f"{unique_prefix}-dev", tester) as device:
        device.publish(bell_topic("s001", "bell-1", prefix=unique_prefix), b"kept")
        assert _drive(first, lambda: inbox.qsize() >= 1)
    assert _drain(inbox)[0].payload == b"kept"
    first.stop()  # never acked: the broker still owes it to this client id
    second, inbox2 = _link(tester, client_id, unique_prefix)
    second.start()
    try:
        assert _drive(second, lambda: inbox2.qsize() >= 1)
        item = _drain(inbox2)[0]
        assert item.payload == b"kept"
        second.ack(item)
        second.flush()
    finally:
        second.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[services.RunningService, BrokerAddress]]:
    registry = tmp_path / "store.yaml"
    registry.write_text(yaml.safe_dump(STORE, sort_keys=False), encoding="utf-8")
    config = write_broker_config(
        [load_registry(registry)], tmp_path / "broker", prefix=ANY_PREFIX, tester=True
    )
    service = services.start_mosquitto(services.MosquittoSettings(auth=config.auth), tmp_path)
    ident = config.credentials.identity(TESTER_USER)
    try:
        yield (
            service,
            BrokerAddress(service.host, service.port).with_identity(ident.username, ident.password),
        )
    finally:
        service.stop()


def test_reconnects_after_the_broker_restarts(
    own_broker: tuple[services.RunningService, BrokerAddress], unique_prefix: str
) -> None:
    service, broker = own_broker
    link, inbox = _link(broker, f"{unique_prefix}-core", unique_prefix)
    link.start()
    try:
        assert link.connects == 1
        service.restart()
        assert _drive(link, lambda: link.connects == 2, timeout_s=30.0)
        assert link.reconnects == 1
        with MqttClient(f"{unique_prefix}-dev", broker) as device:
            device.publish(bell_topic("s001", "bell-1", prefix=unique_prefix), b"after")
            assert _drive(link, lambda: inbox.qsize() >= 1)  # subscribed again
        assert _drain(inbox)[0].payload == b"after"
    finally:
        link.stop()


def test_a_full_inbox_holds_messages_in_order_and_reads_no_more(
    tester: BrokerAddress, unique_prefix: str
) -> None:
    inbox: Inbox[Inbound] = Inbox(2, 1 << 20, size=Inbound.size)
    subs = (subscription_filter("bell", prefix=unique_prefix),)
    link = CoreLoopLink(LinkSettings.to(tester, f"{unique_prefix}-core", subs), inbox)
    link.start()
    try:
        with MqttClient(f"{unique_prefix}-dev", tester) as device:
            for k in range(15):
                device.publish(bell_topic("s001", "bell-1", prefix=unique_prefix), b"%d" % k)
            # Publishes of our own awaiting PUBACK make paho read several packets per
            # loop_read: several messages may find the inbox full at once.
            for k in range(5):
                link.publish(alert_topic("s001", "band-1", prefix=unique_prefix), b"%d" % k)
            held_most = 0
            got: list[bytes] = []

            def slowly() -> bool:
                # Take one message per wake-up: the rest waits, held or in the broker.
                if inbox.qsize():
                    item = inbox.get_nowait()
                    got.append(item.payload)
                    link.ack(item)
                assert inbox.qsize() <= 2
                nonlocal held_most
                held_most = max(held_most, len(link._held))
                return len(got) >= 15

            assert _drive(link, slowly)
        assert got == [b"%d" % k for k in range(15)]
        assert link.dropped == 0
        assert held_most >= 1  # the inbox was full and the link held, not dropped
    finally:
        link.stop()
