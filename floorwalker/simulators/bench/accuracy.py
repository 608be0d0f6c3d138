"""``floorwalker bench accuracy``: do dwell triggers and staff routing match what really happened?

The store simulator (:mod:`floorwalker.simulators.store`) records where every
shopper and staff band truly was. Its traffic, at RSSI noise sigma 2, 4, 6 and
8 dB, goes through the engine core alone on a virtual clock (typed events in
timestamp order, ``Engine.feed``, then ``flush``), and the engine's decisions
are compared with the ground truth.

**Dwell triggers.** Every zone of the store gets a private tag ``at-<zone>``
and one synthetic rule per zone and threshold ``T`` (5, 10, 20, 60 s by
default): ``dwell >= T`` in that zone, an offer with no caps, no policy cap
and no fatigue. Every firing is one decision (sent, or suppressed for want of
consent: both count), stamped with the moment the dwell timer fired.

*Matching rule.* A **true dwell** for ``T`` is a ground-truth interval
``[enter, leave)`` of shopper ``s`` in zone ``z`` (consecutive stays in one
zone merged) with ``leave - enter >= T``. A firing ``(s, z, T, f)`` **matches**
the earliest not yet matched true dwell of ``(s, z)`` for ``T`` with
``enter + T - tol <= f <= leave + tol`` (``tol`` = 5 s by default: a few
report intervals, so that a dwell the engine started one or two sightings
early or late still counts). Each true dwell matches at most one firing.

* precision = matched firings / all firings;
* recall = matched true dwells / all true dwells;
* fire-time error = ``f - (enter + T)`` over matched firings (mean, p50, p95;
  positive = late).

Matched firings at least 1 s late are broken down by cause
(:func:`late_causes`): fired at a re-check after the due time, or a stay start
dated late (its first report lost, heard from the old zone or from another
one, or a run of the zone's own sightings that the engine let lapse).

Unmatched firings are split by cause: ``short`` (the shopper really was in
that zone around ``f``, but for less than ``T``: a stay just under the
threshold, still believed when its timer fired), ``duplicate`` (a second
firing within a true dwell already matched: the dwell restarted after a flap)
and ``phantom`` (the shopper was not in that zone then: noise).

**Staff routing.** The shipped rule catalog with the generated profiles, on
traffic where every band reports every ``band_every`` seconds (1, 2, 5, 10 by
default) at sigma 4 and 6 dB, and the store's bells are also pressed in turn
(one every ``bell_round_s``). For every alert the catalog routes to the
nearest (or next nearest) band, where was that band *truly* at the alert's
moment: in the alert's zone, in an adjacent zone, or elsewhere (with the
hops)? And was it the truly nearest band of the store? Step-1 alerts are
scored as hits (a band truly in or next to the zone) or misses broken down
by cause (:data:`MISSES`, see :func:`score_routing`).

Targets: dwell precision >= 0.98 and recall >= 0.95 (at 6 dB); fire-time
error p95 < 1 s with those (at 6 and 8 dB); routing hit rate >= 95 %.

``--sweep`` also reruns sigma = 6 dB with one presence parameter changed at a
time from the defaults (:class:`~floorwalker.engine.core.presence.PresenceSettings`),
to show which parameter limits precision and recall.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import orjson

from floorwalker.devices.events import Sighting
from floorwalker.devices.registry import Registry, Zone
from floorwalker.engine.core.actions import Alert, Decision
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.presence import PresenceSettings
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.rules.loader import load_rules_for
from floorwalker.rules.model import (
    AlertSpec,
    Nearest,
    NextNearest,
    OfferSpec,
    Pattern,
    Policy,
    Rule,
    RuleSet,
    Single,
    SourceRef,
)
from floorwalker.simulators.store import (
    LARGE_REGISTRY,
    Simulation,
    SimulationSettings,
    Truth,
    simulate,
)
from floorwalker.simulators.traffic import TrafficSettings, load_layout

CATALOG = Path(__file__).resolve().parents[2] / "rules" / "catalog"

TARGET_PRECISION = 0.98
TARGET_RECALL = 0.95
TARGET_SIGMA = 6.0
TARGET_FIRE_P95_S = 1.0
TARGET_FIRE_SIGMAS = (6.0, 8.0)
TARGET_HIT_RATE = 0.95

ZONE_TAG_PREFIX = "at-"

SWEEP: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("enter_score", (2, 4, 5)),
    ("candidate_gap_s", (2.0, 8.0)),
    ("strong_rssi", (-70, -65, -55, -40)),
    ("leave_after_s", (5.0, 20.0)),
    ("dwell_grace_s", (1.0, 1.5, 2.0, 3.0, 6.0)),
)
"""Presence parameters varied one at a time (from the defaults) by ``--sweep``."""


@dataclass(frozen=True)
class AccuracySettings:
    sigmas: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0)
    shoppers: int = 1500
    minutes: float = 60.0
    seed: int = 7
    thresholds: tuple[float, ...] = (5.0, 10.0, 20.0, 60.0)
    tolerance_s: float = 5.0
    """Matching tolerance (see the module doc)."""
    registry: Path = LARGE_REGISTRY
    catalog: Path = CATALOG
    presence: PresenceSettings = field(default_factory=PresenceSettings)
    traffic: TrafficSettings = field(default_factory=TrafficSettings)
    """Walk parameters (report interval, losses, neighbour share, dwell means)."""
    routing: bool = True
    band_every: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0)
    """Staff band report intervals (s) of the routing runs, one run each (all bands)."""
    routing_sigmas: tuple[float, ...] = (4.0, 6.0)
    bell_round_s: float = 15.0
    """Routing runs: besides the shoppers' presses, the next bell is pressed every so often."""
    sweep: bool = False

    def __post_init__(self) -> None:
        if not self.sigmas or not self.thresholds:
            raise ValueError("need at least one sigma and one threshold")
        if self.routing and (not self.band_every or not self.routing_sigmas):
            raise ValueError("routing needs at least one band interval and one sigma")
        if self.shoppers < 1 or self.minutes <= 0 or self.tolerance_s < 0:
            raise ValueError("shoppers >= 1, minutes > 0 and tolerance >= 0")


