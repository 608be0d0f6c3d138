"""Operator commands on the shared Redis: RFM segmentation and erasure.

``floorwalker profiles segment --redis URL`` is :func:`segment_profiles`;
erasing a shopper "from every store with one command" is
:func:`forget_shopper_everywhere`. Both take a URL and a
:class:`RedisStoresSettings` naming every store's key prefix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis import Redis
from redis.exceptions import WatchError

from floorwalker.engine.stores import rfm
from floorwalker.engine.stores._redis import (
    chunks,
    connect,
    load_object,
    scan_keys,
    store_errors,
    text,
    update_json,
)
from floorwalker.engine.stores.pos_history import (
    PosHistorySettings,
    delete_checkouts_of,
    read_checkouts,
)
from floorwalker.engine.stores.redis_alerts import RedisAlertSettings
from floorwalker.engine.stores.redis_guards import RedisGuardSettings, RedisGuardStore
from floorwalker.engine.stores.redis_profiles import (
    RedisProfileSettings,
    forget_profile,
    publish_bulk_change,
)
from floorwalker.engine.stores.redis_record import RecordSettings, forget_shopper_records
from floorwalker.errors import GuardStoreError


@dataclass(frozen=True, slots=True)
class RedisStoresSettings:
    """Where each shared store lives; the defaults match each store's own defaults."""

    profiles: RedisProfileSettings = field(default_factory=RedisProfileSettings)
    alerts: RedisAlertSettings = field(default_factory=RedisAlertSettings)
    pos: PosHistorySettings = field(default_factory=PosHistorySettings)
    guards: RedisGuardSettings = field(default_factory=RedisGuardSettings)
    record: RecordSettings = field(default_factory=RecordSettings)
    rfm: rfm.RfmSettings = field(default_factory=rfm.RfmSettings)
    socket_timeout_s: float = 30.0
    """For these bulk commands only (large SCAN / XRANGE pages, big transactions)."""
    connect_timeout_s: float = 2.0

    @classmethod
    def with_prefix(cls, prefix: str) -> RedisStoresSettings:
        """Every store under one prefix (guards under ``<prefix>guard:``), e.g. for tests."""
        return cls(
            profiles=RedisProfileSettings(prefix=prefix),
            alerts=RedisAlertSettings(prefix=prefix),
            pos=PosHistorySettings(prefix=prefix),
            guards=RedisGuardSettings(prefix=f"{prefix}guard:"),
            record=RecordSettings(prefix=prefix),
        )


def _settings(settings: RedisStoresSettings | None, prefix: str | None) -> RedisStoresSettings:
    if prefix is not None:
        if settings is not None:
            raise ValueError("give either settings or prefix, not both")
        return RedisStoresSettings.with_prefix(prefix)
    return settings or RedisStoresSettings()


def _connect(url: str, settings: RedisStoresSettings) -> Redis:
    return connect(
        url,
        socket_timeout_s=settings.socket_timeout_s,
        connect_timeout_s=settings.connect_timeout_s,
    )


def segment_profiles(
    url: str,
    settings: RedisStoresSettings | None = None,
    now: float | None = None,
    *,
    prefix: str | None = None,
) -> dict[str, Any]:
    """Re-score every shopper from the POS history and write segment, tier, lifetime value back.

    Only existing profiles are updated (a shopper with checkouts but no profile
    gets none); a profile whose shopper has no checkout up to ``now`` is left as
    it is. ``lifetime_value`` never goes down: it becomes the larger of the
    stored value (which may come from a CRM import covering older purchases)
    and the history's total. Each batch is one optimistic transaction, so a
    runner's concurrent visit write is never lost. One invalidation is
    published at the end. ``now`` defaults to the wall clock.

    Returns a summary: checkouts read, shoppers scored, profiles updated /
    unchanged, shoppers without a profile, and the segment and tier counts of
    the scored shoppers that have a profile. ``prefix`` (instead of
    ``settings``) puts every store under one prefix, as the edge runner does.
    """
    settings = _settings(settings, prefix)
    at = time.time() if now is None else float(now)
    client = _connect(url, settings)
    try:
        with store_errors("profile segmentation"):
            history = read_checkouts(client, settings.pos)
            result = rfm.score(
                history.shopper,
                history.ts,
                history.total,
                at,
                settings.rfm,
                n_shoppers=len(history.shoppers),
            )
            rows = {
                settings.profiles.key(history.shoppers[int(i)]): k
                for k, i in enumerate(result.index)
            }
            prefix_len = len(settings.profiles.key_prefix)
            found: set[str] = set()
            updated: list[str] = []

            def change(key: str, obj: dict[str, Any] | None) -> dict[str, Any] | None:
                if obj is None:
                    return None  # no profile: create none
                found.add(key)
                k = rows[key]
                stored = obj.get("lifetime_value")
                base = float(stored) if isinstance(stored, int | float) else 0.0
                new = {
                    "segment": result.segment[k],
                    "tier": result.tier[k],
                    "lifetime_value": max(base, round(float(result.lifetime_value[k]), 2)),
                }
                if all(obj.get(name) == value for name, value in new.items()):
                    return None
                obj.update(new)
                return obj

            for chunk in chunks(list(rows)):
                updated += update_json(client, chunk, change)
            publish_bulk_change(client, settings.profiles, [k[prefix_len:] for k in updated])
    finally:
        client.close()
    segments = dict.fromkeys(rfm.SEGMENT_ORDER, 0)
    tiers = dict.fromkeys(rfm.TIER_ORDER, 0)
    for key in found:
        segments[result.segment[rows[key]]] += 1
        tiers[result.tier[rows[key]]] += 1
    return {
        "now": at,
        "checkouts": len(history.ts),
        "shoppers_scored": len(result),
        "profiles_updated": len(updated),
        "profiles_unchanged": len(found) - len(updated),
        "without_profile": len(result) - len(found),
        "segments": segments,
        "tiers": tiers,
    }


