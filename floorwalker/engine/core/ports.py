"""What a store unit may reach outside its own state: a few narrow, explicit ports.

The decision logic never sees the engine. It gets the guard store (shared caps,
budgets and dedup: Redis when live), the profile source, the alert journal,
the stats sink and the decision listener, and nothing else. Emitting actions
and scheduling timers are the store's own business (its outbox and timer
queue are part of its state).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from floorwalker.engine.core.actions import Decision
from floorwalker.engine.core.alerts import AlertJournal, OpenAlert
from floorwalker.engine.core.guards import GuardStore
from floorwalker.engine.core.profiles import ProfileSource
from floorwalker.engine.core.stats import EngineStats
from floorwalker.errors import GuardStoreError


@dataclass(frozen=True, slots=True)
class Ports:
    guards: GuardStore
    profiles: ProfileSource
    journal: AlertJournal
    stats: EngineStats
    """Write-only from a store's point of view: counts what happened, decides nothing."""
    on_decision: Callable[[Decision], None] | None = None

    def journal_save(self, alert: OpenAlert) -> None:
        # Written out rather than through _journal: once per page, and a lambda per call.
        try:
            self.journal.save(alert)
        except GuardStoreError:
            self.stats.guard_errors += 1

    def journal_drop(self, store: str, alert_id: str) -> None:
        self._journal(lambda: self.journal.drop(store, alert_id))

    def _journal(self, write: Callable[[], None]) -> None:
        try:
            write()
        except GuardStoreError:
            # The alert still goes out; only its durability across a restart is lost.
            self.stats.guard_errors += 1


Schedule = Callable[[float, str, tuple[Hashable, ...]], None]
"""``schedule(due, kind, args)``: set a timer on the store's own queue."""
