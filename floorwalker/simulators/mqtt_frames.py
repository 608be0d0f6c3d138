"""MQTT 3.1.1 packets as bytes, for a load generator that must not be the bottleneck.

paho spends tens of microseconds of Python per publish; ``bench live`` needs tens
of thousands of messages per second from one process. So its generator encodes
the PUBLISH frames once, into one buffer (:class:`FrameBuffer`), and at send time
only writes the fresh ``ts`` into each payload (fixed width, in place) and hands
a slice of the buffer to ``socket.sendall``. :class:`FrameReader` parses what the
broker sends back (CONNACK, PUBACK, PINGRESP) without paho.

Only what the bench needs is here: CONNECT (with credentials), PUBLISH at QoS 0
or 1, PUBACK, SUBSCRIBE, PINGREQ, DISCONNECT; no QoS 2, no MQTT 5 properties.
The tests decode these frames with a real paho subscriber on a real Mosquitto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from floorwalker.errors import FloorwalkerError

CONNECT: Final = 1
CONNACK: Final = 2
PUBLISH: Final = 3
PUBACK: Final = 4
SUBSCRIBE: Final = 8
SUBACK: Final = 9
PINGREQ: Final = 12
PINGRESP: Final = 13
DISCONNECT: Final = 14

MAX_PACKET_ID: Final = 65535
MAX_REMAINING: Final = 268_435_455
"""The largest remaining length four varint bytes can say."""
TS_WIDTH: Final = 17
"""``ts`` is written as ``%017.6f``: ``1761234567.123456`` (10 digits until 2286)."""
TS_SENTINEL: Final = "\x00ts"
"""Put this as ``ts`` in a payload object; JSON encoders write it as :data:`TS_MARK`."""
TS_MARK: Final = b'"\\u0000ts"'
"""Where a payload template wants the send time: replaced by ``TS_WIDTH`` bytes."""

_PROTOCOL: Final = b"\x00\x04MQTT\x04"  # name and level 4 (3.1.1)
_U16: Final = struct.Struct(">H")


class FrameError(FloorwalkerError, ValueError):
    """Bytes that are not a well-formed MQTT 3.1.1 packet (for this bench's needs)."""


def _varint(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING:
        raise FrameError(f"remaining length {n} does not fit MQTT's four bytes")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str | bytes) -> bytes:
    data = s.encode("utf-8") if isinstance(s, str) else s
    if len(data) > MAX_PACKET_ID:
        raise FrameError("an MQTT string is at most 65,535 bytes")
    return _U16.pack(len(data)) + data


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _varint(len(body)) + body


def connect(
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    keepalive_s: int = 60,
    clean: bool = True,
) -> bytes:
    """CONNECT: MQTT 3.1.1, a clean session by default, optional username and password."""
    if password is not None and username is None:
        raise FrameError("MQTT 3.1.1 has no password without a username")
    flags = 0x02 if clean else 0
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    if password is not None:
        flags |= 0x40
        payload += _string(password)
    return _packet(CONNECT, 0, _PROTOCOL + bytes([flags]) + _U16.pack(keepalive_s) + payload)


def publish(
    topic: str, payload: bytes, *, qos: int = 1, packet_id: int = 0, retain: bool = False
) -> bytes:
    """PUBLISH at QoS 0 or 1 (``packet_id`` 1..65535 with QoS 1)."""
    if qos not in (0, 1):
        raise FrameError("only QoS 0 and 1 are encoded here")
    if qos == 1 and not 0 < packet_id <= MAX_PACKET_ID:
        raise FrameError(f"a QoS 1 PUBLISH needs a packet id in 1..65535, got {packet_id}")
    head = _string(topic) + (_U16.pack(packet_id) if qos else b"")
    return _packet(PUBLISH, qos << 1 | int(retain), head + payload)


def puback(packet_id: int) -> bytes:
    return _packet(PUBACK, 0, _U16.pack(packet_id))


def subscribe(packet_id: int, filters: Sequence[tuple[str, int]]) -> bytes:
    body = _U16.pack(packet_id) + b"".join(_string(t) + bytes([q]) for t, q in filters)
    return _packet(SUBSCRIBE, 0x02, body)


def pingreq() -> bytes:
    return _packet(PINGREQ, 0, b"")


def disconnect() -> bytes:
    return _packet(DISCONNECT, 0, b"")


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    flags: int
    body: bytes

    @property
    def packet_id(self) -> int:
        """PUBACK, SUBACK: the id they answer."""
        return int(_U16.unpack_from(self.body)[0])

    @property
    def return_code(self) -> int:
        """CONNACK: 0 = accepted, 4 = bad username or password, 5 = not authorised."""
        return self.body[1]

    def publish_parts(self) -> tuple[str, int, int, bytes]:
        """PUBLISH: (topic, qos, packet id or 0, payload)."""
        (n,) = _U16.unpack_from(self.body)
        topic = self.body[2 : 2 + n].decode("utf-8")
        qos = (self.flags >> 1) & 3
        at = 2 + n
        pid = 0
        if qos:
            (pid,) = _U16.unpack_from(self.body, at)
            at += 2
        return topic, qos, pid, self.body[at:]


class FrameReader:
    """Splits a byte stream into frames; counts PUBACKs without building frames for them."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.pubacks = 0
        """PUBACKs seen so far (they are only counted: the bench needs no more)."""

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Take ``data``; yield every other complete frame (not PUBACK) in order."""
        buf = self._buf
        buf += data
        at, end = 0, len(buf)
        while end - at >= 2:
            first = buf[at]
            if first == 0x40 and buf[at + 1] == 2:  # PUBACK, the bulk of the traffic
                if end - at < 4:
                    break
                self.pubacks += 1
                at += 4
                continue
            length, shift, i = 0, 0, at + 1
            while True:
                if i >= end:
                    del buf[:at]
                    return
                digit = buf[i]
                length |= (digit & 0x7F) << shift
                i += 1
                if not digit & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise FrameError("malformed remaining length")
            if end - i < length:
                break
            yield Frame(first >> 4, first & 0x0F, bytes(buf[i : i + length]))
            at = i + length
        del buf[:at]


# --------------------------------------------------------------------------- pre-built load


def stamp(ts: float) -> bytes:
    """``ts`` as the fixed-width text the buffer's payloads carry."""
    text = b"%017.6f" % ts
    if len(text) != TS_WIDTH:
        raise FrameError(f"ts {ts!r} does not fit {TS_WIDTH} characters")
    return text


class FrameBuffer:
    """QoS 1 PUBLISH frames back to back, with the ``ts`` places of every payload known.

    ``messages`` are (topic, payload template) pairs, the template holding
    :data:`TS_MARK` wherever the send time goes (once per sighting of a batch).
    Frame ``k`` gets packet id ``k + 1``, so a buffer holds at most 65,535 frames;
    cycling through it keeps the ids of the frames in flight distinct as long as
    fewer than ``len(buffer)`` are unacknowledged.
    """

    def __init__(self, messages: Sequence[tuple[str, bytes]], *, qos: int = 1) -> None:
        if not 0 < len(messages) <= MAX_PACKET_ID:
            raise FrameError("a frame buffer holds 1 to 65,535 messages")
        placeholder = b"0" * TS_WIDTH
        data = bytearray()
        starts: list[int] = []
        ts_at: list[int] = []
        ts_first: list[int] = []
        events: list[int] = []
        for k, (topic, template) in enumerate(messages):
            count = template.count(TS_MARK)
            body = template.replace(TS_MARK, placeholder)
            frame = publish(topic, body, qos=qos, packet_id=k + 1 if qos else 0)
            head = len(frame) - len(body)
            starts.append(len(data))
            ts_first.append(len(ts_at))
            pos = 0
            for _ in range(count):  # the n-th mark lands TS_WIDTH - len(mark) further on
                found = template.index(TS_MARK, pos)
                shift = (TS_WIDTH - len(TS_MARK)) * (len(ts_at) - ts_first[-1])
                ts_at.append(len(data) + head + found + shift)
                pos = found + len(TS_MARK)
            events.append(max(1, count))
            data += frame
        starts.append(len(data))
        ts_first.append(len(ts_at))
        self.qos = qos
        self.data = data
        self.view = memoryview(data)
        self.starts = starts
        """Byte offset of frame k (and the end, at ``len(self)``)."""
        self.ts_at = ts_at
        self.ts_first = ts_first
        self.events = events
        """Sightings in frame k (a batch has many)."""

    def __len__(self) -> int:
        return len(self.starts) - 1

    def fill(self, first: int, last: int, ts: float) -> memoryview:
        """Stamp frames ``first .. last-1`` with ``ts`` (a microsecond more per frame, so no
        two sightings of one write look like one reading); their bytes, ready to send."""
        data, positions, where = self.data, self.ts_at, self.ts_first
        for k in range(first, last):
            text = stamp(ts + (k - first) * 1e-6)
            for p in positions[where[k] : where[k + 1]]:
                data[p : p + TS_WIDTH] = text
        return self.view[self.starts[first] : self.starts[last]]
