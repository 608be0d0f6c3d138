"""A fast MQTT 3.1.1 QoS 1 publisher on a raw socket, for overload on loopback.

paho spends tens of microseconds per message in Python; to offer several times
what the edge runner sustains, from the same two-core machine, this writes
PUBLISH packets it encodes itself, many per ``send``, and counts the broker's
PUBACKs (4 bytes each: it reads nothing else, keepalive off). Only what the
broker acknowledged counts as *offered*: a message the broker took is one the
runner owes an outcome.

Loopback only (the fault suite's rule); plain TCP, username and password.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.errors import ServiceError
from floorwalker.services import require_loopback
from floorwalker.simulators import mqtt_frames as mf

Make = Callable[[int, float], tuple[str, bytes]]
"""``make(n, now) -> (topic, payload)``: the ``n``-th message, built at ``now``."""


def connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    """CONNECT with a clean session and keepalive off (this publisher reads only PUBACKs)."""
    return mf.connect(client_id, username=username, password=password, keepalive_s=0)


def publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    return mf.publish(topic, payload, qos=1, packet_id=mid)


@dataclass(frozen=True, slots=True)
class Report:
    sent: int
    acked: int
    seconds: float

    @property
    def rate(self) -> float:
        """Messages the broker acknowledged per second of publishing."""
        return self.acked / self.seconds if self.seconds > 0 else 0.0


class RawPublisher:
    """``with RawPublisher(broker, "load-1") as pub: pub.run(make, rate, seconds)``."""

    def __init__(self, broker: BrokerAddress, client_id: str, *, window: int = 2000) -> None:
        require_loopback(broker.host, "the fault suite's publisher")
        self.broker = broker
        self.client_id = client_id
        self.window = window
        """Most messages sent and not yet acknowledged."""
        self.sent = 0
        self._acked_bytes = 0
        self._lock = threading.Condition()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._closed = False

    @property
    def acked(self) -> int:
        with self._lock:
            return self._acked_bytes // 4

    def __enter__(self) -> RawPublisher:
        sock = socket.create_connection((self.broker.host, self.broker.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        b = self.broker
        sock.sendall(connect_packet(self.client_id, b.username, b.password))
        connack = sock.recv(4)
        if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
            sock.close()
            code = connack[3] if len(connack) == 4 else None
            raise ServiceError(f"{self.client_id}: the broker refused the connection ({code})")
        sock.settimeout(None)
        self._sock = sock
        self._reader = threading.Thread(target=self._read, name=f"{self.client_id}-acks")
        self._reader.daemon = True
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.sendall(b"\xe0\x00")  # DISCONNECT
            self._sock.close()
        if self._reader is not None:
            self._reader.join(5)

    def _read(self) -> None:
        assert self._sock is not None
        while not self._closed:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._acked_bytes += len(data)
                self._lock.notify_all()

    def run(
        self,
        make: Make,
        rate: float,
        seconds: float,
        *,
        chunk: int = 50,
        stop: threading.Event | None = None,
    ) -> Report:
        """Offer ``rate`` messages a second (0: as fast as the window allows) for ``seconds``,
        or until ``stop`` is set."""
        assert self._sock is not None, "use `with RawPublisher(...)`"
        started = time.monotonic()
        end = started + seconds
        first = self.sent
        acked_before = self.acked
        while True:
            now = time.monotonic()
            if now >= end or (stop is not None and stop.is_set()):
                break
            due = (now - started) * rate if rate > 0 else float("inf")
            room = self.window - (self.sent - self.acked)
            n = int(min(chunk, room, due - (self.sent - first)))
            if n <= 0:
                with self._lock:
                    self._lock.wait(0.002)
                continue
            wall = time.time()
            packets = []
            for _ in range(n):
                topic, payload = make(self.sent, wall)
                self.sent += 1
                packets.append(publish_packet(topic, payload, self.sent % 65535 + 1))
            self._sock.sendall(b"".join(packets))
        return Report(self.sent - first, self.acked - acked_before, time.monotonic() - started)

    def wait_acked(self, timeout: float) -> bool:
        """Wait until the broker acknowledged everything sent; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._acked_bytes // 4 < self.sent:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True
