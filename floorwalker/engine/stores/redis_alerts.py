"""The alert journal in Redis: open staff alerts survive a runner restart.

Key layout under ``settings.prefix`` (``P``)::

    P alerts:<store>    hash: alert id -> OpenAlert.to_record() as JSON

Retention (alerts may name a shopper and where they were, so they are
location-derived state, kept like the engine's: ``retention_s``, default 24 h):

* the engine drops an alert's entry when it forgets the alert (``drop``), and
  Redis deletes the hash when its last entry goes;
* a ``save`` also drops the entries created more than ``retention_s`` before
  the alert it saves (on the engine clock), so an entry whose ``drop`` was lost
  to a Redis outage does not stay forever in a busy store's hash. That sweep
  reads the whole hash, which holds every alert of the last ``alert_keep_s``
  (an hour), answered ones too: so it runs on at most one save per store per
  ``sweep_every_s`` (a minute of engine clock). Sweeping on every save cost
  2.9 ms of Redis time per save with ~800 entries in ``bench live`` (20
  presses/s), and grew with the hash;
* every ``save`` sets the hash to expire ``retention_s`` after that write, so
  the journal of a store whose runner never comes back is gone too.

Writes are synchronous (the engine writes through before it publishes the page
it decided, and alerts are rare) with a small socket timeout; any Redis failure
is a :class:`~floorwalker.errors.GuardStoreError`, which the engine counts and
rides over (the page still goes out). No command is retried on the spot, as in
the guard store; instead a write that failed stays in a **backlog**, newest
per alert (a drop replaces a save), and :meth:`RedisAlertJournal.flush` writes
it once Redis answers (the edge runner calls it every second), so the journal
catches up after an outage without a restart. The backlog is bounded
(``max_backlog``; beyond, the oldest write is given up and counted in
``lost``).

Each record carries ``rev``, the microsecond it was written (never less than
the previous one), and the save script keeps a stored record whose ``rev`` is
newer: a save that timed out against a paused Redis, and runs when Redis
resumes, cannot overwrite what the backlog wrote since.

With a :class:`~floorwalker.engine.stores.breaker.RedisBreaker` (the edge
runner's), ``save`` and ``drop`` go through it on a client with the breaker's
call timeout; ``load`` (once, at start) keeps a client with the settings' timeouts.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson
from redis import Redis

from floorwalker.engine.core.alerts import OpenAlert
from floorwalker.engine.stores._redis import connect, load_object, scan_keys, store_errors, text
from floorwalker.engine.stores.breaker import RedisBreaker
from floorwalker.errors import GuardStoreError

log = logging.getLogger(__name__)

# KEYS[1]: the store's hash. ARGV: alert id, record JSON, oldest `created` kept,
# TTL in ms, the record's rev, "1" to sweep. The hash holds the alerts the engine
# still remembers (answered ones for an hour), so the sweep reads it whole only now
# and then (see the module docstring).
_SAVE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local ok, rec = pcall(cjson.decode, old)
  local rev = ok and type(rec) == 'table' and tonumber(rec['rev'])
  if rev and rev > tonumber(ARGV[5]) then return 1 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[6] == '1' then
  local oldest = tonumber(ARGV[3])
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local ok, rec = pcall(cjson.decode, all[i + 1])
    local created = ok and type(rec) == 'table' and tonumber(rec['created'])
    if created and created < oldest then redis.call('HDEL', KEYS[1], all[i]) end
  end
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
    max_backlog: int = 10_000
    """Failed writes kept for :meth:`RedisAlertJournal.flush` (alerts, not events: plenty)."""
    sweep_every_s: float = 60.0
    """Engine-clock seconds between two sweeps of a store's hash for entries past retention."""

    @property
    def key_prefix(self) -> str:
        return f"{self.prefix}alerts:"

    def key(self, store: str) -> str:
        return f"{self.prefix}alerts:{store}"


