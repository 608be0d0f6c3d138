"""`profiles segment` end to end, and erasing a shopper from the whole shared Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis as redis_py

from floorwalker.engine.core.actions import Decision, Offer
from floorwalker.engine.core.alerts import OpenAlert
from floorwalker.engine.core.guards import CounterLimit, CouponRecord, Ticket
from floorwalker.engine.stores.pos_history import PosHistory
from floorwalker.engine.stores.redis_alerts import RedisAlertJournal
from floorwalker.engine.stores.redis_guards import RedisGuardStore
from floorwalker.engine.stores.redis_profiles import RedisProfiles, import_profiles
from floorwalker.engine.stores.redis_record import ActivityRecorder, read_records
from floorwalker.engine.stores.rfm import DAY_S
from floorwalker.engine.stores.segment import (
    RedisStoresSettings,
    forget_shopper_everywhere,
    segment_profiles,
)
from floorwalker.rules.model import AlertSpec
from floorwalker.services import RunningService

pytestmark = pytest.mark.integration

NOW = 1_750_000_000.0
WAIT_S = 5.0


def eventually(check: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


@pytest.fixture
def settings(unique_prefix: str) -> RedisStoresSettings:
    return RedisStoresSettings.with_prefix(f"{unique_prefix}:")


@pytest.fixture
def raw(redis_service: RunningService) -> Iterator[redis_py.Redis]:
    client = redis_py.Redis.from_url(redis_service.url, decode_responses=True)
    yield client
    client.close()


def profile(raw: redis_py.Redis, settings: RedisStoresSettings, shopper: str) -> dict[str, Any]:
    value = raw.get(settings.profiles.key(shopper))
    assert value is not None, f"no profile for {shopper}"
    obj: dict[str, Any] = orjson.loads(value)
    return obj


def load_profiles(path: Path, url: str, settings: RedisStoresSettings, *objs: object) -> None:
    path.write_bytes(b"\n".join(orjson.dumps(o) for o in objs))
    import_profiles(url, path, settings.profiles)


def record(url: str, settings: RedisStoresSettings, shoppers: dict[str, list[float]]) -> None:
    """Checkouts ``shopper -> [days before NOW, ...]``, 100.0 each, through PosHistory."""
    with PosHistory.from_url(url, settings.pos) as pos:
        for shopper, days in shoppers.items():
            for k, d in enumerate(days):
                pos.record("s001", f"{shopper}-{k}", shopper, NOW - d * DAY_S, 100.0)
        assert pos.wait_idle(WAIT_S)


def test_segment_writes_back_to_existing_profiles_only(
    redis_service: RunningService,
    settings: RedisStoresSettings,
    raw: redis_py.Redis,
    tmp_path: Path,
) -> None:
    url = redis_service.url
    load_profiles(
        tmp_path / "p.jsonl",
        url,
        settings,
        {"shopper": "fan", "tier": "member", "segment": "regular", "advisor": "band-07"},
        {"shopper": "newbie", "tier": "member", "segment": "regular"},
        {"shopper": "gone", "tier": "gold", "segment": "loyal", "lifetime_value": 8000},
        {"shopper": "untouched", "tier": "silver", "segment": "growing", "lifetime_value": 12},
    )
    record(
        url,
        settings,
        {
            "fan": [1, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 220],  # 12: loyal
            "newbie": [3],  # first purchase 3 days ago: growing
            "gone": [200, 260, 300],  # 200 days: dormant
            "mid-1": [30, 90],  # regular fillers, no profile
            "mid-2": [40, 150, 170],
        },
    )
    with RedisProfiles.from_url(url, settings.profiles) as cache:
        summary = segment_profiles(url, settings, now=NOW)
        assert summary == {
            "now": NOW,
            "checkouts": 21,
            "shoppers_scored": 5,
            "profiles_updated": 3,
            "profiles_unchanged": 0,
            "without_profile": 2,
            "segments": {"loyal": 1, "growing": 1, "regular": 0, "dormant": 1},
            "tiers": {"member": 1, "silver": 1, "gold": 1, "vip": 0},
        }
        fan = profile(raw, settings, "fan")
        assert (fan["segment"], fan["tier"], fan["lifetime_value"]) == ("loyal", "gold", 1200.0)
        assert fan["advisor"] == "band-07"  # the rest of the profile is kept
        newbie = profile(raw, settings, "newbie")
        assert (newbie["segment"], newbie["tier"]) == ("growing", "member")
        gone = profile(raw, settings, "gone")
        assert (gone["segment"], gone["tier"]) == ("dormant", "silver")  # 300 spent: M = 3
        assert gone["lifetime_value"] == 8000.0  # the CRM's value is bigger: never lowered
        assert profile(raw, settings, "untouched")["segment"] == "growing"  # no checkouts
        assert raw.exists(settings.profiles.key("mid-1")) == 0  # no profile is created

        def cached() -> bool:
            p = cache.get("fan")
            return p is not None and (p.segment, p.tier) == ("loyal", "gold")

        assert eventually(cached), "the running cache did not get the invalidation"

        again = segment_profiles(url, now=NOW, prefix=settings.profiles.prefix)  # the CLI way
        assert (again["profiles_updated"], again["profiles_unchanged"]) == (0, 3)


def test_forget_shopper_everywhere(
    redis_service: RunningService,
    settings: RedisStoresSettings,
    raw: redis_py.Redis,
    tmp_path: Path,
) -> None:
    url = redis_service.url
    load_profiles(tmp_path / "p.jsonl", url, settings, {"shopper": "s1"}, {"shopper": "s2"})
    record(url, settings, {"s1": [1, 2, 3], "s2": [4]})
    guards = RedisGuardStore(raw, settings.guards)
    coupon = CouponRecord("C1", "a1", "bogo", "yogurt", "s001", "s1", NOW, NOW + DAY_S)
    ticket = Ticket(
        "a1",
        counters=(CounterLimit("cap:bogo:s1", 5, None, "cap"),),
        fatigue_key="fatigue:s1",
        fatigue_streak=3,
        coupon=coupon,
    )
    assert guards.admit(ticket, NOW) is None
    assert (
        guards.admit(Ticket("a2", counters=(CounterLimit("cap:bogo:s2", 5, None, "cap"),)), NOW)
        is None
    )

    spec = AlertSpec(to=(), message="m")
    journal = RedisAlertJournal(raw, settings.alerts)
    common: dict[str, Any] = {
        "rule": "vip-advisor",
        "spec": spec,
        "zone": "entrance",
        "message": "VIP at entrance",
        "created": NOW,
        "bell": None,
    }
    named = OpenAlert(
        id="al-1",
        store="s001",
        source_key="s1",
        shopper="s1",
        summary={"tier": "vip", "segment": "loyal"},
        advisor="band-08",
        **common,
    )
    other = OpenAlert(
        id="al-2",
        store="s002",
        source_key="s2",
        shopper="s2",
        summary={"tier": "vip", "segment": "loyal"},
        advisor="band-08",
        **common,
    )
    journal.save(named)
    journal.save(other)
    with ActivityRecorder(raw, settings.record) as recorder:
        for shopper in ("s1", "s2"):
            recorder.decision(Decision(NOW, "s001", "bogo", "offer", shopper, True, "sent", "a"))
            offer = Offer(f"a-{shopper}", "s001", shopper, NOW, "bogo", "y", "C", "m", NOW + 1)
            recorder.actions([offer])
        assert recorder.wait_idle(10.0)

    with RedisProfiles.from_url(url, prefix=settings.profiles.prefix) as cache:
        assert cache.get("s1") is not None
        counts = forget_shopper_everywhere(url, "s1", settings)
        assert counts == {
            "profile": 1,
            "guard_keys": 3,
            "alerts": 1,
            "checkouts": 3,
            "records": 2,
            "engines_told": 0,
        }
        assert eventually(lambda: cache.get("s1") is None)
        assert cache.get("s2") is not None

    assert raw.exists(settings.profiles.key("s1")) == 0
    leftovers = [k for k in raw.scan_iter(match=f"{settings.guards.prefix}*") if "s1" in k]
    assert leftovers == []
    assert guards.redeem("C1", NOW)[1] == "unknown_coupon"
    records = {r["id"]: r for r in journal.load()}
    assert records["al-1"]["shopper"] is None and records["al-1"]["summary"] is None
    assert records["al-1"]["advisor"] is None
    assert records["al-1"]["source_key"] == "forgotten:al-1"
    assert records["al-2"] == other.to_record()
    assert "s1" not in orjson.dumps(records["al-1"]).decode()
    page: list[Any] = raw.xrange(settings.pos.stream) or []
    shoppers = [f["shopper"] for _, f in page]
    assert shoppers == ["s2"]
    offers = list(read_records(raw, "offers", settings.record))
    assert [o["shopper"] for o in offers] == ["s2"]
    assert [d["subject"] for d in read_records(raw, "decisions", settings.record)] == ["s2"]
    assert forget_shopper_everywhere(url, "s1", prefix=settings.profiles.prefix) == {
        "profile": 0,
        "guard_keys": 0,
        "alerts": 0,
        "checkouts": 0,
        "records": 0,
        "engines_told": 0,
    }


def test_forget_shopper_everywhere_tells_running_engines(
    redis_service: RunningService, settings: RedisStoresSettings, raw: redis_py.Redis
) -> None:
    listener = raw.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    listener.subscribe(settings.profiles.erase_channel)
    try:
        listener.get_message(timeout=1.0)  # the subscription is confirmed
        counts = forget_shopper_everywhere(redis_service.url, "s9", settings)
        assert counts["engines_told"] == 1
        deadline = time.monotonic() + WAIT_S
        message: Any = None
        while message is None and time.monotonic() < deadline:
            message = listener.get_message(timeout=0.1)
        assert message is not None and message["data"] == "s9"
    finally:
        listener.close()
