"""Prometheus metrics for a runner.

The engine core keeps only plain counters (:class:`~floorwalker.engine.core.stats.EngineStats`)
so the hot path pays one dict update per fact. A runner owns one :class:`Metrics`
and calls :meth:`Metrics.sync` every so often (about once a second, not per
event): it turns the core's counters into Prometheus counter increments, sets the
gauges the core can answer, and observes staff response times recorded since the
last sync. What only the runner knows (dead letters, publish latency, timer
lateness, queue depths, reconnects, Redis errors, reloads, store snapshots) it
reports through the direct methods.

Each :class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry`,
never the process-global one, so tests and two runners in one process do not clash.
:meth:`Metrics.sync` reads the engine's dicts without locks: call it from the
thread that drives the engine. The direct methods are thread-safe.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

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
    def stats(self) -> EngineStats: ...

    def gauges(self) -> Gauges: ...


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
            "Events accepted by the engine core, by kind.",
            ["kind"],
            registry=r,
        )
        self._actions = Counter(
            "floorwalker_actions",
            "Actions the engine decided to send, by rule and type (offer|alert).",
            ["rule", "type"],
            registry=r,
        )
        self._suppressed = Counter(
            "floorwalker_suppressed",
            "Rule firings that sent nothing, by rule and reason (cap, no_consent, ...).",
            ["rule", "reason"],
            registry=r,
        )
        self._coupons_redeemed = Counter(
            "floorwalker_coupons_redeemed",
            "Coupons redeemed at the till, by the rule that issued them.",
            ["rule"],
            registry=r,
        )
        self._escalations = Counter(
            "floorwalker_escalations",
            "Alerts passed on to the next member of staff, by rule.",
            ["rule"],
            registry=r,
        )
        self._unanswered = Counter(
            "floorwalker_alerts_unanswered",
            "Alerts whose escalation chain ended with nobody answering, by rule.",
            ["rule"],
            registry=r,
        )
        self._pages = Counter(
            "floorwalker_alert_pages",
            "Pages sent to each staff band (the load per member of staff).",
            ["band"],
            registry=r,
        )
        self._within_target = Counter(
            "floorwalker_staff_responses_within_target",
            "Answers that came within the rule's response_target, by rule.",
            ["rule"],
            registry=r,
        )
        # ----------------------------------------------------------- counters (from the runner)
        self._deadletters = Counter(
            "floorwalker_deadletters",
            "Messages the runner could not use and dead-lettered, by reason.",
            ["reason"],
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
            "or from the event's arrival (path=arrival).",
            ["path"],
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self._timer_lateness = Histogram(
            "floorwalker_timer_lateness_seconds",
            "How long after a timer was due its action was published.",
            buckets=TIMER_BUCKETS,
            registry=r,
        )
        self._staff_response = Histogram(
            "floorwalker_staff_response_seconds",
            "Time from an alert to a member of staff acknowledging it, by rule.",
            ["rule"],
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
            "Staff alerts paged and not answered yet (state open).",
            registry=r,
        )
        self._alerts = Gauge(
            "floorwalker_alerts",
            "Staff alerts held, by state: open, acknowledged, unanswered, done.",
            ["state"],
            registry=r,
        )
        self._response_target = Gauge(
            "floorwalker_staff_response_target_seconds",
            "The rule's response_target, beside floorwalker_staff_response_seconds.",
            ["rule"],
            registry=r,
        )
        self._active_shoppers = Gauge(
            "floorwalker_active_shoppers",
            "Shoppers the engine is tracking (seen within the visit gap), over all stores.",
            registry=r,
        )
        self._devices_unhealthy = Gauge(
            "floorwalker_devices_unhealthy",
            "Gateways silent or devices offline for longer than device_silence_s.",
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
        # Known label values show up (at zero) before anything happens.
        for path in LATENCY_PATHS:
            self._decision_latency.labels(path=path)
        for outcome in RELOAD_OUTCOMES:
            self._rule_reloads.labels(outcome=outcome)
        self._add_fault_metrics(r)
        self._seen_outcomes: _Deltas[str] = _Deltas()
        self._seen_refused: _Deltas[str] = _Deltas()
        self._totals: dict[str, int] = {}

        self._sync_lock = threading.Lock()
        self._stats: EngineStats | None = None
        self._seen_events: _Deltas[type] = _Deltas()
        self._seen_sent: _Deltas[tuple[str, str]] = _Deltas()
        self._seen_suppressed: _Deltas[tuple[str, str]] = _Deltas()
        self._seen_redeemed: _Deltas[str] = _Deltas()
        self._seen_escalations: _Deltas[str] = _Deltas()
        self._seen_unanswered: _Deltas[str] = _Deltas()
        self._seen_pages: _Deltas[str] = _Deltas()
        self._seen_within: _Deltas[str] = _Deltas()
        self._seen_responses: dict[str, tuple[list[float], int]] = {}
        self._kind_names: dict[type, str] = {}

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

        Counters advance by what the engine counted since the last sync. If the
        engine (or its stats) was replaced, or a count went down, the new values
        count from zero: Prometheus counters never go down.
        """
        with self._sync_lock:
            stats = engine.stats
            if stats is not self._stats:
                self._forget(stats)
            self._sync_counters(stats)
            self._sync_responses(stats)
            gauges = engine.gauges()
            self._alerts_open.set(gauges.open_alerts)
            for state, n in gauges.alerts.items():
                self._alerts.labels(state=state).set(n)
            self._active_shoppers.set(gauges.active_shoppers)
            self._devices_unhealthy.set(gauges.unhealthy_devices)
            for rule, target in stats.response_target_s.items():
                self._response_target.labels(rule=rule).set(target)

    def _forget(self, stats: EngineStats) -> None:
        self._stats = stats
        self._seen_events.reset()
        self._seen_sent.reset()
        self._seen_suppressed.reset()
        self._seen_redeemed.reset()
        self._seen_escalations.reset()
        self._seen_unanswered.reset()
        self._seen_pages.reset()
        self._seen_within.reset()
        self._seen_responses = {}

    def _sync_counters(self, stats: EngineStats) -> None:
        for kind, n in self._seen_events.step(stats.accepted_by_type()):
            name = self._kind_names.get(kind)
            if name is None:
                name = self._kind_names[kind] = _kind_name(kind)
            self._events_in.labels(kind=name).inc(n)
        for (rule, type_), n in self._seen_sent.step(stats.sent):
            self._actions.labels(rule=rule, type=type_).inc(n)
        for (rule, reason), n in self._seen_suppressed.step(stats.suppressed):
            self._suppressed.labels(rule=rule, reason=reason).inc(n)
        for rule, n in self._seen_redeemed.step(stats.redeemed):
            self._coupons_redeemed.labels(rule=rule).inc(n)
        for rule, n in self._seen_escalations.step(stats.escalations):
            self._escalations.labels(rule=rule).inc(n)
        for rule, n in self._seen_unanswered.step(stats.unanswered):
            self._unanswered.labels(rule=rule).inc(n)
        for band, n in self._seen_pages.step(stats.pages):
            self._pages.labels(band=band).inc(n)
        for rule, n in self._seen_within.step(stats.within_target):
            self._within_target.labels(rule=rule).inc(n)

    def _sync_responses(self, stats: EngineStats) -> None:
        seen = self._seen_responses
        for rule, times in stats.response_s.items():
            was, start = seen.get(rule, (times, 0))
            if was is not times or len(times) < start:  # replaced or cut: start afresh
                start = 0
            if len(times) > start:
                hist = self._staff_response.labels(rule=rule)
                for t in times[start:]:
                    hist.observe(t)
            seen[rule] = (times, len(times))

    # ------------------------------------------------------------------ from the runner

    def deadletter(self, reason: str) -> None:
        """Count one dead-lettered message (keep ``reason`` to a small fixed set)."""
        self._deadletters.labels(reason=reason).inc()

    def decision_latency(self, path: str, seconds: float) -> None:
        """Observe one publish latency; ``path`` is ``device`` or ``arrival``.

        Negative values (a device clock ahead of ours) are recorded as zero.
        """
        if path not in LATENCY_PATHS:
            raise ValueError(f"decision latency path must be one of {LATENCY_PATHS}, not {path!r}")
        self._decision_latency.labels(path=path).observe(max(seconds, 0.0))

    def timer_lateness(self, seconds: float) -> None:
        """Observe how late a due timer's action was published (negative -> zero)."""
        self._timer_lateness.observe(max(seconds, 0.0))

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