class RedisAlertJournal:
    """:class:`~floorwalker.engine.core.alerts.AlertJournal` on Redis, one hash per store."""

    def __init__(
        self,
        client: Redis,
        settings: RedisAlertSettings | None = None,
        *,
        breaker: RedisBreaker | None = None,
        admin: Redis | None = None,
    ) -> None:
        self._redis = client
        self._admin = admin if admin is not None else client
        """The client of ``load`` (the settings' timeouts, no breaker)."""
        self._breaker = breaker
        self.settings = settings or RedisAlertSettings()
        self.bad_records = 0
        """Unreadable journal entries skipped by :meth:`load`."""
        self._save = client.register_script(_SAVE)
        self._backlog: dict[tuple[str, str], tuple[Any, ...] | None] = {}
        """(store, alert id) -> the save's script arguments, or None for a drop; oldest first."""
        self._rev = 0
        self.lost = 0
        """Writes given up because the backlog was full."""
        self._next_sweep: dict[str, float] = {}
        """Store -> the engine-clock time of its next sweep."""

    @classmethod
    def from_url(
        cls,
        url: str,
        settings: RedisAlertSettings | None = None,
        *,
        prefix: str | None = None,
        breaker: RedisBreaker | None = None,
    ) -> RedisAlertJournal:
        """Connect to ``redis://host:port/db``; ``prefix`` overrides ``settings.prefix``."""
        settings = settings or RedisAlertSettings()
        if prefix is not None:
            settings = replace(settings, prefix=prefix)
        admin = connect(
            url,
            socket_timeout_s=settings.socket_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        )
        if breaker is None:
            return cls(admin, settings)
        timeout = breaker.settings.call_timeout_s
        fast = connect(url, socket_timeout_s=timeout, connect_timeout_s=timeout)
        return cls(fast, settings, breaker=breaker, admin=admin)

    def close(self) -> None:
        self._redis.close()
        if self._admin is not self._redis:
            self._admin.close()

    def save(self, alert: OpenAlert) -> None:
        keep = self.settings.retention_s
        self._rev = max(self._rev + 1, time.time_ns() // 1000)
        record = alert.to_record()
        record["rev"] = self._rev
        created = float(alert.created)
        sweep = created >= self._next_sweep.get(alert.store, -math.inf)
        if sweep:
            self._next_sweep[alert.store] = created + self.settings.sweep_every_s
        args = (
            alert.id,
            orjson.dumps(record),
            repr(created - keep),
            max(1, math.ceil(keep * 1000.0)),
            self._rev,
            "1" if sweep else "0",
        )
        self._attempt((alert.store, alert.id), args)

    def drop(self, store: str, alert_id: str) -> None:
        self._attempt((store, alert_id), None)

    @property
    def backlog(self) -> int:
        """Writes waiting for Redis."""
        return len(self._backlog)

    def flush(self) -> int:
        """Write the backlog, oldest first, until Redis fails again; how many were written."""
        written = 0
        while self._backlog:
            key, args = next(iter(self._backlog.items()))
            try:
                self._write(key, args)
            except GuardStoreError:
                return written
            self._backlog.pop(key, None)
            written += 1
        return written

    def _attempt(self, key: tuple[str, str], args: tuple[Any, ...] | None) -> None:
        self._backlog.pop(key, None)  # this write supersedes a waiting one
        try:
            self._write(key, args)
        except GuardStoreError:
            if len(self._backlog) >= self.settings.max_backlog:
                self._backlog.pop(next(iter(self._backlog)))
                self.lost += 1
            self._backlog[key] = args
            raise

    def _write(self, key: tuple[str, str], args: tuple[Any, ...] | None) -> None:
        store, alert_id = key
        hash_key = self.settings.key(store)

        def attempt() -> object:
            if args is not None:
                return self._save(keys=[hash_key], args=args)
            return self._redis.hdel(hash_key, alert_id)

        what = "alert journal save" if args is not None else "alert journal drop"
        if self._breaker is not None:
            # Idempotent (a save carries its rev): one retry is safe.
            self._breaker.call(what, attempt, retry=True)
            return
        with store_errors(what):
            attempt()

    def load(self) -> list[dict[str, Any]]:
        """Every journalled alert of every store, for ``Engine.restore_alerts``."""
        records: list[dict[str, Any]] = []
        with store_errors("alert journal load"):
            keys = list(dict.fromkeys(scan_keys(self._admin, self.settings.key_prefix)))
            with self._admin.pipeline(transaction=False) as pipe:
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
                rec.pop("rev", None)  # ours, not the engine's
                records.append(rec)
        records.sort(key=lambda r: (str(r["store"]), _created(r), str(r["id"])))
        return records


def _created(rec: dict[str, Any]) -> float:
    value = rec.get("created")
    return float(value) if isinstance(value, int | float) else 0.0