# --------------------------------------------------------------------------- dwell rules


def tagged_registry(registry: Registry) -> Registry:
    """The registry with one private tag per zone (``at-<zone>``), for per-zone rules."""
    zones = {
        zid: Zone(z.id, z.tags | {ZONE_TAG_PREFIX + zid}, z.section, z.adjacent)
        for zid, z in registry.zones.items()
    }
    return Registry(
        store=registry.store,
        timezone=registry.timezone,
        zones=zones,
        beacons=registry.beacons,
        bells=registry.bells,
        gateways=registry.gateways,
        terminals=registry.terminals,
        staff=registry.staff,
    )


def dwell_rules(
    zones: Iterable[str], thresholds: Sequence[float]
) -> tuple[RuleSet, dict[str, tuple[str, float]]]:
    """One uncapped ``dwell >= T`` offer rule per zone and threshold; rule id -> (zone, T)."""
    rules: list[Rule] = []
    meaning: dict[str, tuple[str, float]] = {}
    offer = OfferSpec(offer="bench-dwell", message="bench", expires_s=3600.0)
    for zone in sorted(zones):
        for t in thresholds:
            rid = f"dwell-{zone}-{t:g}s"
            pattern = Pattern("dwell", zone_tags=frozenset({ZONE_TAG_PREFIX + zone}), dwell_s=t)
            rules.append(Rule(rid, Single(pattern), (offer,), SourceRef("<bench-accuracy>", 1)))
            meaning[rid] = (zone, float(t))
    return RuleSet(tuple(rules), Policy(per_shopper=(), fatigue=None)), meaning


@dataclass
class _Fires:
    """Dwell firings by (shopper, zone, threshold): fire times, and the dwell start used."""

    by_key: dict[tuple[str, str, float], list[float]] = field(default_factory=dict)
    since: dict[tuple[str, str, float, float], float] = field(default_factory=dict)
    """(shopper, zone, threshold, fire time) -> when the engine dated the stay's start"""
    total: int = 0


def _collect_fires(
    sim: Simulation, presence: PresenceSettings, thresholds: Sequence[float]
) -> tuple[_Fires, float]:
    registries = {sid: tagged_registry(reg) for sid, reg in sim.registries.items()}
    zones = {z for reg in registries.values() for z in reg.zones}
    ruleset, meaning = dwell_rules(zones, thresholds)
    fires = _Fires()

    def on_decision(d: Decision) -> None:
        found = meaning.get(d.rule)
        if found is None:
            return  # the built-in device-health alert (a quiet gateway in a tiny run)
        zone, t = found
        fires.by_key.setdefault((d.subject, zone, t), []).append(d.ts)
        fires.total += 1
        # A dwell fires only while the shopper's presence still holds the stay it timed.
        st = engine.stores[d.store].state.presence.states.get(d.subject)
        if st is not None:
            fires.since[(d.subject, zone, t, d.ts)] = st.since

    engine = Engine(
        ruleset,
        registries,
        settings=EngineSettings(presence=presence),
        on_decision=on_decision,
    )
    t0 = time.perf_counter()
    feed, drain = engine.feed, engine.drain
    for ev in sim.events():
        feed(ev)
        drain()
    engine.flush()
    engine.drain()
    return fires, time.perf_counter() - t0


