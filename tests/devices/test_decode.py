"""Wire decoders: every inbound kind, every reason code, batches, and garbage in."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floorwalker.devices.decode import Decoder, DecoderSettings
from floorwalker.devices.events import (
    REJECTION_REASONS,
    BellPress,
    Checkout,
    CouponRedeemed,
    DeviceStatus,
    Event,
    PosItem,
    Rejection,
    Sighting,
    StaffAck,
)
from floorwalker.devices.registry import MAX_ID_CHARS, Registry
from floorwalker.errors import ConfigError

TS = 1717000000.25
ARRIVAL = 1717000000.5
BEACON = "fw/s001/beacon/gw-1"
BELL = "fw/s001/bell/bell-dairy"
POS = "fw/s001/pos/pos-1"
ACK = "fw/s001/band/band-07/ack"
STATUS = "fw/s001/device/gw-1/status"

SIGHTING: dict[str, Any] = {"ts": TS, "beacon": "b-dairy-1", "rssi": -60, "shopper": "tok-1"}
PRESS: dict[str, Any] = {"id": "p-1", "ts": TS}
ITEM: dict[str, Any] = {"id": "l-1", "ts": TS, "receipt": "r-1", "sku": "4001"}
ANSWER: dict[str, Any] = {"id": "a-1", "ts": TS, "alert": "al-9", "action": "ack"}
HEALTH: dict[str, Any] = {"ts": TS, "online": True}
GOOD = {BEACON: SIGHTING, BELL: PRESS, POS: ITEM, ACK: ANSWER, STATUS: HEALTH}

# Reasons the decoder may give; the rest need the engine's clock or state.
DECODER_REASONS = set(REJECTION_REASONS) - {"clock_skew", "duplicate", "unknown_alert"}


def enc(value: object) -> bytes:
    return orjson.dumps(value)


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``base`` with fields changed; a value of ``...`` removes the field."""
    out = dict(base)
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def one(decoder: Decoder, topic: str, payload: bytes) -> Event | Rejection:
    results = decoder.decode(topic, payload, ARRIVAL)
    assert len(results) == 1, results
    return results[0]


def event(decoder: Decoder, topic: str, obj: object) -> Event:
    result = one(decoder, topic, enc(obj))
    assert not isinstance(result, Rejection), result
    return result


def rejected(decoder: Decoder, topic: str, payload: bytes) -> Rejection:
    result = one(decoder, topic, payload)
    assert isinstance(result, Rejection), result
    return result


# -- each kind decodes to the right typed value ----------------------------------------


def test_shopper_sighting(decoder: Decoder) -> None:
    got = event(decoder, BEACON, SIGHTING)
    # Keyword construction pins the field order the decoder's fast tuple build uses.
    assert got == Sighting(
        store="s001",
        gateway="gw-1",
        ts=TS,
        beacon="b-dairy-1",
        zone="dairy-chilled",
        rssi=-60,
        subject="tok-1",
        is_staff=False,
        dwell_s=None,
        order_key="beacon/gw-1/s:tok-1/b-dairy-1/-60",
    )
    assert type(got) is Sighting
    assert got.zone == "dairy-chilled"


def test_staff_band_sighting_with_dwell(decoder: Decoder) -> None:
    obj = with_(SIGHTING, shopper=..., band="band-07", dwell_s=12, beacon="b-door-1")
    got = event(decoder, BEACON, obj)
    assert isinstance(got, Sighting)
    assert (got.subject, got.is_staff, got.zone) == ("band-07", True, "entrance")
    assert got.dwell_s == 12.0 and type(got.dwell_s) is float
    assert got.order_key == "beacon/gw-1/b:band-07/b-door-1/-60"


def test_integer_ts_is_stored_as_float(decoder: Decoder) -> None:
    for topic, obj in GOOD.items():
        got = event(decoder, topic, with_(obj, ts=1717000000))
        assert got.ts == 1717000000.0 and type(got.ts) is float, topic


def test_bell_press(decoder: Decoder) -> None:
    got = event(decoder, BELL, with_(PRESS, shopper="tok-1", reason="fitting-room"))
    assert got == BellPress(
        store="s001",
        bell="bell-dairy",
        id="p-1",
        ts=TS,
        zone="dairy-chilled",
        shopper="tok-1",
        reason="fitting-room",
        order_key="bell/bell-dairy/p-1",
    )
    bare = event(decoder, BELL, PRESS)
    assert isinstance(bare, BellPress)
    assert (bare.shopper, bare.reason) == (None, None)


