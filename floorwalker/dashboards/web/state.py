"""What ``/api/state`` answers and the page draws, made from the core's frozen floor picture.

Runs on the web server's thread. Its inputs are immutable: a
:class:`~floorwalker.engine.runners.floorfeed.FloorSnapshot` the core thread
published, and the runner's Prometheus registry, read with ``collect()``
(which is thread-safe) for what only the runner measures: decision latency
and dead letters. Times that depend on "now" (seconds to the next escalation)
are computed here, at the moment of the answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from prometheus_client import CollectorRegistry

from floorwalker.dashboards.quantiles import histogram_quantile
from floorwalker.dashboards.web.layout import FloorLayout, layout
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.floor import AlertView, BandSpot, StoreFloor
from floorwalker.engine.runners.floorfeed import DayCount, FloorSnapshot

LATENCY = "floorwalker_decision_latency_seconds_bucket"
DEADLETTERS = "floorwalker_deadletters_total"


@dataclass(frozen=True, slots=True)
class RunnerCounters:
    """What the runner measures itself (over all its stores unless the metric has ``store``)."""

    device_p50_s: float | None = None
    device_p99_s: float | None = None
    arrival_p50_s: float | None = None
    arrival_p99_s: float | None = None
    deadletters: Mapping[str, int] = field(default_factory=dict)


def read_counters(registry: CollectorRegistry, store: str | None = None) -> RunnerCounters:
    """Latency quantiles and dead letters from a runner's registry.

    Samples with a ``store`` label count only for ``store``; the others for
    every store (the runner measures them across its stores).
    """
    device: dict[float, float] = {}
    arrival: dict[float, float] = {}
    dead: dict[str, int] = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if store is not None and labels.get("store", store) != store:
                continue
            if sample.name == LATENCY:
                into = device if labels.get("path") == "device" else arrival
                le = float(labels["le"])
                into[le] = into.get(le, 0.0) + sample.value
            elif sample.name == DEADLETTERS:
                reason = labels.get("reason", "?")
                dead[reason] = dead.get(reason, 0) + int(sample.value)
    dev, arr = sorted(device.items()), sorted(arrival.items())
    return RunnerCounters(
        device_p50_s=histogram_quantile(0.5, dev),
        device_p99_s=histogram_quantile(0.99, dev),
        arrival_p50_s=histogram_quantile(0.5, arr),
        arrival_p99_s=histogram_quantile(0.99, arr),
        deadletters={k: v for k, v in sorted(dead.items()) if v},
    )


class Layouts:
    """Each store's layout, made again only when its registry is replaced (a reload)."""

    def __init__(self) -> None:
        self._made: dict[str, tuple[Registry, FloorLayout]] = {}
        self._lock = threading.Lock()

    def of(self, registry: Registry) -> FloorLayout:
        with self._lock:
            made = self._made.get(registry.store)
            if made is None or made[0] is not registry:
                made = self._made[registry.store] = (registry, layout(registry))
            return made[1]