Matched = tuple[str, str, float, float, float]
"""A matched firing: shopper, zone, threshold, fire time, true enter."""


def score_dwell(
    truth: Iterable[Truth],
    fires: Mapping[tuple[str, str, float], Sequence[float]],
    thresholds: Sequence[float],
    tolerance_s: float,
    matched: list[Matched] | None = None,
) -> dict[str, Any]:
    """Precision, recall and fire-time error of dwell firings against the ground truth
    (every matched firing is also appended to ``matched`` if given)."""
    shoppers = [t for t in truth if not t.staff]
    rows: dict[float, dict[str, Any]] = {}
    all_err: list[float] = []
    totals = {"fires": 0, "matched": 0, "true": 0, "short": 0, "duplicate": 0, "phantom": 0}
    ivs_of: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for t in shoppers:
        for iv in t.intervals:
            ivs_of.setdefault((t.subject, iv.zone), []).append((iv.enter, iv.leave))
    for thr in thresholds:
        c = {"fires": 0, "matched": 0, "true": 0, "short": 0, "duplicate": 0, "phantom": 0}
        err: list[float] = []
        keys = {k for k in ivs_of} | {(s, z) for (s, z, t) in fires if t == thr}
        for key in keys:
            _match_key(key, thr, ivs_of.get(key, []), fires, tolerance_s, c, err, matched)
        for k in totals:
            totals[k] += c[k]
        all_err.extend(err)
        rows[thr] = {**c, **_ratios(c), "fire_error_s": _stats(err)}
    return {
        **totals,
        **_ratios(totals),
        "fire_error_s": _stats(all_err),
        "by_threshold": [{"threshold_s": t, **rows[t]} for t in thresholds],
    }


def _match_key(
    key: tuple[str, str],
    thr: float,
    ivs: Sequence[tuple[float, float]],
    fires: Mapping[tuple[str, str, float], Sequence[float]],
    tolerance_s: float,
    c: dict[str, int],
    err: list[float],
    matched: list[Matched] | None,
) -> None:
    """Match one (shopper, zone)'s firings for ``thr`` to its true dwells (counts into ``c``)."""
    qual = [(a, b) for a, b in ivs if b - a >= thr]
    c["true"] += len(qual)
    times = sorted(fires.get((key[0], key[1], thr), ()))
    c["fires"] += len(times)
    used = [False] * len(qual)
    for f in times:
        hit = next(
            (
                i
                for i, (a, b) in enumerate(qual)
                if not used[i] and a + thr - tolerance_s <= f <= b + tolerance_s
            ),
            -1,
        )
        if hit >= 0:
            used[hit] = True
            c["matched"] += 1
            err.append(f - (qual[hit][0] + thr))
            if matched is not None:
                matched.append((key[0], key[1], thr, f, qual[hit][0]))
        elif any(a + thr - tolerance_s <= f <= b + tolerance_s for a, b in qual):
            c["duplicate"] += 1
        elif any(a - tolerance_s <= f <= b + tolerance_s for a, b in ivs):
            c["short"] += 1
        else:
            c["phantom"] += 1


LATE_CAUSES = (
    "recheck",
    "start_first_lost",
    "start_first_old_zone",
    "start_first_other_zone",
    "start_run_restarted",
    "other",
)
"""Why a matched firing was at least ``TARGET_FIRE_P95_S`` late (see :func:`late_causes`)."""


