"""The Redis snapshot store: one string per store, whole-blob writes, no TTL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis as redis_py

from floorwalker.engine.stores.redis_snapshots import RedisSnapshotSettings, RedisSnapshotStore
from floorwalker.errors import GuardStoreError
from floorwalker.services import RunningService

pytestmark = pytest.mark.integration

BLOB = bytes(range(256)) * 3  # not UTF-8: snapshots are bytes, never decoded


@pytest.fixture
def raw(redis_service: RunningService) -> Iterator[redis_py.Redis]:
    client = redis_py.Redis.from_url(redis_service.url)
    yield client
    client.close()


@pytest.fixture
def snapshots(redis_service: RunningService, unique_prefix: str) -> Iterator[RedisSnapshotStore]:
    s = RedisSnapshotStore.from_url(redis_service.url, prefix=f"{unique_prefix}:")
    yield s
    s.close()


def test_save_load_round_trip_keeps_the_bytes(
    snapshots: RedisSnapshotStore, raw: redis_py.Redis, unique_prefix: str
) -> None:
    snapshots.save("s001", BLOB)
    snapshots.save("s002", b"")
    assert snapshots.load_all(["s001", "s002", "s404"]) == {"s001": BLOB, "s002": b""}
    assert raw.get(f"{unique_prefix}:state:s001") == BLOB
    assert snapshots.load_all([]) == {}


def test_a_new_snapshot_overwrites_the_old_one_and_nothing_expires(
    snapshots: RedisSnapshotStore, raw: redis_py.Redis, unique_prefix: str
) -> None:
    key = f"{unique_prefix}:state:s001"
    snapshots.save("s001", b"old" * 1000)
    snapshots.save("s001", b"new")
    assert snapshots.load_all(["s001"]) == {"s001": b"new"}
    assert raw.type(key) == b"string"
    assert raw.ttl(key) == -1, "snapshots are kept without a TTL"
    assert raw.keys(f"{unique_prefix}:*") == [key.encode()]


def test_save_many_writes_every_store_and_delete_forgets_one(
    snapshots: RedisSnapshotStore, raw: redis_py.Redis, unique_prefix: str
) -> None:
    many = {f"s{i:03d}": f"state {i}".encode() * i for i in range(1, 1201)}
    snapshots.save_many(many)
    snapshots.save_many({})  # nothing to do, no round trip needed
    assert snapshots.load_all(list(many)) == many  # more ids than one MGET batch
    snapshots.delete("s002")
    snapshots.delete("s404")  # deleting what is not there is fine
    found = snapshots.load_all(["s001", "s002", "s003"])
    assert sorted(found) == ["s001", "s003"]
    assert raw.exists(f"{unique_prefix}:state:s002") == 0


def test_settings_name_the_key() -> None:
    assert RedisSnapshotSettings(prefix="fw:").key("s001") == "fw:state:s001"
    assert RedisSnapshotSettings().key("a:b") == "fw:state:a:b"


def test_a_decoding_client_is_refused(redis_service: RunningService) -> None:
    client = redis_py.Redis.from_url(redis_service.url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            RedisSnapshotStore(client)
    finally:
        client.close()


def test_an_unreachable_redis_is_a_guard_store_error() -> None:
    s = RedisSnapshotStore.from_url("redis://127.0.0.1:1/0", prefix="x:")
    with pytest.raises(GuardStoreError, match="snapshot save"):
        s.save("s001", b"x")
    with pytest.raises(GuardStoreError, match="snapshot save"):
        s.save_many({"s001": b"x", "s002": b"y"})
    with pytest.raises(GuardStoreError, match="snapshot load"):
        s.load_all(["s001"])
    with pytest.raises(GuardStoreError, match="snapshot delete"):
        s.delete("s001")
    s.close()
