"""Inbound topic parsing and outbound topic building (wire contract v1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floorwalker.devices.topics import (
    InboundTopic,
    OutboundKind,
    OutboundTopic,
    TopicKind,
    ack_topic,
    action_filters,
    alert_filter,
    alert_topic,
    beacon_topic,
    bell_topic,
    deadletter_filter,
    deadletter_topic,
    inbound_filters,
    inbound_topic,
    is_valid_id,
    offer_filter,
    offer_topic,
    parse_inbound,
    parse_outbound,
    pos_topic,
    status_topic,
    store_of,
    subscription_filter,
)


@pytest.mark.parametrize(
    ("topic", "kind", "device"),
    [
        ("fw/s001/beacon/gw-1", TopicKind.BEACON, "gw-1"),
        ("fw/s001/bell/bell-dairy", TopicKind.BELL, "bell-dairy"),
        ("fw/s001/pos/pos-1", TopicKind.POS, "pos-1"),
        ("fw/s001/band/band-07/ack", TopicKind.ACK, "band-07"),
        ("fw/s001/device/b-door-1/status", TopicKind.STATUS, "b-door-1"),
    ],
)
def test_each_inbound_kind_parses_and_round_trips(topic: str, kind: TopicKind, device: str) -> None:
    parsed = parse_inbound(topic)
    assert parsed == InboundTopic(store="s001", kind=kind, device=device)
    assert parsed.value == topic
    assert str(parsed) == topic


def test_kind_is_also_its_plain_string() -> None:
    parsed = InboundTopic(store="s1", kind=TopicKind("ack"), device="band-1")
    assert parsed.kind == "ack"
    assert parsed.value == "fw/s1/band/band-1/ack"


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "fw",
        "fw/",
        "fw/s001",
        "fw/s001/beacon",
        "fw/s001/beacon/",
        "fw//beacon/gw-1",
        "fw/s001/beacon/gw-1/extra",
        "fw/s001/band/band-07",
        "fw/s001/band/band-07/alert",
        "fw/s001/device/d1/state",
        "fw/s001/shopper/tok/offer",
        "fw/s001/deadletter",
        "fw/s001/Beacon/gw-1",
        "fw/s001/beacon/gw+1",
        "fw/s001/beacon/#",
        "fw/+/beacon/gw-1",
        "fw/s001/beacon/gw\x001",
        "xfw/s001/beacon/gw-1",
        "fwx/s001/beacon/gw-1",
        "/fw/s001/beacon/gw-1",
        "other/s001/beacon/gw-1",
        "$SYS/broker/uptime",
    ],
)
def test_non_matching_topics_parse_to_none(topic: str) -> None:
    assert parse_inbound(topic) is None
    assert InboundTopic.parse(topic) is None


@pytest.mark.parametrize("topic", [None, 42, b"fw/s001/beacon/gw-1", ["fw"]])
def test_non_string_topics_parse_to_none(topic: object) -> None:
    assert parse_inbound(topic) is None
    assert store_of(topic) is None


def test_configurable_prefix_single_and_multi_level() -> None:
    assert parse_inbound("fw/s1/beacon/g", prefix="shop") is None
    parsed = parse_inbound("shop/s1/beacon/g", prefix="shop")
    assert parsed is not None and parsed.prefix == "shop"
    deep = parse_inbound("acme/fw/s1/pos/t1", prefix="acme/fw")
    assert deep == InboundTopic(store="s1", kind=TopicKind.POS, device="t1", prefix="acme/fw")
    assert deep.value == "acme/fw/s1/pos/t1"


@pytest.mark.parametrize("prefix", ["", "a/", "/a", "a/+", "#", "a//b"])
def test_bad_prefix_never_matches_and_never_raises(prefix: str) -> None:
    assert parse_inbound(f"{prefix}/s1/beacon/g", prefix=prefix) is None


@pytest.mark.parametrize(
    ("store", "device"),
    [("", "d"), ("s", ""), ("s/1", "d"), ("s", "d+"), ("s", "#"), ("s\x00", "d")],
)
def test_building_an_inbound_topic_with_a_bad_id_raises(store: str, device: str) -> None:
    with pytest.raises(ValueError, match="id"):
        InboundTopic(store=store, kind=TopicKind.BELL, device=device)


def test_building_with_a_bad_prefix_or_kind_raises() -> None:
    with pytest.raises(ValueError, match="prefix"):
        InboundTopic(store="s", kind=TopicKind.BELL, device="d", prefix="a/+")
    with pytest.raises(ValueError):
        InboundTopic(store="s", kind="nope", device="d")  # type: ignore[arg-type]


def test_inbound_topic_is_frozen() -> None:
    parsed = InboundTopic(store="s", kind=TopicKind.BELL, device="d")
    with pytest.raises(AttributeError):
        parsed.store = "other"  # type: ignore[misc]


def test_outbound_topics() -> None:
    assert offer_topic("s001", "tok-1") == "fw/s001/shopper/tok-1/offer"
    assert alert_topic("s001", "band-07") == "fw/s001/band/band-07/alert"
    assert deadletter_topic("s001") == "fw/s001/deadletter"
    assert offer_topic("s1", "t", prefix="acme/fw") == "acme/fw/s1/shopper/t/offer"
    assert alert_topic("s1", "b", prefix="x") == "x/s1/band/b/alert"
    assert deadletter_topic("s1", prefix="x") == "x/s1/deadletter"


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "nul\x00"])
def test_outbound_topics_refuse_ids_that_would_change_the_topic(bad: str) -> None:
    with pytest.raises(ValueError, match="shopper"):
        offer_topic("s1", bad)
    with pytest.raises(ValueError, match="band"):
        alert_topic("s1", bad)
    with pytest.raises(ValueError, match="store"):
        deadletter_topic(bad)


def test_subscription_filters_cover_every_inbound_kind() -> None:
    assert inbound_filters() == (
        "fw/+/beacon/+",
        "fw/+/bell/+",
        "fw/+/pos/+",
        "fw/+/band/+/ack",
        "fw/+/device/+/status",
    )
    assert subscription_filter("ack", store="s001", prefix="p") == "p/s001/band/+/ack"
    assert inbound_filters(store="s9")[0] == "fw/s9/beacon/+"
    with pytest.raises(ValueError):
        subscription_filter(TopicKind.BELL, store="s/9")


def test_inbound_builders_match_the_parsed_value() -> None:
    assert beacon_topic("s001", "gw-1") == "fw/s001/beacon/gw-1"
    assert bell_topic("s001", "bell-dairy") == "fw/s001/bell/bell-dairy"
    assert pos_topic("s001", "pos-1", prefix="acme/fw") == "acme/fw/s001/pos/pos-1"
    assert ack_topic("s001", "band-07") == "fw/s001/band/band-07/ack"
    assert status_topic("s001", "gw-1", prefix="x") == "x/s001/device/gw-1/status"
    for kind in TopicKind:
        built = inbound_topic(kind, "s1", "d1", prefix="p/q")
        assert built == InboundTopic("s1", kind, "d1", prefix="p/q").value
        assert parse_inbound(built, prefix="p/q") == InboundTopic("s1", kind, "d1", prefix="p/q")
    assert inbound_topic("ack", "s1", "b") == "fw/s1/band/b/ack"


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "nul\x00"])
def test_inbound_builders_refuse_bad_ids_and_prefixes(bad: str) -> None:
    with pytest.raises(ValueError, match="store"):
        beacon_topic(bad, "gw-1")
    with pytest.raises(ValueError, match="device"):
        ack_topic("s1", bad)
    with pytest.raises(ValueError, match="prefix"):
        pos_topic("s1", "pos-1", prefix=f"{bad}/+")
    with pytest.raises(ValueError):
        inbound_topic("nope", "s1", "d1")


def test_outbound_filters() -> None:
    assert offer_filter() == "fw/+/shopper/+/offer"
    assert alert_filter(prefix="p", store="s001") == "p/s001/band/+/alert"
    assert deadletter_filter() == "fw/+/deadletter"
    assert deadletter_filter(store="s1", prefix="a/b") == "a/b/s1/deadletter"
    assert action_filters(prefix="p") == ("p/+/shopper/+/offer", "p/+/band/+/alert")
    with pytest.raises(ValueError, match="store"):
        offer_filter(store="s/1")
    with pytest.raises(ValueError, match="prefix"):
        alert_filter(prefix="#")


def test_parse_outbound_reads_back_what_the_builders_built() -> None:
    offer = parse_outbound(offer_topic("s1", "tok-1", prefix="p/q"), prefix="p/q")
    assert offer == OutboundTopic("s1", OutboundKind.OFFER, "tok-1")
    alert = parse_outbound(alert_topic("s1", "band-07"))
    assert alert == OutboundTopic("s1", OutboundKind.ALERT, "band-07")
    assert alert.kind == "alert"
    dead = parse_outbound(deadletter_topic("s1"))
    assert dead == OutboundTopic("s1", OutboundKind.DEADLETTER, None)


@pytest.mark.parametrize(
    "topic",
    [
        "fw/s1/band/b/ack",
        "fw/s1/beacon/gw-1",
        "fw/s1/shopper/t/offers",
        "fw/s1/shopper/t",
        "fw/s1/shopper//offer",
        "fw/+/band/b/alert",
        "fw/s1/band/b/alert/x",
        "fw/s1/deadletter/x",
        "other/s1/deadletter",
        "fw",
        "",
        None,
        42,
    ],
)
def test_parse_outbound_rejects_other_topics(topic: object) -> None:
    assert parse_outbound(topic) is None


def test_store_of_finds_the_store_even_of_a_wrong_topic() -> None:
    assert store_of("fw/s001/bel/x") == "s001"
    assert store_of("fw/s001") == "s001"
    assert store_of("fw/+/beacon/x") is None
    assert store_of("other/s001/beacon/x") is None
    assert store_of("fw") is None


def test_is_valid_id() -> None:
    assert is_valid_id("band-07")
    assert is_valid_id("ünïcode tøken")
    for bad in ["", "a/b", "a+b", "a#", "\x00", None, 7]:
        assert not is_valid_id(bad)


_LEVEL = st.sampled_from(
    [
        "fw",
        "s001",
        "beacon",
        "bell",
        "pos",
        "band",
        "device",
        "ack",
        "status",
        "gw-1",
        "",
        "+",
        "#",
        "x/y",
        "shopper",
        "offer",
        "alert",
        "deadletter",
    ]
)


@given(st.one_of(st.text(), st.lists(_LEVEL, max_size=7).map("/".join)))
def test_parsing_any_text_never_raises_and_round_trips(topic: str) -> None:
    parsed = parse_inbound(topic)
    if parsed is not None:
        assert parsed.value == topic
        assert is_valid_id(parsed.store) and is_valid_id(parsed.device)


@given(st.text(), st.text())
def test_parsing_with_any_prefix_never_raises(topic: str, prefix: str) -> None:
    parsed = parse_inbound(topic, prefix=prefix)
    assert parsed is None or parsed.value == topic
    found = store_of(topic, prefix=prefix)
    assert found is None or is_valid_id(found)


@given(st.one_of(st.text(), st.lists(_LEVEL, max_size=7).map("/".join)), st.text(max_size=5))
def test_parse_outbound_never_raises(topic: str, prefix: str) -> None:
    parse_outbound(topic)
    parse_outbound(topic, prefix=prefix)
