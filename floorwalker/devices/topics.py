"""MQTT topics of wire contract v1: parse inbound topics, build outbound ones.

In the spirit of aiomqtt's ``Topic``: a topic is a small frozen value that is
validated when built. Building one from code with a bad id raises
:class:`ValueError` (a programming or configuration mistake); *parsing* a topic
that arrived from the broker never raises and returns ``None`` instead, because
a device publishing to a wrong topic is bad input, not a bug.

Inbound topics (``{p}`` is the configurable prefix, ``fw`` by default)::

    {p}/{store}/beacon/{gateway}        kind "beacon"
    {p}/{store}/bell/{bell}             kind "bell"
    {p}/{store}/pos/{terminal}          kind "pos"
    {p}/{store}/band/{band}/ack         kind "ack"
    {p}/{store}/device/{device}/status  kind "status"

Outbound topics (what a runner publishes)::

    {p}/{store}/shopper/{shopper}/offer kind "offer"
    {p}/{store}/band/{band}/alert       kind "alert"
    {p}/{store}/deadletter              kind "deadletter"

Every topic is built by a function of this module (:func:`beacon_topic`,
:func:`offer_topic`, :func:`offer_filter`...), never spelled out elsewhere.

An id (store or device) is one non-empty topic level: no ``/``, no MQTT wildcard
``+`` or ``#``, and no NUL (which MQTT forbids in topic names). The prefix may
span several levels (``acme/fw``), each a valid id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_PREFIX = "fw"


class TopicKind(StrEnum):
    """The kind of an inbound topic; also the order-key prefix of its events."""

    BEACON = "beacon"
    BELL = "bell"
    POS = "pos"
    ACK = "ack"
    STATUS = "status"


# (level after the store, trailing level or None) for each kind; the device id
# sits between them.
_SHAPES: dict[TopicKind, tuple[str, str | None]] = {
    TopicKind.BEACON: ("beacon", None),
    TopicKind.BELL: ("bell", None),
    TopicKind.POS: ("pos", None),
    TopicKind.ACK: ("band", "ack"),
    TopicKind.STATUS: ("device", "status"),
}
_BY_LEVEL: dict[tuple[str, str | None], TopicKind] = {shape: k for k, shape in _SHAPES.items()}


def is_valid_id(value: object) -> bool:
    """True when ``value`` can stand as one topic level (a store or device id)."""
    # Spelled out rather than any() over a tuple: the decoder calls this for
    # every shopper token, and the generator costs several times more.
    return (
        type(value) is str
        and value != ""
        and "/" not in value
        and "+" not in value
        and "#" not in value
        and "\x00" not in value
    )


def is_valid_prefix(prefix: object) -> bool:
    """True when ``prefix`` is one or more valid levels joined by ``/``."""
    return type(prefix) is str and all(is_valid_id(level) for level in prefix.split("/"))


def _check_id(value: object, what: str) -> str:
    if not is_valid_id(value):
        raise ValueError(f"{what} must be a non-empty id without '/', '+', '#' or NUL: {value!r}")
    assert isinstance(value, str)  # narrowed by is_valid_id
    return value


def _check_prefix(prefix: object) -> str:
    if not is_valid_prefix(prefix):
        raise ValueError(f"topic prefix must be non-empty levels without wildcards: {prefix!r}")
    assert isinstance(prefix, str)
    return prefix


@dataclass(frozen=True, slots=True)
class InboundTopic:
    """A validated inbound topic: which store, which kind of message, which device."""

    store: str
    kind: TopicKind
    device: str
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        _check_prefix(self.prefix)
        _check_id(self.store, "store")
        _check_id(self.device, "device")
        # Accept the plain string ("beacon") too, but store the enum member.
        object.__setattr__(self, "kind", TopicKind(self.kind))

    @property
    def value(self) -> str:
        """The topic string, e.g. ``fw/s001/band/band-07/ack``."""
        level, tail = _SHAPES[self.kind]
        base = f"{self.prefix}/{self.store}/{level}/{self.device}"
        return base if tail is None else f"{base}/{tail}"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, topic: object, prefix: str = DEFAULT_PREFIX) -> InboundTopic | None:
        """Parse an inbound topic; ``None`` if it is not one of contract v1 (never raises)."""
        return parse_inbound(topic, prefix)


def parse_inbound(topic: object, prefix: str = DEFAULT_PREFIX) -> InboundTopic | None:
    """Parse ``topic`` into an :class:`InboundTopic`, or ``None`` if it does not match.

    Never raises, whatever it is given (a device chose the topic).
    """
    levels = _levels_after_prefix(topic, prefix)
    if levels is None or len(levels) not in (3, 4) or not is_valid_prefix(prefix):
        return None
    store, level, device = levels[0], levels[1], levels[2]
    kind = _BY_LEVEL.get((level, levels[3] if len(levels) == 4 else None))
    if kind is None or not is_valid_id(store) or not is_valid_id(device):
        return None
    return InboundTopic(store=store, kind=kind, device=device, prefix=prefix)


def store_of(topic: object, prefix: str = DEFAULT_PREFIX) -> str | None:
    """The store level of any topic under ``prefix``, even one that is otherwise wrong.

    Lets a runner route the dead letter of a bad topic such as ``fw/s001/bel/x``
    to its store. Never raises.
    """
    levels = _levels_after_prefix(topic, prefix)
    if not levels or not is_valid_id(levels[0]):
        return None
    return levels[0]


def _levels_after_prefix(topic: object, prefix: str) -> list[str] | None:
    if type(topic) is not str or type(prefix) is not str or not prefix:
        return None
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    return topic[len(head) :].split("/")


def inbound_topic(
    kind: TopicKind | str, store: str, device: str, *, prefix: str = DEFAULT_PREFIX
) -> str:
    """The topic a device of ``kind`` publishes on; raises ``ValueError`` on a bad id.

    The same string as ``InboundTopic(store, kind, device, prefix).value``, without
    building the value.
    """
    level, tail = _SHAPES[TopicKind(kind)]
    head = f"{_check_prefix(prefix)}/{_check_id(store, 'store')}"
    base = f"{head}/{level}/{_check_id(device, 'device')}"
    return base if tail is None else f"{base}/{tail}"


def beacon_topic(store: str, gateway: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    """``{prefix}/{store}/beacon/{gateway}``: a gateway's batch of beacon sightings."""
    return inbound_topic(TopicKind.BEACON, store, gateway, prefix=prefix)