class CountersCache:
    """:func:`read_counters`, at most every ``max_age_s`` per store (a collect() costs)."""

    def __init__(
        self,
        registry: CollectorRegistry | None,
        max_age_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._max_age = max_age_s
        self._clock = clock
        self._cached: dict[str, tuple[float, RunnerCounters]] = {}
        self._lock = threading.Lock()

    def get(self, store: str) -> RunnerCounters:
        if self._registry is None:
            return RunnerCounters()
        now = self._clock()
        with self._lock:
            hit = self._cached.get(store)
            if hit is not None and now - hit[0] < self._max_age:
                return hit[1]
        counters = read_counters(self._registry, store)
        with self._lock:
            self._cached[store] = (now, counters)
        return counters


# --------------------------------------------------------------------------- JSON


def stores_json(snap: FloorSnapshot | None) -> dict[str, Any]:
    """``/api/stores``: every store this runner serves, with a headline each."""
    if snap is None:
        return {"stores": []}
    return {
        "stores": [
            {
                "store": sid,
                "timezone": floor.registry.timezone,
                "zones": len(floor.registry.zones),
                "shoppers": floor.shoppers_total,
                "open_alerts": sum(1 for a in floor.alerts if a.state == "open"),
            }
            for sid, floor in sorted(snap.stores.items())
        ]
    }


def state_json(
    snap: FloorSnapshot,
    store: str,
    now: float,
    plan: FloorLayout,
    counters: RunnerCounters,
) -> dict[str, Any]:
    """``/api/state?store=ID``: one store's floor as of ``now`` (see docs: README, Floor page)."""
    floor = snap.stores[store]
    reg = floor.registry
    tz = reg.tzinfo
    names = {b.band: b.name for b in floor.bands}
    day = snap.today.get(store, DayCount(0, 0, snap.built_at))
    return {
        "store": store,
        "stores": sorted(snap.stores),
        "version": snap.version,
        "now": now,
        "now_iso": _iso(now, tz),
        "built_at": _iso(snap.built_at, tz),
        "timezone": reg.timezone,
        "grid": {"cols": plan.cols, "rows": plan.rows},
        "zones": [_zone(reg, zid, floor, plan) for zid in reg.zones],
        "edges": [list(e) for e in plan.edges],
        "bands": [_band(b) for b in floor.bands],
        "alerts": [_alert(a, now, tz, names) for a in floor.alerts],
        "responses": [
            {
                "rule": r.rule,
                "answered": r.answered,
                "median_s": _round(r.median_s) if r.answered else None,
                "worst_s": _round(r.worst_s) if r.answered else None,
                "target_s": r.target_s,
                "within": r.within,
                "unanswered": r.unanswered,
            }
            for r in floor.responses
        ],
        "counters": {
            "shoppers": floor.shoppers_total,
            "open_alerts": sum(1 for a in floor.alerts if a.state == "open"),
            "coupons_issued_today": day.issued,
            "coupons_redeemed_today": day.redeemed,
            "today_since": _iso(day.since, tz),
            "decision_latency_p50_s": _round(counters.device_p50_s, 4),
            "decision_latency_p99_s": _round(counters.device_p99_s, 4),
            "arrival_latency_p50_s": _round(counters.arrival_p50_s, 4),
            "arrival_latency_p99_s": _round(counters.arrival_p99_s, 4),
            "deadletters": sum(counters.deadletters.values()),
            "deadletters_by_reason": dict(counters.deadletters),
        },
    }


def _zone(reg: Registry, zid: str, floor: StoreFloor, plan: FloorLayout) -> dict[str, Any]:
    zone = reg.zones[zid]
    x, y = plan.cells[zid]
    return {
        "id": zid,
        "tags": sorted(zone.tags),
        "section": zone.section,
        "shoppers": floor.shoppers.get(zid, 0),
        "x": x,
        "y": y,
    }


def _band(b: BandSpot) -> dict[str, Any]:
    return {
        "band": b.band,
        "name": b.name,
        "role": b.role,
        "zone": b.zone,
        "online": b.online,
        "alerts": list(b.alerts),
        "on": b.on,
    }


def _alert(a: AlertView, now: float, tz: tzinfo, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "id": a.id,
        "rule": a.rule,
        "zone": a.zone,
        "priority": a.priority,
        "message": a.message,
        "state": a.state,
        "step": a.step,
        "steps": a.steps,
        "paged": _people(a.paged, names),
        "holder": _people([a.holder], names)[0] if a.holder else None,
        "declined": _people(a.declined, names),
        "created": _iso(a.created, tz),
        "age_s": _round(max(0.0, now - a.created)),
        "acked_by": _people([a.acked_by], names)[0] if a.acked_by else None,
        "response_s": _round(a.acked_at - a.created) if a.acked_at is not None else None,
        "target_s": a.target_s,
        "next_escalation": _due(a.next_step_at, now, tz),
        "unanswered_at": _due(a.ends_at, now, tz),
    }


def _people(bands: Iterable[str | None], names: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"band": b, "name": names.get(b, b)} for b in bands if b is not None]


def _due(at: float | None, now: float, tz: tzinfo) -> dict[str, Any] | None:
    if at is None:
        return None
    return {"at": _iso(at, tz), "ts": at, "in_s": _round(max(0.0, at - now))}


def _iso(ts: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).isoformat(timespec="milliseconds")


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
