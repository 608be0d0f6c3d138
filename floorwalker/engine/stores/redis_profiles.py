"""Shopper profiles in Redis, read by the live runner from an in-memory copy.

The engine looks a profile up on nearly every event, so :class:`RedisProfiles`
makes **no Redis round trip per event**: :meth:`RedisProfiles.start` loads every
profile (SCAN + pipelined MGET) into a dict, and :meth:`~RedisProfiles.get` is a
dict lookup. The copy is kept fresh by invalidation:

* every writer (import, segmentation, erasure, a runner recording visits)
  publishes the shopper ids it changed on ``P profiles:changed`` — a JSON list
  of ids, or ``"*"`` for "reload everything";
* a background listener thread re-reads those keys and swaps the entries;
* after a lost pub/sub connection it reloads everything, because invalidations
  sent while it was away are gone (pub/sub does not queue). It also reloads when
  the client library re-subscribes on its own (a second subscribe confirmation).

:meth:`~RedisProfiles.record_visit` never blocks on Redis: it updates the local
copy at once (so the next visit's rules already see the new ``last_visit``) and
leaves the write to a background writer thread, which coalesces visits per
shopper, applies them with an optimistic transaction (WATCH/MULTI, see
:func:`~floorwalker.engine.stores._redis.update_json`) and publishes the
invalidation. Visits are idempotent (``last_visit`` = max, ``first_visit`` =
the first one), so the writer retries a failed write after a back-off; pending
visits are held per shopper, so a long outage costs one entry per shopper, not
one per visit. The writer never creates a profile: a shopper without one (an
anonymous visitor, or one erased meanwhile) stays without one.

Key layout under ``settings.prefix`` (``P``)::

    P profile:<shopper>     the profile JSON (Profile.to_json(); unknown fields kept)
    P profiles:changed      pub/sub channel of invalidations (not a key)

The shopper is the key's last part, after ``profile:``, which is how erasure
finds it.

Consistency: the copy is eventually consistent — a change made by another
process shows up once its invalidation has been processed (normally within
milliseconds). A refresh that raced with this process's own visit write can
briefly show the older ``last_visit`` until the write's own invalidation is
processed; local visits not yet written are re-applied over every refresh.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from redis import Redis
from redis.client import PubSub
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from floorwalker.engine.core.profiles import Profile, iter_profiles, parse_profile
from floorwalker.engine.stores._redis import (
    BATCH,
    chunks,
    client_for,
    connect,
    load_object,
    scan_keys,
    store_errors,
    text,
    update_json,
)
from floorwalker.errors import GuardStoreError

log = logging.getLogger(__name__)

EVERYTHING = "*"
"""Invalidation payload meaning "reload every profile"."""
_MGETS_PER_PIPELINE = 10
_DRAIN_MESSAGES = 1000


@dataclass(frozen=True, slots=True)
class RedisProfileSettings:
    prefix: str = "fw:"
    socket_timeout_s: float = 5.0
    """Only background threads and bulk commands wait on it, never an event."""
    connect_timeout_s: float = 1.0
    health_check_s: int = 10
    """Idle connections PING first after this long (0 = never)."""
    poll_s: float = 0.25
    """How often the background threads look at :meth:`RedisProfiles.close`."""
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 5.0
    publish_ids_max: int = 1000
    """Most ids in one invalidation message; a bulk change of more publishes ``"*"``."""

    @property
    def key_prefix(self) -> str:
        return f"{self.prefix}profile:"

    def key(self, shopper: str) -> str:
        return f"{self.prefix}profile:{shopper}"

    @property
    def channel(self) -> str:
        return f"{self.prefix}profiles:changed"

    @property
    def erase_channel(self) -> str:
        """Where an erasure tells every running engine to forget a shopper's in-memory state."""
        return f"{self.prefix}erase"


