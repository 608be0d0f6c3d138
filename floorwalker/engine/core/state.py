"""What one store remembers about its floor: presence, staff, alerts, trigger windows.

The domain half of a store unit (:class:`~floorwalker.engine.core.store.Store`
holds the other half: its clock, timers, reorder buffer, dedup window and
outbox). Nothing here is shared with another store.
"""

from __future__ import annotations

from floorwalker.devices.registry import Registry
from floorwalker.engine.core.alerts import AlertBook
from floorwalker.engine.core.context import Context
from floorwalker.engine.core.index import CompiledRules
from floorwalker.engine.core.periods import Calendar
from floorwalker.engine.core.presence import PresenceSettings, PresenceTracker
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.staff import StaffRoster
from floorwalker.rules.model import Count, Sequence


class StoreState:
    def __init__(
        self,
        registry: Registry,
        compiled: CompiledRules,
        presence: PresenceSettings,
        staff_presence: PresenceSettings,
    ) -> None:
        self.store = registry.store
        self.registry = registry
        self.compiled = compiled
        self.index = compiled.stores[registry.store]
        self.calendar = Calendar(registry.tzinfo)
        self.presence = PresenceTracker(presence)
        self.staff = StaffRoster(registry, staff_presence)
        self.alerts = AlertBook()
        self.leave_watch: set[str] = set()
        self.staff_leave_watch: set[str] = set()
        self.visits: dict[str, float] = {}
        """shopper no longer present -> start of their latest visit, kept
        ``location_ttl_s`` (present shoppers keep theirs on the presence record)"""
        self.seq_first: dict[tuple[str, str], float] = {}
        self.absence: dict[tuple[str, str], Context] = {}
        self.counts: dict[tuple[str, str], list[float]] = {}
        self.bought: dict[tuple[int, str], float] = {}
        self.devices: dict[str, tuple[bool, float, float | None]] = {}
        self.last_heard: dict[str, float] = {}
        """device -> last time a message from it was accepted (device health)"""
        self.unhealthy: dict[str, float] = {}
        """device -> since when it is silent or offline"""
        self.first_heard: float | None = None
        self.generation = 0
        """Bumped by every reload; dwell timers of older generations are ignored."""

    def rebind(self, registry: Registry, compiled: CompiledRules) -> None:
        self.registry = registry
        self.compiled = compiled
        self.index = compiled.stores[registry.store]
        self.calendar = Calendar(registry.tzinfo)
        self.staff.registry = registry
        self.generation += 1

    # ------------------------------------------------------------------ visits

    def begin_visit(self, shopper: str, at: float) -> float | None:
        """A visit started (presence made a new record); return the previous visit's start.

        While a shopper is present their visits live on the presence record; once it
        expires, :attr:`visits` remembers the last one for ``location_ttl_s``.
        """
        state = self.presence.states.get(shopper)
        remembered = self.visits.pop(shopper, None)
        previous = state.prev_visit if state is not None else None
        if previous is None:
            previous = remembered
        if state is not None:
            state.prev_visit = previous
        return previous

    def visit_start(self, shopper: str | None) -> float | None:
        if not shopper:
            return None
        state = self.presence.states.get(shopper)
        return state.visit_start if state is not None else self.visits.get(shopper)

    def previous_visit(self, shopper: str | None) -> float | None:
        if not shopper:
            return None
        state = self.presence.states.get(shopper)
        if state is not None:
            return state.prev_visit
        # Between visits (a POS line after leaving): the latest visit is the previous one.
        return self.visits.get(shopper)

    # ------------------------------------------------------------------ housekeeping

    def sweep(self, now: float, settings: EngineSettings) -> list[tuple[str, float]]:
        """Forget expired state; return the (shopper, visit start) of visits forgotten."""
        for shopper, gone in self.presence.expire(now):
            self.visits[shopper] = gone.visit_start
        self.staff.presence.expire(now)
        ttl = settings.location_ttl_s
        expired = [(s, v) for s, v in self.visits.items() if now - v >= ttl]
        for shopper, _ in expired:
            del self.visits[shopper]
        compiled = self.compiled
        rules = compiled.rules
        self.seq_first = {
            k: t
            for k, t in self.seq_first.items()
            if isinstance(trig := getattr(rules.get(k[0]), "when", None), Sequence)
            and now - t <= trig.within_s
        }
        self.counts = {
            k: w
            for k, w in self.counts.items()
            if isinstance(trig := getattr(rules.get(k[0]), "when", None), Count)
            and now - w[-1] <= trig.within_s
        }
        within = {slot: cond.within_s for cond, slot in compiled.bought_slots.items()}
        self.bought = {k: t for k, t in self.bought.items() if now - t <= within.get(k[0], 0.0)}
        return expired

    def health_problems(self, now: float, limit: float) -> list[tuple[str, float, str]]:
        """(device, since, why) for every gateway silent and device offline past ``limit``."""
        problems = []
        start = self.first_heard if self.first_heard is not None else now
        for gateway in sorted(self.registry.gateways):
            heard = self.last_heard.get(gateway, start)
            if now - heard >= limit:
                problems.append((gateway, heard, f"silent for {int((now - heard) // 60)} min"))
        for device, (online, ts, _battery) in sorted(self.devices.items()):
            if not online and now - ts >= limit:
                problems.append((device, ts, "offline"))
        return problems

    def recover(self, now: float, limit: float) -> None:
        """Devices heard from again (and not reporting offline) are healthy again."""
        for device in list(self.unhealthy):
            status = self.devices.get(device)
            offline = status is not None and not status[0]
            if not offline and now - self.last_heard.get(device, float("-inf")) < limit:
                del self.unhealthy[device]

    def has_state(self) -> bool:
        return bool(
            len(self.presence)
            or len(self.staff.presence)
            or self.visits
            or self.seq_first
            or self.counts
            or self.bought
            or self.absence
            or self.alerts.alerts
        )

    def forget(self, shopper: str) -> int:
        removed = int(self.presence.forget(shopper))
        removed += int(self.visits.pop(shopper, None) is not None)
        for table in (self.seq_first, self.absence, self.counts):
            doomed = [k for k in table if k[1] == shopper]
            for k in doomed:
                del table[k]
            removed += len(doomed)
        doomed_b = [k for k in self.bought if k[1] == shopper]
        for kb in doomed_b:
            del self.bought[kb]
        self.leave_watch.discard(shopper)
        return removed + len(doomed_b) + self._forget_in_alerts(shopper)

    def _forget_in_alerts(self, shopper: str) -> int:
        """Alerts stay (staff still need to help) but no longer name the shopper."""
        touched = 0
        for key in [k for k in self.alerts.unanswered if k[1] == shopper]:
            del self.alerts.unanswered[key]
        for alert in self.alerts.alerts.values():
            if shopper not in (alert.shopper, alert.source_key):
                continue
            self.alerts.answered(alert)  # drops the open-by-source key, which names them
            alert.shopper = None
            alert.summary = None
            alert.advisor = None
            if alert.source_key == shopper:
                alert.source_key = f"forgotten:{alert.id}"
            touched += 1
        return touched