def bell_topic(store: str, bell: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    """``{prefix}/{store}/bell/{bell}``: a service bell press."""
    return inbound_topic(TopicKind.BELL, store, bell, prefix=prefix)


def pos_topic(store: str, terminal: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    """``{prefix}/{store}/pos/{terminal}``: a till's basket line or coupon redemption."""
    return inbound_topic(TopicKind.POS, store, terminal, prefix=prefix)


def ack_topic(store: str, band: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    """``{prefix}/{store}/band/{band}/ack``: a wristband's answer to an alert."""
    return inbound_topic(TopicKind.ACK, store, band, prefix=prefix)


def status_topic(store: str, device: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    """``{prefix}/{store}/device/{device}/status``: a device's health report."""
    return inbound_topic(TopicKind.STATUS, store, device, prefix=prefix)


def offer_topic(store: str, shopper: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    """``{prefix}/{store}/shopper/{shopper}/offer``; raises ``ValueError`` on a bad id."""
    return (
        f"{_check_prefix(prefix)}/{_check_id(store, 'store')}"
        f"/shopper/{_check_id(shopper, 'shopper')}/offer"
    )


def alert_topic(store: str, band: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    """``{prefix}/{store}/band/{band}/alert``; raises ``ValueError`` on a bad id."""
    return (
        f"{_check_prefix(prefix)}/{_check_id(store, 'store')}/band/{_check_id(band, 'band')}/alert"
    )


def deadletter_topic(store: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    """``{prefix}/{store}/deadletter``; raises ``ValueError`` on a bad id."""
    return f"{_check_prefix(prefix)}/{_check_id(store, 'store')}/deadletter"


def subscription_filter(
    kind: TopicKind | str, *, prefix: str = DEFAULT_PREFIX, store: str = "+"
) -> str:
    """The MQTT filter matching every device of one inbound ``kind`` (all stores by default)."""
    if store != "+":
        _check_id(store, "store")
    level, tail = _SHAPES[TopicKind(kind)]
    base = f"{_check_prefix(prefix)}/{store}/{level}/+"
    return base if tail is None else f"{base}/{tail}"


def inbound_filters(*, prefix: str = DEFAULT_PREFIX, store: str = "+") -> tuple[str, ...]:
    """The filters a runner subscribes to in order to receive every inbound topic."""
    return tuple(subscription_filter(k, prefix=prefix, store=store) for k in TopicKind)


def _filter_head(prefix: str, store: str) -> str:
    if store != "+":
        _check_id(store, "store")
    return f"{_check_prefix(prefix)}/{store}"


def offer_filter(*, prefix: str = DEFAULT_PREFIX, store: str = "+") -> str:
    """The MQTT filter matching every shopper's offers (of all stores by default)."""
    return f"{_filter_head(prefix, store)}/shopper/+/offer"


def alert_filter(*, prefix: str = DEFAULT_PREFIX, store: str = "+") -> str:
    """The MQTT filter matching every wristband's alerts (of all stores by default)."""
    return f"{_filter_head(prefix, store)}/band/+/alert"


def deadletter_filter(*, prefix: str = DEFAULT_PREFIX, store: str = "+") -> str:
    """The MQTT filter matching the dead letters (of all stores by default)."""
    return f"{_filter_head(prefix, store)}/deadletter"


def action_filters(*, prefix: str = DEFAULT_PREFIX, store: str = "+") -> tuple[str, str]:
    """The filters receiving every action a runner sends to devices: offers and alerts."""
    return offer_filter(prefix=prefix, store=store), alert_filter(prefix=prefix, store=store)


class OutboundKind(StrEnum):
    """The kind of a topic a runner publishes on."""

    OFFER = "offer"
    ALERT = "alert"
    DEADLETTER = "deadletter"


@dataclass(frozen=True, slots=True)
class OutboundTopic:
    """A parsed outbound topic: which store, which kind, and whose (shopper or band)."""

    store: str
    kind: OutboundKind
    target: str | None
    """The shopper of an offer, the band of an alert; None for a dead letter."""


def parse_outbound(topic: object, prefix: str = DEFAULT_PREFIX) -> OutboundTopic | None:
    """Parse a topic a runner published on; ``None`` if it is not one (never raises).

    For the devices' side (simulated phones and wristbands, dashboards, probes).
    """
    levels = _levels_after_prefix(topic, prefix)
    if not levels or not is_valid_id(levels[0]) or not is_valid_prefix(prefix):
        return None
    store = levels[0]
    if len(levels) == 2 and levels[1] == "deadletter":
        return OutboundTopic(store, OutboundKind.DEADLETTER, None)
    if len(levels) != 4 or not is_valid_id(levels[2]):
        return None
    shape = (levels[1], levels[3])
    if shape == ("shopper", "offer"):
        return OutboundTopic(store, OutboundKind.OFFER, levels[2])
    if shape == ("band", "alert"):
        return OutboundTopic(store, OutboundKind.ALERT, levels[2])
    return None
