"""The alert journal in Redis: open staff alerts survive a runner restart.

Key layout under ``settings.prefix`` (``P``)::

    P alerts:<store>    hash: alert id -> OpenAlert.to_record() as JSON

Writes are synchronous (the engine writes through before it publishes the page
it decided, and alerts are rare) with a small socket timeout; any Redis failure
is a :class:`~floorwalker.errors.GuardStoreError`, which the engine counts and
rides over (the page still goes out; only its durability is lost). No retries,
as in the guard store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import orjson
from redis import Redis

from floorwalker.engine.core.alerts import OpenAlert
from floorwalker.engine.stores._redis import connect, load_object, scan_keys, store_errors, text

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RedisAlertSettings:
    prefix: str = "fw:"
    socket_timeout_s: float = 0.5
    """Small on purpose: the engine thread waits on every save."""
    connect_timeout_s: float = 0.5

    @property
    def key_prefix(self) -> str:
        return f"{self.prefix}alerts:"

    def key(self, store: str) -> str:
        return f"{self.prefix}alerts:{store}"


class RedisAlertJournal:
    """:class:`~floorwalker.engine.core.alerts.AlertJournal` on Redis, one hash per store."""

    def __init__(self, client: Redis, settings: RedisAlertSettings | None = None) -> None:
        self._redis = client
        self.settings = settings or RedisAlertSettings()
        self.bad_records = 0
        """Unreadable journal entries skipped by :meth:`load`."""

    @classmethod
    def from_url(
        cls, url: str, settings: RedisAlertSettings | None = None, *, prefix: str | None = None
    ) -> RedisAlertJournal:
        """Connect to ``redis://host:port/db``; ``prefix`` overrides ``settings.prefix``."""
        settings = settings or RedisAlertSettings()
        if prefix is not None:
            settings = replace(settings, prefix=prefix)
        client = connect(
            url,
            socket_timeout_s=settings.socket_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        )
        return cls(client, settings)

    def close(self) -> None:
        self._redis.close()

    def save(self, alert: OpenAlert) -> None:
        with store_errors("alert journal save"):
            self._redis.hset(
                self.settings.key(alert.store), alert.id, orjson.dumps(alert.to_record())
            )

    def drop(self, store: str, alert_id: str) -> None:
        with store_errors("alert journal drop"):
            self._redis.hdel(self.settings.key(store), alert_id)

    def load(self) -> list[dict[str, Any]]:
        """Every journalled alert of every store, for ``Engine.restore_alerts``."""
        records: list[dict[str, Any]] = []
        with store_errors("alert journal load"):
            keys = list(dict.fromkeys(scan_keys(self._redis, self.settings.key_prefix)))
            with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                hashes: list[dict[Any, Any]] = pipe.execute()
        for key, fields in zip(keys, hashes, strict=True):
            for field, raw in fields.items():
                rec = load_object(raw)
                if rec is None or not {"id", "store", "rule"} <= rec.keys():
                    self.bad_records += 1
                    log.warning("skipping unreadable alert %s in %s", text(field), key)
                    continue
                records.append(rec)
        records.sort(key=lambda r: (str(r["store"]), _created(r), str(r["id"])))
        return records


def _created(rec: dict[str, Any]) -> float:
    value = rec.get("created")
    return float(value) if isinstance(value, int | float) else 0.0