def test_pos_item_with_defaults(decoder: Decoder) -> None:
    got = event(decoder, POS, ITEM)
    assert got == PosItem(
        store="s001",
        terminal="pos-1",
        id="l-1",
        ts=TS,
        receipt="r-1",
        shopper=None,
        sku="4001",
        category=None,
        qty=1.0,
        price=None,
        order_key="pos/pos-1/l-1",
    )


def test_pos_item_full(decoder: Decoder) -> None:
    obj = with_(ITEM, sku=..., category="infant-formula", qty=2, price=19.9, shopper="tok-1")
    got = event(decoder, POS, obj)
    assert isinstance(got, PosItem)
    assert (got.sku, got.category, got.qty, got.price, got.shopper) == (
        None,
        "infant-formula",
        2.0,
        19.9,
        "tok-1",
    )


def test_pos_coupon(decoder: Decoder) -> None:
    got = event(decoder, POS, with_(ITEM, sku=..., coupon="BOGO-123", shopper="tok-1"))
    assert got == CouponRedeemed(
        store="s001",
        terminal="pos-1",
        id="l-1",
        ts=TS,
        receipt="r-1",
        shopper="tok-1",
        code="BOGO-123",
        order_key="pos/pos-1/l-1",
    )


def test_pos_checkout(decoder: Decoder) -> None:
    got = event(decoder, POS, with_(ITEM, sku=..., checkout=True, total=42))
    assert got == Checkout(
        store="s001",
        terminal="pos-1",
        id="l-1",
        ts=TS,
        receipt="r-1",
        shopper=None,
        total=42.0,
        order_key="pos/pos-1/l-1",
    )
    no_total = event(decoder, POS, with_(ITEM, sku=..., checkout=True))
    assert isinstance(no_total, Checkout) and no_total.total is None


def test_pos_a_coupon_line_may_name_its_item_and_checkout_false_is_no_checkout(
    decoder: Decoder,
) -> None:
    assert isinstance(event(decoder, POS, with_(ITEM, coupon="C")), CouponRedeemed)
    assert isinstance(event(decoder, POS, with_(ITEM, checkout=False)), PosItem)
    assert isinstance(event(decoder, POS, with_(ITEM, coupon="C", checkout=False)), CouponRedeemed)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({}, "`sku`"),  # ITEM has a sku
        ({"sku": ..., "category": "dairy"}, "`category`"),
        ({"sku": ..., "coupon": "C"}, "`coupon`"),
        ({"category": "dairy", "coupon": "C"}, "`sku` and `category` and `coupon`"),
    ],
)
def test_pos_checkout_with_an_item_or_coupon_is_contradictory(
    decoder: Decoder, changes: dict[str, Any], named: str
) -> None:
    rej = rejected(decoder, POS, enc(with_(ITEM, checkout=True, total=42, **changes)))
    assert rej.reason == "contradictory_pos_line"
    assert f"cannot also carry {named}" in rej.detail
    # A null item field is absent, so this is an ordinary checkout.
    plain = with_(ITEM, sku=None, category=None, coupon=None, checkout=True)
    assert isinstance(event(decoder, POS, plain), Checkout)


@pytest.mark.parametrize("action", ["ack", "done", "decline"])
def test_staff_ack(decoder: Decoder, action: str) -> None:
    got = event(decoder, ACK, with_(ANSWER, action=action))
    assert got == StaffAck(
        store="s001",
        band="band-07",
        id="a-1",
        ts=TS,
        alert="al-9",
        action=action,
        order_key="ack/band-07/a-1",
    )


def test_device_status(decoder: Decoder) -> None:
    got = event(decoder, STATUS, with_(HEALTH, battery=0.25))
    assert got == DeviceStatus(
        store="s001",
        device="gw-1",
        ts=TS,
        online=True,
        battery=0.25,
        order_key="status/gw-1/1/0.25",
    )
    offline = event(decoder, "fw/s001/device/band-01/status", with_(HEALTH, online=False))
    assert isinstance(offline, DeviceStatus)
    assert (offline.device, offline.online, offline.battery) == ("band-01", False, None)
    assert offline.order_key == "status/band-01/0/None"


@pytest.mark.parametrize("device", ["b-dairy-1", "bell-dairy", "gw-2", "pos-1", "band-07"])
def test_status_of_any_registry_device(decoder: Decoder, device: str) -> None:
    got = event(decoder, f"fw/s001/device/{device}/status", HEALTH)
    assert isinstance(got, DeviceStatus) and got.device == device


def test_unknown_fields_are_ignored(decoder: Decoder) -> None:
    extra = {"fw": 1, "meta": {"fw": [1, 2]}, "rssi_raw": "x", "v": None}
    for topic, obj in GOOD.items():
        assert event(decoder, topic, {**obj, **extra}) == event(decoder, topic, obj), topic


