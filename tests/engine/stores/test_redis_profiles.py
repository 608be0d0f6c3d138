"""Profiles in Redis: served from memory, kept fresh by invalidation, visits written behind."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis as redis_py
from redis.connection import Connection

from floorwalker import services
from floorwalker.engine.core.profiles import Profile
from floorwalker.engine.stores.redis_profiles import (
    RedisProfiles,
    RedisProfileSettings,
    forget_profile,
    import_profiles,
)
from floorwalker.errors import ConfigError, GuardStoreError
from floorwalker.services import RedisSettings, RunningService

pytestmark = pytest.mark.integration

WAIT_S = 5.0


class CountingConnection(Connection):
    """Counts every command (or pipeline) a client sends, pub/sub included."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def eventually(check: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def write_lines(path: Path, *objs: dict[str, Any] | str) -> Path:
    lines = [o if isinstance(o, str) else orjson.dumps(o).decode() for o in objs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def settings(unique_prefix: str) -> RedisProfileSettings:
    return RedisProfileSettings(prefix=f"{unique_prefix}:", poll_s=0.05, reconnect_min_s=0.05)


@pytest.fixture
def raw(redis_service: RunningService) -> Iterator[redis_py.Redis]:
    client = redis_py.Redis.from_url(redis_service.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def people(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "profiles.jsonl",
        {"shopper": "s1", "tier": "gold", "segment": "loyal", "consent": {"marketing": True}},
        {"shopper": "s2", "tier": "vip", "lifetime_value": 30000, "advisor": "band-08"},
        {"shopper": "s3", "birthday": "11-25", "first_visit": 100.0, "last_visit": 200.0},
    )


def stored(raw: redis_py.Redis, settings: RedisProfileSettings, shopper: str) -> dict[str, Any]:
    value = raw.get(settings.key(shopper))
    assert value is not None, f"no profile stored for {shopper}"
    obj: dict[str, Any] = orjson.loads(value)
    return obj


def test_import_then_get_is_served_from_memory(
    redis_service: RunningService, settings: RedisProfileSettings, people: Path
) -> None:
    assert import_profiles(redis_service.url, people, settings) == 3
    client = redis_py.Redis.from_url(
        redis_service.url, decode_responses=True, connection_class=CountingConnection
    )
    CountingConnection.sent = 0
    profiles = RedisProfiles(client, settings).start()
    try:
        assert CountingConnection.sent > 0, "the load itself must go through the counted client"
        before = CountingConnection.sent
        for _ in range(1000):
            s1, s2, s3 = profiles.get("s1"), profiles.get("s2"), profiles.get("s3")
            assert profiles.get("anonymous") is None
        assert CountingConnection.sent == before, "get() went to Redis"
        assert s1 == Profile("s1", tier="gold", segment="loyal", marketing=True)
        assert s2 is not None and (s2.tier, s2.lifetime_value, s2.advisor) == (
            "vip",
            30000.0,
            "band-08",
        )
        assert s3 is not None and (s3.birthday, s3.first_visit, s3.last_visit) == (
            (11, 25),
            100.0,
            200.0,
        )
        assert len(profiles) == 3
    finally:
        profiles.close()
        client.close()


def test_changes_from_another_client_are_seen(
    redis_service: RunningService,
    settings: RedisProfileSettings,
    people: Path,
    tmp_path: Path,
    raw: redis_py.Redis,
) -> None:
    import_profiles(redis_service.url, people, settings)
    with RedisProfiles.from_url(redis_service.url, settings) as profiles:
        assert profiles.get("s4") is None
        update = write_lines(
            tmp_path / "more.jsonl",
            {"shopper": "s1", "tier": "vip", "segment": "loyal"},
            {"shopper": "s4", "segment": "growing"},
        )
        assert import_profiles(raw, update, settings) == 2  # a caller's own client works too

        def updated() -> bool:
            s1, s4 = profiles.get("s1"), profiles.get("s4")
            return s1 is not None and s1.tier == "vip" and s4 is not None

        assert eventually(updated)
        s4 = profiles.get("s4")
        assert s4 is not None and s4.segment == "growing"

        assert forget_profile(redis_service.url, "s2", settings) is True
        assert forget_profile(redis_service.url, "s2", settings) is False
        assert eventually(lambda: profiles.get("s2") is None)
        assert raw.exists(settings.key("s2")) == 0

        raw.publish(settings.channel, "*")  # reload everything
        assert eventually(lambda: profiles.stats.full_loads >= 2)
        assert profiles.get("s1") is not None and profiles.get("s2") is None


def test_record_visit_is_local_at_once_and_persisted_behind(
    redis_service: RunningService, settings: RedisProfileSettings, raw: redis_py.Redis
) -> None:
    raw.set(
        settings.key("s1"),
        orjson.dumps({"shopper": "s1", "last_visit": 100.0, "crm_id": "k-77"}),
    )
    with (
        RedisProfiles.from_url(redis_service.url, settings) as runner,
        RedisProfiles.from_url(redis_service.url, settings) as other,
    ):
        runner.record_visit("s1", 500.25)
        s1 = runner.get("s1")
        assert s1 is not None and (s1.last_visit, s1.first_visit) == (500.25, 500.25)
        runner.record_visit("s1", 300.0)  # an older visit never moves last_visit back
        runner.record_visit("nobody", 400.0)  # anonymous: no profile appears
        assert runner.wait_idle(WAIT_S)
        obj = stored(raw, settings, "s1")
        assert (obj["last_visit"], obj["first_visit"]) == (500.25, 500.25)
        assert obj["crm_id"] == "k-77", "fields the engine does not know must survive"
        assert raw.exists(settings.key("nobody")) == 0
        assert runner.stats.visits_written == 1

        def seen_by_other() -> bool:
            p = other.get("s1")
            return p is not None and p.last_visit == 500.25

        assert eventually(seen_by_other), "the write's invalidation did not reach the other cache"
        assert runner.get("nobody") is None


def test_visits_are_never_written_for_an_erased_shopper(
    redis_service: RunningService, settings: RedisProfileSettings, raw: redis_py.Redis
) -> None:
    raw.set(settings.key("s1"), orjson.dumps({"shopper": "s1"}))
    profiles = RedisProfiles.from_url(redis_service.url, settings)  # not started: visits queue
    profiles._load_all()
    profiles.record_visit("s1", 10.0)
    assert profiles.pending_visits == 1
    assert forget_profile(raw, "s1", settings)
    profiles.start()
    try:
        assert profiles.wait_idle(WAIT_S)
        assert raw.exists(settings.key("s1")) == 0, "the pending visit re-created the profile"
        assert eventually(lambda: profiles.get("s1") is None)
    finally:
        profiles.close()


def test_a_lost_subscription_reloads_everything(
    redis_service: RunningService,
    settings: RedisProfileSettings,
    people: Path,
    raw: redis_py.Redis,
    unique_prefix: str,
) -> None:
    import_profiles(redis_service.url, people, settings)
    with RedisProfiles.from_url(redis_service.url, settings, client_name=unique_prefix) as cache:
        # A change whose invalidation is lost (written without publishing)...
        raw.set(settings.key("s1"), orjson.dumps({"shopper": "s1", "tier": "silver"}))
        # ...is not seen, although the listener is alive and processing others.
        raw.set(settings.key("s9"), orjson.dumps({"shopper": "s9"}))
        raw.publish(settings.channel, orjson.dumps(["s9"]))
        assert eventually(lambda: cache.get("s9") is not None)
        s1 = cache.get("s1")
        assert s1 is not None and s1.tier == "gold"

        mine = [c for c in raw.client_list(_type="pubsub") if c["name"] == unique_prefix]
        assert len(mine) == 1
        raw.client_kill_filter(_id=mine[0]["id"])

        def reloaded() -> bool:
            p = cache.get("s1")
            return p is not None and p.tier == "silver"

        assert eventually(reloaded), "no reload after the subscription was lost"
        assert cache.stats.reconnects >= 1
        # and it listens again
        raw.set(settings.key("s8"), orjson.dumps({"shopper": "s8"}))
        raw.publish(settings.channel, orjson.dumps(["s8"]))
        assert eventually(lambda: cache.get("s8") is not None)


def test_bad_stored_profiles_read_as_anonymous(
    redis_service: RunningService, settings: RedisProfileSettings, raw: redis_py.Redis
) -> None:
    raw.set(settings.key("s1"), "{not json")
    raw.set(settings.key("s2"), orjson.dumps({"shopper": "s2", "tier": "platinum"}))
    raw.set(settings.key("s3"), orjson.dumps({"shopper": "someone-else"}))
    raw.set(settings.key("s4"), orjson.dumps({"shopper": "s4"}))
    with RedisProfiles.from_url(redis_service.url, settings) as profiles:
        assert [profiles.get(s) is None for s in ("s1", "s2", "s3", "s4")] == [
            True,
            True,
            True,
            False,
        ]
        assert profiles.stats.bad_profiles == 3


def test_a_bad_line_imports_nothing(
    redis_service: RunningService,
    settings: RedisProfileSettings,
    tmp_path: Path,
    raw: redis_py.Redis,
) -> None:
    path = write_lines(
        tmp_path / "bad.jsonl",
        {"shopper": "s1"},
        {"shopper": "s2", "tier": "diamond"},
        {"shopper": "s3"},
    )
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2: `tier` must be one of"):
        import_profiles(redis_service.url, path, settings)
    assert list(raw.scan_iter(match=f"{settings.prefix}*")) == []


def test_import_keeps_visit_dates_recorded_live(
    redis_service: RunningService,
    settings: RedisProfileSettings,
    tmp_path: Path,
    raw: redis_py.Redis,
) -> None:
    raw.set(
        settings.key("s1"),
        orjson.dumps({"shopper": "s1", "tier": "member", "first_visit": 50.0, "last_visit": 900.0}),
    )
    path = write_lines(
        tmp_path / "crm.jsonl",
        {"shopper": "s1", "tier": "gold", "first_visit": 70.0, "last_visit": 500.0},
    )
    import_profiles(redis_service.url, path, settings)
    obj = stored(raw, settings, "s1")
    assert (obj["tier"], obj["first_visit"], obj["last_visit"]) == ("gold", 50.0, 900.0)


def test_an_unreachable_redis_fails_start_with_a_guard_store_error(
    settings: RedisProfileSettings,
) -> None:
    quick = RedisProfileSettings(prefix=settings.prefix, connect_timeout_s=0.2)
    profiles = RedisProfiles.from_url("redis://127.0.0.1:1/0", quick)
    with pytest.raises(GuardStoreError, match="profile cache start"):
        profiles.start()
    profiles.close()


def test_visits_survive_a_redis_outage(tmp_path: Path) -> None:
    with services.redis(RedisSettings(appendonly=True), tmp_path) as server:
        settings = RedisProfileSettings(
            prefix="p:",
            poll_s=0.05,
            reconnect_min_s=0.05,
            reconnect_max_s=0.2,
            socket_timeout_s=0.5,
            connect_timeout_s=0.5,
        )
        raw = redis_py.Redis.from_url(server.url, decode_responses=True)
        raw.set(settings.key("s1"), orjson.dumps({"shopper": "s1", "tier": "gold"}))
        with RedisProfiles.from_url(server.url, settings) as profiles:
            server.stop()
            profiles.record_visit("s1", 50.0)  # never blocks, even now
            s1 = profiles.get("s1")
            assert s1 is not None and s1.last_visit == 50.0
            assert eventually(lambda: profiles.stats.write_errors >= 1)
            assert eventually(lambda: profiles.stats.listener_errors >= 1)
            assert not profiles.wait_idle(0.2)
            assert profiles.get("s1") == s1, "an outage must not change the cache"
            server.restart()  # the same data (append-only file)
            assert profiles.wait_idle(WAIT_S), "the visit was not written after the outage"
            obj = orjson.loads(raw.get(settings.key("s1")) or "null")
            assert (obj["tier"], obj["last_visit"], obj["first_visit"]) == ("gold", 50.0, 50.0)
            assert eventually(lambda: profiles.stats.reconnects >= 1)
            assert profiles.get("s1") == s1
        raw.close()
