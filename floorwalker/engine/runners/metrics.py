"""Prometheus metrics for a runner.

The engine core keeps only plain counters (:class:`~floorwalker.engine.core.stats.EngineStats`)
so the hot path pays one dict update per fact. A runner owns one :class:`Metrics`
and calls :meth:`Metrics.sync` every so often (about once a second, not per
event): it turns the core's counters into Prometheus counter increments, sets the
gauges the core can answer, and observes staff response times recorded since the
last sync. What only the runner knows (dead letters, publish latency, timer
lateness, queue depths, reconnects, Redis errors, reloads, store snapshots) it
reports through the direct methods.

Every series about something that happens in a store carries a ``store`` label: the
core counts per store (each store unit has its own stats), so a runner serving
several stores shows each one, and a dashboard sums them with ``sum by``. What
belongs to the process (queue depth, reconnects, reloads, Redis errors, the
snapshot round) has no store. ``floorwalker_build_info{version,python}`` is 1.

Each :class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry`,
never the process-global one, so tests and two runners in one process do not clash.
:meth:`Metrics.sync` reads the engine's dicts without locks: call it from the
thread that drives the engine. The direct methods are thread-safe.
"""

from __future__ import annotations

import platform
import re
import threading
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from floorwalker.engine.core.actions import Action
from floorwalker.engine.core.engine import Gauges
from floorwalker.engine.core.stats import EngineStats

if TYPE_CHECKING:
    from floorwalker.engine.stores.breaker import RedisBreaker

#: Publish latency: sub-millisecond (arrival -> publish) to seconds (device clock -> publish).
DECISION_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
#: How late a due timer's action is published.
TIMER_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
#: Serializing the changed stores and writing them to Redis: well under a millisecond to seconds.
SNAPSHOT_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
#: Alert -> staff acknowledgement: one second to ten minutes.
RESPONSE_BUCKETS: Final = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0)

LATENCY_PATHS: Final = ("device", "arrival")
"""``device``: the device's timestamp -> publish; ``arrival``: the runner received it -> publish."""
RELOAD_OUTCOMES: Final = ("ok", "refused")
OUTCOMES: Final = ("processed", "deadlettered", "shed")
"""What became of each inbound message: exactly one of these."""
REFUSALS: Final = ("open", "budget")

K = TypeVar("K", bound=Hashable)


class EngineLike(Protocol):
    """What :meth:`Metrics.sync` reads: :class:`floorwalker.engine.core.Engine` fits."""

    @property
    def stores(self) -> Mapping[str, object]: ...

    def stats_for(self, store: str | None) -> EngineStats: ...

    def gauges(self, store: str | None = None) -> Gauges: ...


def build_version() -> str:
    """The installed package's version (``0+unknown`` when run from an uninstalled tree)."""
    try:
        return metadata.version("floorwalker")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class _Deltas(Generic[K]):
    """Remembers the last values of a family of monotonic counters."""

    def __init__(self) -> None:
        self._last: dict[K, int] = {}

    def step(self, current: Mapping[K, int]) -> list[tuple[K, int]]:
        """The increments since the last step; a value that went down starts afresh."""
        out: list[tuple[K, int]] = []
        last = self._last
        for key, value in current.items():
            prev = last.get(key, 0)
            delta = value - prev if value >= prev else value
            if delta > 0:
                out.append((key, delta))
        self._last = dict(current)
        return out

    def reset(self) -> None:
        self._last = {}


@dataclass
class _Seen:
    """What the last sync saw of one store's stats (they count, we add increments)."""

    stats: EngineStats
    events: _Deltas[type] = field(default_factory=_Deltas)
    sent: _Deltas[tuple[str, str]] = field(default_factory=_Deltas)
    suppressed: _Deltas[tuple[str, str]] = field(default_factory=_Deltas)
    redeemed: _Deltas[str] = field(default_factory=_Deltas)
    escalations: _Deltas[str] = field(default_factory=_Deltas)
    unanswered: _Deltas[str] = field(default_factory=_Deltas)
    pages: _Deltas[str] = field(default_factory=_Deltas)
    within: _Deltas[str] = field(default_factory=_Deltas)
    responses: dict[str, tuple[list[float], int]] = field(default_factory=dict)


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _kind_name(kind: type) -> str:
    """``Sighting`` -> ``sighting``, ``BellPress`` -> ``bell_press``."""
    return _CAMEL.sub("_", kind.__name__).lower()