def test_null_optional_fields_count_as_absent(decoder: Decoder) -> None:
    assert event(decoder, BEACON, with_(SIGHTING, band=None, dwell_s=None)) == event(
        decoder, BEACON, SIGHTING
    )
    assert event(decoder, BELL, with_(PRESS, shopper=None, reason=None)) == event(
        decoder, BELL, PRESS
    )
    assert event(decoder, POS, with_(ITEM, coupon=None, checkout=None, qty=None)) == event(
        decoder, POS, ITEM
    )
    assert event(decoder, STATUS, with_(HEALTH, battery=None)) == event(decoder, STATUS, HEALTH)


def test_rejection_carries_topic_raw_arrival_and_store(decoder: Decoder) -> None:
    payload = b'{"ts": 1717000000.25, "beacon": "b-dairy-1", "rssi": "-60", "shopper": "t"}'
    rej = rejected(decoder, BEACON, payload)
    assert rej == Rejection(
        reason="bad_type",
        topic=BEACON,
        raw=payload.decode(),
        detail='`rssi` must be an integer dBm, got "-60"',
        arrival=ARRIVAL,
        store="s001",
    )
    assert rej.deadletter_payload() == {
        "ts": ARRIVAL,
        "topic": BEACON,
        "reason": "bad_type",
        "raw": payload.decode(),
    }


# -- every reason code -----------------------------------------------------------------


def test_too_large_keeps_a_truncated_raw(registry: Registry) -> None:
    small = Decoder({"s001": registry}, DecoderSettings(max_payload_bytes=100, raw_keep_bytes=10))
    payload = enc(with_(SIGHTING, pad="x" * 200))
    rej = rejected(small, BEACON, payload)
    assert rej.reason == "too_large"
    assert rej.raw == payload[:10].decode()
    assert str(len(payload)) in rej.detail and "first 10 bytes" in rej.detail
    assert rej.store == "s001"
    # Exactly at the limit is fine.
    at_limit = enc(with_(SIGHTING, pad=""))
    at_limit += b" " * (100 - len(at_limit))
    assert isinstance(one(small, BEACON, at_limit), Sighting)


def test_too_large_is_decided_before_the_topic(registry: Registry) -> None:
    small = Decoder({"s001": registry}, DecoderSettings(max_payload_bytes=8))
    rej = rejected(small, "fw/s001/nowhere", b"\xff" * 9)
    assert rej.reason == "too_large"
    assert rej.store == "s001"
    assert rej.raw == "\ufffd" * 9
    assert "raw keeps" not in rej.detail


def test_batch_over_max_batch_is_one_too_large(registry: Registry) -> None:
    small = Decoder({"s001": registry}, DecoderSettings(max_batch=3))
    assert len(small.decode(BEACON, enc([SIGHTING] * 3), ARRIVAL)) == 3
    rej = rejected(small, BEACON, enc([SIGHTING] * 4))
    assert rej.reason == "too_large"
    assert "batch of 4" in rej.detail


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b'{"ts": }', b"{'ts': 1}", b"NaN", b'{"ts": 1e400}', b"\xef\xbb\xbf{}", b"[1,]"],
)
def test_malformed_json(decoder: Decoder, payload: bytes) -> None:
    rej = rejected(decoder, BEACON, payload)
    assert rej.reason == "malformed_json"
    assert rej.raw == payload.decode("utf-8", errors="replace")
    assert rej.store == "s001"


def test_invalid_utf8_is_malformed_and_raw_is_replaced(decoder: Decoder) -> None:
    payload = b'{"ts": 1717000000, "beacon": "b-\xff", "rssi": -60, "shopper": "t"}'
    rej = rejected(decoder, BEACON, payload)
    assert rej.reason == "malformed_json"
    assert "b-\ufffd" in rej.raw


@pytest.mark.parametrize("payload", [b"42", b'"hello"', b"null", b"true", b"1.5"])
def test_top_level_scalar_is_not_an_object(decoder: Decoder, payload: bytes) -> None:
    rej = rejected(decoder, BELL, payload)
    assert rej.reason == "not_an_object"
    assert rej.raw == payload.decode()


@pytest.mark.parametrize(
    "topic",
    ["fw/s001/beacons/gw-1", "fw/s001/beacon", "other/s001/beacon/gw-1", "fw/s001/deadletter", ""],
)
def test_bad_topic(decoder: Decoder, topic: str) -> None:
    rej = rejected(decoder, topic, enc(SIGHTING))
    assert rej.reason == "bad_topic"
    assert rej.topic == topic
    assert rej.raw == enc(SIGHTING).decode()


