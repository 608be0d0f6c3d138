"""The runner's MQTT link: QoS 1 in with manual acks, QoS 1 out until PUBACK.

Intake (the back-pressure that replaces loss):

1. paho calls ``on_message`` (on its network thread, or with
   :class:`CoreLoopLink` on the runner's core thread, which drives the socket
   itself), which puts the message on the runner's inbox and returns. The
   inbox is bounded (messages and bytes, :mod:`~floorwalker.engine.runners.inbox`);
   when it is full ``on_message`` *waits* for room (the core-thread link holds
   the message instead and reads no more), so paho stops reading the socket
   and the broker keeps the backlog. Nothing is dropped here; only a link that is stopping gives
   up a message it could not hand over (counted in ``dropped``; a QoS 1 one
   comes back with the next session, unacknowledged).
2. The core thread takes the message, processes it (or dead-letters or sheds
   it), publishes what that decided, and only then calls :meth:`MqttLink.ack`.
   Until then the broker counts the message in flight: with its in-flight
   window (``max_inflight_messages``, 20) full it sends nothing more, so for
   QoS 1 the inbox never holds more than that window. A crash before the ack
   gets the message redelivered (persistent session, fixed client id).

Output: actions and dead letters are published with QoS 1; paho retries until
the broker's PUBACK, across reconnects, and an action keeps its id, so a
device that sees a retry can tell. With an
:class:`~floorwalker.engine.runners.outbox.Outbox`, each publish is first
appended to it and marked done at its PUBACK (on paho's thread), so what a
killed runner had not had confirmed is published again at its next start
(:meth:`MqttLink.resend`); a publish whose key the outbox already holds is
not made (``publish`` returns None). ``pending`` counts what awaits a PUBACK.

:class:`MqttClient` is the small client of everything that is not the runner:
the simulated devices, the dashboard's probe, the benchmarks' processes. It has
a clean session (or a persistent one, ``clean_session=False``), its own network
thread, and its subscriptions made again on every (re)connect;
:meth:`MqttClient.connect` returns once the broker has accepted the session
and acknowledged the subscriptions, so nothing published after it returns is
missed. This module is the only one that imports paho.

Both connect to a :class:`~floorwalker.engine.runners.broker.BrokerAddress`:
its username and password (``username_pw_set``) and, for ``mqtts://``, TLS
with the server's certificate and host name verified against its CA file (or
the system's CAs). A broker refusing the credentials is reported by reason,
without the password.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.errors import ServiceError

if TYPE_CHECKING:
    from floorwalker.engine.runners.outbox import Entry, Outbox

log = logging.getLogger("floorwalker.mqtt")

HANDOVER_WAIT_S = 0.25
"""How long ``on_message`` waits for room in the inbox before it looks whether the link stops."""
READS_PER_POLL = 512
"""Most ``loop_read`` calls per :meth:`CoreLoopLink.poll` (each reads a packet or a few)."""
ACK_BATCH = 1
"""Acks written together at most. 1: with Mosquitto's in-flight window of 20, holding acks back
starved the window whenever a batch waited on Redis (measured with 8: p50 at 5k/s 315 ms vs
70 ms with paho's thread, same run)."""
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 2.0
"""As the threaded link: a store's broker is on the LAN, a restart is back in seconds."""


class Inbound(NamedTuple):
    topic: str
    payload: bytes
    arrival: float
    mid: int
    qos: int

    @staticmethod
    def size(item: Inbound) -> int:
        """What an inbox counts against its byte bound."""
        return len(item.payload) + len(item.topic)


class Sink(Protocol):
    """Where the link puts messages: :class:`queue.Queue` or an :class:`~.inbox.Inbox`."""

    def put(self, item: Inbound, block: bool = True, timeout: float | None = None) -> None: ...

    def qsize(self) -> int: ...


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
    """The edge runner's (and the bridge's) connection; see the module docstring."""

    def __init__(
        self,
        settings: LinkSettings,
        inbox: Sink,
        on_puback: Callable[[int], None] | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.settings = settings
        self.inbox = inbox
        self.on_puback = on_puback
        self.outbox = outbox
        self.connected = threading.Event()
        self.connects = 0
        self.dropped = 0
        """Messages given up because the link stopped before the inbox had room."""
        self._stopping = threading.Event()
        self._pending: dict[int, int | None] = {}
        """paho message id -> outbox entry (None without an outbox), until PUBACK."""
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
        # A store's broker is on the LAN: try again often, a restart is back in seconds.
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
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
            self._warn_unreachable("in the background")

    def _warn_unreachable(self, where: str) -> None:
        why = f" (refused: {self.refused})" if self.refused else ""
        log.warning(
            "broker %s not reachable yet%s; retrying %s", self.settings.address.redact(), why, where
        )

    def stop(self, flush_s: float = 5.0) -> None:
        """Wait (up to ``flush_s``, while connected) for outstanding PUBACKs, then disconnect.

        Messages received and not yet acknowledged stay the broker's: it sends
        them again to the next session.
        """
        # First: a handover waiting for room gives up, so paho's thread reads PUBACKs again.
        self._stopping.set()
        deadline = time.monotonic() + flush_s
        while self.pending and self.connected.is_set() and time.monotonic() < deadline:
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
        item = Inbound(msg.topic, bytes(msg.payload), time.time(), msg.mid, msg.qos)
        while True:
            try:
                # Waiting here is the back-pressure: paho reads nothing more meanwhile.
                self.inbox.put(item, timeout=HANDOVER_WAIT_S)
                return
            except queue.Full:
                if self._stopping.is_set():
                    # Not acknowledged: a QoS 1 message comes back with the next session.
                    self.dropped += 1
                    return

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        self.connected.clear()  # paho reconnects by itself; publishes wait in its queue

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        with self._lock:
            if mid in self._pending:
                entry = self._pending.pop(mid)
            else:
                self._early.add(mid)
                entry = None
        if entry is not None and self.outbox is not None:
            self.outbox.done(entry)
        if self.on_puback is not None:
            self.on_puback(mid)

    # ------------------------------------------------------------------ core thread

    def publish(self, topic: str, payload: bytes, key: str | None = None) -> int | None:
        """Publish (QoS 1); the paho message id, or None if the outbox already has ``key``."""
        entry = None
        if self.outbox is not None:
            entry = self.outbox.add(topic, payload, key)
            if entry is None:
                return None
        return self._send(topic, payload, entry)

    def resend(self, entries: Iterable[Entry]) -> int:
        """Publish outbox entries left pending by an earlier run; how many."""
        n = 0
        for entry in entries:
            self._send(entry.topic, entry.payload, entry.seq)
            n += 1
        return n

    def _send(self, topic: str, payload: bytes, entry: int | None) -> int:
        # Never hold our lock around paho's publish: paho calls _on_publish with its
        # own lock held, so the two orders would deadlock.
        mid = self.client.publish(topic, payload, qos=1).mid
        with self._lock:
            early = mid in self._early
            if early:
                self._early.discard(mid)
            else:
                self._pending[mid] = entry
        if early and entry is not None and self.outbox is not None:
            self.outbox.done(entry)
        return mid

    def ack(self, item: Inbound) -> None:
        if item.qos > 0:
            self.client.ack(item.mid, item.qos)

    def flush(self) -> None:
        """Nothing to do: paho's network thread writes as packets are queued."""

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


class CoreLoopLink(MqttLink):
    """An :class:`MqttLink` with no network thread: the core thread drives paho itself.

    The runner calls :meth:`poll` where it would wait on the inbox: one
    ``select`` on the broker socket with the time until the next timer is due,
    then paho's ``loop_read`` (messages land in the inbox, on this thread),
    ``loop_misc`` (keepalive) and a reconnect when the link is down. Acks and
    publishes are queued in paho (``on_socket_register_write``) and written by
    :meth:`flush`: at once for acks (:data:`ACK_BATCH`), as soon as an event's
    actions are published, and at the end of each wake-up. No hand-off between
    two threads that take turns on the GIL.

    Back-pressure is the same as the threaded link's, without waiting: a
    message that finds the inbox full is held here, and the socket is not read
    again until the core thread has taken it (so the broker keeps the backlog).
    """

    def __init__(
        self,
        settings: LinkSettings,
        inbox: Sink,
        on_puback: Callable[[int], None] | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        super().__init__(settings, inbox, on_puback, outbox)
        self.client.on_socket_register_write = _defer_write
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()
        """The broker acknowledged this session's subscriptions (cleared at each connect)."""
        self._held: collections.deque[Inbound] = collections.deque()
        """Messages that found the inbox full (one ``loop_read`` may bring several), in
        order; handed over before the socket is read again."""
        self._retry_at = 0.0
        self._backoff_s = RECONNECT_MIN_S
        self._unflushed = 0

    # ------------------------------------------------------------------ paho callbacks

    def _on_connect(self, client: paho.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
        self.subscribed.clear()
        super()._on_connect(client, u, f, reason, p)

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
        self.subscribed.set()

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        item = Inbound(msg.topic, bytes(msg.payload), time.time(), msg.mid, msg.qos)
        if self._held or not self._hand_over(item):
            self._held.append(item)  # on this thread a wait would never end: hold, read no more

    def _hand_over(self, item: Inbound) -> bool:
        try:
            self.inbox.put(item, block=False)
        except queue.Full:
            return False
        return True

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 10.0) -> None:
        s = self.settings
        try:
            self.client.connect(s.host, s.port, keepalive=s.keepalive_s)
        except OSError as exc:
            log.warning("broker %s not reachable yet (%s); retrying", s.address.redact(), exc)
            self._retry_at = time.monotonic() + self._backoff_s
        # Until the SUBACK: a message published once start() returns is not missed.
        deadline = time.monotonic() + timeout_s
        while not self.subscribed.is_set() and time.monotonic() < deadline:
            self.poll(0.05)
            self.flush()
        if not self.subscribed.is_set():
            self._warn_unreachable("as the core loop runs")

    def stop(self, flush_s: float = 5.0) -> None:
        """Drive the socket (up to ``flush_s``, while connected) for outstanding PUBACKs."""
        self._stopping.set()
        deadline = time.monotonic() + flush_s
        while self.pending and self.connected.is_set() and time.monotonic() < deadline:
            self.flush()
            self.poll(0.01)
        self.dropped += len(self._held)  # not acknowledged: they come back with the next session
        self._held.clear()
        self.client.disconnect()
        self.flush()

    # ------------------------------------------------------------------ core thread

    def poll(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the broker, then read what came (into the inbox)."""
        while self._held:
            if not self._hand_over(self._held[0]):
                return  # the inbox is still full: the core thread has work, no waiting
            self._held.popleft()
        client = self.client
        sock = client.socket()
        if sock is None:
            self._reconnect(timeout_s)
            return
        readable: list[Any] = [sock]
        writable: list[Any] = []
        if not _has_pending(sock):  # TLS: bytes already decrypted, select would not see them
            want = [sock] if client.want_write() else []
            readable, writable, _ = select.select([sock], want, [], max(0.0, timeout_s))
        if writable:
            client.loop_write()
        if readable:
            self._read(client)
        client.loop_misc()

    def _read(self, client: paho.Client) -> None:
        # loop_read takes one packet or a few: go on while the socket has more, up to a
        # batch (the caller processes it, acks, and comes back for the next).
        got = self.inbox.qsize()
        for _ in range(READS_PER_POLL):
            if client.loop_read() != paho.MQTT_ERR_SUCCESS or client.socket() is None:
                return
            if self._held:
                return
            now = self.inbox.qsize()
            if now >= READS_PER_POLL or (now == got and not _readable(client.socket())):
                return
            got = now

    def ack(self, item: Inbound) -> None:
        super().ack(item)
        self._unflushed += 1
        if self._unflushed >= ACK_BATCH:
            self.flush()

    def flush(self) -> None:
        """Write every queued ack and publish now."""
        self._unflushed = 0
        if self.client.socket() is not None and self.client.want_write():
            self.client.loop_write()

    def _reconnect(self, timeout_s: float) -> None:
        now = time.monotonic()
        if now < self._retry_at:
            time.sleep(min(max(0.0, timeout_s), self._retry_at - now))
            return
        try:
            self.client.reconnect()
            self._backoff_s = RECONNECT_MIN_S
        except OSError as exc:
            log.warning("broker %s: reconnect failed: %s", self.settings.address.redact(), exc)
            self._retry_at = now + self._backoff_s
            self._backoff_s = min(RECONNECT_MAX_S, 2 * self._backoff_s)


def _has_pending(sock: Any) -> bool:
    pending = getattr(sock, "pending", None)
    return bool(pending is not None and pending())


def _readable(sock: Any) -> bool:
    if sock is None:
        return False
    return _has_pending(sock) or bool(select.select([sock], [], [], 0.0)[0])


def _defer_write(_c: paho.Client, _u: Any, _sock: Any) -> None:
    """paho would write each packet as it is queued; :meth:`CoreLoopLink.flush` writes them."""


def _nodelay(_c: paho.Client, _u: Any, sock: Any) -> None:
    """Nagle's algorithm adds ~1.7 ms per small QoS 1 message at 1k msg/s."""
    with contextlib.suppress(OSError):  # not a TCP socket (e.g. a unix socket)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


MessageHandler = Callable[[str, bytes], None]
"""``(topic, payload)``, called on paho's network thread: keep it short, never block."""


class MqttClient:
    """An MQTT client with its own network thread; QoS 1 by default, a clean session unless
    ``clean_session=False`` (a persistent one: the broker queues for it while it is away).

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
        clean_session: bool = True,
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
            clean_session=clean_session,
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
