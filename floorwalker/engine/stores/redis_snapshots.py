"""Store snapshots in Redis: a runner killed with ``kill -9`` resumes its timers.

Key layout under ``settings.prefix`` (``P``)::

    P state:<store>    string: the store's snapshot, ``Engine.snapshot_store`` bytes

One key per store, written whole with one ``SET``, so a reader sees either the
previous snapshot or the new one, never a mix (atomic per store). ``save_many``
sends several stores in one pipeline (one round trip, not one transaction: each
store is consistent on its own, which is all a restore needs).

Retention: snapshots have **no TTL**. A store's key is overwritten by its next
snapshot and a restore needs the newest one however long the runner was down
(a dwell or an absence window may still be open, or due in the past and fire on
start). Keys of a store no registry has any longer are left alone (a runner
restores only the stores it serves); :meth:`RedisSnapshotStore.delete` removes
one. A snapshot holds location-derived state and shopper ids, so an erasure
reaches it when the engine's next snapshot of the store overwrites it.

Every Redis failure is a :class:`~floorwalker.errors.GuardStoreError` naming the
operation; the caller (the checkpoint writer) counts it and tries again at the
next interval. Commands are never retried here. The client must not decode
replies: snapshots are bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from floorwalker.engine.stores._redis import BATCH, chunks, store_errors


@dataclass(frozen=True, slots=True)
class RedisSnapshotSettings:
    prefix: str = "fw:"
    socket_timeout_s: float = 2.0
    """Writes happen off the engine thread; a big store's snapshot may take a while."""
    connect_timeout_s: float = 0.5

    def key(self, store: str) -> str:
        return f"{self.prefix}state:{store}"


class RedisSnapshotStore:
    """The newest snapshot of each store, one Redis string per store."""

    def __init__(self, client: Redis, settings: RedisSnapshotSettings | None = None) -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("RedisSnapshotStore needs a client with decode_responses=False")
        self._redis = client
        self.settings = settings or RedisSnapshotSettings()

    @classmethod
    def from_url(
        cls, url: str, settings: RedisSnapshotSettings | None = None, *, prefix: str | None = None
    ) -> RedisSnapshotStore:
        """Connect to ``redis://host:port/db``; ``prefix`` overrides ``settings.prefix``."""
        settings = settings or RedisSnapshotSettings()
        if prefix is not None:
            settings = replace(settings, prefix=prefix)
        client = Redis.from_url(
            url,
            socket_timeout=settings.socket_timeout_s,
            socket_connect_timeout=settings.connect_timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
        )
        return cls(client, settings)

    def close(self) -> None:
        self._redis.close()

    def save(self, store_id: str, data: bytes) -> None:
        """Replace the store's snapshot (one SET)."""
        with store_errors("snapshot save"):
            self._redis.set(self.settings.key(store_id), data)

    def save_many(self, snapshots: Mapping[str, bytes]) -> None:
        """Replace several stores' snapshots in one pipeline (each SET atomic on its own)."""
        if not snapshots:
            return
        with store_errors("snapshot save"), self._redis.pipeline(transaction=False) as pipe:
            for store_id, data in snapshots.items():
                pipe.set(self.settings.key(store_id), data)
            pipe.execute()

    def load_all(self, store_ids: Iterable[str]) -> dict[str, bytes]:
        """The snapshots there are of ``store_ids`` (stores without one are left out)."""
        ids = list(dict.fromkeys(store_ids))
        found: dict[str, bytes] = {}
        with store_errors("snapshot load"):
            for batch in chunks(ids, BATCH):
                values = self._redis.mget([self.settings.key(s) for s in batch])
                for store_id, value in zip(batch, values, strict=True):
                    if isinstance(value, bytes):
                        found[store_id] = value
        return found

    def delete(self, store_id: str) -> None:
        """Forget the store's snapshot (its next restore starts empty)."""
        with store_errors("snapshot delete"):
            self._redis.delete(self.settings.key(store_id))
