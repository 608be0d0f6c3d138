"""Typed inbound events of wire contract v1, and the rejection of a bad message.

Events are ``NamedTuple`` values: immutable, typed and about four times cheaper to
build than a frozen dataclass, which matters at hundreds of thousands of events a
second. Every event carries the store id, the device-reported ``ts`` (epoch
seconds, UTC) and an ``order_key`` that makes a total order among events with the
same ``ts`` so that buffered reordering is deterministic.

Device ids have been resolved through the registry by the decoder: a sighting
already knows its zone, a bell press knows the zone of the bell.
"""

from __future__ import annotations

from typing import NamedTuple


class Sighting(NamedTuple):
    """A beacon seen by a shopper's phone or a staff band, via a gateway."""

    store: str
    gateway: str
    ts: float
    beacon: str
    zone: str
    rssi: int
    subject: str
    """The shopper token, or the band id when ``is_staff``."""
    is_staff: bool
    dwell_s: float | None
    order_key: str


class BellPress(NamedTuple):
    """A service bell or "call staff" QR code press."""

    store: str
    bell: str
    id: str
    ts: float
    zone: str
    shopper: str | None
    reason: str | None
    order_key: str


class PosItem(NamedTuple):
    """A POS scan line for an item."""

    store: str
    terminal: str
    id: str
    ts: float
    receipt: str
    shopper: str | None
    sku: str | None
    category: str | None
    qty: float
    price: float | None
    order_key: str


class CouponRedeemed(NamedTuple):
    """A POS scan line redeeming a coupon code."""

    store: str
    terminal: str
    id: str
    ts: float
    receipt: str
    shopper: str | None
    code: str
    order_key: str


class Checkout(NamedTuple):
    """A POS checkout line closing a receipt."""

    store: str
    terminal: str
    id: str
    ts: float
    receipt: str
    shopper: str | None
    total: float | None
    order_key: str


class StaffAck(NamedTuple):
    """A staff member's answer to an alert from their band."""

    store: str
    band: str
    id: str
    ts: float
    alert: str
    action: str
    """One of ``ack``, ``done``, ``decline``."""
    order_key: str


class DeviceStatus(NamedTuple):
    """A device's health report (retained; also its MQTT last will)."""

    store: str
    device: str
    ts: float
    online: bool
    battery: float | None
    order_key: str


Event = Sighting | BellPress | PosItem | CouponRedeemed | Checkout | StaffAck | DeviceStatus

ACK_ACTIONS = frozenset({"ack", "done", "decline"})


class Rejection(NamedTuple):
    """An inbound message refused by the decoder or the engine, kept for the dead letter.

    ``reason`` is a short code (see :data:`REJECTION_REASONS`), ``detail`` a
    human sentence, ``raw`` the payload as received (decoded as UTF-8 with
    replacement so it can always be republished as text).
    """

    reason: str
    topic: str
    raw: str
    detail: str
    arrival: float
    store: str | None

    def deadletter_payload(self) -> dict[str, object]:
        """The ``fw/{store}/deadletter`` payload of wire contract v1."""
        return {"ts": self.arrival, "topic": self.topic, "reason": self.reason, "raw": self.raw}


REJECTION_REASONS: dict[str, str] = {
    "malformed_json": "the payload is not valid UTF-8 JSON",
    "not_an_object": "the payload (or a batch element) is not a JSON object",
    "missing_field": "a required field is absent",
    "bad_type": "a field has the wrong type or an impossible value",
    "bad_topic": "the topic does not match any inbound topic of contract v1",
    "unknown_store": "the store id in the topic is not in any loaded registry",
    "unknown_device": "the device id is not in the store's registry",
    "too_large": "the payload is larger than the configured limit",
    "id_too_long": "an id (store, device, shopper token, message id, ...) is over 128 characters",
    "contradictory_pos_line": "a POS line has `checkout: true` and also an item or a coupon",
    "bad_timestamp": "the ts is not a finite epoch time in a plausible range",
    "clock_skew": "the ts is too far in the future or too late for the engine clock",
    "duplicate": "the same message id was already processed (QoS 1 redelivery or replay)",
    "unknown_alert": "a staff answer refers to an alert the engine does not know",
    "internal_error": "the engine failed on this message (a bug, logged); it is kept here",
}