def test_bad_topic_keeps_the_store_when_it_can(decoder: Decoder) -> None:
    assert rejected(decoder, "fw/s001/beacons/gw-1", b"{}").store == "s001"
    assert rejected(decoder, "other/s001/beacon/gw-1", b"{}").store is None


def test_unknown_store(decoder: Decoder) -> None:
    rej = rejected(decoder, "fw/s999/beacon/gw-1", enc(SIGHTING))
    assert rej.reason == "unknown_store"
    assert rej.store == "s999"
    assert "s999" in rej.detail


@pytest.mark.parametrize(
    ("topic", "what"),
    [
        ("fw/s001/beacon/gw-9", "gateway `gw-9`"),
        ("fw/s001/beacon/pos-1", "gateway `pos-1`"),
        ("fw/s001/bell/bell-9", "bell `bell-9`"),
        ("fw/s001/pos/pos-9", "terminal `pos-9`"),
        ("fw/s001/band/band-99/ack", "band `band-99`"),
        ("fw/s001/device/dairy-chilled/status", "device `dairy-chilled`"),
    ],
)
def test_unknown_device_in_topic(decoder: Decoder, topic: str, what: str) -> None:
    # The payload is garbage too: the topic is checked first and rejects it whole.
    rej = rejected(decoder, topic, b"[not json")
    assert rej.reason == "unknown_device"
    assert what in rej.detail
    assert rej.store == "s001"


def test_unknown_beacon_and_band_in_sighting(decoder: Decoder) -> None:
    rej = rejected(decoder, BEACON, enc(with_(SIGHTING, beacon="b-9")))
    assert (rej.reason, rej.detail) == (
        "unknown_device",
        "beacon `b-9` is not in the registry of store s001",
    )
    rej = rejected(decoder, BEACON, enc(with_(SIGHTING, shopper=..., band="band-99")))
    assert rej.reason == "unknown_device"
    assert "band `band-99`" in rej.detail


REQUIRED = {
    BEACON: ("ts", "beacon", "rssi"),
    BELL: ("id", "ts"),
    POS: ("id", "ts", "receipt"),
    ACK: ("id", "ts", "alert", "action"),
    STATUS: ("ts", "online"),
}


@pytest.mark.parametrize(
    ("topic", "field"), [(t, f) for t, fields in REQUIRED.items() for f in fields]
)
def test_missing_field(decoder: Decoder, topic: str, field: str) -> None:
    rej = rejected(decoder, topic, enc(with_(GOOD[topic], **{field: ...})))
    assert rej.reason == "missing_field"
    assert f"`{field}`" in rej.detail


def test_missing_is_reported_before_ill_typed(decoder: Decoder) -> None:
    rej = rejected(decoder, BEACON, enc({"ts": "soon", "beacon": "b-dairy-1"}))
    assert (rej.reason, rej.detail) == ("missing_field", "`rssi` is required")


def test_pos_line_with_nothing_to_say_is_missing_field(decoder: Decoder) -> None:
    rej = rejected(decoder, POS, enc(with_(ITEM, sku=..., qty=3)))
    assert rej.reason == "missing_field"
    assert "`sku`" in rej.detail and "`coupon`" in rej.detail and "checkout" in rej.detail