class MetricsServer:
    """A running /metrics endpoint; :attr:`port` is the port actually bound."""

    def __init__(self, port: int, host: str, registry: CollectorRegistry) -> None:
        self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        self.host = host
        self.port: int = self._httpd.server_port
        self._closed = False

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Metrics:
    """A runner's Prometheus metrics, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # ----------------------------------------------------------- counters (from the core)
        self._events_in = Counter(
            "floorwalker_events_in",
            "Events accepted by the engine core, by store and kind.",
            ["store", "kind"],
            registry=r,
        )
        self._actions = Counter(
            "floorwalker_actions",
            "Actions the engine decided to send, by store, rule and type (offer|alert).",
            ["store", "rule", "type"],
            registry=r,
        )
        self._suppressed = Counter(
            "floorwalker_suppressed",
            "Rule firings that sent nothing, by store, rule and reason (cap, no_consent, ...).",
            ["store", "rule", "reason"],
            registry=r,
        )
        self._coupons_redeemed = Counter(
            "floorwalker_coupons_redeemed",
            "Coupons redeemed at the till, by store and the rule that issued them.",
            ["store", "rule"],
            registry=r,
        )
        self._escalations = Counter(
            "floorwalker_escalations",
            "Alerts passed on to the next member of staff, by store and rule.",
            ["store", "rule"],
            registry=r,
        )
        self._unanswered = Counter(
            "floorwalker_alerts_unanswered",
            "Alerts whose escalation chain ended with nobody answering, by store and rule.",
            ["store", "rule"],
            registry=r,
        )
        self._pages = Counter(
            "floorwalker_alert_pages",
            "Pages sent to each staff band (the load per member of staff).",
            ["store", "band"],
            registry=r,
        )
        self._within_target = Counter(
            "floorwalker_staff_responses_within_target",
            "Answers that came within the rule's response_target, by store and rule.",
            ["store", "rule"],
            registry=r,
        )
        # ----------------------------------------------------------- counters (from the runner)
        self._deadletters = Counter(
            "floorwalker_deadletters",
            "Messages the runner could not use and dead-lettered, by store and reason"
            " (store _unknown: the topic named no store this runner serves).",
            ["store", "reason"],
            registry=r,
        )
        self._redis_errors = Counter(
            "floorwalker_redis_errors",
            "Errors talking to Redis.",
            registry=r,
        )
        self._broker_reconnects = Counter(
            "floorwalker_broker_reconnects",
            "Reconnections to the message broker.",
            registry=r,
        )
        self._snapshot_errors = Counter(
            "floorwalker_snapshot_errors",
            "Store snapshots that could not be written to Redis (retried next interval).",
            registry=r,
        )
        self._rule_reloads = Counter(
            "floorwalker_rule_reloads",
            "Rule reloads, by outcome (ok|refused).",
            ["outcome"],
            registry=r,
        )
        # ----------------------------------------------------------- histograms
        self._decision_latency = Histogram(
            "floorwalker_decision_latency_seconds",
            "Time to publish an action, from the device's timestamp (path=device) "
            "or from the event's arrival (path=arrival), by store.",
            ["store", "path"],
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self._timer_lateness = Histogram(
            "floorwalker_timer_lateness_seconds",
            "How long after a timer was due its action was published, by store.",
            ["store"],
            buckets=TIMER_BUCKETS,
            registry=r,
        )
        self._staff_response = Histogram(
            "floorwalker_staff_response_seconds",
            "Time from an alert to a member of staff acknowledging it, by store and rule.",
            ["store", "rule"],
            buckets=RESPONSE_BUCKETS,
            registry=r,
        )
        self._snapshot_seconds = Histogram(
            "floorwalker_snapshot_seconds",
            "Time to snapshot the changed stores and write them to Redis, per round.",
            buckets=SNAPSHOT_BUCKETS,
            registry=r,
        )
        # ----------------------------------------------------------- gauges
        self._snapshot_bytes = Gauge(
            "floorwalker_snapshot_bytes",
            "Size of the store's last snapshot written to Redis.",
            ["store"],
            registry=r,
        )
        self._queue_depth = Gauge(
            "floorwalker_queue_depth",
            "Events received and waiting for the engine.",
            registry=r,
        )
        self._outbox_pending = Gauge(
            "floorwalker_outbox_pending",
            "Actions decided and not yet confirmed published.",
            registry=r,
        )
        self._alerts_open = Gauge(
            "floorwalker_alerts_open",
            "Staff alerts paged and not answered yet (state open), by store.",
            ["store"],
            registry=r,
        )
        self._alerts = Gauge(
            "floorwalker_alerts",
            "Staff alerts held, by store and state: open, acknowledged, unanswered, done.",
            ["store", "state"],
            registry=r,
        )
        self._response_target = Gauge(
            "floorwalker_staff_response_target_seconds",
            "The rule's response_target, beside floorwalker_staff_response_seconds.",
            ["store", "rule"],
            registry=r,
        )
        self._active_shoppers = Gauge(
            "floorwalker_active_shoppers",
            "Shoppers the engine is tracking (seen within the visit gap), by store.",
            ["store"],
            registry=r,
        )
        self._devices_unhealthy = Gauge(
            "floorwalker_devices_unhealthy",
            "Gateways silent or devices offline for longer than device_silence_s, by store.",
            ["store"],
            registry=r,
        )
        self._budget_used = Gauge(
            "floorwalker_budget_used",
            "A campaign budget's use: reserved (coupons out) + spent (redeemed), by rule and "
            "unit (coupons|amount). Budgets are chain-wide: every store shows the same value.",
            ["store", "rule", "unit"],
            registry=r,
        )
        self._budget_remaining = Gauge(
            "floorwalker_budget_remaining",
            "A campaign budget's limit minus its use, by rule and unit (coupons|amount).",
            ["store", "rule", "unit"],
            registry=r,
        )
        self._build_info = Gauge(
            "floorwalker_build_info",
            "Always 1: the Floorwalker version and the Python running it.",
            ["version", "python"],
            registry=r,
        )
        self._build_info.labels(version=build_version(), python=platform.python_version()).set(1)
        # Known label values show up (at zero) before anything happens.
        for outcome in RELOAD_OUTCOMES:
            self._rule_reloads.labels(outcome=outcome)
        self._add_fault_metrics(r)
        self._seen_outcomes: _Deltas[str] = _Deltas()
        self._seen_refused: _Deltas[str] = _Deltas()
        self._totals: dict[str, int] = {}

        self._sync_lock = threading.Lock()
        self._seen: dict[str, _Seen] = {}
        self._kind_names: dict[type, str] = {}
        self._stores: set[str] = set()

    def stores(self, stores: Iterable[str]) -> None:
        """Show the per-store series of these stores (at zero) before anything happens."""
        for store in stores:
            if store in self._stores:
                continue
            self._stores.add(store)
            for path in LATENCY_PATHS:
                self._decision_latency.labels(store=store, path=path)
            self._timer_lateness.labels(store=store)

    def _add_fault_metrics(self, r: CollectorRegistry) -> None:
        """Intake accounting, the Redis breaker, the outbox (docs/reliability.md)."""
        self._messages_in = Counter(
            "floorwalker_messages_in",
            "Inbound messages by outcome: processed, deadlettered (any of it rejected) or"
            " shed (sightings all older than shed_sightings_after_s). Together: every"
            " message the broker delivered.",
            ["outcome"],
            registry=r,
        )
        self._inbox_waits = Counter(
            "floorwalker_inbox_waits",
            "Times the MQTT link found the inbox full and waited (the broker keeps the backlog).",
            registry=r,
        )
        self._redis_refused = Counter(
            "floorwalker_redis_calls_refused",
            "Redis calls failed at once without trying: circuit open, or the event's budget spent.",
            ["why"],
            registry=r,
        )
        self._redis_trips = Counter(
            "floorwalker_redis_circuit_trips",
            "Times Redis stopped answering in time and its circuit opened.",
            registry=r,
        )
        self._outbox_duplicates = Counter(
            "floorwalker_outbox_duplicates",
            "Actions decided again with an id the outbox had published or held (not sent again).",
            registry=r,
        )
        self._outbox_resent = Counter(
            "floorwalker_outbox_resent",
            "Messages published at start because the last run had no PUBACK for them.",
            registry=r,
        )
        self._inbox_bytes = Gauge(
            "floorwalker_inbox_bytes",
            "Payload bytes received and waiting for the engine.",
            registry=r,
        )
        self._redis_open = Gauge(
            "floorwalker_redis_circuit_open",
            "1 while Redis calls fail at once (Redis did not answer in time), else 0.",
            registry=r,
        )
        self._journal_backlog = Gauge(
            "floorwalker_journal_backlog",
            "Alert journal writes waiting for Redis to answer again.",
            registry=r,
        )
        for outcome in OUTCOMES:
            self._messages_in.labels(outcome=outcome)
        for why in REFUSALS:
            self._redis_refused.labels(why=why)

    # ------------------------------------------------------------------ from the core

    def sync(self, engine: EngineLike) -> None:
        """Bring the metrics up to date with the engine's counters and state.

        Counters advance by what each store counted since the last sync. If the
        engine (or a store's stats) was replaced, or a count went down, the new values
        count from zero: Prometheus counters never go down.
        """
        with self._sync_lock:
            self.stores(engine.stores)
            for store in engine.stores:
                stats = engine.stats_for(store)
                seen = self._seen.get(store)
                if seen is None or seen.stats is not stats:
                    seen = self._seen[store] = _Seen(stats)
                self._sync_counters(store, stats, seen)
                self._sync_responses(store, stats, seen)
                self._sync_gauges(store, engine.gauges(store), stats)

    def _sync_gauges(self, store: str, gauges: Gauges, stats: EngineStats) -> None:
        self._alerts_open.labels(store=store).set(gauges.open_alerts)
        for state, n in gauges.alerts.items():
            self._alerts.labels(store=store, state=state).set(n)
        self._active_shoppers.labels(store=store).set(gauges.active_shoppers)
        self._devices_unhealthy.labels(store=store).set(gauges.unhealthy_devices)
        for rule, target in stats.response_target_s.items():
            self._response_target.labels(store=store, rule=rule).set(target)

    def _sync_counters(self, store: str, stats: EngineStats, seen: _Seen) -> None:
        for kind, n in seen.events.step(stats.accepted_by_type()):
            name = self._kind_names.get(kind)
            if name is None:
                name = self._kind_names[kind] = _kind_name(kind)
            self._events_in.labels(store=store, kind=name).inc(n)
        for (rule, type_), n in seen.sent.step(stats.sent):
            self._actions.labels(store=store, rule=rule, type=type_).inc(n)
        for (rule, reason), n in seen.suppressed.step(stats.suppressed):
            self._suppressed.labels(store=store, rule=rule, reason=reason).inc(n)
        by_rule = (
            (self._coupons_redeemed, seen.redeemed, stats.redeemed),
            (self._escalations, seen.escalations, stats.escalations),
            (self._unanswered, seen.unanswered, stats.unanswered),
            (self._within_target, seen.within, stats.within_target),
        )
        for counter, deltas, counts in by_rule:
            for rule, n in deltas.step(counts):
                counter.labels(store=store, rule=rule).inc(n)
        for band, n in seen.pages.step(stats.pages):
            self._pages.labels(store=store, band=band).inc(n)

    def _sync_responses(self, store: str, stats: EngineStats, seen: _Seen) -> None:
        responses = seen.responses
        for rule, times in stats.response_s.items():
            was, start = responses.get(rule, (times, 0))
            if was is not times or len(times) < start:  # replaced or cut: start afresh
                start = 0
            if len(times) > start:
                hist = self._staff_response.labels(store=store, rule=rule)
                for t in times[start:]:
                    hist.observe(t)
            responses[rule] = (times, len(times))

    # ------------------------------------------------------------------ from the runner

    def deadletter(self, reason: str, *, store: str) -> None:
        """Count one dead-lettered message (keep ``reason`` to a small fixed set)."""
        self._deadletters.labels(store=store, reason=reason).inc()

    def decision_latency(self, path: str, seconds: float, *, store: str) -> None:
        """Observe one publish latency; ``path`` is ``device`` or ``arrival``.

        Negative values (a device clock ahead of ours) are recorded as zero.
        """
        if path not in LATENCY_PATHS:
            raise ValueError(f"decision latency path must be one of {LATENCY_PATHS}, not {path!r}")
        self._decision_latency.labels(store=store, path=path).observe(max(seconds, 0.0))

    def timer_lateness(self, seconds: float, *, store: str) -> None:
        """Observe how late a due timer's action was published (negative -> zero)."""
        self._timer_lateness.labels(store=store).observe(max(seconds, 0.0))

    def action_out(self, action: Action, sent: float, cause: tuple[float, float] | None) -> None:
        """One action handed on at ``sent``. With no ``cause`` a timer decided it: how late
        past its due time (its ``ts``). Else ``cause`` is the event's device ``ts`` and its
        arrival: the decision latency from each."""
        store = action.store
        if cause is None:
            self.timer_lateness(sent - action.ts, store=store)
        else:
            device_ts, arrival = cause
            self.decision_latency("device", sent - device_ts, store=store)
            self.decision_latency("arrival", sent - arrival, store=store)

    def queue_depth(self, n: int) -> None:
        self._queue_depth.set(n)

    def outbox_pending(self, n: int) -> None:
        self._outbox_pending.set(n)

    def reconnect(self) -> None:
        self._broker_reconnects.inc()

    def intake(self, outcomes: Mapping[str, int], waits: int, inbox_bytes: int) -> None:
        """The runner's totals so far: messages by outcome, inbox waits; bytes held now."""
        with self._sync_lock:
            for outcome, n in self._seen_outcomes.step(outcomes):
                self._messages_in.labels(outcome=outcome).inc(n)
            self._single("inbox_waits", waits, self._inbox_waits)
        self._inbox_bytes.set(inbox_bytes)

    def redis_breaker(self, breaker: RedisBreaker, journal_backlog: int) -> None:
        """The Redis breaker's state and totals, and the alert journal's backlog."""
        with self._sync_lock:
            for why, n in self._seen_refused.step(breaker.refused):
                self._redis_refused.labels(why=why).inc(n)
            self._single("trips", breaker.trips, self._redis_trips)
        self._redis_open.set(1 if breaker.is_open else 0)
        self._journal_backlog.set(journal_backlog)

    def outbox(self, duplicates: int, resent: int) -> None:
        """The outbox's totals so far: refused duplicates, entries resent at start."""
        with self._sync_lock:
            self._single("outbox_duplicates", duplicates, self._outbox_duplicates)
            self._single("outbox_resent", resent, self._outbox_resent)

    def _single(self, name: str, total: int, counter: Counter) -> None:
        """Advance ``counter`` to a runner's running ``total`` (caller holds the lock)."""
        last = self._totals.get(name, 0)
        delta = total - last if total >= last else total
        if delta > 0:
            counter.inc(delta)
        self._totals[name] = total

    def redis_error(self) -> None:
        self._redis_errors.inc()

    def snapshot_error(self) -> None:
        """Count one failed snapshot write (a round of stores counts once)."""
        self._snapshot_errors.inc()

    def snapshot_seconds(self, seconds: float) -> None:
        """Observe one snapshot round: serializing the changed stores plus the Redis write."""
        self._snapshot_seconds.observe(max(seconds, 0.0))

    def snapshot_bytes(self, store: str, size: int) -> None:
        """The size of the store's snapshot just written."""
        self._snapshot_bytes.labels(store=store).set(size)

    def budget(self, store: str, rule: str, unit: str, used: float, remaining: float) -> None:
        """Where a rule's budget stands (``unit``: ``coupons`` or ``amount``)."""
        self._budget_used.labels(store=store, rule=rule, unit=unit).set(used)
        self._budget_remaining.labels(store=store, rule=rule, unit=unit).set(remaining)

    def reload(self, outcome: str) -> None:
        """Count one rule reload; ``outcome`` is ``ok`` or ``refused``."""
        if outcome not in RELOAD_OUTCOMES:
            raise ValueError(f"reload outcome must be one of {RELOAD_OUTCOMES}, not {outcome!r}")
        self._rule_reloads.labels(outcome=outcome).inc()

    # ------------------------------------------------------------------ exposition

    def render(self) -> bytes:
        """The registry in the Prometheus text format (what GET /metrics returns)."""
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Serve /metrics for this registry in a daemon thread; ``port=0`` picks a free port."""
        return MetricsServer(port, host, self.registry)
