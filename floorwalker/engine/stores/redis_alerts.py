"""The alert journal in Redis: open staff alerts survive a runner restart.

Key layout under ``settings.prefix`` (``P``)::

    P alerts:<store>    hash: alert id -> OpenAlert.to_record() as JSON

Retention (alerts may name a shopper and where they were, so they are
location-derived state, kept like the engine's: ``retention_s``, default 24 h):

* the engine drops an alert's entry when it forgets the alert (``drop``), and
  Redis deletes the hash when its last entry goes;
* every ``save`` also drops the entries created more than ``retention_s`` before
  the alert it saves (on the engine clock), so an entry whose ``drop`` was lost
  to a Redis outage does not stay forever in a busy store's hash;
* every ``save`` sets the hash to expire ``retention_s`` after that write, so
  the journal of a store whose runner never comes back is gone too.

Writes are synchronous (the engine writes through before it publishes the page
it decided, and alerts are rare) with a small socket timeout; any Redis failure
is a :class:`~floorwalker.errors.GuardStoreError`, which the engine counts and
rides over (the page still goes out; only its durability is lost). No retries,
as in the guard store.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import orjson
from redis import Redis

from floorwalker.engine.core.alerts import OpenAlert
from floorwalker.engine.stores._redis import connect, load_object, scan_keys, store_errors, text

log = logging.getLogger(__name__)

# KEYS[1]: the store's hash. ARGV: alert id, record JSON, oldest `created` kept,
# TTL in ms. The hash holds the store's open alerts only (a handful), so
# reading it whole on each save is cheap; alerts change a few times each.
_SAVE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local oldest = tonumber(ARGV[3])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ok, rec = pcall(cjson.decode, all[i + 1])
  local created = ok and type(rec) == 'table' and tonumber(rec['created'])
  if created and created < oldest then redis.call('HDEL', KEYS[1], all[i]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 0
"""


@dataclass(frozen=True, slots=True)
class RedisAlertSettings:
    prefix: str = "fw:"
    socket_timeout_s: float = 0.5
    """Small on purpose: the engine thread waits on every save."""
    connect_timeout_s: float = 0.5
    retention_s: float = 86400.0
    """How long an alert is kept at most (the engine's ``location_ttl_s`` default)."""

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
        self._save = client.register_script(_SAVE)

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
        keep = self.settings.retention_s
        args = (
            alert.id,
            orjson.dumps(alert.to_record()),
            repr(float(alert.created) - keep),
            max(1, math.ceil(keep * 1000.0)),
        )
        with store_errors("alert journal save"):
            self._save(keys=[self.settings.key(alert.store)], args=args)

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