def late_causes(
    sim: Simulation, fires: _Fires, matched: Sequence[Matched], late_s: float = 1.0
) -> dict[str, int]:
    """Break down the matched firings ``late_s`` or more late, by cause.

    With ``since`` the stay start the engine used and ``enter`` the true one:

    * ``recheck``: fired after its due time ``since + T`` (the shopper was not
      seen within the grace then; it fired at a later re-check);
    * otherwise the start was late, because the sightings between the true
      enter and ``since`` were none (``start_first_lost``: the first report
      was lost), all of the zone the shopper came from
      (``start_first_old_zone``), of other zones only
      (``start_first_other_zone``), or included the zone itself, in a run the
      engine let lapse (``start_run_restarted``);
    * ``other``: anything else.
    """
    late = [m for m in matched if m[3] - (m[4] + m[2]) >= late_s]
    out = dict.fromkeys(LATE_CAUSES, 0)
    who = {m[0] for m in late}
    seen: dict[str, list[tuple[float, str]]] = {}
    if who:
        for ev in sim.events():
            if type(ev) is Sighting and ev.subject in who:
                seen.setdefault(ev.subject, []).append((ev.ts, ev.zone))
    came_from: dict[tuple[str, float], str | None] = {}
    for t in sim.truth:
        if t.subject in who:
            for before, iv in zip((None, *t.intervals), t.intervals, strict=False):
                came_from[(t.subject, iv.enter)] = None if before is None else before.zone
    for subject, zone, thr, f, enter in late:
        since = fires.since.get((subject, zone, thr, f))
        if since is None:
            cause = "other"
        elif f - (since + thr) > 0.05:
            cause = "recheck"
        elif since - enter < late_s / 2:
            cause = "other"
        else:
            between = [z for ts, z in seen.get(subject, []) if enter - 1e-6 <= ts < since]
            cause = _start_cause(between, zone, came_from.get((subject, enter)))
        out[cause] += 1
    return out


def _start_cause(between: Sequence[str], zone: str, old: str | None) -> str:
    """Why a stay start was dated late, from the zones heard between the true enter and it."""
    if not between:
        return "start_first_lost"
    if zone in between:
        return "start_run_restarted"
    if all(z == old for z in between):
        return "start_first_old_zone"
    return "start_first_other_zone"


def _ratios(c: Mapping[str, int]) -> dict[str, float]:
    return {
        "precision": round(c["matched"] / c["fires"], 4) if c["fires"] else 1.0,
        "recall": round(c["matched"] / c["true"], 4) if c["true"] else 1.0,
    }


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "p50": None, "p95": None, "min": None, "max": None}
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": round(float(arr.mean()), 3),
        "p50": round(float(np.percentile(arr, 50)), 3),
        "p95": round(float(np.percentile(arr, 95)), 3),
        "min": round(float(arr.min()), 3),
        "max": round(float(arr.max()), 3),
    }


# --------------------------------------------------------------------------- routing


def _nearest_step(rule: Rule, step: int) -> bool:
    """Was this step of the rule's alert routed to the nearest (or next nearest) band?"""
    spec = next((a for a in rule.actions if isinstance(a, AlertSpec)), None)
    if spec is None:
        return False
    if step <= 1:
        targets = spec.to
    elif step - 2 < len(spec.escalate):
        targets = spec.escalate[step - 2].to
    else:
        return False
    return bool(targets) and isinstance(targets[0], Nearest | NextNearest)


MISSES = ("no_band", "mislocated", "chosen_mislocated", "busy_or_capped", "other")
"""Why a step-1 alert missed a band truly in or next to its zone (see :func:`score_routing`)."""


