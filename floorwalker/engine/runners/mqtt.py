"""The runner's MQTT link: QoS 1 in with manual acks, QoS 1 out until PUBACK.

paho's network thread only hands messages over: ``on_message`` puts them on a
bounded queue and returns; it never blocks, publishes or waits. The core thread
acknowledges each message (``ack``) *after* the engine has processed it, so a
crash before that gets it redelivered (persistent session, fixed client id),
and the broker's in-flight window is the back-pressure that keeps the queue
bounded.

Outgoing actions are published with QoS 1; paho retries until the broker's
PUBACK, across reconnects, and the action keeps its id, so a device that sees
a retry can tell. ``pending`` counts what awaits a PUBACK.

:class:`MqttClient` is the small client of everything that is not the runner:
the simulated devices, the dashboard's probe, the benchmarks' processes. It has
a clean session, its own network thread, and its subscriptions made again on
every (re)connect; :meth:`MqttClient.connect` returns once the broker has
accepted the session and acknowledged the subscriptions, so nothing published
after it returns is missed. This module is the only one that imports paho.

Both connect to a :class:`~floorwalker.engine.runners.broker.BrokerAddress`:
its username and password (``username_pw_set``) and, for ``mqtts://``, TLS
with the server's certificate and host name verified against its CA file (or
the system's CAs). A broker refusing the credentials is reported by reason,
without the password.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.errors import ServiceError

log = logging.getLogger("floorwalker.mqtt")


class Inbound(NamedTuple):
    topic: str
    payload: bytes
    arrival: float
    mid: int
    qos: int


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int
    client_id: str
    subscriptions: tuple[str, ...]
    keepalive_s: int = 30
    max_inflight: int = 200
    broker: BrokerAddress | None = None
    """Credentials and TLS to connect with (its host and port are the two above)."""

    @classmethod
    def to(
        cls, broker: BrokerAddress, client_id: str, subscriptions: tuple[str, ...]
    ) -> LinkSettings:
        """Settings connecting to ``broker`` with its identity and TLS."""
        return cls(broker.host, broker.port, client_id, subscriptions, broker=broker)

    @property
    def address(self) -> BrokerAddress:
        if self.broker is not None:
            return self.broker
        return BrokerAddress(self.host, self.port)


def _secure(client: paho.Client, broker: BrokerAddress) -> None:
    """Give ``client`` the identity and TLS of ``broker``."""
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        # Certificate and host name checked (paho's defaults); the CA file, or the system's.
        client.tls_set(ca_certs=str(broker.ca_file) if broker.ca_file is not None else None)


class MqttLink:
    def __init__(
        self,
        settings: LinkSettings,
        inbox: queue.Queue[Inbound],
        on_puback: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.inbox = inbox
        self.on_puback = on_puback
        self.connected = threading.Event()
        self.connects = 0
        self.overflow = 0
        self._pending: set[int] = set()
        self._early: set[int] = set()
        """PUBACKs that beat ``publish`` returning (the network thread is quick)."""
        self._lock = threading.Lock()
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=False,  # a persistent session: nothing lost while we restart
            protocol=paho.MQTTv311,
            manual_ack=True,
        )
        client.max_inflight_messages_set(settings.max_inflight)
        client.max_queued_messages_set(0)  # unbounded: actions wait out a broker outage
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_socket_open = _nodelay
        _secure(client, settings.address)
        self.client = client
        self.refused: str | None = None
        """Why the broker refused the last connection (e.g. "Not authorized"), if it did."""

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 10.0) -> None:
        s = self.settings
        self.client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        self.client.loop_start()
        if not self.connected.wait(timeout_s):
            why = f" (refused: {self.refused})" if self.refused else ""
            log.warning(
                "broker %s not reachable yet%s; retrying in the background",
                s.address.redact(),
                why,
            )

    def stop(self, flush_s: float = 5.0) -> None:
        deadline = time.monotonic() + flush_s
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.disconnect()
        self.client.loop_stop()

    # ------------------------------------------------------------------ paho thread

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            log.error(
                "broker %s refused the connection: %s", self.settings.address.redact(), reason
            )
            return
        self.refused = None
        self.connects += 1
        client.subscribe([(topic, 1) for topic in self.settings.subscriptions])
        self.connected.set()

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            self.inbox.put_nowait(
                Inbound(msg.topic, bytes(msg.payload), time.time(), msg.mid, msg.qos)
            )
        except queue.Full:
            # Not acknowledged, so the broker still owes it to us: it comes back
            # with the next session. Counted, never silently gone.
            self.overflow += 1

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        with self._lock:
            if mid in self._pending:
                self._pending.discard(mid)
            else:
                self._early.add(mid)
        if self.on_puback is not None:
            self.on_puback(mid)

    # ------------------------------------------------------------------ core thread

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
            else:
                self._pending.add(info.mid)
        return info.mid

    def ack(self, item: Inbound) -> None:
        if item.qos > 0:
            self.client.ack(item.mid, item.qos)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


def _nodelay(_c: paho.Client, _u: Any, sock: Any) -> None:
    """Nagle's algorithm adds ~1.7 ms per small QoS 1 message at 1k msg/s."""
    with contextlib.suppress(OSError):  # not a TCP socket (e.g. a unix socket)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