@dataclass(slots=True)
class ProfileCacheStats:
    """Counters for metrics and tests; written by the background threads."""

    full_loads: int = 0
    refreshed: int = 0
    """Shoppers re-read because of an invalidation."""
    invalidations: int = 0
    """Invalidation messages received."""
    bad_profiles: int = 0
    """Stored values that are not a valid profile; such a shopper reads as anonymous."""
    reconnects: int = 0
    listener_errors: int = 0
    visits_written: int = 0
    write_errors: int = 0


class RedisProfiles:
    """A :class:`~floorwalker.engine.core.profiles.ProfileSource` served from memory.

    ``start()`` (or ``with``) loads and starts the two background threads;
    ``close()`` flushes pending visits (bounded by its timeout) and stops them.
    The client must be thread-safe (a plain ``redis.Redis`` with its pool is).
    """

    def __init__(
        self,
        client: Redis,
        settings: RedisProfileSettings | None = None,
        *,
        own_client: bool = False,
    ) -> None:
        self._redis = client
        self.settings = settings or RedisProfileSettings()
        self._own_client = own_client
        self.stats = ProfileCacheStats()
        self._profiles: dict[str, Profile] = {}
        self._cond = threading.Condition(threading.Lock())
        """Guards writes to ``_profiles`` and ``_pending``; readers go lock-free."""
        self._pending: dict[str, tuple[float, float, int]] = {}
        """shopper -> (first recorded, latest visit, sequence number of the last change)"""
        self._seq = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pubsub: PubSub | None = None
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_url(
        cls,
        url: str,
        settings: RedisProfileSettings | None = None,
        *,
        prefix: str | None = None,
        client_name: str | None = None,
    ) -> RedisProfiles:
        """Connect to ``redis://host:port/db`` (not yet started: use ``start()`` or ``with``).

        ``prefix`` overrides ``settings.prefix``; ``client_name`` names the
        connections in ``CLIENT LIST``.
        """
        settings = _settings(settings, prefix)
        client = connect(
            url,
            socket_timeout_s=settings.socket_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            health_check_s=settings.health_check_s,
            client_name=client_name,
        )
        return cls(client, settings, own_client=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> RedisProfiles:
        """Subscribe, load every profile, start the listener and the writer.

        GuardStoreError when Redis cannot be reached or fails.
        """
        if self._threads:
            return self
        with store_errors("profile cache start"):
            # Subscribe first: a change made during the load is then either in
            # the load or in a message waiting on the subscription.
            self._pubsub = self._subscribe()
            try:
                self._load_all()
            except RedisError:
                _close_quietly(self._pubsub)
                self._pubsub = None
                raise
        self._threads = [
            threading.Thread(target=self._listen_loop, name="fw-profiles-listen", daemon=True),
            threading.Thread(target=self._write_loop, name="fw-profiles-write", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending (one attempt, within ``timeout``), stop the threads."""
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if not self._threads:
            _close_quietly(self._pubsub)
        self._threads = []
        if self._own_client:
            self._redis.close()

    def __enter__(self) -> RedisProfiles:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every recorded visit is written and published; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # ------------------------------------------------------------------ ProfileSource

    def get(self, shopper: str) -> Profile | None:
        return self._profiles.get(shopper)

    def record_visit(self, shopper: str, at: float) -> None:
        with self._cond:
            profile = self._profiles.get(shopper)
            if profile is None:
                return  # anonymous shoppers get no profile from being seen
            self._profiles[shopper] = _with_visits(profile, at, at)
            first, latest, _ = self._pending.get(shopper, (at, at, 0))
            self._seq += 1
            # As if applied one by one: the first recorded visit fills a missing first_visit.
            self._pending[shopper] = (first, max(latest, at), self._seq)
        self._wake.set()

    def __len__(self) -> int:
        return len(self._profiles)

    @property
    def pending_visits(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ loading

    def _subscribe(self) -> PubSub:
        pubsub: PubSub = self._redis.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self.settings.channel)
            deadline = (
                time.monotonic() + self.settings.connect_timeout_s + self.settings.socket_timeout_s
            )
            while (remaining := deadline - time.monotonic()) > 0:
                msg = pubsub.get_message(timeout=remaining)
                if msg is not None and msg["type"] == "subscribe":
                    return pubsub
            raise RedisTimeoutError("no confirmation of the invalidation subscription")
        except BaseException:
            _close_quietly(pubsub)
            raise

    def _load_all(self) -> None:
        prefix = self.settings.key_prefix
        keys = list(dict.fromkeys(scan_keys(self._redis, prefix)))  # SCAN may repeat a key
        fresh: dict[str, Profile] = {}
        group = BATCH * _MGETS_PER_PIPELINE
        for start in range(0, len(keys), group):
            part = keys[start : start + group]
            with self._redis.pipeline(transaction=False) as pipe:
                for chunk in chunks(part):
                    pipe.mget(list(chunk))
                replies: list[list[Any]] = pipe.execute()
            for key, raw in zip(part, (raw for reply in replies for raw in reply), strict=True):
                shopper = key[len(prefix) :]
                profile = self._parse(shopper, raw)
                if profile is not None:
                    fresh[shopper] = profile
        with self._cond:
            for shopper, (first_at, latest, _) in self._pending.items():
                if shopper in fresh:
                    fresh[shopper] = _with_visits(fresh[shopper], first_at, latest)
            self._profiles = fresh
        self.stats.full_loads += 1
        log.info("loaded %d shopper profiles from Redis", len(fresh))

    def _refresh(self, shoppers: Sequence[str]) -> None:
        for chunk in chunks(shoppers):
            raws: list[Any] = self._redis.mget([self.settings.key(s) for s in chunk])
            parsed = [(s, self._parse(s, raw)) for s, raw in zip(chunk, raws, strict=True)]
            with self._cond:
                for shopper, stored in parsed:
                    if stored is None:
                        self._profiles.pop(shopper, None)
                        continue
                    pending = self._pending.get(shopper)
                    self._profiles[shopper] = (
                        stored if pending is None else _with_visits(stored, *pending[:2])
                    )
            self.stats.refreshed += len(chunk)

    def _parse(self, shopper: str, raw: str | bytes | None) -> Profile | None:
        if raw is None:
            return None
        obj = load_object(raw)
        try:
            if obj is None:
                raise ValueError("not a JSON object")
            profile = parse_profile(obj)
            if profile.shopper != shopper:
                raise ValueError(f"holds shopper {profile.shopper!r}")
        except ValueError as e:
            self.stats.bad_profiles += 1
            log.warning("ignoring bad profile at %s: %s", self.settings.key(shopper), e)
            return None
        return profile

    # ------------------------------------------------------------------ listener thread

    def _listen_loop(self) -> None:
        pubsub = self._pubsub
        backoff = self.settings.reconnect_min_s
        while not self._stopping.is_set():
            try:
                if pubsub is None:
                    pubsub = self._subscribe()
                    self._load_all()  # what was published while away is lost: reload
                    self.stats.reconnects += 1
                    backoff = self.settings.reconnect_min_s
                msg = pubsub.get_message(timeout=self.settings.poll_s)
                if msg is None:
                    continue
                everything, shoppers = self._collect(pubsub, msg)
                if everything:
                    self._load_all()
                elif shoppers:
                    self._refresh(sorted(shoppers))
            except RedisError as e:
                self.stats.listener_errors += 1
                log.warning("profile invalidation listener: %s: %s", type(e).__name__, e)
                _close_quietly(pubsub)
                pubsub = None
                self._stopping.wait(backoff)
                backoff = min(2 * backoff, self.settings.reconnect_max_s)
        _close_quietly(pubsub)
        self._pubsub = None

    def _collect(self, pubsub: PubSub, first: dict[str, Any]) -> tuple[bool, set[str]]:
        """This message and whatever else is already waiting, merged into one refresh."""
        everything = False
        shoppers: set[str] = set()
        msg: dict[str, Any] | None = first
        for _ in range(_DRAIN_MESSAGES):
            if msg is None:
                break
            if msg["type"] == "subscribe":
                # The client library reconnected and re-subscribed by itself.
                self.stats.reconnects += 1
                everything = True
            elif msg["type"] == "message":
                self.stats.invalidations += 1
                ids = _parse_invalidation(msg["data"])
                if ids is None:
                    everything = True
                else:
                    shoppers.update(ids)
            msg = pubsub.get_message(timeout=0.0)
        return everything, shoppers

    # ------------------------------------------------------------------ writer thread

    def _write_loop(self) -> None:
        backoff = self.settings.reconnect_min_s
        while True:
            self._wake.wait(self.settings.poll_s)
            self._wake.clear()
            stopping = self._stopping.is_set()
            with self._cond:
                batch = dict(self._pending)
            if not batch:
                if stopping:
                    return
                continue
            try:
                self._write_visits(batch)
            except (RedisError, GuardStoreError) as e:
                self.stats.write_errors += 1
                if stopping:
                    log.error("closing with %d shoppers' visits unwritten: %s", len(batch), e)
                    return
                log.warning("writing visits failed, will retry: %s: %s", type(e).__name__, e)
                self._stopping.wait(backoff)
                backoff = min(2 * backoff, self.settings.reconnect_max_s)
                self._wake.set()
                continue
            backoff = self.settings.reconnect_min_s
            with self._cond:
                for shopper, (_, _, seq) in batch.items():
                    current = self._pending.get(shopper)
                    if current is not None and current[2] == seq:
                        del self._pending[shopper]
                self._cond.notify_all()
            if stopping and not self._pending:
                return

    def _write_visits(self, batch: dict[str, tuple[float, float, int]]) -> None:
        prefix_len = len(self.settings.key_prefix)

        def change(key: str, obj: dict[str, Any] | None) -> dict[str, Any] | None:
            if obj is None:
                return None  # never create a profile (anonymous, or erased meanwhile)
            first_at, latest, _ = batch[key[prefix_len:]]
            return _visited(obj, first_at, latest)

        keys = [self.settings.key(s) for s in batch]
        written: list[str] = []
        for chunk in chunks(keys):
            written += update_json(self._redis, chunk, change)
        shoppers = [key[prefix_len:] for key in written]
        publish_changed(self._redis, self.settings, shoppers)
        self.stats.visits_written += len(shoppers)


# ---------------------------------------------------------------------- writers' API


def publish_changed(client: Redis, settings: RedisProfileSettings, shoppers: Sequence[str]) -> int:
    """Tell every runner to re-read these shoppers' profiles (in messages of bounded size)."""
    messages = 0
    for chunk in chunks(shoppers, settings.publish_ids_max):
        client.publish(settings.channel, orjson.dumps(list(chunk)))
        messages += 1
    return messages


def publish_bulk_change(
    client: Redis, settings: RedisProfileSettings, shoppers: Sequence[str]
) -> None:
    """One message for a bulk change: the ids, or ``"*"`` when there are too many."""
    if not shoppers:
        return
    if len(shoppers) > settings.publish_ids_max:
        client.publish(settings.channel, EVERYTHING)
    else:
        client.publish(settings.channel, orjson.dumps(list(shoppers)))


def import_profiles(
    client_or_url: Redis | str,
    path: str | Path,
    settings: RedisProfileSettings | None = None,
    *,
    prefix: str | None = None,
) -> int:
    """Load a JSON Lines profiles file into Redis; return how many lines were imported.

    All or nothing on bad input: the whole file is validated first, and a bad
    line raises :class:`~floorwalker.errors.ConfigError` (``file:line: message``)
    before anything is written. (A Redis failure midway, a GuardStoreError, can
    still leave the first batches written; importing again is safe.)

    A line replaces the stored profile, except that visit dates the runners
    recorded are kept: ``last_visit`` is the later and ``first_visit`` the
    earlier of the file's and the stored one. Unknown fields of the stored
    profile are dropped. A shopper twice in the file: the last line wins. One
    invalidation is published at the end (the ids, or ``"*"`` for a big file).
    ``prefix`` overrides ``settings.prefix``.
    """
    settings = _settings(settings, prefix)
    total = sum(1 for _ in iter_profiles(path))  # validate everything before writing
    shoppers: dict[str, None] = {}
    with (
        client_for(
            client_or_url,
            socket_timeout_s=settings.socket_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        ) as client,
        store_errors("profile import"),
    ):
        batch: dict[str, Profile] = {}
        for profile in iter_profiles(path):
            batch[settings.key(profile.shopper)] = profile
            shoppers[profile.shopper] = None
            if len(batch) >= BATCH:
                _import_batch(client, batch)
                batch = {}
        if batch:
            _import_batch(client, batch)
        publish_bulk_change(client, settings, list(shoppers))
    return total


def _import_batch(client: Redis, batch: dict[str, Profile]) -> None:
    def change(key: str, old: dict[str, Any] | None) -> dict[str, Any]:
        new = batch[key].to_json()
        if old is not None:
            for name, pick in (("last_visit", max), ("first_visit", min)):
                dates = [
                    d for d in (_number(new.get(name)), _number(old.get(name))) if d is not None
                ]
                if dates:
                    new[name] = pick(dates)
        return new

    update_json(client, list(batch), change)


def forget_profile(
    client_or_url: Redis | str,
    shopper: str,
    settings: RedisProfileSettings | None = None,
    *,
    prefix: str | None = None,
) -> bool:
    """Erase one shopper's profile and tell the runners; True if there was one."""
    settings = _settings(settings, prefix)
    with (
        client_for(
            client_or_url,
            socket_timeout_s=settings.socket_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        ) as client,
        store_errors("profile erasure"),
    ):
        removed = int(client.delete(settings.key(shopper)))
        if removed:
            publish_changed(client, settings, [shopper])
    return removed > 0


def stored_profiles(
    client: Redis, settings: RedisProfileSettings, shoppers: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The stored JSON objects of these shoppers (missing ones left out); one MGET per batch."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in chunks(list(shoppers)):
        raws: list[Any] = client.mget([settings.key(s) for s in chunk])
        for shopper, raw in zip(chunk, raws, strict=True):
            obj = load_object(raw)
            if obj is not None:
                out[shopper] = obj
    return out


# ---------------------------------------------------------------------- helpers


def _settings(settings: RedisProfileSettings | None, prefix: str | None) -> RedisProfileSettings:
    settings = settings or RedisProfileSettings()
    return settings if prefix is None else replace(settings, prefix=prefix)


def _with_visits(profile: Profile, first_at: float, latest: float) -> Profile:
    """ProfileBook's rule: ``last_visit`` moves forward, a missing ``first_visit`` is set."""
    last = latest if profile.last_visit is None else max(profile.last_visit, latest)
    first = profile.first_visit if profile.first_visit is not None else first_at
    if last == profile.last_visit and first == profile.first_visit:
        return profile
    return replace(profile, last_visit=last, first_visit=first)


def _visited(obj: dict[str, Any], first_at: float, latest: float) -> dict[str, Any] | None:
    """The stored object with the visits applied, or None when nothing changes."""
    last, first = _number(obj.get("last_visit")), _number(obj.get("first_visit"))
    new_last = latest if last is None else max(last, latest)
    new_first = first_at if first is None else first
    if new_last == last and new_first == first:
        return None
    obj["last_visit"], obj["first_visit"] = new_last, new_first
    return obj


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _parse_invalidation(data: str | bytes) -> list[str] | None:
    """The shopper ids of one message, or None for "everything" (also when unreadable)."""
    payload = text(data)
    if payload == EVERYTHING:
        return None
    try:
        ids = orjson.loads(payload)
    except orjson.JSONDecodeError:
        ids = None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        log.warning("unreadable profile invalidation %.80r: reloading everything", payload)
        return None
    return ids


def _close_quietly(pubsub: PubSub | None) -> None:
    if pubsub is None:
        return
    with contextlib.suppress(RedisError, OSError):
        pubsub.close()