BAD_TYPES: list[tuple[str, dict[str, Any], str]] = [
    (BEACON, {"rssi": "-60"}, "`rssi` must be an integer dBm"),
    (BEACON, {"rssi": -60.0}, "`rssi`"),
    (BEACON, {"rssi": True}, "`rssi`"),
    (BEACON, {"rssi": -131}, "`rssi` must be between -130 and 20"),
    (BEACON, {"rssi": 21}, "`rssi`"),
    (BEACON, {"ts": "1717000000"}, "`ts` must be a number"),
    (BEACON, {"ts": True}, "`ts`"),
    (BEACON, {"ts": None}, "`ts`"),
    (BEACON, {"beacon": 7}, "`beacon`"),
    (BEACON, {"beacon": ["b-dairy-1"]}, "`beacon` must be a non-empty string, got an array"),
    (BEACON, {"band": "band-07"}, "exactly one of `shopper` or `band`"),
    (BEACON, {"shopper": ...}, "exactly one of `shopper` or `band`"),
    (BEACON, {"shopper": None}, "exactly one"),
    (BEACON, {"shopper": ""}, "`shopper`"),
    (BEACON, {"shopper": "tok/1"}, "`shopper` must be a non-empty token"),
    (BEACON, {"shopper": "tok+"}, "`shopper`"),
    (BEACON, {"shopper": "#"}, "`shopper`"),
    (BEACON, {"shopper": "a\x00b"}, "`shopper`"),
    (BEACON, {"shopper": 12}, "`shopper`"),
    (BEACON, {"shopper": ..., "band": 7}, "`band`"),
    (BEACON, {"dwell_s": -1}, "`dwell_s` must be >= 0"),
    (BEACON, {"dwell_s": "3"}, "`dwell_s` must be a number"),
    (BEACON, {"dwell_s": False}, "`dwell_s`"),
    (BELL, {"id": 5}, "`id`"),
    (BELL, {"id": ""}, "`id` must be a non-empty string"),
    (BELL, {"reason": 5}, "`reason` must be a string"),
    (BELL, {"shopper": {"t": 1}}, "`shopper`"),
    (POS, {"receipt": None}, "`receipt`"),
    (POS, {"qty": 0}, "`qty` must be > 0"),
    (POS, {"qty": -2}, "`qty`"),
    (POS, {"qty": "2"}, "`qty` must be a number"),
    (POS, {"price": "3.50"}, "`price` must be a number"),
    (POS, {"sku": 4001}, "`sku`"),
    (POS, {"sku": ..., "category": ""}, "`category`"),
    (POS, {"coupon": 123}, "`coupon`"),
    (POS, {"checkout": "yes"}, "`checkout` must be true or false"),
    (POS, {"sku": ..., "checkout": True, "total": "42"}, "`total` must be a number"),
    (ACK, {"action": "maybe"}, '`action` must be one of ack, done, decline, got "maybe"'),
    (ACK, {"action": 1}, "`action`"),
    (ACK, {"alert": None}, "`alert`"),
    (STATUS, {"online": "yes"}, '`online` must be true or false, got "yes"'),
    (STATUS, {"online": 1}, "`online`"),
    (STATUS, {"battery": 1.5}, "`battery` must be between 0 and 1, got 1.5"),
    (STATUS, {"battery": -0.1}, "`battery`"),
    (STATUS, {"battery": True}, "`battery`"),
]


@pytest.mark.parametrize(("topic", "changes", "detail"), BAD_TYPES)
def test_bad_type(decoder: Decoder, topic: str, changes: dict[str, Any], detail: str) -> None:
    rej = rejected(decoder, topic, enc(with_(GOOD[topic], **changes)))
    assert rej.reason == "bad_type"
    assert detail in rej.detail


def test_long_bad_values_are_clipped_in_detail(decoder: Decoder) -> None:
    rej = rejected(decoder, BEACON, enc(with_(SIGHTING, rssi="x" * 500)))
    assert rej.reason == "bad_type"
    assert len(rej.detail) < 100
    assert rej.detail.endswith("…")


@pytest.mark.parametrize(
    "ts", ["0", "-5", "946684799.9", "4102444800.5", "1e12", "-1e300", "1" + "0" * 40]
)
@pytest.mark.parametrize("topic", list(GOOD))
def test_bad_timestamp(decoder: Decoder, topic: str, ts: str) -> None:
    # ts as JSON text: orjson.dumps cannot write the 41-digit integer.
    payload = enc(with_(GOOD[topic], ts="@")).replace(b'"@"', ts.encode())
    rej = rejected(decoder, topic, payload)
    assert rej.reason == "bad_timestamp"
    assert "`ts` must be between 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z" in rej.detail


def test_timestamp_bounds_are_inclusive_and_configurable(registry: Registry) -> None:
    dec = Decoder({"s001": registry}, DecoderSettings(min_ts=100.0, max_ts=200.0))
    for ts in (100, 150.5, 200):
        assert isinstance(one(dec, BEACON, enc(with_(SIGHTING, ts=ts))), Sighting)
    assert rejected(dec, BEACON, enc(with_(SIGHTING, ts=TS))).reason == "bad_timestamp"


# -- contract limits: batch size, id length ---------------------------------------------


def test_a_batch_of_1000_ordinary_sightings_is_accepted(decoder: Decoder) -> None:
    batch = [
        with_(SIGHTING, shopper=f"app-{i:08d}-tok", ts=TS + i * 0.001, dwell_s=1.5)
        for i in range(1000)
    ]
    payload = enc(batch)
    assert len(payload) > 64 * 1024, "bigger than the old 64 KiB cap"
    out = decoder.decode(BEACON, payload, ARRIVAL)
    assert len(out) == 1000 and all(isinstance(e, Sighting) for e in out)
    # Even with tokens of the longest length, 1,000 of them fit.
    long_tokens = [with_(SIGHTING, shopper="t" * MAX_ID_CHARS) for _ in range(1000)]
    assert len(enc(long_tokens)) <= DecoderSettings().max_payload_bytes
    assert all(isinstance(e, Sighting) for e in decoder.decode(BEACON, enc(long_tokens), ARRIVAL))
    over = rejected(decoder, BEACON, enc([SIGHTING] * 1001))
    assert over.reason == "too_large"
    assert over.detail.startswith("batch of 1001 messages is over the limit of 1000")