def score_routing(sim: Simulation, catalog: Path, presence: PresenceSettings) -> dict[str, Any]:
    """Where were the alerted bands truly, at the alert's moment, and why a miss?

    Every alert routed to the nearest (or next nearest) band is placed by the
    bands' ground truth (in zone / adjacent / elsewhere). Step-1 alerts are
    also scored against the target: a **hit** is an alert that went to a band
    truly in or next to its zone. When no band truly was there, it is
    ``no_band`` (not counted against the hit rate). Otherwise a miss is,
    checked in this order, with the engine's state at the alert's moment:

    * ``busy_or_capped``: a band truly there that the engine placed in or next
      to the zone was busy (on an acknowledged alert), capped by the rule's
      ``band_every``, offline, or had declined;
    * ``mislocated``: every band truly there was placed by the engine
      elsewhere (or nowhere: not yet or no longer located);
    * ``chosen_mislocated``: a band truly there was placed right, but the band
      chosen was believed nearer than it truly was;
    * ``other``: anything else (load sharing cannot cause it: equals tie).
    """
    regs = sim.registries
    ruleset = load_rules_for(catalog, regs)
    rules = ruleset.by_id()
    book = ProfileBook({p.shopper: p for p in sim.profiles})
    settings = EngineSettings(presence=presence)
    engine = Engine(ruleset, regs, profiles=book, settings=settings)
    staff: dict[tuple[str, str], Truth] = {(t.store, t.subject): t for t in sim.truth if t.staff}
    bands_of: dict[str, list[Truth]] = {}
    for (store, _), t in staff.items():
        bands_of.setdefault(store, []).append(t)
    counts = {"alerts": 0, "in_zone": 0, "adjacent": 0, "elsewhere": 0, "unplaced": 0}
    first = {"step1": 0, "scored": 0, "hit": 0, **dict.fromkeys(MISSES, 0)}
    nearest_ok = 0
    hops_all: list[int] = []
    by_rule: dict[str, dict[str, int]] = {}

    def judge(a: Alert) -> None:
        nonlocal nearest_ok
        rule = rules.get(a.rule)
        if rule is None or not _nearest_step(rule, a.step):
            return
        reg = regs[a.store]
        truth = staff.get((a.store, a.band))
        where = truth.zone_at(a.ts) if truth is not None else None
        counts["alerts"] += 1
        row = by_rule.setdefault(
            a.rule, {"alerts": 0, "in_zone": 0, "adjacent": 0, "elsewhere": 0, "unplaced": 0}
        )
        row["alerts"] += 1
        if where is None:
            kind = "unplaced"
        else:
            hops = reg.hops(where, a.zone)
            hops_all.append(hops)
            kind = "in_zone" if hops == 0 else "adjacent" if hops == 1 else "elsewhere"
            best = min(
                (
                    reg.hops(z, a.zone)
                    for t in bands_of.get(a.store, [])
                    if (z := t.zone_at(a.ts)) is not None
                ),
                default=hops,
            )
            nearest_ok += hops <= best
        counts[kind] += 1
        row[kind] += 1
        if a.step == 1:
            first[_miss_kind(engine, rule, a, kind, bands_of.get(a.store, []), settings)] += 1
            first["step1"] += 1

    for ev in sim.events():
        engine.feed(ev)
        for action in engine.drain():
            if isinstance(action, Alert):
                judge(action)
    engine.flush()
    for action in engine.drain():
        if isinstance(action, Alert):
            judge(action)
    n = max(1, counts["alerts"])
    first["scored"] = first["step1"] - first["no_band"]
    return {
        **counts,
        "in_zone_or_adjacent_share": round((counts["in_zone"] + counts["adjacent"]) / n, 4),
        "elsewhere_share": round(counts["elsewhere"] / n, 4),
        "truly_nearest_share": round(nearest_ok / n, 4),
        "mean_true_hops": round(float(np.mean(hops_all)), 3) if hops_all else None,
        "by_rule": by_rule,
        "first_step": {
            **first,
            "hit_rate": round(first["hit"] / first["scored"], 4) if first["scored"] else None,
        },
    }


def _miss_kind(
    engine: Engine,
    rule: Rule,
    a: Alert,
    kind: str,
    bands: Sequence[Truth],
    settings: EngineSettings,
) -> str:
    """``hit`` or one of :data:`MISSES` for a step-1 alert (engine state at ``a.ts``)."""
    reg = engine.stores[a.store].state.registry
    there = [
        t.subject for t in bands if (z := t.zone_at(a.ts)) is not None and reg.hops(z, a.zone) <= 1
    ]
    if not there:
        return "no_band"
    if kind in ("in_zone", "adjacent"):
        return "hit"
    st = engine.stores[a.store].state
    roster, book = st.staff, st.alerts
    placed_ok = [
        b for b in there if (z := roster.zone_of(b, a.ts)) is not None and reg.hops(z, a.zone) <= 1
    ]
    if not placed_ok:
        return "mislocated"
    spec = next((x for x in rule.actions if isinstance(x, AlertSpec)), None)
    every = spec.band_every_s if spec is not None else None
    busy = book.busy_bands(a.ts, settings.busy_timeout_s)
    unavailable = busy | roster.offline
    if every:
        unavailable |= {
            b for (r, b), at in book.last_paged.items() if r == a.rule and a.ts - at < every
        }
    if all(b in unavailable for b in placed_ok):
        return "busy_or_capped"
    chosen = roster.zone_of(a.band, a.ts)
    if chosen is not None and reg.hops(chosen, a.zone) <= 1:
        return "chosen_mislocated"
    return "other"


# --------------------------------------------------------------------------- runs


def _simulation(
    cfg: AccuracySettings, sigma: float, traffic: TrafficSettings | None = None
) -> Simulation:
    layout = load_layout(cfg.registry)
    settings = SimulationSettings(
        shoppers=cfg.shoppers,
        minutes=cfg.minutes,
        seed=cfg.seed,
        sigma_db=sigma,
        traffic=traffic or cfg.traffic,
    )
    return simulate(layout, settings)


def _dwell_run(
    cfg: AccuracySettings, sim: Simulation, presence: PresenceSettings
) -> dict[str, Any]:
    fires, seconds = _collect_fires(sim, presence, cfg.thresholds)
    matched: list[Matched] = []
    out = score_dwell(sim.truth, fires.by_key, cfg.thresholds, cfg.tolerance_s, matched)
    out["late"] = {"late_s": TARGET_FIRE_P95_S, **late_causes(sim, fires, matched)}
    out["replay_s"] = round(seconds, 2)
    return out