MessageHandler = Callable[[str, bytes], None]
"""``(topic, payload)``, called on paho's network thread: keep it short, never block."""


class MqttClient:
    """A clean-session MQTT client with its own network thread; QoS 1 by default.

    ``on_message`` and ``on_puback`` (the message id of a QoS 1 publish the
    broker acknowledged) run on paho's network thread.
    """

    def __init__(
        self,
        client_id: str,
        host: str | BrokerAddress,
        port: int | None = None,
        *,
        subscriptions: Sequence[str] = (),
        on_message: MessageHandler | None = None,
        on_puback: Callable[[int], None] | None = None,
        max_inflight: int = 100,
        keepalive_s: int = 30,
    ) -> None:
        if isinstance(host, BrokerAddress):
            if port is not None:
                raise TypeError("give a BrokerAddress, or a host and a port, not both")
            self.broker = host
        elif port is None:
            raise TypeError("a host needs a port")
        else:
            self.broker = BrokerAddress(host, port)
        self.client_id, self.host, self.port = client_id, self.broker.host, self.broker.port
        self.subscriptions = tuple(subscriptions)
        self.keepalive_s = keepalive_s
        self._ready = threading.Event()
        self.refused: str | None = None
        """Why the broker refused the connection (bad credentials...), if it did."""
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = _nodelay
        _secure(client, self.broker)
        if on_message is not None:
            handler = on_message

            def deliver(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
                handler(msg.topic, bytes(msg.payload))

            client.on_message = deliver
        if on_puback is not None:
            acked = on_puback

            def puback(_c: paho.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
                acked(mid)

            client.on_publish = puback
        self._client = client

    def connect(self, timeout_s: float = 10.0) -> Self:
        """Connect and subscribe; raises :class:`ServiceError` if the broker does not answer."""
        where = self.broker.redact()
        try:
            self._client.connect(self.host, self.port, keepalive=self.keepalive_s)
        except OSError as exc:  # ssl.SSLError too: a certificate that does not verify
            raise ServiceError(f"{self.client_id}: cannot reach the broker {where}: {exc}") from exc
        self._client.loop_start()
        answered = self._ready.wait(timeout_s)
        if self.refused is not None or not answered:
            self.close()
            if self.refused is not None:
                raise ServiceError(
                    f"{self.client_id}: the broker {where} refused the connection: {self.refused}"
                )
            raise ServiceError(f"{self.client_id}: the broker {where} did not answer in time")
        return self

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> int:
        """Queue ``payload`` on ``topic``; returns the message id (see ``on_puback``)."""
        return self._client.publish(topic, payload, qos=qos).mid

    def close(self) -> None:
        """Disconnect and stop the network thread (idempotent)."""
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("%s: broker refused the connection: %s", self.client_id, reason)
            if not self._ready.is_set():
                # Refused on the first connect (credentials, authorisation): connect()
                # reports it at once instead of waiting out its timeout.
                self.refused = str(reason)
                client.disconnect()
                self._ready.set()
            return
        if self.subscriptions:
            client.subscribe([(topic, 1) for topic in self.subscriptions])
        else:
            self._ready.set()

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
        self._ready.set()
