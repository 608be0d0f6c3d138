"""POS history: one stream entry per loyalty checkout, written behind, read back as arrays."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis as redis_py

from floorwalker.devices.events import Checkout, CouponRedeemed, PosItem, Sighting
from floorwalker.engine.stores.pos_history import (
    PosHistory,
    PosHistorySettings,
    delete_checkouts_of,
    read_checkouts,
)
from floorwalker.services import RunningService

pytestmark = pytest.mark.integration

WAIT_S = 5.0


def item(
    receipt: str, price: float | None, qty: float = 1.0, shopper: str | None = None
) -> PosItem:
    return PosItem(
        "s001",
        "pos-1",
        f"l-{receipt}-{price}",
        10.0,
        receipt,
        shopper,
        "sku",
        "dairy",
        qty,
        price,
        "k",
    )


def checkout(
    receipt: str, total: float | None, shopper: str | None = None, ts: float = 100.0
) -> Checkout:
    return Checkout("s001", "pos-1", f"c-{receipt}", ts, receipt, shopper, total, "k")


@pytest.fixture
def settings(unique_prefix: str) -> PosHistorySettings:
    return PosHistorySettings(prefix=f"{unique_prefix}:", poll_s=0.05)


@pytest.fixture
def raw(redis_service: RunningService) -> Iterator[redis_py.Redis]:
    client = redis_py.Redis.from_url(redis_service.url, decode_responses=True)
    yield client
    client.close()


def entries(raw: redis_py.Redis, settings: PosHistorySettings) -> list[dict[str, str]]:
    page: list[Any] = raw.xrange(settings.stream) or []
    return [fields for _, fields in page]


def test_checkouts_are_recorded_once_per_receipt(
    redis_service: RunningService, settings: PosHistorySettings, raw: redis_py.Redis
) -> None:
    with PosHistory.from_url(redis_service.url, settings) as pos:
        # r1: loyalty card scanned on an item line, checkout has no shopper and no total
        pos.observe(item("r1", 2.5, qty=2, shopper="s1"))
        pos.observe(item("r1", 5.0))
        pos.observe(item("r1", None))  # unpriced line
        pos.observe(checkout("r1", None, ts=101.0))
        # r2: items priced, but the checkout's own total wins (no double count)
        pos.observe(item("r2", 30.0, shopper="s2"))
        pos.observe(checkout("r2", 27.5, ts=102.0))
        # r3: no loyalty scan anywhere: not recorded
        pos.observe(item("r3", 3.0))
        pos.observe(checkout("r3", 3.0))
        # r4: shopper from a redeemed coupon line; refunds are negative totals
        pos.observe(CouponRedeemed("s001", "pos-1", "c1", 9.0, "r4", "s3", "CODE", "k"))
        pos.observe(checkout("r4", -4.0, ts=104.0))
        pos.observe(Sighting("s001", "gw", 1.0, "b", "z", -60, "s1", False, None, "k"))  # ignored
        assert pos.wait_idle(WAIT_S)
        assert pos.stats.anonymous == 1
        assert pos.stats.written == 3
    assert entries(raw, settings) == [
        {"store": "s001", "receipt": "r1", "shopper": "s1", "ts": "101.0", "total": "10.0"},
        {"store": "s001", "receipt": "r2", "shopper": "s2", "ts": "102.0", "total": "27.5"},
        {"store": "s001", "receipt": "r4", "shopper": "s3", "ts": "104.0", "total": "-4.0"},
    ]


def test_read_checkouts_gives_arrays_and_drops_redeliveries(
    redis_service: RunningService, settings: PosHistorySettings, raw: redis_py.Redis
) -> None:
    small_pages = PosHistorySettings(prefix=settings.prefix, read_count=2, poll_s=0.05)
    with PosHistory.from_url(redis_service.url, small_pages) as pos:
        pos.observe(checkout("r1", 10.0, shopper="a", ts=1.0))
        pos.observe(checkout("r2", 20.0, shopper="b", ts=2.0))
        pos.observe(checkout("r1", 10.0, shopper="a", ts=1.0))  # a QoS 1 redelivery
        pos.observe(checkout("r3", 30.0, shopper="a", ts=3.0))
        pos.observe(checkout("r3", 31.0, shopper="a", ts=4.0))  # same receipt, another time
        assert pos.wait_idle(WAIT_S)
    assert raw.xlen(settings.stream) == 5
    history = read_checkouts(raw, small_pages)  # pages of 2: the paging is exercised
    assert history.shoppers == ["a", "b"]
    assert history.shopper.tolist() == [0, 1, 0, 0]
    assert history.ts.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert history.total.tolist() == [10.0, 20.0, 30.0, 31.0]
    assert history.shopper.dtype == np.int64 and history.total.dtype == np.float64


def test_the_stream_is_capped(
    redis_service: RunningService, settings: PosHistorySettings, raw: redis_py.Redis
) -> None:
    capped = PosHistorySettings(prefix=settings.prefix, maxlen=10, poll_s=0.05)
    with PosHistory.from_url(redis_service.url, capped) as pos:
        for i in range(1000):
            pos.record("s001", f"r{i}", "a", float(i), 1.0)
        assert pos.wait_idle(WAIT_S)
    length = raw.xlen(capped.stream)
    assert 10 <= length < 1000  # approximate trimming removes whole nodes
    assert read_checkouts(raw, capped).ts[-1] == 999.0  # the newest are kept


def test_forget_drops_what_is_queued_and_what_is_stored(
    redis_service: RunningService, settings: PosHistorySettings, raw: redis_py.Redis
) -> None:
    pos = PosHistory.from_url(redis_service.url, settings)  # not started: all stays queued
    pos.observe(item("r9", 5.0, shopper="gone"))
    pos.record("s001", "r1", "gone", 1.0, 5.0)
    pos.record("s001", "r2", "kept", 2.0, 6.0)
    assert pos.forget("gone") == 2  # the open receipt and the queued checkout
    pos.start()
    assert pos.wait_idle(WAIT_S)
    pos.close()
    assert [f["shopper"] for f in entries(raw, settings)] == ["kept"]

    raw.xadd(
        settings.stream,
        {"store": "s", "receipt": "x", "shopper": "gone", "ts": "3.0", "total": "1.0"},
    )
    assert delete_checkouts_of(raw, "gone", settings) == 1
    assert delete_checkouts_of(raw, "gone", settings) == 0
    assert [f["shopper"] for f in entries(raw, settings)] == ["kept"]


def test_a_full_queue_drops_the_oldest(settings: PosHistorySettings) -> None:
    tiny = PosHistorySettings(prefix=settings.prefix, queue_max=3)
    pos = PosHistory(redis_py.Redis(), tiny)  # never started, never connects
    for i in range(5):
        pos.record("s001", f"r{i}", "a", float(i), 1.0)
    assert pos.stats.dropped == 2
    assert [r.receipt for r in pos._queue] == ["r2", "r3", "r4"]


def test_entries_older_than_the_retention_are_trimmed(
    redis_service: RunningService, settings: PosHistorySettings, raw: redis_py.Redis
) -> None:
    assert PosHistorySettings().retention_s == 400 * 86400.0  # RFM looks back 365 days
    # 300 entries written "long ago": explicit ids in the 1970s, three stream nodes.
    for i in range(300):
        raw.xadd(
            settings.stream,
            {"store": "s001", "receipt": f"old{i}", "shopper": "a", "ts": "1.0", "total": "1.0"},
            id=f"{i + 1}-0",
        )
    with PosHistory.from_url(redis_service.url, settings) as pos:
        pos.record("s001", "new", "b", 2.0, 5.0)
        assert pos.wait_idle(WAIT_S)
    left = entries(raw, settings)
    assert left[-1]["receipt"] == "new"
    # Approximate trimming drops whole nodes (100 entries): at most the last one stays.
    assert len(left) <= 101
    history = read_checkouts(raw, settings)
    assert "b" in history.shoppers
