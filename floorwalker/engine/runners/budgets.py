"""The budget gauges: where every rule's campaign budget stands, for Prometheus.

``floorwalker_budget_used{store,rule,unit}`` is reserved + spent (what counts
against the limit), ``floorwalker_budget_remaining{store,rule,unit}`` the limit
minus that, in ``unit`` ``coupons`` and/or ``amount`` (whichever limits the rule
sets). A budget is one per rule for the whole chain (``budget:<rule>`` in the
guard store), so every store a runner serves shows the same value: aggregate with
``max by (rule, unit)``, never ``sum``.

Reading a shared guard store (Redis) is I/O that must never stall the core thread:
:meth:`BudgetWatch.start` reads it from a thread of its own every ``every_s``
(the Lua script that reads it also releases expired reservations, atomically).
An in-memory guard store is the core thread's alone: the runner calls
:meth:`BudgetWatch.poll` from its metrics sync instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping

from floorwalker.devices.registry import Registry
from floorwalker.engine.core.guards import GuardStore, budget_key
from floorwalker.engine.runners.metrics import Metrics
from floorwalker.errors import GuardStoreError
from floorwalker.rules.model import Budget, RuleSet

log = logging.getLogger("floorwalker.budgets")


class BudgetWatch:
    """Sets the budget gauges of the rules being run from the guard store."""

    def __init__(self, guards: GuardStore, metrics: Metrics, every_s: float = 5.0) -> None:
        self.guards = guards
        self.metrics = metrics
        self.every_s = every_s
        self._targets: tuple[tuple[tuple[str, Budget], ...], tuple[str, ...]] = ((), ())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, rules: RuleSet, registries: Mapping[str, Registry]) -> None:
        """The rules with a budget and the stores to label them with (at start, on reload)."""
        budgets = tuple((r.id, r.limits.budget) for r in rules.rules if r.limits.budget)
        self._targets = (budgets, tuple(sorted(registries)))  # one assignment: thread-safe

    def poll(self, now: float) -> None:
        """Read every watched budget once and set its gauges; a failed read is skipped."""
        budgets, stores = self._targets
        for rule, budget in budgets:
            try:
                state = self.guards.budget(budget_key(rule), now)
            except GuardStoreError as exc:
                log.debug("budget of %s not read: %s", rule, exc)
                continue
            for unit, limit, used in _units(budget, state.coupons, state.amount):
                for store in stores:
                    self.metrics.budget(store, rule, unit, used, limit - used)

    def start(self) -> BudgetWatch:
        self._thread = threading.Thread(target=self._run, name="floorwalker-budgets", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            self.poll(time.time())
            if self._stop.wait(self.every_s):
                return


def _units(budget: Budget, coupons: int, amount: float) -> Iterable[tuple[str, float, float]]:
    """(unit, limit, used) for each limit the budget sets."""
    if budget.coupons is not None:
        yield "coupons", float(budget.coupons), float(coupons)
    if budget.amount is not None:
        yield "amount", budget.amount, amount