LONG = "x" * (MAX_ID_CHARS + 1)
TOO_LONG: list[tuple[str, dict[str, Any], str]] = [
    (BEACON, {"shopper": LONG}, "`shopper`"),
    (BEACON, {"shopper": ..., "band": LONG}, "`band`"),
    (BEACON, {"beacon": LONG}, "`beacon`"),
    (BELL, {"id": LONG}, "`id`"),
    (BELL, {"shopper": LONG}, "`shopper`"),
    (POS, {"receipt": LONG}, "`receipt`"),
    (POS, {"sku": LONG}, "`sku`"),
    (POS, {"sku": ..., "category": LONG}, "`category`"),
    (POS, {"coupon": LONG}, "`coupon`"),
    (ACK, {"alert": LONG}, "`alert`"),
    (ACK, {"id": LONG}, "`id`"),
]


@pytest.mark.parametrize(("topic", "changes", "what"), TOO_LONG)
def test_ids_over_the_limit_are_id_too_long(
    decoder: Decoder, topic: str, changes: dict[str, Any], what: str
) -> None:
    rej = rejected(decoder, topic, enc(with_(GOOD[topic], **changes)))
    assert rej.reason == "id_too_long"
    assert rej.detail.startswith(f"{what} is {MAX_ID_CHARS + 1} characters long, over the limit")
    assert len(rej.detail) < 200


@pytest.mark.parametrize(
    "topic",
    [f"fw/s001/beacon/{LONG}", f"fw/{LONG}/bell/bell-dairy", f"fw/s001/device/{LONG}/status"],
)
def test_long_ids_in_the_topic_are_id_too_long(decoder: Decoder, topic: str) -> None:
    rej = rejected(decoder, topic, enc(SIGHTING))
    assert rej.reason == "id_too_long"
    assert rej.detail.startswith("the topic's id is 129 characters long")


def test_ids_of_the_longest_length_are_accepted(decoder: Decoder) -> None:
    at_limit = "y" * MAX_ID_CHARS
    got = event(decoder, BEACON, with_(SIGHTING, shopper=at_limit))
    assert isinstance(got, Sighting) and got.subject == at_limit
    assert isinstance(event(decoder, POS, with_(ITEM, receipt=at_limit, id=at_limit)), PosItem)


# -- batches ---------------------------------------------------------------------------


def test_batch_mixes_good_and_bad_in_order(decoder: Decoder) -> None:
    bad_rssi = with_(SIGHTING, rssi="loud")
    batch = [SIGHTING, bad_rssi, 7, with_(SIGHTING, shopper="tok-2"), [SIGHTING]]
    out = decoder.decode(BEACON, enc(batch), ARRIVAL)
    assert [type(x).__name__ for x in out] == [
        "Sighting",
        "Rejection",
        "Rejection",
        "Sighting",
        "Rejection",
    ]
    rej1, rej2, rej4 = out[1], out[2], out[4]
    assert isinstance(rej1, Rejection) and isinstance(rej2, Rejection)
    assert isinstance(rej4, Rejection)
    assert rej1.reason == "bad_type"
    assert rej1.detail.startswith("batch element 1: `rssi`")
    assert orjson.loads(rej1.raw) == bad_rssi
    assert (rej2.reason, rej2.raw) == ("not_an_object", "7")
    assert rej2.detail == "batch element 2: is a number, not a JSON object"
    assert rej4.reason == "not_an_object" and orjson.loads(rej4.raw) == [SIGHTING]
    assert all(r.store == "s001" and r.topic == BEACON for r in (rej1, rej2, rej4))
    second = out[3]
    assert isinstance(second, Sighting) and second.subject == "tok-2"


def test_empty_batch_yields_nothing(decoder: Decoder) -> None:
    assert decoder.decode(BEACON, b"[]", ARRIVAL) == []
    assert decoder.decode(POS, b" [ ] ", ARRIVAL) == []


