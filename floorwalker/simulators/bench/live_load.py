"""``bench live``'s background load: pre-encoded QoS 1 sightings from a raw socket.

A generator process (:func:`generator_main`, a :mod:`multiprocessing` *spawn*
child) connects with its own client id and the simulator's credentials, builds
one :class:`~.mqtt_frames.FrameBuffer` per (series, prefix) it is asked for, and
on each ``send`` command writes slices of it paced by rate: every wake-up it
works out how many frames are due, stamps the send time into their payloads
and ``sendall``s them in one call. A reader thread counts the broker's PUBACKs,
and the writer never lets more than ``window`` frames go unacknowledged (so the
packet ids of a cycling buffer stay distinct in flight).

The traffic is beacon sightings of :data:`SHOPPERS` anonymous shoppers at the
background beacons (never the bench's dwell zones): one sighting per message,
or gateway batches (a JSON array of ``batch`` sightings on one gateway's
topic, as the wire contract allows). Each shopper stays near one beacon for a
quarter of the buffer, then moves on; every 12th sighting is a weak one of the
next beacon. Several generator processes split the shoppers between them, so
each shopper's sightings stay in order on one connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final

import orjson

from floorwalker.devices.topics import beacon_topic
from floorwalker.errors import ServiceError
from floorwalker.simulators import mqtt_frames as mf

STORE: Final = "s001"
SHOPPERS: Final = 3000
"""Background shoppers (anonymous: no profile, no consent, nothing to decide): a busy
hypermarket's crowd, all of them tracked by the engine at once."""
BUFFER_BYTES: Final = 12_000_000
"""About this much pre-encoded traffic per buffer (at most 65,535 frames)."""
MOVES_PER_CYCLE: Final = 4
WEAK_EVERY: Final = 12
IDLE_PING_S: Final = 15.0
KEEPALIVE_S: Final = 60
TICK_S: Final = 0.001
"""The pacing step: frames due are sent at least this often."""
MAX_WRITE_FRAMES: Final = 4096
READ_BATCH_BYTES: Final = 16384


def background_shoppers() -> list[str]:
    return [f"app-bg{k:05d}" for k in range(SHOPPERS)]


def _sighting(shoppers: Sequence[str], beacons: Sequence[str], j: int, cycle: int) -> Any:
    shopper = (j * 7919) % len(shoppers)
    move = j * MOVES_PER_CYCLE // max(1, cycle)
    b = (shopper + 3 * move) % len(beacons)
    rssi = -58 - (j % 13)
    if j % WEAK_EVERY == WEAK_EVERY - 1:
        b, rssi = (b + 1) % len(beacons), -86
    return {
        "ts": mf.TS_SENTINEL,
        "beacon": beacons[b],
        "rssi": rssi,
        "shopper": shoppers[shopper],
    }


