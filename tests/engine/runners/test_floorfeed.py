"""The floor page's feed: rebuilt at most every interval, versioned by change, "today" counts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.engine.runners.floorfeed import FloorFeed
from tests.engine.conftest import PERMISSIVE_POLICY, STORE, write_rules

SID = STORE["store"]
SHANGHAI = ZoneInfo(STORE["timezone"])


def scenario(tmp_path: Path) -> StoreScenario:
    return StoreScenario(write_rules(tmp_path, {}, PERMISSIVE_POLICY), STORE)


def test_tick_builds_at_most_every_interval(tmp_path: Path) -> None:
    sc = scenario(tmp_path)
    feed = FloorFeed(interval_s=0.5, clock=lambda: T0)
    assert feed.latest is None
    feed.tick(sc.engine, 100.0)
    first = feed.latest
    assert first is not None and set(first.stores) == {SID}
    feed.tick(sc.engine, 100.3)
    assert feed.latest is first  # too soon: not even built
    feed.tick(sc.engine, 100.5)
    assert feed.latest is not first


def test_the_version_moves_only_when_something_shown_changed(tmp_path: Path) -> None:
    sc = scenario(tmp_path)
    feed = FloorFeed(clock=lambda: T0)
    v1 = feed.publish(sc.engine).version
    sc.engine.advance_to(T0 + 1)
    assert feed.publish(sc.engine).version == v1  # only the clock moved
    sc.linger("app-loyal", "b-dairy", start=T0 + 2, seconds=5)
    sc.run_until(T0 + 7)
    snap = feed.publish(sc.engine)
    assert snap.version == v1 + 1 and snap.stores[SID].shoppers["dairy-chilled"] == 1


def test_today_counts_from_the_start_then_from_store_local_midnight(tmp_path: Path) -> None:
    sc = scenario(tmp_path)
    now = [datetime(2026, 11, 23, 23, 59, 0, tzinfo=SHANGHAI).timestamp()]
    feed = FloorFeed(clock=lambda: now[0])
    start = now[0]
    live = sc.engine.stats_for(SID)  # the store's own counters (engine.stats is a sum)
    coupons, redeemed = live.store_coupons, live.store_redeemed
    coupons[SID] = 5
    redeemed[SID] = 2
    today = feed.publish(sc.engine).today[SID]
    assert (today.issued, today.redeemed, today.since) == (5, 2, start)
    now[0] += 120  # 00:01 the next day in Shanghai
    coupons[SID] = 7
    today = feed.publish(sc.engine).today[SID]
    midnight = datetime(2026, 11, 24, 0, 0, tzinfo=SHANGHAI).timestamp()
    assert (today.issued, today.redeemed, today.since) == (2, 0, midnight)