@pytest.mark.parametrize("topic", list(GOOD))
def test_batch_of_each_kind_equals_its_elements_decoded_alone(decoder: Decoder, topic: str) -> None:
    elements = [GOOD[topic], with_(GOOD[topic], ts=TS + 1), with_(GOOD[topic], ts="x")]
    batch = decoder.decode(topic, enc(elements), ARRIVAL)
    alone = [one(decoder, topic, enc(e)) for e in elements]
    assert batch[:2] == alone[:2]
    assert isinstance(batch[2], Rejection) and isinstance(alone[2], Rejection)
    assert batch[2].reason == alone[2].reason == "bad_type"


def test_deeply_nested_batch_element_is_still_dead_lettered(decoder: Decoder) -> None:
    deep = b"[" + b"[" * 600 + b"]" * 600 + b"]"
    rej = rejected(decoder, BEACON, deep)
    assert rej.reason == "not_an_object"
    assert rej.raw.startswith("[[[")


# -- order keys ------------------------------------------------------------------------


def test_order_key_orders_same_ts_events_regardless_of_arrival(decoder: Decoder) -> None:
    batch = [
        with_(SIGHTING, shopper="tok-b"),
        with_(SIGHTING, shopper="tok-a"),
        with_(SIGHTING, shopper="tok-a", rssi=-70),
        with_(SIGHTING, shopper=..., band="band-07"),
        with_(SIGHTING, beacon="b-door-1"),
    ]
    forward = decoder.decode(BEACON, enc(batch), ARRIVAL)
    backward = decoder.decode(BEACON, enc(batch[::-1]), ARRIVAL)
    keys = [e.order_key for e in forward if not isinstance(e, Rejection)]
    assert len(set(keys)) == len(batch)

    def by_key(events: list[Event | Rejection]) -> list[Event | Rejection]:
        return sorted(events, key=lambda e: (e.ts, e.order_key))  # type: ignore[union-attr]

    assert by_key(forward) == by_key(backward)


def test_order_keys_differ_across_kinds_and_devices(decoder: Decoder) -> None:
    keys = {
        event(decoder, BELL, PRESS).order_key,
        event(decoder, POS, with_(ITEM, id="p-1")).order_key,
        event(decoder, ACK, with_(ANSWER, id="p-1")).order_key,
        event(decoder, STATUS, HEALTH).order_key,
        event(decoder, "fw/s001/device/gw-2/status", HEALTH).order_key,
        event(decoder, "fw/s001/beacon/gw-2", SIGHTING).order_key,
        event(decoder, BEACON, SIGHTING).order_key,
    }
    assert len(keys) == 7


def test_decoding_is_deterministic_and_cache_independent(registry: Registry) -> None:
    payload = enc(SIGHTING)
    first = Decoder({"s001": registry}).decode(BEACON, payload, ARRIVAL)
    dec = Decoder({"s001": registry})
    dec.decode(BEACON, payload, ARRIVAL)
    assert dec.decode(BEACON, payload, ARRIVAL) == first


# -- construction and settings ---------------------------------------------------------


def test_custom_prefix(registry: Registry) -> None:
    dec = Decoder({"s001": registry}, DecoderSettings(prefix="acme/fw"))
    assert isinstance(one(dec, "acme/fw/s001/beacon/gw-1", enc(SIGHTING)), Sighting)
    assert rejected(dec, BEACON, enc(SIGHTING)).reason == "bad_topic"


def test_several_stores(registry: Registry) -> None:
    other = Registry.from_mapping(
        {"store": "s002", "zones": {"z": {}}, "beacons": {"b": {"zone": "z"}}, "gateways": ["g"]}
    )
    dec = Decoder({"s001": registry, "s002": other})
    assert dec.stores == frozenset({"s001", "s002"})
    got = one(dec, "fw/s002/beacon/g", enc(with_(SIGHTING, beacon="b")))
    assert isinstance(got, Sighting) and (got.store, got.zone) == ("s002", "z")
    # A device of one store is unknown in another.
    assert rejected(dec, "fw/s002/beacon/gw-1", enc(SIGHTING)).reason == "unknown_device"


def test_registry_filed_under_the_wrong_store_is_refused(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="s001"):
        Decoder({"s002": registry})


@pytest.mark.parametrize(
    "changes",
    [
        {"prefix": "a/+"},
        {"max_payload_bytes": 0},
        {"max_batch": 0},
        {"raw_keep_bytes": 0},
        {"min_ts": 5.0, "max_ts": 5.0},
        {"max_ts": math.inf},
    ],
)
def test_bad_settings_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DecoderSettings(**changes)


def test_non_bytes_payloads_do_not_raise(decoder: Decoder) -> None:
    good = bytearray(enc(SIGHTING))
    assert isinstance(one(decoder, BEACON, good), Sighting)  # type: ignore[arg-type]
    bad = memoryview(b"{not json")
    rej = rejected(decoder, BEACON, bad)  # type: ignore[arg-type]
    assert rej.reason == "malformed_json" and rej.raw == "{not json"


