"""The generated broker config on a real Mosquitto: who may publish and read what.

The session broker (tests/conftest.py) runs the config that ``floorwalker
broker-config`` generates for the test store, under any topic prefix, so each
test works under its own ``unique_prefix`` as usual. Every client here
connects with one identity of that config: a gateway, a bell, a band, a
shopper app, the engine, or the test harness's superuser (the probe, which
sees everything that the broker lets through).

A publish the ACL refuses is acknowledged and dropped (MQTT 3.1.1 has no way to
say no), so "it never arrives" is checked against a barrier: a permitted
message sent afterwards by the same client, on the same connection, arrives,
and Mosquitto keeps one client's messages in order.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from floorwalker import cli, services
from floorwalker.devices.broker_config import Credentials, load_credentials
from floorwalker.devices.topics import ack_topic, alert_topic, bell_topic, offer_topic
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.mqtt import MqttClient
from floorwalker.errors import ServiceError
from tests.conftest import SessionBroker
from tests.integration.conftest import (
    STORE_ID,
    Probe,
    StartEdge,
    bell_rule,
    place_staff,
    token,
    write_store,
)

pytestmark = pytest.mark.integration

WAIT_S = 5.0


class Device:
    """One client with one identity, recording what it receives."""

    def __init__(self, broker: BrokerAddress, client_id: str, *subscriptions: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self.client = MqttClient(
            client_id, broker, subscriptions=subscriptions, on_message=self._on
        ).connect()

    def _on(self, topic: str, payload: bytes) -> None:
        with self._cond:
            self.got.append((topic, payload))
            self._cond.notify_all()

    def publish(self, topic: str, body: dict[str, object]) -> None:
        self.client.publish(topic, orjson.dumps(body))

    def wait_for(self, topic: str, timeout: float = WAIT_S) -> bytes:
        with self._cond:
            ok = self._cond.wait_for(lambda: any(t == topic for t, _ in self.got), timeout)
            assert ok, f"nothing on {topic} within {timeout} s; got {self.topics()}"
            return next(p for t, p in self.got if t == topic)

    def topics(self) -> list[str]:
        with self._cond:
            return [t for t, _ in self.got]

    def close(self) -> None:
        self.client.close()


_Connect = Callable[..., Device]
"""``connect(who, *subscriptions)``: a :class:`Device` connected as ``who``."""


@pytest.fixture
def connect(session_broker: SessionBroker, unique_prefix: str) -> Iterator[_Connect]:
    opened: list[Device] = []

    def open_as(who: str, *subscriptions: str) -> Device:
        name = f"{unique_prefix}-{who}-{len(opened)}"
        device = Device(session_broker.address(who), name, *subscriptions)
        opened.append(device)
        return device

    yield open_as
    for device in opened:
        device.close()


def _offer(n: int = 1) -> dict[str, object]:
    return {"id": token("offer"), "code": f"FAKE-CODE-{n:04d}", "message": "free TV"}


# --------------------------------------------------------------------------- authentication


def test_anonymous_and_wrong_password_clients_are_refused(session_broker: SessionBroker) -> None:
    service = session_broker.service
    anonymous = MqttClient("anonymous", BrokerAddress(service.host, service.port))
    with pytest.raises(ServiceError, match="refused the connection"):
        anonymous.connect(timeout_s=5.0)
    wrong = BrokerAddress(service.host, service.port).with_identity("gw-1", "not-its-password")
    with pytest.raises(ServiceError, match="refused the connection") as caught:
        MqttClient("wrong-password", wrong).connect(timeout_s=5.0)
    assert "not-its-password" not in str(caught.value)
    assert "gw-1:***@" in str(caught.value)
    # A shopper token is a username only with the password derived from it.
    shopper = session_broker.address("app-loyal")
    other = shopper.with_identity("app-loyal", session_broker.address("app-vip").password or "")
    with pytest.raises(ServiceError, match="refused the connection"):
        MqttClient("borrowed-password", other).connect(timeout_s=5.0)


def test_tls_listener_with_the_generated_ca(
    session_broker: SessionBroker, unique_prefix: str, connect: _Connect
) -> None:
    topic = bell_topic(STORE_ID, "bell-dairy", prefix=unique_prefix)
    engine = MqttClient(
        f"{unique_prefix}-tls-engine",
        session_broker.address("engine", tls=True),
        subscriptions=(topic,),
        on_message=lambda t, p: got.append((t, p)),
    )
    got: list[tuple[str, bytes]] = []
    with engine:
        bell = connect("bell-dairy")
        bell.publish(topic, {"id": "p-1", "ts": 1.0})
        for _ in range(100):
            if got:
                break
            threading.Event().wait(0.05)
    assert got == [(topic, b'{"id":"p-1","ts":1.0}')], "plain in, TLS out, same broker"
    # Without the CA the broker's certificate does not verify.
    tls = session_broker.address("engine", tls=True)
    unverified = BrokerAddress(tls.host, tls.port, tls=True).with_identity(
        str(tls.username), str(tls.password)
    )
    with pytest.raises(ServiceError, match="cannot reach the broker"):
        MqttClient(f"{unique_prefix}-no-ca", unverified).connect(timeout_s=5.0)


# --------------------------------------------------------------------------- authorisation


def test_a_forged_offer_from_a_gateway_never_reaches_the_shopper(
    unique_prefix: str, probe: Probe, connect: _Connect
) -> None:
    offer = offer_topic(STORE_ID, "app-loyal", prefix=unique_prefix)
    shopper = connect("app-loyal", offer)
    gateway = connect("gw-1")
    gateway.publish(offer, _offer(1))  # the broker acknowledges it, and drops it
    gateway.publish(f"{unique_prefix}/{STORE_ID}/beacon/gw-1", {"ts": 1.0, "barrier": True})
    probe.wait_for(lambda m: m.topic.endswith("/beacon/gw-1"), WAIT_S, "the gateway's barrier")
    engine = connect("engine")
    engine.publish(offer, _offer(2))
    real = orjson.loads(shopper.wait_for(offer))
    assert real["code"] == "FAKE-CODE-0002", "the engine's offer, not the gateway's"
    assert shopper.topics() == [offer]
    # The probe sees the same broker: once the engine's offer reached it, it has seen
    # everything before it on that topic (the forged one was dropped, not delayed).
    probe.wait_for(lambda m: m.topic == offer, WAIT_S, "the engine's offer at the probe")
    assert [m.json()["code"] for m in probe.messages(probe.is_offer())] == ["FAKE-CODE-0002"]


def test_a_gateway_cannot_pose_as_another_device(
    unique_prefix: str, probe: Probe, connect: _Connect
) -> None:
    gateway = connect("gw-1")
    forged = [
        f"{unique_prefix}/{STORE_ID}/beacon/gw-2",  # another gateway
        bell_topic(STORE_ID, "bell-dairy", prefix=unique_prefix),  # a bell
        ack_topic(STORE_ID, "band-07", prefix=unique_prefix),  # a band
        f"{unique_prefix}/{STORE_ID}/deadletter",  # the engine
        f"{unique_prefix}/s999/beacon/gw-1",  # itself, in another store
    ]
    for topic in forged:
        gateway.publish(topic, {"id": token(), "ts": 1.0})
    own = [
        f"{unique_prefix}/{STORE_ID}/beacon/gw-1",
        f"{unique_prefix}/{STORE_ID}/device/gw-1/status",
    ]
    for topic in own:
        gateway.publish(topic, {"ts": 1.0, "online": True})
    probe.wait_count(lambda m: m.topic in own, 2, WAIT_S, "the gateway's own topics")
    assert not probe.messages(lambda m: m.topic in forged)


def test_a_band_cannot_ack_for_another_band_nor_read_its_alerts(
    unique_prefix: str, probe: Probe, connect: _Connect
) -> None:
    mine = alert_topic(STORE_ID, "band-07", prefix=unique_prefix)
    theirs = alert_topic(STORE_ID, "band-08", prefix=unique_prefix)
    band = connect("band-07", mine, theirs, f"{unique_prefix}/{STORE_ID}/band/+/alert")
    band.publish(ack_topic(STORE_ID, "band-08", prefix=unique_prefix), {"id": "forged"})
    band.publish(ack_topic(STORE_ID, "band-07", prefix=unique_prefix), {"id": "mine"})
    probe.wait_for(lambda m: m.topic.endswith("/band-07/ack"), WAIT_S, "band-07's own ack")
    assert not probe.messages(lambda m: m.topic.endswith("/band-08/ack"))
    engine = connect("engine")
    engine.publish(theirs, {"id": "a-8"})
    engine.publish(mine, {"id": "a-7"})
    assert orjson.loads(band.wait_for(mine))["id"] == "a-7"
    probe.wait_for(lambda m: m.topic == theirs, WAIT_S, "band-08's alert (the probe sees it)")
    assert theirs not in band.topics()
    # Nor may it page anyone, itself included: alerts are the engine's.
    band.publish(mine, {"id": "self-page"})
    band.publish(ack_topic(STORE_ID, "band-07", prefix=unique_prefix), {"id": "barrier"})
    probe.wait_for(lambda m: b"barrier" in m.payload, WAIT_S, "band-07's barrier")
    assert not probe.messages(lambda m: b"self-page" in m.payload)


def test_a_shopper_reads_its_own_offers_and_nothing_else(
    unique_prefix: str, probe: Probe, connect: _Connect
) -> None:
    mine = offer_topic(STORE_ID, "app-loyal", prefix=unique_prefix)
    other = offer_topic(STORE_ID, "app-vip", prefix=unique_prefix)
    shopper = connect(
        "app-loyal", "#", f"{unique_prefix}/#", other, f"{unique_prefix}/+/shopper/+/offer", mine
    )
    engine = connect("engine")
    engine.publish(other, _offer(1))
    engine.publish(alert_topic(STORE_ID, "band-07", prefix=unique_prefix), {"id": "a-1"})
    engine.publish(f"{unique_prefix}/{STORE_ID}/deadletter", {"reason": "x"})
    engine.publish(mine, _offer(2))
    shopper.wait_for(mine)
    probe.wait_for(lambda m: m.topic == mine, WAIT_S, "the shopper's offer (probe)")
    assert set(shopper.topics()) == {mine}, "only its own offer, under every filter"
    assert probe.messages(lambda m: m.topic == other), "the other offer was sent"
    # Nor can an app forge anything, not even an offer to itself.
    shopper.publish(mine, _offer(3))
    shopper.publish(bell_topic(STORE_ID, "bell-dairy", prefix=unique_prefix), {"id": "p"})
    engine.publish(mine, _offer(4))
    probe.wait_for(lambda m: b"FAKE-CODE-0004" in m.payload, WAIT_S, "the engine's barrier")
    assert not probe.messages(lambda m: b"FAKE-CODE-0003" in m.payload)
    assert not probe.messages(lambda m: m.topic.endswith("/bell/bell-dairy"))


# --------------------------------------------------------------------------- the engine's job


def test_the_engine_does_its_job_with_device_identities(
    tmp_path: Path,
    session_broker: SessionBroker,
    unique_prefix: str,
    probe: Probe,
    start_edge: StartEdge,
    connect: _Connect,
) -> None:
    """A bell press from the bell's identity -> an alert the band's identity receives."""
    files = write_store(tmp_path, rules={"test-bell": bell_rule()})
    start_edge(files)  # as the engine
    mine = alert_topic(STORE_ID, "band-07", prefix=unique_prefix)
    band = connect("band-07", mine)
    # A Probe with one gateway's identity plays that gateway (its other topics would be dropped).
    gateway_probe = Probe(
        session_broker.address("gw-1"), unique_prefix, f"{unique_prefix}-as-gw-1"
    ).start()
    try:
        place_staff(gateway_probe, {"band-07": "b-dairy"})
    finally:
        gateway_probe.stop()
    probe.sync()
    bell = connect("bell-dairy")
    press = token("press")
    topic = bell_topic(STORE_ID, "bell-dairy", prefix=unique_prefix)
    bell.publish(topic, {"id": press, "ts": time.time(), "reason": "help"})
    alert = orjson.loads(band.wait_for(mine, 10.0))
    assert alert["step"] == 1 and alert["rule"] == "test-bell"
    band.publish(
        ack_topic(STORE_ID, "band-07", prefix=unique_prefix),
        {"id": token("ack"), "ts": time.time(), "alert": alert["id"], "action": "ack"},
    )
    probe.sync()
    assert not probe.messages(probe.is_deadletter()), "every device message was accepted"


# --------------------------------------------------------------------------- the CLI's config


def test_the_generated_mosquitto_conf_runs_as_written(tmp_path: Path, unique_prefix: str) -> None:
    """`floorwalker broker-config` output, started as is: plain and TLS, devices and the engine."""
    registry = write_store(tmp_path).registry
    out = tmp_path / "broker"
    port, tls_port = services.free_port(), services.free_port()
    argv = ["broker-config", "--registry", str(registry), "--out", str(out), "--bind", "127.0.0.1"]
    argv += ["--port", str(port), "--tls", "--tls-port", str(tls_port), "--prefix", unique_prefix]
    if os.geteuid() == 0:
        argv += ["--user", "root"]  # else Mosquitto drops to `mosquitto`, who cannot read 0600
    assert cli.main(argv) == 0
    creds = load_credentials(out / "credentials.json")
    log = (tmp_path / "mosquitto.log").open("wb")
    proc = subprocess.Popen(
        [services.find_binary("mosquitto"), "-c", str(out / "mosquitto.conf")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10.0
        while not _answers(port) or not _answers(tls_port):
            assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
            assert time.monotonic() < deadline, "the generated config did not come up"
            time.sleep(0.05)
        engine = creds.engine
        tls = BrokerAddress("localhost", tls_port, tls=True, ca_file=out / "tls" / "ca.crt")
        alerts = alert_topic(STORE_ID, "band-07", prefix=unique_prefix)
        band = Device(_as(port, creds, "band-07"), f"{unique_prefix}-band", alerts)
        bells = bell_topic(STORE_ID, "bell-dairy", prefix=unique_prefix)
        eng = Device(tls.with_identity(engine.username, engine.password), "eng", bells)
        bell = Device(_as(port, creds, "bell-dairy"), f"{unique_prefix}-bell")
        try:
            bell.publish(bells, {"id": "p-1"})
            assert orjson.loads(eng.wait_for(bells)) == {"id": "p-1"}
            eng.publish(alerts, {"id": "a-1"})
            assert orjson.loads(band.wait_for(alerts)) == {"id": "a-1"}
        finally:
            for device in (band, eng, bell):
                device.close()
        with pytest.raises(ServiceError, match="refused"):
            MqttClient("anonymous", BrokerAddress("127.0.0.1", port)).connect(timeout_s=5.0)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    assert any((out / "data").iterdir()), "persistence wrote its file on the way out"


def _as(port: int, creds: Credentials, who: str) -> BrokerAddress:
    ident = creds.identity(who)
    return BrokerAddress("127.0.0.1", port).with_identity(ident.username, ident.password)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
