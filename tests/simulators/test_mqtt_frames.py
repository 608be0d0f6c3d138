"""The bench's MQTT encoder: bytes checked by hand, then decoded by paho on a real Mosquitto."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from floorwalker.devices.topics import beacon_topic
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.mqtt import MqttClient
from floorwalker.errors import FloorwalkerError
from floorwalker.simulators import mqtt_frames as mf
from floorwalker.simulators.bench import live_load


def test_connect_with_credentials_is_mqtt_311() -> None:
    frame = mf.connect("gen-1", username="u", password="pw", keepalive_s=60)
    body = b"\x00\x04MQTT\x04" + bytes([0x80 | 0x40 | 0x02]) + b"\x00\x3c"
    body += b"\x00\x05gen-1" + b"\x00\x01u" + b"\x00\x02pw"
    assert frame == bytes([0x10, len(body)]) + body


def test_password_needs_a_username() -> None:
    with pytest.raises(mf.FrameError):
        mf.connect("c", password="pw")


@pytest.mark.parametrize(
    ("length", "head"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
    ],
)
def test_remaining_length_varint(length: int, head: bytes) -> None:
    assert mf._varint(length) == head
    if length >= 5:  # topic "t" (3 bytes) and a packet id (2) come before the payload
        frame = mf.publish("t", b"x" * (length - 5), qos=1, packet_id=7)
        assert frame[1 : 1 + len(head)] == head
        assert len(frame) == 1 + len(head) + length


def test_publish_qos1_carries_the_packet_id_and_qos0_does_not() -> None:
    assert mf.publish("a/b", b"{}", qos=1, packet_id=258) == b"\x32\x09\x00\x03a/b\x01\x02{}"
    assert mf.publish("a/b", b"{}", qos=0) == b"\x30\x07\x00\x03a/b{}"
    with pytest.raises(mf.FrameError):
        mf.publish("a/b", b"{}", qos=1, packet_id=0)
    with pytest.raises(mf.FrameError):
        mf.publish("a/b", b"{}", qos=2, packet_id=1)


def test_frame_error_is_a_floorwalker_error() -> None:
    assert issubclass(mf.FrameError, FloorwalkerError)


def test_reader_splits_a_stream_fed_a_byte_at_a_time_and_counts_pubacks() -> None:
    stream = (
        b"\x20\x02\x00\x00"  # CONNACK accepted
        + mf.puback(1)
        + mf.puback(0x4002)  # an id whose bytes look like a PUBACK header
        + mf.publish("x/y", b"z" * 200, qos=1, packet_id=3)  # two-byte remaining length
        + b"\xd0\x00"  # PINGRESP
        + mf.puback(2)
    )
    reader = mf.FrameReader()
    frames = [f for b in stream for f in reader.feed(bytes([b]))]
    assert [f.kind for f in frames] == [mf.CONNACK, mf.PUBLISH, mf.PINGRESP]
    assert frames[0].return_code == 0
    assert frames[1].publish_parts() == ("x/y", 1, 3, b"z" * 200)
    assert reader.pubacks == 3


def test_reader_refuses_a_remaining_length_over_four_bytes() -> None:
    with pytest.raises(mf.FrameError):
        list(mf.FrameReader().feed(b"\x30\xff\xff\xff\xff\x01"))


def test_buffer_stamps_every_sighting_of_every_frame() -> None:
    one = orjson.dumps({"ts": mf.TS_SENTINEL, "beacon": "b1", "rssi": -60})
    batch = orjson.dumps([{"ts": mf.TS_SENTINEL, "k": i} for i in range(3)])
    assert orjson.dumps(mf.TS_SENTINEL) == mf.TS_MARK
    buf = mf.FrameBuffer([("t/1", one), ("t/2", batch), ("t/3", one)])
    assert len(buf) == 3
    assert buf.events == [1, 3, 1]
    data = bytes(buf.fill(0, 3, 1761234567.5))
    reader = mf.FrameReader()
    parts = [f.publish_parts() for f in reader.feed(data)]
    assert [(t, q, pid) for t, q, pid, _ in parts] == [("t/1", 1, 1), ("t/2", 1, 2), ("t/3", 1, 3)]
    assert orjson.loads(parts[0][3]) == {"ts": 1761234567.5, "beacon": "b1", "rssi": -60}
    # a microsecond more per frame; one frame's (a batch's) sightings share their ts
    assert orjson.loads(parts[1][3]) == [{"ts": 1761234567.500001, "k": i} for i in range(3)]
    assert orjson.loads(parts[2][3])["ts"] == 1761234567.500002
    only_middle = bytes(buf.fill(1, 2, 1761234568.25))
    assert [orjson.loads(f.publish_parts()[3])[2]["ts"] for f in reader.feed(only_middle)] == [
        1761234568.25
    ]


def test_stamp_is_fixed_width() -> None:
    assert mf.stamp(1761234567.1) == b"1761234567.100000"
    with pytest.raises(mf.FrameError):
        mf.stamp(17612345670.0)


def test_buffer_holds_at_most_65535_frames() -> None:
    with pytest.raises(mf.FrameError):
        mf.FrameBuffer([])


def test_background_messages_are_valid_sightings_and_batches() -> None:
    beacons = [("b-1", "gw-1"), ("b-2", "gw-2"), ("b-3", "gw-1")]
    shoppers = live_load.background_shoppers()[:50]
    single = live_load.messages("px", beacons, shoppers, 1, frames=40)
    assert len(single) == 40
    for topic, payload in single:
        obj = orjson.loads(payload.replace(mf.TS_MARK, b"1.0"))
        assert topic == beacon_topic("s001", dict(beacons)[obj["beacon"]], prefix="px")
        assert set(obj) == {"ts", "beacon", "rssi", "shopper"}
    batches = live_load.messages("px", beacons, shoppers, 20, frames=5)
    assert all(len(orjson.loads(p.replace(mf.TS_MARK, b"1.0"))) == 20 for _, p in batches)


# --------------------------------------------------------------------------- on a real broker


@pytest.mark.integration
def test_paho_decodes_the_frames_on_a_real_mosquitto(
    tester: BrokerAddress, unique_prefix: str
) -> None:
    got: list[tuple[str, bytes]] = []
    done = threading.Event()
    beacons = [("b-1", "gw-1"), ("b-2", "gw-2")]
    shoppers = live_load.background_shoppers()[:10]
    messages = live_load.messages(unique_prefix, beacons, shoppers, 1, frames=30)
    messages += live_load.messages(unique_prefix, beacons, shoppers, 20, frames=3)
    buf = mf.FrameBuffer(messages)

    def on_message(topic: str, payload: bytes) -> None:
        got.append((topic, payload))
        if len(got) == len(messages):
            done.set()

    receiver = MqttClient(
        f"{unique_prefix}-rx", tester, subscriptions=(f"{unique_prefix}/#",), on_message=on_message
    )
    with receiver:
        pub = live_load.RawPublisher(
            tester.host, tester.port, f"{unique_prefix}-raw", tester.username, tester.password
        )
        try:
            before = time.time()
            pub.sock.sendall(buf.fill(0, len(buf), before))
            assert done.wait(10.0), f"paho got {len(got)} of {len(messages)}"
            deadline = time.monotonic() + 10.0
            while pub.acked < len(buf) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert pub.acked == len(buf)
        finally:
            pub.close()
    assert [t for t, _ in got] == [t for t, _ in messages]
    for k, ((_, payload), (_, template)) in enumerate(zip(got, messages, strict=True)):
        want = orjson.loads(template.replace(mf.TS_MARK, mf.stamp(before + k * 1e-6)))
        assert orjson.loads(payload) == want


@pytest.mark.integration
def test_the_pacer_sends_at_its_rate_and_counts_pubacks(
    tester: BrokerAddress, unique_prefix: str
) -> None:
    beacons = [("b-1", "gw-1")]
    messages = live_load.messages(unique_prefix, beacons, live_load.background_shoppers()[:5], 1)
    pub = live_load.RawPublisher(
        tester.host, tester.port, f"{unique_prefix}-raw", tester.username, tester.password
    )
    try:
        pacer = live_load.Pacer(pub, mf.FrameBuffer(messages[:100]), window=1000)
        report = pacer.send(rate=500.0, seconds=30.0, cap=150)  # the cap ends it, not the clock
        assert report.sent == report.events == 150
        assert report.acked == 150
        again = pacer.send(rate=0, seconds=5.0, cap=120)  # wraps round the 100-frame buffer
        assert again.sent == again.acked == 120
    finally:
        pub.close()


@pytest.mark.integration
def test_a_wrong_password_is_refused_at_connack(tester: BrokerAddress, unique_prefix: str) -> None:
    with pytest.raises(live_load.BrokerRefusedError):
        live_load.RawPublisher(tester.host, tester.port, unique_prefix, tester.username, "wrong")
