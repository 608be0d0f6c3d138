"""MqttClient, the small client of simulators, dashboards and benches, on a real Mosquitto."""

from __future__ import annotations

import threading

import pytest

from floorwalker import services
from floorwalker.devices.topics import bell_topic, subscription_filter
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.mqtt import MqttClient
from floorwalker.errors import ServiceError

pytestmark = pytest.mark.integration


def test_subscribed_when_connected_publishes_and_counts_pubacks(
    tester: BrokerAddress, unique_prefix: str
) -> None:
    got: list[tuple[str, bytes]] = []
    arrived = threading.Event()
    acked: list[int] = []
    acks = threading.Event()

    def on_message(topic: str, payload: bytes) -> None:
        got.append((topic, payload))
        arrived.set()

    def on_puback(mid: int) -> None:
        acked.append(mid)
        acks.set()

    receiver = MqttClient(
        f"{unique_prefix}-rx",
        tester,
        subscriptions=(subscription_filter("bell", prefix=unique_prefix),),
        on_message=on_message,
    )
    with receiver, MqttClient(f"{unique_prefix}-tx", tester, on_puback=on_puback) as sender:
        topic = bell_topic("s001", "bell-1", prefix=unique_prefix)
        mid = sender.publish(topic, b'{"id": "p1"}')
        assert arrived.wait(10.0), "subscribed before connect() returned: nothing missed"
        assert acks.wait(10.0)
    assert got == [(topic, b'{"id": "p1"}')]
    assert acked == [mid]
    receiver.close()  # closing again is harmless


def test_connect_raises_service_error_when_no_broker_listens() -> None:
    client = MqttClient("nobody-home", "127.0.0.1", services.free_port())
    with pytest.raises(ServiceError, match="cannot reach the broker"):
        client.connect(timeout_s=2.0)
