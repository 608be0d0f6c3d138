"""The engine: a thin router over store units.

The core takes typed events (:mod:`floorwalker.devices.events`) and the time,
and produces actions (:mod:`floorwalker.engine.core.actions`). It never reads
the wall clock and does no I/O of its own: a runner calls

* :meth:`Engine.advance_to` with the current time (wall clock when live, the
  capture's timestamps in replay) — timers due by then fire;
* :meth:`Engine.ingest` with each decoded event — it returns a rejection
  reason or None;
* :meth:`Engine.drain` to take the actions decided so far and publish them.

Same events, same clock calls, same guard state: same actions, same ids.

Everything that decides lives in one :class:`~floorwalker.engine.core.store.Store`
per store; the router only checks an event against its clock, hands it to its
store, and keeps a heap of the stores' wake-ups so that timers and held events
of many stores fire in one time order. A store can be saved
(:meth:`Engine.snapshot_store`) and restored into another engine
(:meth:`Engine.restore_store`) that serves the same store.

Ordering. With ``lateness_s = 0`` (the default, lowest latency) an event is
processed as it arrives. With ``lateness_s = L > 0`` events are held until the
clock is ``L`` past their timestamp and then processed in timestamp order,
interleaved with timers: any reordering of arrivals within ``L`` then yields
the same decisions. Either way, events older than ``max_late_s`` or newer than
``max_future_s`` relative to the clock are rejected as ``clock_skew``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial

from floorwalker.devices.events import Event, Sighting
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.actions import Action, Decision
from floorwalker.engine.core.alerts import AlertJournal, NoJournal
from floorwalker.engine.core.guards import GuardStore, InMemoryGuardStore
from floorwalker.engine.core.index import compile_rules
from floorwalker.engine.core.journal import restore_alert
from floorwalker.engine.core.ports import Ports
from floorwalker.engine.core.profiles import ProfileBook, ProfileSource
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.snapshot import pack, peek_label, unpack
from floorwalker.engine.core.stats import EngineStats
from floorwalker.engine.core.store import HOUSEKEEPING as _QUIET
from floorwalker.engine.core.store import Store
from floorwalker.errors import GuardStoreError, StateError
from floorwalker.rules.model import RuleSet

_NEVER = float("-inf")
"""The clock before any time was given."""
_NOTHING: list[Action] = []  # shared, never mutated: what drain() returns when idle
_ENGINE_MAGIC = b"FWEN"


@dataclass(frozen=True, slots=True)
class Gauges:
    active_shoppers: int
    alerts: Mapping[str, int]
    """by state: open (paged, unanswered), acknowledged, unanswered (chain ended), done"""
    pending_timers: int
    unhealthy_devices: int

    @property
    def open_alerts(self) -> int:
        return self.alerts.get("open", 0)


class Engine:
    """One engine core serving the stores of the registries it is given."""

    def __init__(
        self,
        rules: RuleSet,
        registries: Mapping[str, Registry],
        *,
        profiles: ProfileSource | None = None,
        guards: GuardStore | None = None,
        settings: EngineSettings | None = None,
        on_decision: Callable[[Decision], None] | None = None,
        journal: AlertJournal | None = None,
    ) -> None:
        self.settings = settings or EngineSettings()
        self._own_stats = EngineStats()
        """What no store counted: events for stores this engine does not serve, and the
        like. Each store counts into its own :class:`EngineStats` (its ports')."""
        self.ports = Ports(
            guards=guards if guards is not None else InMemoryGuardStore(),
            profiles=profiles if profiles is not None else ProfileBook(),
            journal=journal if journal is not None else NoJournal(),
            stats=self._own_stats,
            on_decision=on_decision,
        )
        self.clock = _NEVER
        self._inline: type | None = Sighting if self.settings.lateness_s <= 0.0 else None
        """The event class the router takes itself (none with a reorder window)."""
        self._leave_after = self.settings.presence.leave_after_s
        self._min_rssi = self.settings.presence.min_rssi
        self._max_future = self.settings.max_future_s
        self._max_late = self.settings.max_late_s
        self._wakes: list[tuple[float, int, int]] = []
        """(when, store position, seq): a heap of the stores' wake-ups, stale ones included"""
        self._emitted: list[Store] = []
        """The store of every action emitted since the last drain, in decision order."""
        self.compiled = compile_rules(rules, registries)
        self.stores: dict[str, Store] = {}
        self._by_position: list[Store] = []
        for registry in registries.values():
            self._add_store(registry)

    def _add_store(self, registry: Registry) -> Store:
        store = Store(
            registry,
            self.compiled,
            self.settings,
            # Per-store counters: metrics carry a store label at no cost to the hot path.
            replace(self.ports, stats=EngineStats()),
            position=len(self._by_position),
            # A C call, no frame: a store pushes (when, position, seq) onto the router's heap.
            wake=partial(heapq.heappush, self._wakes),
            announce=self._emitted.append,
        )
        self.stores[store.id] = store
        self._by_position.append(store)
        return store

    # ------------------------------------------------------------------ runner API

    def ingest(self, event: Event) -> str | None:
        """Take one decoded event; return a rejection reason, or None if accepted."""
        if type(event) is self._inline:
            # Most traffic: a shopper's sighting with no reorder window, taken here
            # without Store.on_item's general checks. The commonest of all, a shopper
            # seen again in the zone they are in, needs no call at all (bench core
            # measured the call at ~8 % of the presence-only rate).
            # (_inline is Sighting or None, which mypy cannot narrow by; a cast costs a call)
            store_id, gw, ts, beacon, zone, rssi, subject, staff, _dwell, _key = event  # type: ignore[misc]
            store = self.stores.get(store_id)
            if (
                store is not None
                and store.sweeping
                # The skew window, worked out from the clock here rather than kept up
                # by every advance_to: a replay's event is at the clock itself.
                and (
                    ts == (clock := self.clock)
                    or clock - self._max_late <= ts <= clock + self._max_future
                )
            ):
                if staff:
                    store.on_staff_sighting(gw, ts, beacon, zone, rssi, subject, clock)
                    return None
                store.stats.sightings += 1
                store.last_heard[gw] = ts
                p = store.presence_states.get(subject)
                if (
                    p is not None
                    and p.cand is None
                    and zone == p.zone
                    and ts > p.seen
                    and ts - p.last_seen < self._leave_after
                    and rssi >= self._min_rssi
                ):
                    p.seen = p.last_seen = ts
                    p.last_zone = zone
                    return None
                changes = store.observe(subject, zone, ts, rssi, beacon)
                if changes:
                    store.on_changes(changes, ts)
                return None
        return self._ingest(event)

    def _ingest(self, event: Event) -> str | None:
        store = self.stores.get(event.store)
        if store is None:
            self._own_stats.rejected["unknown_store"] += 1
            return "unknown_store"
        ts, clock = event.ts, self.clock
        if clock != _NEVER and (ts > clock + self._max_future or ts < clock - self._max_late):
            # Too far ahead of the clock or behind it (nothing is, before the clock starts).
            store.stats.rejected["clock_skew"] += 1
            return "clock_skew"
        if not store.sweeping:
            # Device health is watched in every store from the first message the
            # engine takes, so a store whose devices never speak is still reported.
            for other in self._by_position:
                other.start_health(ts)
        return store.on_item(event, self.clock)

    def advance_to(self, now: float) -> None:
        """Move the clock to ``now``: release held events and fire due timers, in time order."""
        if now <= self.clock:
            return
        self.clock = now
        wakes = self._wakes
        if wakes and wakes[0][0] <= now:
            self._run_due(now)

    def _set_clock(self, now: float) -> None:
        self.clock = now

    def _run_due(self, now: float) -> int:
        """Process every wake-up due by ``now``; return how many there were."""
        wakes, stores = self._wakes, self._by_position
        n = 0
        while wakes and wakes[0][0] <= now:
            at, position, _seq = heapq.heappop(wakes)
            stores[position].on_notify(now, at)
            n += 1
        return n

    def drain(self) -> list[Action]:
        """Take the actions decided since the last call, in decision order."""
        order = self._emitted
        if not order:
            return _NOTHING  # called once per event: don't allocate for the usual nothing
        first = order[0]
        if all(store is first for store in order):
            order.clear()
            return first.take_outbox()
        # Each store's outbox once (a store that acted twice appears twice in order).
        outboxes = {id(s): iter(s.take_outbox()) for s in dict.fromkeys(order)}
        out = [next(outboxes[id(s)]) for s in order]
        order.clear()
        return out

    def feed(self, event: Event) -> str | None:
        """Advance the clock to the event's ``ts``, then ingest it: one replay step."""
        ts = event.ts
        if ts > self.clock:
            self.clock = ts
            wakes = self._wakes
            if wakes and wakes[0][0] <= ts:
                self._run_due(ts)
        return self.ingest(event)

    def next_due(self) -> float | None:
        """When a timer or held event is due next, on the events' clock (before lateness)."""
        return self._wakes[0][0] - self.settings.lateness_s if self._wakes else None

    def flush(self, horizon_s: float = 86400.0) -> None:
        """Process every held event and every timer due within ``horizon_s`` of the clock.

        Replay calls this at the end of a capture so that what the capture set in
        motion (a dwell about to complete, an absence window, an escalation) still
        happens, as it would have live.
        """
        start = self.clock if self.clock > _NEVER else 0.0
        end = start + horizon_s
        lateness = self.settings.lateness_s
        # After the capture's last message every device falls silent; that is the
        # end of the recording, not an outage to page the manager about.
        for store in self._by_position:
            store.draining = True
        self.advance_to(start + lateness)
        while True:
            due = min(
                (t.due for s in self._by_position for t in s.timers.heap if t.kind not in _QUIET),
                default=None,
            )
            if due is None or due > end:
                return
            if due + lateness > self.clock:
                self.advance_to(due + lateness)
            elif not self._run_past_due():
                return

    def _run_past_due(self) -> bool:
        """Fire what fell due while the clock stood still (a late event's timers, a dwell
        backdated to a slow device's first report); False if nothing could fire."""
        return self._run_due(self.clock) > 0

    # ------------------------------------------------------------------ state

    def snapshot_store(self, store: str) -> bytes:
        """One store's complete state as versioned bytes."""
        unit = self.stores[store]
        unit.clock = max(unit.clock, self.clock)
        return unit.snapshot()

    def restore_store(self, data: bytes) -> str:
        """Replace a store's state with a snapshot of it; return the store id."""
        doc_store = _store_of(data)
        unit = self.stores.get(doc_store)
        if unit is None:
            raise StateError(
                f"snapshot is of store {doc_store!r}, which this engine does not serve"
            )
        unit.restore(data)
        # The router's wake-ups for this store now point at state that is gone.
        # In place: every store's wake callback holds this very list.
        self._wakes[:] = [w for w in self._wakes if w[1] != unit.position]
        self._wakes.extend(unit.wakeups())
        heapq.heapify(self._wakes)
        self._emitted.extend(unit for _ in unit.outbox)
        return unit.id

    def changed_stores(self) -> list[str]:
        """Ids of the stores that changed since the previous call (the call clears them)."""
        return [s.id for s in self._by_position if s.take_changed()]

    def snapshot(self) -> bytes:
        """Every store and the router's clock, in one blob (replay's state file)."""
        stores = {sid: self.snapshot_store(sid).hex() for sid in self.stores}
        clock = self.clock if self.clock > _NEVER else None
        return pack({"clock": clock, "stores": stores}, magic=_ENGINE_MAGIC, label="")

    def restore(self, data: bytes) -> None:
        """Take back what :meth:`snapshot` saved (into an engine serving the same stores)."""
        doc = unpack(data, magic=_ENGINE_MAGIC, migrations={}, what="engine state")
        stores = doc.get("stores")
        if not isinstance(stores, dict) or set(stores) != set(self.stores):
            raise StateError(
                f"engine state holds stores {sorted(stores or {})}, "
                f"this engine serves {sorted(self.stores)}"
            )
        for blob in stores.values():
            self.restore_store(bytes.fromhex(blob))
        if doc.get("clock") is not None:
            self._set_clock(float(doc["clock"]))

    # ------------------------------------------------------------------ operations

    def restore_alerts(self, records: Iterable[dict[str, object]]) -> int:
        """Take back open alerts from a journal after a restart; re-arm their escalations.

        The journal is written through on every change, so it wins over a store
        snapshot that may be up to a snapshot interval old.
        """
        restored = 0
        for rec in records:
            store = self.stores.get(str(rec.get("store")))
            end_after = self.settings.unanswered_after_s
            if store is not None and restore_alert(
                store.state, store.schedule, dict(rec), end_after
            ):
                restored += 1
        return restored

    def reload(self, rules: RuleSet, registries: Mapping[str, Registry] | None = None) -> None:
        """Swap in new rules (and registries) without losing presence, alerts or timers."""
        regs = registries or {sid: s.state.registry for sid, s in self.stores.items()}
        self.compiled = compile_rules(rules, regs)
        for sid, reg in regs.items():
            if sid in self.stores:
                self.stores[sid].reload(reg, self.compiled)
            else:
                self._add_store(reg)

    def forget_shopper(self, shopper: str) -> int:
        """Erase a shopper from every store of this engine (privacy)."""
        removed = sum(s.forget(shopper) for s in self._by_position)
        try:
            removed += self.ports.guards.forget_shopper(shopper)
        except GuardStoreError:
            self._own_stats.guard_errors += 1
        return removed

    @property
    def stats(self) -> EngineStats:
        """Every counter summed over the stores: a copy to read (summaries, reports).

        Counting goes through :meth:`stats_for`; a count added to this copy is lost.
        """
        return EngineStats.merged([self._own_stats, *(s.stats for s in self._by_position)])

    def stats_for(self, store: str | None) -> EngineStats:
        """One store's own live counters; the engine's, for a store it does not serve."""
        unit = self.stores.get(store) if store is not None else None
        return unit.stats if unit is not None else self._own_stats

    def gauges(self, store: str | None = None) -> Gauges:
        """How much the engine holds right now: in one store, or summed over them all."""
        stores = self._by_position if store is None else [self.stores[store]]
        return Gauges(
            active_shoppers=sum(len(s.state.presence) for s in stores),
            alerts=_summed(s.state.alerts.counts() for s in stores),
            pending_timers=sum(len(s.timers) for s in stores),
            unhealthy_devices=sum(len(s.state.unhealthy) for s in stores),
        )

    def run(self, events: Iterable[Event]) -> list[Action]:
        """Convenience for tests and replay: feed events on their own clock, then flush."""
        for event in events:
            self.feed(event)
        self.flush()
        return list(self.drain())


def _store_of(data: bytes) -> str:
    """The store id a snapshot names (in its header), read without restoring it."""
    return peek_label(data)


def _summed(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out