def _routing_runs(cfg: AccuracySettings, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """One routing run per band report interval and sigma (bells pressed in turn)."""
    routing: list[dict[str, Any]] = []
    for every in cfg.band_every:
        for sigma in cfg.routing_sigmas:
            traffic = replace(
                cfg.traffic, staff_report_every_s=every, bell_round_s=cfg.bell_round_s
            )
            rsim = _simulation(cfg, sigma, traffic)
            say(f"routing: bands every {every:g} s, sigma {sigma:g} dB ...")
            g = score_routing(rsim, cfg.catalog, cfg.presence)
            routing.append({"band_every_s": every, "sigma_db": sigma, **g})
    return routing


def _targets(
    runs: Sequence[Mapping[str, Any]], routing: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    fire = []
    for run in runs:
        if run["sigma_db"] in TARGET_FIRE_SIGMAS:
            d = run["dwell"]
            p95 = d["fire_error_s"]["p95"]
            fire.append(
                {
                    "sigma_db": run["sigma_db"],
                    "p95_s": p95,
                    "precision": d["precision"],
                    "recall": d["recall"],
                    "met": p95 is not None
                    and p95 < TARGET_FIRE_P95_S
                    and d["precision"] >= TARGET_PRECISION
                    and d["recall"] >= TARGET_RECALL,
                }
            )
    at_target = next((r for r in runs if r["sigma_db"] == TARGET_SIGMA), None)
    targets: dict[str, Any] = {}
    if at_target is not None:
        p, r = at_target["dwell"]["precision"], at_target["dwell"]["recall"]
        targets = {
            "sigma_db": TARGET_SIGMA,
            "precision": {"target": TARGET_PRECISION, "value": p, "met": p >= TARGET_PRECISION},
            "recall": {"target": TARGET_RECALL, "value": r, "met": r >= TARGET_RECALL},
        }
    if fire:
        targets["fire_time"] = {"p95_below_s": TARGET_FIRE_P95_S, "runs": fire}
    if routing:
        targets["routing"] = {
            "hit_rate": TARGET_HIT_RATE,
            "runs": [
                {
                    "band_every_s": g["band_every_s"],
                    "sigma_db": g["sigma_db"],
                    "hit_rate": (h := g["first_step"]["hit_rate"]),
                    "met": h is not None and h >= TARGET_HIT_RATE,
                }
                for g in routing
            ],
        }
    return targets


def run_accuracy_bench(cfg: AccuracySettings, log: TextIO | None = None) -> dict[str, Any]:
    """Run everything; a JSON-ready dict."""

    def say(msg: str) -> None:
        if log is not None:
            print(msg, file=log, flush=True)

    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    target_sim: Simulation | None = None
    for sigma in cfg.sigmas:
        sim = _simulation(cfg, sigma)
        shoppers = sum(1 for t in sim.truth if not t.staff)
        say(f"sigma {sigma:g} dB: {len(sim.traffic):,} events, {shoppers} shoppers ...")
        row: dict[str, Any] = {"sigma_db": sigma, "events": len(sim.traffic)}
        row["dwell"] = _dwell_run(cfg, sim, cfg.presence)
        runs.append(row)
        if sigma == TARGET_SIGMA:
            target_sim = sim
    routing = _routing_runs(cfg, say) if cfg.routing else []
    sweep: list[dict[str, Any]] = []
    if cfg.sweep:
        sim = target_sim or _simulation(cfg, TARGET_SIGMA)
        for name, values in SWEEP:
            for value in values:
                presence = replace(cfg.presence, **{name: type(getattr(cfg.presence, name))(value)})
                say(f"sweep at {TARGET_SIGMA:g} dB: {name} = {value:g} ...")
                d = _dwell_run(cfg, sim, presence)
                sweep.append(
                    {
                        "parameter": name,
                        "value": value,
                        "precision": d["precision"],
                        "recall": d["recall"],
                        "short": d["short"],
                        "duplicate": d["duplicate"],
                        "phantom": d["phantom"],
                        "fire_error_s": d["fire_error_s"],
                    }
                )
    targets = _targets(runs, routing)
    return {
        "bench": "accuracy",
        "settings": _settings_json(cfg),
        "runs": runs,
        "routing": routing,
        "sweep": sweep,
        "targets": targets,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _settings_json(cfg: AccuracySettings) -> dict[str, Any]:
    out = asdict(cfg)
    out["registry"] = str(cfg.registry)
    out["catalog"] = str(cfg.catalog)
    out["traffic"] = {
        k: v
        for k, v in asdict(cfg.traffic).items()
        if k not in ("known", "shoppers", "minutes", "seed", "start", "rssi_sigma_db")
    }
    return out


# --------------------------------------------------------------------------- report


def _f(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _routing_lines(routing: Sequence[Mapping[str, Any]]) -> list[str]:
    lines: list[str] = []
    lines.append("")
    lines.append(
        "staff routing, step-1 alerts: hit = to a band truly in or next to the zone "
        f"(target >= {TARGET_HIT_RATE:.0%} of alerts where such a band existed)"
    )
    lines.append(
        f"{'band every':>10} {'sigma':>6} {'step 1':>7} {'no band':>8} {'scored':>7} "
        f"{'hit rate':>8} {'mislocated':>10} {'chosen mis':>10} {'busy/cap':>8} "
        f"{'other':>6} {'target':>7}"
    )
    for g in routing:
        f = g["first_step"]
        hr = f["hit_rate"]
        met = "met" if hr is not None and hr >= TARGET_HIT_RATE else "NOT met"
        lines.append(
            f"{g['band_every_s']:>9g}s {g['sigma_db']:>6g} {f['step1']:>7} "
            f"{f['no_band']:>8} {f['scored']:>7} {_f(hr, 4):>8} {f['mislocated']:>10} "
            f"{f['chosen_mislocated']:>10} {f['busy_or_capped']:>8} {f['other']:>6} "
            f"{met:>7}"
        )
    lines.append("")
    lines.append("staff routing, all nearest-routed alerts: where the band truly was")
    lines.append(
        f"{'band every':>10} {'sigma':>6} {'alerts':>7} {'in zone':>8} {'adjacent':>8} "
        f"{'elsewhere':>9} {'in/adj':>7} {'nearest':>8} {'hops':>5}"
    )
    for g in routing:
        lines.append(
            f"{g['band_every_s']:>9g}s {g['sigma_db']:>6g} {g['alerts']:>7} "
            f"{g['in_zone']:>8} {g['adjacent']:>8} {g['elsewhere']:>9} "
            f"{g['in_zone_or_adjacent_share']:>7.3f} {g['truly_nearest_share']:>8.3f} "
            f"{_f(g['mean_true_hops'], 2):>5}"
        )
    return lines


def format_report(r: Mapping[str, Any]) -> str:
    lines = ["dwell triggers (all thresholds)"]
    head = (
        f"{'sigma':>6} {'fires':>7} {'true':>7} {'precision':>9} {'recall':>7} "
        f"{'short':>6} {'dup':>5} {'phantom':>7} {'err mean':>8} {'p50':>6} {'p95':>6} "
        f"{'max':>6}"
    )
    lines.append(head)
    for run in r["runs"]:
        d = run["dwell"]
        e = d["fire_error_s"]
        lines.append(
            f"{run['sigma_db']:>6g} {d['fires']:>7} {d['true']:>7} {d['precision']:>9.4f} "
            f"{d['recall']:>7.4f} {d['short']:>6} {d['duplicate']:>5} {d['phantom']:>7} "
            f"{_f(e['mean'], 2):>8} {_f(e['p50'], 2):>6} {_f(e['p95'], 2):>6} "
            f"{_f(e['max'], 2):>6}"
        )
    lines.append("")
    lines.append(f"matched firings >= {TARGET_FIRE_P95_S:g} s late, by cause")
    lines.append(f"{'sigma':>6} " + " ".join(f"{c:>22}" for c in LATE_CAUSES))
    for run in r["runs"]:
        late = run["dwell"].get("late", {})
        lines.append(
            f"{run['sigma_db']:>6g} " + " ".join(f"{late.get(c, 0):>22}" for c in LATE_CAUSES)
        )
    lines.append("")
    lines.append("dwell triggers by threshold")
    lines.append(f"{'sigma':>6} {'T (s)':>6} {'precision':>9} {'recall':>7} {'short':>6}")
    for run in r["runs"]:
        for row in run["dwell"]["by_threshold"]:
            lines.append(
                f"{run['sigma_db']:>6g} {row['threshold_s']:>6g} {row['precision']:>9.4f} "
                f"{row['recall']:>7.4f} {row['short']:>6}"
            )
    if r.get("routing"):
        lines.extend(_routing_lines(r["routing"]))
    if r.get("sweep"):
        lines.append("")
        lines.append(f"presence sweep at sigma {TARGET_SIGMA:g} dB (one parameter at a time)")
        lines.append(
            f"{'parameter':>16} {'value':>7} {'precision':>9} {'recall':>7} {'short':>6} "
            f"{'dup':>5} {'phantom':>7} {'err p50':>7} {'err p95':>7} {'err max':>7}"
        )
        for s in r["sweep"]:
            lines.append(
                f"{s['parameter']:>16} {s['value']:>7g} {s['precision']:>9.4f} "
                f"{s['recall']:>7.4f} {s['short']:>6} {s['duplicate']:>5} {s['phantom']:>7} "
                f"{_f(s['fire_error_s']['p50'], 2):>7} {_f(s['fire_error_s']['p95'], 2):>7} "
                f"{_f(s['fire_error_s']['max'], 2):>7}"
            )
    t = r.get("targets")
    if t:
        lines.append("")
        for key in ("precision", "recall"):
            if key not in t:
                continue
            v = t[key]
            verdict = "met" if v["met"] else "NOT met"
            lines.append(
                f"target at {t['sigma_db']:g} dB: {key} >= {v['target']}: "
                f"{v['value']:.4f} ({verdict})"
            )
        for run in t.get("fire_time", {}).get("runs", []):
            verdict = "met" if run["met"] else "NOT met"
            lines.append(
                f"target at {run['sigma_db']:g} dB: fire-time error p95 < "
                f"{TARGET_FIRE_P95_S:g} s with precision >= {TARGET_PRECISION} and recall >= "
                f"{TARGET_RECALL}: p95 {_f(run['p95_s'], 2)} s, precision "
                f"{run['precision']:.4f}, recall {run['recall']:.4f} ({verdict})"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _parser() -> argparse.ArgumentParser:
    d = AccuracySettings()
    p = argparse.ArgumentParser(
        prog="floorwalker bench accuracy", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--sigmas", type=_floats, default=d.sigmas, help="dB, comma-separated")
    p.add_argument("--shoppers", type=int, default=d.shoppers, help="(%(default)s)")
    p.add_argument("--minutes", type=float, default=d.minutes, help="arrival window (%(default)s)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--thresholds", type=_floats, default=d.thresholds, help="dwell T, seconds")
    p.add_argument("--tolerance", type=float, default=d.tolerance_s, help="matching tolerance, s")
    p.add_argument("--registry", type=Path, default=d.registry)
    p.add_argument("--rules", type=Path, default=d.catalog, help="catalog for the routing part")
    p.add_argument("--no-routing", action="store_true", help="skip the staff routing part")
    p.add_argument(
        "--band-every",
        type=_floats,
        default=d.band_every,
        help="routing: band report s, comma-sep.",
    )
    p.add_argument(
        "--routing-sigmas", type=_floats, default=d.routing_sigmas, help="routing: dB, comma-sep."
    )
    p.add_argument(
        "--bell-round", type=float, default=d.bell_round_s, help="routing: a bell every N s"
    )
    p.add_argument("--sweep", action="store_true", help="also sweep presence parameters at 6 dB")
    for name in ("enter_score", "strong_rssi", "candidate_gap_s", "leave_after_s", "dwell_grace_s"):
        kind = type(getattr(d.presence, name))
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help="presence")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``floorwalker bench accuracy [--sigmas 2,4,6,8] [--sweep] [--json FILE] ...``"""
    args = _parser().parse_args(argv)
    presence = PresenceSettings()
    changes = {
        name: getattr(args, name)
        for name in (
            "enter_score",
            "strong_rssi",
            "candidate_gap_s",
            "leave_after_s",
            "dwell_grace_s",
        )
        if getattr(args, name) is not None
    }
    if changes:
        presence = replace(presence, **changes)
    cfg = AccuracySettings(
        sigmas=args.sigmas,
        shoppers=args.shoppers,
        minutes=args.minutes,
        seed=args.seed,
        thresholds=args.thresholds,
        tolerance_s=args.tolerance,
        registry=args.registry,
        catalog=args.rules,
        presence=presence,
        routing=not args.no_routing,
        band_every=args.band_every,
        routing_sigmas=args.routing_sigmas,
        bell_round_s=args.bell_round,
        sweep=args.sweep,
    )
    results = run_accuracy_bench(cfg, log=None if args.quiet else sys.stderr)
    print(format_report(results))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


__all__ = [
    "LATE_CAUSES",
    "MISSES",
    "AccuracySettings",
    "dwell_rules",
    "format_report",
    "late_causes",
    "main",
    "run_accuracy_bench",
    "score_dwell",
    "score_routing",
    "tagged_registry",
]


if __name__ == "__main__":
    raise SystemExit(main())