def forget_shopper_everywhere(
    url: str,
    shopper: str,
    settings: RedisStoresSettings | None = None,
    *,
    prefix: str | None = None,
) -> dict[str, int]:
    """Erase a shopper from the shared Redis: profile, guard state, alerts, POS history.

    Returns counts: ``profile`` (0 or 1), ``guard_keys`` (as
    ``RedisGuardStore.forget_shopper``), ``alerts`` (journal entries scrubbed:
    the alert stays, since staff may still be helping, but no longer names the
    shopper — the engine's own rule), ``checkouts`` (stream entries deleted),
    ``records`` (entries of the report record, :mod:`.redis_record`, deleted).

    ``engines_told``: running engines that got the erasure notice (on
    ``RedisProfileSettings.erase_channel``); each forgets the shopper from its
    memory (``Engine.forget_shopper``) and drops checkouts still queued
    (``PosHistory.forget``). The profile deletion reaches every runner's cache by
    invalidation. ``prefix``: as for :func:`segment_profiles`.
    """
    settings = _settings(settings, prefix)
    client = _connect(url, settings)
    try:
        profile = forget_profile(client, shopper, settings.profiles)
        guard_keys = RedisGuardStore(client, settings.guards).forget_shopper(shopper)
        with store_errors("alert journal erasure"):
            alerts = _scrub_alerts(client, settings.alerts, shopper)
        checkouts = delete_checkouts_of(client, shopper, settings.pos)
        records = forget_shopper_records(client, shopper, settings.record)
        with store_errors("erasure notice"):
            told = int(client.publish(settings.profiles.erase_channel, shopper))
    finally:
        client.close()
    return {
        "profile": int(profile),
        "guard_keys": guard_keys,
        "alerts": alerts,
        "checkouts": checkouts,
        "records": records,
        "engines_told": told,
    }


def _scrub_alerts(client: Redis, settings: RedisAlertSettings, shopper: str) -> int:
    scrubbed = 0
    for key in list(dict.fromkeys(scan_keys(client, settings.key_prefix))):
        for _ in range(50):
            with client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    fields: dict[Any, Any] = pipe.hgetall(key)
                    changes: dict[str, bytes] = {}
                    for field_name, raw in fields.items():
                        rec = load_object(raw)
                        if rec is None or shopper not in (
                            rec.get("shopper"),
                            rec.get("source_key"),
                        ):
                            continue
                        rec.update(shopper=None, summary=None, advisor=None)
                        if rec.get("source_key") == shopper:
                            rec["source_key"] = f"forgotten:{rec.get('id')}"
                        changes[text(field_name)] = orjson.dumps(rec)
                    if not changes:
                        pipe.unwatch()
                        break
                    pipe.multi()
                    pipe.hset(key, mapping=changes)  # type: ignore[arg-type]
                    pipe.execute()
                    scrubbed += len(changes)
                    break
                except WatchError:
                    continue
        else:
            raise GuardStoreError(f"could not scrub {key}: it kept changing")
    return scrubbed