def test_nonsense_arguments_still_yield_a_rejection(decoder: Decoder) -> None:
    rej = rejected(decoder, ["not", "a", "topic"], None)  # type: ignore[arg-type]
    assert rej.reason in DECODER_REASONS


# -- properties: nothing a device sends raises ------------------------------------------


def _check(results: list[Event | Rejection]) -> None:
    assert isinstance(results, list)
    for r in results:
        if isinstance(r, Rejection):
            assert r.reason in DECODER_REASONS
            assert isinstance(r.raw, str) and isinstance(r.detail, str) and r.detail
        else:
            assert isinstance(r, Event)
            assert r.store == "s001"
            assert isinstance(r.order_key, str) and r.order_key


_TOPICS = st.one_of(
    st.sampled_from([*GOOD, "fw/s999/bell/x", "fw/s001/bell/nope", "fw/s001"]),
    st.text(max_size=40),
)


@given(topic=_TOPICS, payload=st.binary(max_size=300))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
def test_arbitrary_bytes_and_topics_never_raise(
    decoder: Decoder, topic: str, payload: bytes
) -> None:
    _check(decoder.decode(topic, payload, ARRIVAL))


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([TS, 1717000000, -60, -131, 0.5, 2.0]),
    st.text(max_size=12),
    st.sampled_from(["b-dairy-1", "b-door-1", "band-07", "tok-1", "ack", "done", "x/y", "", "a+b"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
_KEYS = st.sampled_from(
    [
        "ts",
        "beacon",
        "rssi",
        "shopper",
        "band",
        "dwell_s",
        "id",
        "reason",
        "receipt",
        "sku",
        "category",
        "qty",
        "price",
        "coupon",
        "checkout",
        "total",
        "alert",
        "action",
        "online",
        "battery",
        "other",
    ]
)
_OBJECTS = st.fixed_dictionaries({}, optional={"ts": st.just(TS)}).flatmap(
    lambda base: st.dictionaries(_KEYS, _VALUES, max_size=8).map(lambda d: {**base, **d})
)


@given(
    topic=st.sampled_from(list(GOOD)),
    body=st.one_of(_OBJECTS, st.lists(st.one_of(_OBJECTS, _VALUES), max_size=5)),
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=400)
def test_arbitrary_json_never_raises_and_events_are_valid(
    decoder: Decoder, topic: str, body: object
) -> None:
    results = decoder.decode(topic, enc(body), ARRIVAL)
    _check(results)
    if isinstance(body, list):
        assert len(results) == len(body)  # one result per element, none lost
    for r in results:
        if isinstance(r, Sighting):
            assert -130 <= r.rssi <= 20 and type(r.rssi) is int
            assert r.zone in ("dairy-chilled", "entrance")
            assert r.is_staff == (r.subject == "band-07")
            assert "/" not in r.subject and r.subject
            assert type(r.ts) is float and 946684800.0 <= r.ts <= 4102444800.0
            assert r.dwell_s is None or r.dwell_s >= 0


@given(
    shopper=st.text(max_size=20) | st.text(min_size=MAX_ID_CHARS - 2, max_size=MAX_ID_CHARS + 2),
    rssi=st.integers(min_value=-200, max_value=100),
    ts=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**63 - 1),
    beacon=st.sampled_from(["b-dairy-1", "b-door-1", "b-x", ""]),
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
def test_sighting_fast_path_agrees_with_the_rules(
    decoder: Decoder, shopper: str, rssi: int, ts: float, beacon: str
) -> None:
    # The sighting path tests the good case inline and falls back to the careful
    # helpers; this restates the rules independently and checks both agree.
    got = one(decoder, BEACON, enc({"ts": ts, "beacon": beacon, "rssi": rssi, "shopper": shopper}))
    problems = [
        ("bad_timestamp", not 946684800.0 <= ts <= 4102444800.0),
        ("bad_type", beacon == ""),
        ("unknown_device", beacon == "b-x"),
        ("bad_type", not -130 <= rssi <= 20),
        ("bad_type", shopper == "" or any(c in shopper for c in "/+#\x00")),
        ("id_too_long", len(shopper) > MAX_ID_CHARS),
    ]
    first = next((reason for reason, failed in problems if failed), None)
    if first is None:
        assert isinstance(got, Sighting)
        assert (got.ts, got.rssi, got.subject) == (float(ts), rssi, shopper)
    else:
        assert isinstance(got, Rejection) and got.reason == first, got
