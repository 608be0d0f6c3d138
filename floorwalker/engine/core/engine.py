"""The deterministic engine core.

The core takes typed events (:mod:`floorwalker.devices.events`) and the time,
and produces actions (:mod:`floorwalker.engine.core.actions`). It never reads the
wall clock and does no I/O of its own: a runner calls

* :meth:`Engine.advance_to` with the current time (wall clock when live, the
  capture's timestamps in replay) — timers due by then fire;
* :meth:`Engine.ingest` with each decoded event — it returns a rejection
  reason or None;
* :meth:`Engine.drain` to take the actions decided so far and publish them.

Same events, same clock calls, same guard state: same actions, same ids.

Ordering. With ``lateness_s = 0`` (the default, lowest latency) an event is
processed as it arrives. With ``lateness_s = L > 0`` events are held until the
clock is ``L`` past their timestamp and then processed in timestamp order,
interleaved with timers: any reordering of arrivals within ``L`` then yields
the same decisions. Either way, events older than ``max_late_s`` or newer than
``max_future_s`` relative to the clock are rejected as ``clock_skew``.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from floorwalker.devices.events import (
    BellPress,
    Checkout,
    CouponRedeemed,
    DeviceStatus,
    Event,
    PosItem,
    Sighting,
    StaffAck,
)
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.actions import Action, Decision
from floorwalker.engine.core.alerts import AlertJournal, NoJournal, OpenAlert
from floorwalker.engine.core.context import Context
from floorwalker.engine.core.decide import Decider
from floorwalker.engine.core.guards import GuardStore, InMemoryGuardStore
from floorwalker.engine.core.index import (
    ABS_AFTER,
    ABS_MISSING,
    BOUGHT,
    COUNT_OF,
    COUNT_RESET,
    EMPTY,
    FIRE,
    SEQ_FIRST,
    SEQ_THEN,
    Listener,
    Listeners,
    compile_rules,
)
from floorwalker.engine.core.presence import Change, PresenceSettings
from floorwalker.engine.core.profiles import ProfileBook, ProfileSource
from floorwalker.engine.core.state import StoreState
from floorwalker.engine.core.stats import EngineStats
from floorwalker.engine.core.timers import TimerQueue
from floorwalker.errors import GuardStoreError
from floorwalker.rules.model import (
    Absence,
    AlertSpec,
    ByRole,
    Count,
    Pattern,
    Rule,
    RuleSet,
    Sequence,
    Single,
    SourceRef,
)

DWELL_POLL_S = 1.0
_NOTHING: list[Action] = []  # shared, never mutated: what drain() returns when idle

#: Built in, not in any rule file: a silent gateway or an offline device pages the manager.
DEVICE_HEALTH_RULE = Rule(
    id="device-health",
    when=Single(Pattern("visit_start")),  # never dispatched: the engine raises it itself
    actions=(
        AlertSpec(
            to=(ByRole("manager"),),
            message="Device {device} is {reason} - please check it.",
            priority="high",
            include_shopper=False,
        ),
    ),
    source=SourceRef("<built-in>", 1),
    description="A gateway silent, or a device offline, for longer than device_silence_s.",
)


@dataclass(frozen=True)
class EngineSettings:
    presence: PresenceSettings = field(default_factory=PresenceSettings)
    staff_presence: PresenceSettings = field(
        default_factory=lambda: PresenceSettings(visit_gap_s=12 * 3600.0)
    )
    lateness_s: float = 0.0
    """Reorder window: hold events this long and process them in timestamp order."""
    max_late_s: float = 60.0
    max_future_s: float = 30.0
    dedup_ttl_s: float = 86400.0
    location_ttl_s: float = 86400.0
    """Location-derived state (visit history) is forgotten after this (privacy)."""
    alert_keep_s: float = 3600.0
    sweep_every_s: float = 60.0
    device_silence_s: float = 300.0
    """A gateway silent, or any device reporting offline, this long pages the manager."""
    health_every_s: float = 15.0


class _Held(NamedTuple):
    ts: float
    order_key: str
    seq: int
    event: Event


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
        self.journal: AlertJournal = journal if journal is not None else NoJournal()
        self._draining = False
        self.profiles: ProfileSource = profiles if profiles is not None else ProfileBook()
        self.guards: GuardStore = guards if guards is not None else InMemoryGuardStore()
        self.stats = EngineStats()
        self.clock = float("-inf")
        self._future_limit = float("inf")
        self._late_limit = float("-inf")
        self._lateness = self.settings.lateness_s
        self._max_future = self.settings.max_future_s
        self._max_late = self.settings.max_late_s
        self._leave_after = self.settings.presence.leave_after_s
        self._min_rssi = self.settings.presence.min_rssi
        self._counts_in = self.stats.events_by_type
        self.timers = TimerQueue()
        self._outbox: list[Action] = []
        self._held: list[_Held] = []
        self._held_seq = 0
        self._recent_ids: dict[str, float] = {}
        self._sweeping = False
        self.compiled = compile_rules(rules, registries)
        self.stores = {sid: self._new_store(reg) for sid, reg in registries.items()}
        self.decider = Decider(self, on_decision)
        self._composite: dict[int, Callable[[StoreState, Rule, tuple[str, str], Context], None]] = {
            SEQ_FIRST: self._seq_first,
            SEQ_THEN: self._seq_then,
            ABS_AFTER: self._abs_after,
            ABS_MISSING: self._abs_missing,
            COUNT_OF: self._count,
            COUNT_RESET: self._count_reset,
        }
        self._handlers: dict[type, Callable[[StoreState, Event], str | None]] = {
            Sighting: self._on_sighting,  # type: ignore[dict-item]
            BellPress: self._on_bell,  # type: ignore[dict-item]
            PosItem: self._on_pos_item,  # type: ignore[dict-item]
            Checkout: self._on_checkout,  # type: ignore[dict-item]
            CouponRedeemed: self._on_coupon,  # type: ignore[dict-item]
            StaffAck: self._on_ack,  # type: ignore[dict-item]
            DeviceStatus: self._on_status,  # type: ignore[dict-item]
        }

    def _new_store(self, registry: Registry) -> StoreState:
        return StoreState(
            registry,
            self.compiled.stores[registry.store],
            self.settings.presence,
            self.settings.staff_presence,
        )

    # ------------------------------------------------------------------ runner API

    def ingest(self, event: Event) -> str | None:
        """Take one decoded event; return a rejection reason, or None if accepted."""
        store = self.stores.get(event.store)
        if store is None:
            return self._reject("unknown_store")
        ts = event.ts
        if ts > self._future_limit or ts < self._late_limit:
            return self._reject("clock_skew")
        if type(event) is Sighting and self._lateness <= 0.0 and not event.is_staff:
            # The hot path (most traffic): straight to presence, nothing else.
            self.stats.sightings += 1
            _st, _gw, _ts, _beacon, zone, rssi, subject, _staff, _dwell, _key = event
            store.last_heard[_gw] = ts
            p = store.presence.states.get(subject)
            if (
                p is not None
                and p.cand is None
                and zone == p.zone
                and ts > p.seen
                and ts - p.last_seen < self._leave_after
                and rssi >= self._min_rssi
            ):
                # The commonest sighting of all: again the zone they are in. This is
                # PresenceTracker.observe's same-zone case, inlined.
                p.seen = p.last_seen = ts
                p.last_zone = zone
                if not self._sweeping:
                    self._start_sweeping(ts)
                return None
            # Other sightings: _process + _on_sighting, inlined too (two calls fewer on
            # ~10 % of all events; measured slower through the general path).
            changes = store.presence.observe(subject, zone, ts, rssi, _beacon)
            if changes:
                for change in changes:
                    self._on_change(store, change)
                if self.decider.pending:
                    self.decider.settle(ts)
            if not self._sweeping:
                self._start_sweeping(ts)
            return None
        return self._ingest_other(store, event, type(event), ts)

    def _ingest_other(self, store: StoreState, event: Event, kind: type, ts: float) -> str | None:
        """Everything but a shopper sighting with no reorder window (the rarer paths)."""
        counts = self._counts_in
        if kind is not Sighting and kind is not DeviceStatus and self._is_duplicate(event):
            return self._reject("duplicate")
        counts[kind] = counts.get(kind, 0) + 1
        if self._lateness <= 0.0:
            return self._process(store, event)
        if ts <= self.clock - self._lateness:
            self.stats.late_accepted += 1
            return self._process(store, event)
        self._held_seq += 1
        heapq.heappush(self._held, _Held(ts, event.order_key, self._held_seq, event))
        return None

    def advance_to(self, now: float) -> None:
        """Move the clock to ``now``: release held events and fire due timers, in time order."""
        if now <= self.clock:
            return
        self.clock = now
        self._future_limit = now + self._max_future
        self._late_limit = now - self._max_late
        watermark = now - self._lateness
        heap = self.timers.heap
        held = self._held
        # Fast path: nothing due (the common case, once per event).
        if (not heap or heap[0].due > watermark) and (not held or held[0].ts > watermark):
            return
        while True:
            next_timer = heap[0].due if heap else None
            if (
                held
                and held[0].ts <= watermark
                and (next_timer is None or held[0].ts <= next_timer)
            ):
                event = heapq.heappop(held).event
                self._process(self.stores[event.store], event)
                continue
            timer = self.timers.pop_due(watermark)
            if timer is None:
                return
            self._fire_timer(timer.kind, timer.args, timer.due)

    def drain(self) -> list[Action]:
        """Take the actions decided since the last call, in decision order."""
        out = self._outbox
        if not out:
            return _NOTHING  # called once per event: don't allocate for the usual nothing
        self._outbox = []
        return out

    def feed(self, event: Event) -> str | None:
        """Advance the clock to the event's ``ts``, then ingest it: one replay step.

        Same as ``advance_to(event.ts); ingest(event)``, in one call because it
        runs once per event.
        """
        ts = event.ts
        if ts > self.clock:
            heap = self.timers.heap
            if self._held or (heap and heap[0].due <= ts - self._lateness):
                self.advance_to(ts)
            else:
                self.clock = ts
                self._future_limit = ts + self._max_future
                self._late_limit = ts - self._max_late
        return self.ingest(event)

    def flush(self, horizon_s: float = 86400.0) -> None:
        """Process every held event and every timer due within ``horizon_s`` of the clock.

        Replay calls this at the end of a capture so that what the capture set in
        motion (a dwell about to complete, an absence window, an escalation) still
        happens, as it would have live.
        """
        start = self.clock if self.clock > float("-inf") else 0.0
        end = start + horizon_s
        # After the capture's last message every device falls silent; that is the
        # end of the recording, not an outage to page the manager about.
        self._draining = True
        self.advance_to(start + self.settings.lateness_s)
        while True:
            due = self._next_real_timer()
            if due is None or due > end:
                return
            self.advance_to(max(due, self.clock) + self.settings.lateness_s)

    def _next_real_timer(self) -> float | None:
        """The earliest timer that is not housekeeping (one pass, no sort of the heap)."""
        return min(
            (t.due for t in self.timers.heap if t.kind not in ("sweep", "health")), default=None
        )

    def emit(self, action: Action) -> None:
        self._outbox.append(action)

    # ------------------------------------------------------------------ bookkeeping

    def _reject(self, reason: str) -> str:
        self.stats.rejected[reason] += 1
        return reason

    def _is_duplicate(self, event: Event) -> bool:
        # The order key names the device and its message id: two bells may both
        # number their presses from 1.
        key = f"in:{event.store}:{event.order_key}"
        ttl = self.settings.dedup_ttl_s
        until = self._recent_ids.get(key)
        if until is not None and until > event.ts:
            return True
        self._recent_ids[key] = event.ts + ttl
        try:
            return not self.guards.first_seen(key, ttl, event.ts)
        except GuardStoreError:
            # Shared dedup unreachable: the local memory above still stops
            # redeliveries to this process; let the event through.
            self.stats.guard_errors += 1
            return False

    def _process(self, store: StoreState, event: Event) -> str | None:
        """Handle one event; a handler may still refuse it (an ack of an unknown alert)."""
        store.last_heard[_device_of(event)] = event.ts
        refused = self._handlers[type(event)](store, event)
        if self.decider.pending:
            self.decider.settle(event.ts)
        if not self._sweeping:
            self._start_sweeping(event.ts)
        return refused

    def _start_sweeping(self, now: float) -> None:
        self._sweeping = True
        self.timers.schedule(now + self.settings.sweep_every_s, "sweep", ())
        for st in self.stores.values():
            if st.first_heard is None:
                st.first_heard = now
                self.timers.schedule(now + self.settings.health_every_s, "health", (st.store,))

    # ------------------------------------------------------------------ events

    def _on_sighting(self, st: StoreState, ev: Sighting) -> None:
        if ev.is_staff:
            for change in st.staff.presence.observe(ev.subject, ev.zone, ev.ts, ev.rssi, ev.beacon):
                if change.kind == "enter":
                    self._watch_leave(st, ev.subject, staff=True)
            return
        changes = st.presence.observe(ev.subject, ev.zone, ev.ts, ev.rssi, ev.beacon)
        if changes:
            for change in changes:
                self._on_change(st, change)

    def _on_change(self, st: StoreState, change: Change) -> None:
        subject, zone, at = change.subject, change.zone, change.at
        if change.kind == "visit":
            previous = st.begin_visit(subject, at)
            if previous is not None:
                self.profiles.record_visit(subject, previous)
            ctx = Context("visit_start", st.store, at, f"visit:{subject}:{at!r}")
            ctx.shopper, ctx.zone = subject, zone
            self._dispatch(st, st.index.visit, ctx)
        elif change.kind == "enter":
            ctx = Context("enter", st.store, change.at, f"enter:{subject}:{zone}:{at!r}")
            ctx.shopper, ctx.zone = subject, zone
            self._dispatch(st, st.index.enter.get(zone, EMPTY), ctx)
            self._arm_dwell(st, subject, zone, at, after=float("-inf"))
            if zone in st.index.leave:
                self._watch_leave(st, subject, staff=False)
        else:
            ctx = Context("leave", st.store, change.at, f"leave:{subject}:{zone}:{at!r}")
            ctx.shopper, ctx.zone = subject, zone
            self._dispatch(st, st.index.leave.get(zone, EMPTY), ctx)

    def _arm_dwell(
        self, st: StoreState, subject: str, zone: str, since: float, after: float
    ) -> None:
        """Set the timer for the first dwell threshold of ``zone`` due after ``after``."""
        for threshold, _ in st.index.dwell.get(zone, ()):
            if since + threshold > after:
                args = (st.store, subject, zone, since, threshold, st.generation)
                self.timers.schedule(since + threshold, "dwell", args)
                return

    def _watch_leave(self, st: StoreState, subject: str, *, staff: bool) -> None:
        tracker = st.staff.presence if staff else st.presence
        watched = st.staff_leave_watch if staff else st.leave_watch
        due = tracker.leave_due(subject)
        if due is not None and subject not in watched:
            watched.add(subject)
            self.timers.schedule(due, "leave", (st.store, subject, staff))

    def _on_bell(self, st: StoreState, ev: BellPress) -> None:
        ctx = Context("bell", st.store, ev.ts, f"bell:{ev.bell}:{ev.id}")
        ctx.bell, ctx.zone, ctx.shopper, ctx.reason = ev.bell, ev.zone, ev.shopper, ev.reason
        listeners = st.index.bell.get(ev.reason, EMPTY) if ev.reason else EMPTY
        self._dispatch(st, listeners + st.index.bell.get(None, EMPTY), ctx)

    def _on_pos_item(self, st: StoreState, ev: PosItem) -> None:
        ctx = Context("pos_item", st.store, ev.ts, f"pos:{ev.terminal}:{ev.id}")
        ctx.shopper, ctx.receipt, ctx.category, ctx.sku = (
            ev.shopper,
            ev.receipt,
            ev.category,
            ev.sku,
        )
        ctx.qty, ctx.price = ev.qty, ev.price
        if ev.shopper is not None:
            ctx.zone = st.presence.zone_of(ev.shopper, ev.ts)
        index = st.index
        listeners = index.pos_any
        if ev.category is not None:
            listeners = index.pos_category.get(ev.category, EMPTY) + listeners
        if ev.sku is not None:
            listeners = index.pos_sku.get(ev.sku, EMPTY) + listeners
        self._dispatch(st, listeners, ctx)

    def _on_checkout(self, st: StoreState, ev: Checkout) -> None:
        ctx = Context("checkout", st.store, ev.ts, f"pos:{ev.terminal}:{ev.id}")
        ctx.shopper, ctx.receipt, ctx.total = ev.shopper, ev.receipt, ev.total
        self._dispatch(st, st.index.checkout, ctx)

    def _on_coupon(self, st: StoreState, ev: CouponRedeemed) -> None:
        ctx = Context("coupon_redeemed", st.store, ev.ts, f"pos:{ev.terminal}:{ev.id}")
        ctx.shopper, ctx.receipt = ev.shopper, ev.receipt
        record, refused = self.decider.redeem(ev.code, ev.ts)
        if record is not None and refused is None:
            ctx.offer = record.offer
            ctx.shopper = ev.shopper or record.shopper
        listeners = st.index.coupon.get(ctx.offer, EMPTY) if ctx.offer else EMPTY
        self._dispatch(st, listeners + st.index.coupon.get(None, EMPTY), ctx)

    def _on_ack(self, st: StoreState, ev: StaffAck) -> str | None:
        alert = st.alerts.alerts.get(ev.alert)
        if alert is None:
            # Held events (lateness > 0) are decided later: then only counted.
            return self._reject("unknown_alert")
        self.decider.answer(st, alert, ev)
        ctx = Context("staff_ack", st.store, ev.ts, f"ack:{ev.band}:{ev.id}")
        ctx.alert, ctx.action, ctx.zone = ev.alert, ev.action, alert.zone
        ctx.bell, ctx.shopper = alert.bell, alert.shopper
        listeners = st.index.ack.get(ev.action, EMPTY)
        self._dispatch(st, listeners + st.index.ack.get(None, EMPTY), ctx)
        return None

    def _on_status(self, st: StoreState, ev: DeviceStatus) -> None:
        st.devices[ev.device] = (ev.online, ev.ts, ev.battery)
        if ev.device in st.registry.staff:
            st.staff.set_online(ev.device, ev.online)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, st: StoreState, listeners: Listeners, ctx: Context) -> None:
        for listener in listeners:
            if _extra_match(listener, ctx, st):
                self._apply(st, listener, ctx)

    def _apply(self, st: StoreState, lst: Listener, ctx: Context) -> None:
        role, rule = lst.role, lst.rule
        if role == BOUGHT:
            if ctx.shopper is not None:
                st.bought[(lst.slot, ctx.shopper)] = ctx.ts
            return
        assert rule is not None
        if role == FIRE:
            self.decider.fire(st, rule, ctx)
            return
        trig = rule.when
        key = ctx.key(trig.by) if isinstance(trig, Sequence | Absence | Count) else None
        if key is not None:
            self._composite[role](st, rule, (rule.id, key), ctx)

    def _seq_first(self, st: StoreState, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        st.seq_first[key] = ctx.ts

    def _seq_then(self, st: StoreState, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        trig = rule.when
        first = st.seq_first.get(key)
        if (
            isinstance(trig, Sequence)
            and first is not None
            and 0.0 <= ctx.ts - first <= trig.within_s
        ):
            del st.seq_first[key]
            self.decider.fire(st, rule, ctx)

    def _abs_after(self, st: StoreState, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        trig = rule.when
        if isinstance(trig, Absence) and key not in st.absence:
            # A second `after` while one is pending does not restart the window.
            st.absence[key] = ctx
            self.timers.schedule(ctx.ts + trig.within_s, "absence", (st.store, *key, ctx.ts))

    def _abs_missing(self, st: StoreState, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        trig = rule.when
        pending = st.absence.get(key)
        if (
            isinstance(trig, Absence)
            and pending is not None
            and pending.ts <= ctx.ts <= pending.ts + trig.within_s
        ):
            del st.absence[key]

    def _count_reset(self, st: StoreState, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        st.counts.pop(key, None)

    def _count(self, st: StoreState, rule: Rule, key: tuple[str, str], ctx: Context) -> None:
        trig = rule.when
        if not isinstance(trig, Count):
            return
        window = st.counts.setdefault(key, [])
        window.append(ctx.ts)
        horizon = ctx.ts - trig.within_s
        window[:] = [t for t in window if t >= horizon]
        if len(window) >= trig.at_least:
            n = len(window)
            del st.counts[key]  # the next firing needs a fresh `at_least`
            self.decider.fire(st, rule, ctx.copy(count=n))

    # ------------------------------------------------------------------ timers

    def _fire_timer(self, kind: str, args: tuple[object, ...], due: float) -> None:
        if kind == "sweep":
            self._sweep(due)
            return
        if kind == "health":
            self._check_health(str(args[0]), due)
            return
        st = self.stores.get(str(args[0]))
        if st is None:
            return
        if kind == "dwell":
            if args[5] != st.generation:
                return  # set under rules since reloaded; reload re-armed the dwell
            self._on_dwell(st, str(args[1]), str(args[2]), float(args[3]), float(args[4]), due)  # type: ignore[arg-type]
        elif kind == "leave":
            self._on_leave_timer(st, str(args[1]), bool(args[2]), due)
        elif kind == "absence":
            self._on_absence(st, str(args[1]), str(args[2]), float(args[3]), due)  # type: ignore[arg-type]
        elif kind == "escalate":
            self.decider.escalate(st, str(args[1]), int(args[2]), due)  # type: ignore[call-overload]
        self.decider.settle(due)

    def _on_dwell(
        self, st: StoreState, subject: str, zone: str, since: float, threshold: float, due: float
    ) -> None:
        tracker = st.presence
        if not tracker.dwell_alive(subject, zone, since):
            return
        if not tracker.dwell_confirmed(subject, zone, since, due):
            # Unseen lately: maybe gone. Look again shortly instead of guessing,
            # until the leave gap says they are gone.
            if not tracker.gone(subject, due):
                args = (st.store, subject, zone, since, threshold, st.generation)
                self.timers.schedule(due + DWELL_POLL_S, "dwell", args)
            return
        ctx = Context("dwell", st.store, due, f"dwell:{subject}:{zone}:{since!r}:{threshold!r}")
        ctx.shopper, ctx.zone = subject, zone
        later: float | None = None
        for t, listeners in st.index.dwell.get(zone, ()):
            if t == threshold:
                self._dispatch(st, listeners, ctx)
            elif t > threshold:
                later = t
                break
        if later is not None:
            args = (st.store, subject, zone, since, later, st.generation)
            self.timers.schedule(since + later, "dwell", args)

    def _on_leave_timer(self, st: StoreState, subject: str, staff: bool, due: float) -> None:
        tracker = st.staff.presence if staff else st.presence
        watched = st.staff_leave_watch if staff else st.leave_watch
        watched.discard(subject)
        change = tracker.check_leave(subject, due)
        if change is None:
            self._watch_leave(st, subject, staff=staff)
        elif not staff:
            self._on_change(st, change)

    def _on_absence(
        self, st: StoreState, rule_id: str, key: str, started: float, due: float
    ) -> None:
        pending = st.absence.get((rule_id, key))
        if pending is None or pending.ts != started:
            return
        del st.absence[(rule_id, key)]
        rule = self.compiled.rules.get(rule_id)
        if rule is not None:
            ctx = pending.copy(ts=due, source=pending.source + ":absence")
            self.decider.fire(st, rule, ctx)

    def _sweep(self, now: float) -> None:
        """Forget state that can no longer matter (and location state past its TTL)."""
        busy = False
        for st in self.stores.values():
            for shopper, start in st.sweep(now, self.settings, self.compiled):
                # The visit leaves the engine's memory; the profile keeps its date.
                self.profiles.record_visit(shopper, start)
            for alert_id in st.alerts.expire(now, self.settings.alert_keep_s):
                self._journal(functools.partial(self.journal.drop, st.store, alert_id))
            busy = busy or st.has_state()
        horizon = now
        self._recent_ids = {k: v for k, v in self._recent_ids.items() if v > horizon}
        busy = busy or bool(self._recent_ids)
        self._sweeping = busy
        if busy:
            self.timers.schedule(now + self.settings.sweep_every_s, "sweep", ())

    # ------------------------------------------------------------------ durable alerts

    def journal_save(self, alert: OpenAlert) -> None:
        self._journal(lambda: self.journal.save(alert))

    def _journal(self, write: Callable[[], None]) -> None:
        try:
            write()
        except GuardStoreError:
            # The alert still goes out; only its durability across a restart is lost.
            self.stats.guard_errors += 1

    def restore_alerts(self, records: Iterable[dict[str, object]]) -> int:
        """Take back open alerts from a journal after a restart; re-arm their escalations.

        Steps already sent are not sent again; a step whose time passed while the
        engine was down fires at the first ``advance_to``.
        """
        restored = 0
        for rec in records:
            st = self.stores.get(str(rec.get("store")))
            spec = self._alert_spec(str(rec.get("rule")))
            if st is None or spec is None or str(rec.get("id")) in st.alerts.alerts:
                continue
            alert = OpenAlert.from_record(dict(rec), spec)
            st.alerts.add(alert)
            restored += 1
            if alert.answered:
                st.alerts.answered(alert)
                if alert.closed_at is None and alert.acked_by is not None:
                    st.staff.busy[alert.acked_by] = alert.id
                continue
            for band in alert.bands:
                st.staff.busy[band] = alert.id
            for k in range(alert.step - 1, len(spec.escalate)):
                due = alert.created + spec.escalate[k].after_s
                self.timers.schedule(due, "escalate", (st.store, alert.id, k))
        return restored

    def _alert_spec(self, rule_id: str) -> AlertSpec | None:
        rule = (
            DEVICE_HEALTH_RULE
            if rule_id == DEVICE_HEALTH_RULE.id
            else self.compiled.rules.get(rule_id)
        )
        if rule is None:
            return None
        return next((a for a in rule.actions if isinstance(a, AlertSpec)), None)

    # ------------------------------------------------------------------ device health

    def _check_health(self, store: str, now: float) -> None:
        st = self.stores[store]
        if self._draining:
            return
        limit = self.settings.device_silence_s
        for device, since, why in st.health_problems(now, limit):
            if device in st.unhealthy:
                continue
            st.unhealthy[device] = since
            ctx = Context("device_health", store, now, f"health:{device}:{since!r}")
            ctx.device, ctx.reason = device, why
            ctx.zone = st.registry.bells.get(device) or st.registry.beacons.get(device)
            self.decider.raise_builtin(st, DEVICE_HEALTH_RULE, ctx)
        st.recover(now, limit)
        self.decider.settle(now)
        self.timers.schedule(now + self.settings.health_every_s, "health", (store,))

    def unhealthy_devices(self) -> int:
        return sum(len(st.unhealthy) for st in self.stores.values())

    # ------------------------------------------------------------------ operations

    def reload(self, rules: RuleSet, registries: Mapping[str, Registry] | None = None) -> None:
        """Swap in new rules (and registries) without losing presence, alerts or timers."""
        regs = registries or {sid: st.registry for sid, st in self.stores.items()}
        self.compiled = compile_rules(rules, regs)
        for sid, reg in regs.items():
            if sid not in self.stores:
                self.stores[sid] = self._new_store(reg)
                continue
            st = self.stores[sid]
            st.rebind(reg, self.compiled.stores[sid])
            # Dwells under way continue under the new rules' thresholds.
            for subject, zone, since in st.presence.current():
                if zone in reg.zones:
                    self._arm_dwell(st, subject, zone, since, after=self.clock)

    def forget_shopper(self, shopper: str) -> int:
        """Erase a shopper from every store of this engine (privacy)."""
        removed = sum(st.forget(shopper) for st in self.stores.values())
        try:
            removed += self.guards.forget_shopper(shopper)
        except GuardStoreError:
            self.stats.guard_errors += 1
        return removed

    def open_alerts(self) -> int:
        return sum(st.alerts.open_count() for st in self.stores.values())

    def active_shoppers(self) -> int:
        return sum(len(st.presence) for st in self.stores.values())

    def run(self, events: Iterable[Event]) -> list[Action]:
        """Convenience for tests and replay: feed events on their own clock, then flush."""
        for event in events:
            self.feed(event)
        self.flush()
        return list(self.drain())


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


def _extra_match(lst: Listener, ctx: Context, st: StoreState) -> bool:
    """Constraints the index could not file under a key (checked only for candidates)."""
    p = lst.pattern
    kind = p.kind
    if kind == "bell":
        if not p.zone_tags:
            return True
        zone = st.registry.zones.get(ctx.zone or "")
        return zone is not None and bool(zone.tags & p.zone_tags)
    if kind == "pos_item":
        return not (p.categories and p.skus) or ctx.sku in p.skus
    if kind == "checkout":
        return p.min_total is None or (ctx.total or 0.0) >= p.min_total
    return True
