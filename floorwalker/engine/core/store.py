"""The store unit: everything the core remembers about one store, and what it does.

In the spirit of bytewax's ``StatefulLogic``: one object per key (the store)
with :meth:`Store.on_item` for an event, :meth:`Store.on_notify` when one of
its own wake-ups is due, and :meth:`Store.snapshot` for its complete state as
bytes. Its clock, timer queue, reorder buffer, inbound dedup window, outbox
and pending moment are all its own; two stores share no mutable state, so a
store's events can be processed wherever its state is.

The store tells its router two things through callbacks: *wake me at* (every
timer and held event, so the router can interleave many stores in time order)
and *I emitted* (so the router drains outboxes in decision order).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable

from floorwalker.devices.events import BellPress, DeviceStatus, Event, Sighting, StaffAck
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.actions import Action
from floorwalker.engine.core.decide import Decider
from floorwalker.engine.core.handlers import EventHandlers, Handler
from floorwalker.engine.core.health import check_health
from floorwalker.engine.core.index import CompiledRules
from floorwalker.engine.core.movement import Movement
from floorwalker.engine.core.ports import Ports
from floorwalker.engine.core.presence import Change
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.snapshot import decode_into, encode_store
from floorwalker.engine.core.state import StoreState
from floorwalker.engine.core.timers import Held, Timer, TimerQueue
from floorwalker.engine.core.triggers import Triggers
from floorwalker.errors import GuardStoreError

Wake = Callable[[tuple[float, int, int]], None]
"""``wake((at, position, seq))``: the router must call :meth:`Store.on_notify` at ``at``."""

HOUSEKEEPING = frozenset({"sweep", "health"})


class Store:
    def __init__(
        self,
        registry: Registry,
        compiled: CompiledRules,
        settings: EngineSettings,
        ports: Ports,
        *,
        position: int = 0,
        wake: Wake | None = None,
        announce: Callable[[Store], None] | None = None,
    ) -> None:
        self.id = registry.store
        self.position = position
        """Order among the router's stores: breaks ties between stores due at one instant."""
        self.settings = settings
        self.ports = ports
        self.state = st = StoreState(registry, compiled, settings.presence, settings.staff_presence)
        self.clock = float("-inf")
        self.timers = TimerQueue()
        self.outbox: list[Action] = []
        self.held: list[Held] = []
        self.held_seq = 0
        self.recent_ids: dict[str, float] = {}
        """inbound message key -> until when a repeat of it is a duplicate"""
        self.sweeping = False
        self.draining = False
        """Set by a replay's final flush: the end of a capture is no device outage."""
        self.changed = False
        """Anything but a sighting happened since :meth:`take_changed` last asked."""
        self._sightings_then = 0
        self._wake = wake
        self._announce = announce
        self.decider = Decider(st, ports, settings, self.emit, self.schedule)
        self.triggers = Triggers(st, self.decider, self.schedule)
        self.movement = Movement(st, self.triggers, self.schedule, ports.profiles)
        self._handlers: dict[type, Handler] = EventHandlers(
            st, self.triggers, self.decider, ports
        ).table()
        self._handlers[Sighting] = self._on_sighting  # type: ignore[assignment]
        # Looked up once per event on the hot path: kept as plain attributes.
        self._lateness = settings.lateness_s
        self.stats = ports.stats
        """This store's own counters (the router reads and sums them)."""
        self._stats = ports.stats
        self._counts_in = ports.stats.events_by_type
        self.presence_states = st.presence.states
        self.observe = st.presence.observe
        """Presence's sighting step, bound once (the router calls it on the hot path)."""
        self.last_heard = st.last_heard

    # ------------------------------------------------------------------ events

    def on_item(self, event: Event, now: float) -> str | None:
        """Take one event (already checked against the router's clock); None if accepted."""
        if type(event) is Sighting and self._lateness <= 0.0:
            # The hot path (most traffic): straight to presence, nothing else.
            _st, gw, ts, beacon, zone, rssi, subject, staff, _dwell, _key = event
            if staff:
                self.on_staff_sighting(gw, ts, beacon, zone, rssi, subject, now)
            else:
                self._stats.sightings += 1
                self.last_heard[gw] = ts
                changes = self.observe(subject, zone, ts, rssi, beacon)
                if changes:
                    self.on_changes(changes, ts)
            if not self.sweeping:
                self._start_sweeping(ts)
            return None
        self.changed = True
        return self._ingest_other(event, now)

    def on_staff_sighting(
        self, gw: str, ts: float, beacon: str, zone: str, rssi: int, band: str, now: float
    ) -> None:
        """A staff band's sighting with no reorder window (on_item's path and the router's).

        What _ingest_other and _process do for it, without their general steps: a
        sighting is never deduplicated (presence drops repeats) and a band's
        movement decides nothing, so no moment is left to settle.
        """
        self._stats.sightings += 1  # also what tells take_changed the store changed
        if now > self.clock:
            self.clock = now
        self.last_heard[gw] = ts
        self.movement.staff_sighting(band, zone, ts, rssi, beacon)

    def on_changes(self, changes: tuple[Change, ...], ts: float) -> None:
        """What a shopper's sighting changed in presence (the router's path joins here)."""
        on_change = self.movement.on_change
        for change in changes:
            on_change(change)
        if self.decider.pending:
            self.decider.settle(ts)

    def _ingest_other(self, event: Event, now: float) -> str | None:
        """Everything but a shopper sighting with no reorder window (the rarer paths)."""
        if now > self.clock:
            self.clock = now
        kind = type(event)
        if kind is not Sighting and kind is not DeviceStatus and self._is_duplicate(event):
            self._stats.rejected["duplicate"] += 1
            return "duplicate"
        counts = self._counts_in
        counts[kind] = counts.get(kind, 0) + 1
        lateness = self._lateness
        if lateness <= 0.0:
            return self._process(event)
        if event.ts <= now - lateness:
            self._stats.late_accepted += 1
            return self._process(event)
        self.held_seq += 1
        heapq.heappush(self.held, Held(event.ts, event.order_key, self.held_seq, event))
        if self._wake is not None:
            self._wake((event.ts + lateness, self.position, 2 * self.held_seq + 1))
        return None

    def _is_duplicate(self, event: Event) -> bool:
        # The order key names the device and its message id: two bells may both
        # number their presses from 1.
        key = f"in:{event.store}:{event.order_key}"
        ttl = self.settings.dedup_ttl_s
        until = self.recent_ids.get(key)
        if until is not None and until > event.ts:
            return True
        self.recent_ids[key] = event.ts + ttl
        try:
            return not self.ports.guards.first_seen(key, ttl, event.ts)
        except GuardStoreError:
            # Shared dedup unreachable: the local memory above still stops
            # redeliveries to this process; let the event through.
            self._stats.guard_errors += 1
            return False

    def _process(self, event: Event) -> str | None:
        """Handle one event; a handler may still refuse it (an ack of an unknown alert)."""
        self.state.last_heard[_device_of(event)] = event.ts
        refused = self._handlers[type(event)](event)
        if self.decider.pending:
            self.decider.settle(event.ts)
        if not self.sweeping:
            self._start_sweeping(event.ts)
        return refused

    def _on_sighting(self, ev: Sighting) -> None:
        if ev.is_staff:
            self.movement.staff_sighting(ev.subject, ev.zone, ev.ts, ev.rssi, ev.beacon)
            return
        for change in self.state.presence.observe(ev.subject, ev.zone, ev.ts, ev.rssi, ev.beacon):
            self.movement.on_change(change)

    # ------------------------------------------------------------------ time

    def schedule(self, due: float, kind: str, args: tuple[Hashable, ...]) -> None:
        seq = self.timers.schedule(due, kind, args)
        if self._wake is not None:
            self._wake((due + self._lateness, self.position, 2 * seq))

    def wakeups(self) -> list[tuple[float, int, int]]:
        """Every wake-up this store needs, to hand to a router after a restore."""
        lateness, pos = self._lateness, self.position
        out = [(t.due + lateness, pos, 2 * t.seq) for t in self.timers.heap]
        out += [(h.ts + lateness, pos, 2 * h.seq + 1) for h in self.held]
        return out

    def on_notify(self, now: float, at: float) -> None:
        """One wake-up: process the earliest held event or timer if it is due by ``at``."""
        if now > self.clock:
            self.clock = now
        lateness = self._lateness
        held, heap = self.held, self.timers.heap
        if held and held[0].ts + lateness <= at and (not heap or held[0].ts <= heap[0].due):
            self.changed = True
            self._process(heapq.heappop(held).event)
        elif heap and heap[0].due + lateness <= at:
            self.changed = True
            self._fire_timer(heapq.heappop(heap))

    def _fire_timer(self, timer: Timer) -> None:
        kind, args, due = timer.kind, timer.args, timer.due
        if kind == "sweep":
            self._sweep(due)
            return
        if kind == "health":
            self._check_health(due)
            return
        movement = self.movement
        if kind == "dwell":
            if args[5] != self.state.generation:
                return  # set under rules since reloaded; reload re-armed the dwell
            movement.on_dwell(str(args[1]), str(args[2]), float(args[3]), float(args[4]), due)  # type: ignore[arg-type]
        elif kind == "leave":
            movement.on_leave_timer(str(args[1]), bool(args[2]), due)
        elif kind == "absence":
            self.triggers.on_absence(str(args[1]), str(args[2]), float(args[3]), due)  # type: ignore[arg-type]
        elif kind == "escalate":
            self.decider.pager.escalate(str(args[1]), int(args[2]), due)  # type: ignore[call-overload]
        elif kind == "unanswered":
            self.decider.pager.on_unanswered(str(args[1]), due)
        self.decider.settle(due)

    # ------------------------------------------------------------------ housekeeping

    def _start_sweeping(self, now: float) -> None:
        self.sweeping = True
        self.schedule(now + self.settings.sweep_every_s, "sweep", ())
        self.start_health(now)

    def start_health(self, now: float) -> None:
        """Start watching device health (from the first message the router took)."""
        st = self.state
        if st.first_heard is None:
            st.first_heard = now
            self.schedule(now + self.settings.health_every_s, "health", (self.id,))

    def _sweep(self, now: float) -> None:
        """Forget state that can no longer matter (and location state past its TTL)."""
        st, ports = self.state, self.ports
        for shopper, start in st.sweep(now, self.settings):
            # The visit leaves the engine's memory; the profile keeps its date.
            ports.profiles.record_visit(shopper, start)
        for alert_id in st.alerts.expire(now, self.settings.alert_keep_s):
            ports.journal_drop(self.id, alert_id)
        self.recent_ids = {k: v for k, v in self.recent_ids.items() if v > now}
        self.sweeping = st.has_state() or bool(self.recent_ids)
        if self.sweeping:
            self.schedule(now + self.settings.sweep_every_s, "sweep", ())

    def _check_health(self, now: float) -> None:
        if self.draining:
            return
        check_health(self.state, self.decider, now, self.settings.device_silence_s)
        self.decider.settle(now)
        self.schedule(now + self.settings.health_every_s, "health", (self.id,))

    # ------------------------------------------------------------------ outbox

    def emit(self, action: Action) -> None:
        self.outbox.append(action)
        if self._announce is not None:
            self._announce(self)

    def take_outbox(self) -> list[Action]:
        out, self.outbox = self.outbox, []
        return out

    # ------------------------------------------------------------------ operations

    def reload(self, registry: Registry, compiled: CompiledRules) -> None:
        """New rules (and registry) for this store; presence, alerts and timers stay."""
        self.state.rebind(registry, compiled)
        self.movement.rearm_dwells(after=self.clock)
        self.changed = True

    def forget(self, shopper: str) -> int:
        self.changed = True
        return self.state.forget(shopper)

    def take_changed(self) -> bool:
        """Did anything happen since the last call (snapshots of changed stores only)?

        A sighting the router takes itself is not flagged (one store less per event
        on the hottest path); the sighting count it keeps tells instead.
        """
        seen = self._stats.sightings
        changed = self.changed or seen != self._sightings_then
        self.changed = False
        self._sightings_then = seen
        return changed

    def snapshot(self) -> bytes:
        """The store's complete state as versioned bytes (see :mod:`.snapshot`)."""
        return encode_store(self)

    def restore(self, data: bytes) -> None:
        """Replace this store's state with a snapshot of it (raises ``StateError``).

        A snapshot taken under other rules is taken like a reload: dwells under way
        are re-armed under the thresholds the store runs now.
        """
        if not decode_into(self, data):
            self.state.generation += 1
            self.movement.rearm_dwells(after=self.clock)
        self.changed = False
        self._sightings_then = self._stats.sightings


def _device_of(event: Event) -> str:
    if isinstance(event, Sighting):
        return event.gateway
    if isinstance(event, BellPress):
        return event.bell
    if isinstance(event, StaffAck):
        return event.band
    if isinstance(event, DeviceStatus):
        return event.device
    return event.terminal