def messages(
    prefix: str,
    beacons: Sequence[tuple[str, str]],
    shoppers: Sequence[str],
    batch: int,
    frames: int | None = None,
) -> list[tuple[str, bytes]]:
    """The buffer's (topic, payload template) pairs: single sightings or batches of ``batch``."""
    if not beacons or not shoppers or batch < 1:
        raise ValueError("need beacons, shoppers and a batch size >= 1")
    size = 110 * batch + 40
    n = frames or max(16, min(mf.MAX_PACKET_ID, BUFFER_BYTES // size))
    ids = [b for b, _ in beacons]
    topics = {gw: beacon_topic(STORE, gw, prefix=prefix) for _, gw in beacons}
    gateways = sorted(topics)
    cycle = n * batch
    out: list[tuple[str, bytes]] = []
    for m in range(n):
        if batch == 1:
            obj = _sighting(shoppers, ids, m, cycle)
            out.append((topics[dict(beacons)[obj["beacon"]]], orjson.dumps(obj)))
            continue
        items = [_sighting(shoppers, ids, m * batch + t, cycle) for t in range(batch)]
        out.append((topics[gateways[m % len(gateways)]], orjson.dumps(items)))
    return out


# --------------------------------------------------------------------------- the socket


class BrokerRefusedError(ServiceError):
    """CONNACK with a non-zero return code (4: bad credentials, 5: not authorised)."""


class RawPublisher:
    """One MQTT connection written to directly; a thread counts what the broker acks."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        username: str | None,
        password: str | None,
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=10.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(
            mf.connect(client_id, username=username, password=password, keepalive_s=KEEPALIVE_S)
        )
        self.reader = mf.FrameReader()
        self._connack(self.reader)
        self.sock.settimeout(None)
        self.closed = False
        self._thread = threading.Thread(target=self._read, name="bench-puback", daemon=True)
        self._thread.start()

    def _connack(self, reader: mf.FrameReader) -> None:
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ServiceError("the broker closed the connection before CONNACK")
            for frame in reader.feed(data):
                if frame.kind == mf.CONNACK:
                    if frame.return_code:
                        raise BrokerRefusedError(f"CONNACK return code {frame.return_code}")
                    return

    def _read(self) -> None:
        sock, reader = self.sock, self.reader
        with contextlib.suppress(OSError):
            while True:
                data = sock.recv(262144)
                if not data:
                    break
                for _ in reader.feed(data):  # PINGRESP; PUBACKs are only counted
                    pass
                if len(data) < READ_BATCH_BYTES:
                    time.sleep(TICK_S)  # let PUBACKs pile up: one wake-up per tick, not per ack
        self.closed = True

    @property
    def acked(self) -> int:
        return self.reader.pubacks

    def ping(self) -> None:
        self.sock.sendall(mf.pingreq())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(mf.disconnect())
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=2.0)


@dataclass
class SendReport:
    sent: int
    events: int
    elapsed_s: float
    wall_start: float
    acked_in_window: int
    acked: int
    blocked_s: float
    """Time the writer waited for PUBACKs (the broker was behind)."""
    behind_max: int
    """Most frames ever due but not yet written (the generator was behind)."""

    def to_json(self) -> dict[str, Any]:
        rate = self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0
        return {
            "sent": self.sent,
            "events": self.events,
            "elapsed_s": round(self.elapsed_s, 4),
            "wall_start": self.wall_start,
            "publish_rate": round(rate, 1),
            "event_rate": round(self.events / self.elapsed_s, 1) if self.elapsed_s > 0 else 0.0,
            "acked_in_window": self.acked_in_window,
            "acked": self.acked,
            "blocked_s": round(self.blocked_s, 3),
            "behind_max": self.behind_max,
        }


class Pacer:
    """Writes a frame buffer at ``rate`` frames/s (0: as fast as the socket takes them)."""

    def __init__(self, pub: RawPublisher, buf: mf.FrameBuffer, window: int) -> None:
        self.pub = pub
        self.buf = buf
        self.window = max(1, min(window, len(buf) // 2 or 1))
        self.pos = 0

    def send(self, rate: float, seconds: float, cap: int) -> SendReport:
        pub, buf, n = self.pub, self.buf, len(self.buf)
        sock, fill, clock, perf = pub.sock, buf.fill, time.time, time.perf_counter
        acked0 = pub.acked
        qos = buf.qos
        total = min(cap, int(rate * seconds)) if rate > 0 else cap
        sent = events = behind_max = 0
        blocked = 0.0
        t0 = perf()
        wall0 = clock()
        deadline = t0 + seconds
        while sent < total:
            now = perf()
            if now >= deadline:
                break
            due = total if rate <= 0 else min(total, int((now - t0) * rate) + 1)
            todo = due - sent
            if todo <= 0:
                time.sleep(TICK_S)
                continue
            behind_max = max(behind_max, todo)
            room = self.window - (sent - (pub.acked - acked0)) if qos else todo
            if room <= 0:
                if pub.closed:
                    break
                b0 = perf()
                time.sleep(0.0002)
                blocked += perf() - b0
                continue
            k = min(todo, room, MAX_WRITE_FRAMES, n - self.pos)
            sock.sendall(fill(self.pos, self.pos + k, clock()))
            events += sum(buf.events[self.pos : self.pos + k])
            self.pos = (self.pos + k) % n
            sent += k
        elapsed = perf() - t0
        if not qos:  # nothing to wait for: QoS 0 is never acknowledged
            return SendReport(sent, events, elapsed, wall0, sent, sent, blocked, behind_max)
        in_window = pub.acked - acked0
        grace = perf() + 5.0
        while pub.acked - acked0 < sent and perf() < grace and not pub.closed:
            time.sleep(0.002)
        return SendReport(
            sent, events, elapsed, wall0, in_window, pub.acked - acked0, blocked, behind_max
        )


# --------------------------------------------------------------------------- the process


def generator_main(conn: Connection, spec: dict[str, Any]) -> None:
    """``{"op": "send", "prefix", "batch", "qos", "rate" (frames/s, 0 = max), "seconds", "max"}``.

    ``spec``: ``host``, ``port``, ``username``, ``password``, ``client_id``,
    ``index``/``of`` (this process among all generators), ``beacons``
    ((beacon, gateway) pairs) and ``window`` (most frames unacknowledged).
    """
    try:
        pub = RawPublisher(
            str(spec["host"]),
            int(spec["port"]),
            str(spec["client_id"]),
            str(spec["username"]),
            str(spec["password"]),
        )
    except (OSError, ServiceError) as exc:
        conn.send({"ready": False, "error": str(exc)})
        return
    mine = background_shoppers()[int(spec["index"]) :: int(spec["of"])]
    beacons = [(str(b), str(g)) for b, g in spec["beacons"]]
    pacers: dict[tuple[str, int, int], Pacer] = {}
    conn.send({"ready": True})
    try:
        while True:
            if not conn.poll(IDLE_PING_S):
                pub.ping()
                continue
            cmd = conn.recv()
            if cmd.get("op") != "send":
                break
            key = (str(cmd["prefix"]), int(cmd["batch"]), int(cmd.get("qos", 1)))
            if key not in pacers:
                frames = messages(key[0], beacons, mine, key[1])
                buf = mf.FrameBuffer(frames, qos=key[2])
                pacers[key] = Pacer(pub, buf, int(spec["window"]))
            report = pacers[key].send(float(cmd["rate"]), float(cmd["seconds"]), int(cmd["max"]))
            out = report.to_json()
            out["buffer_frames"] = len(pacers[key].buf)
            conn.send(out)
    finally:
        pub.close()
