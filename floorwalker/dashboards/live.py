"""The live terminal dashboard: what a running edge runner is doing, refreshed ~4 times a second.

Where the numbers come from:

* counters, gauges and latencies from the runner's own Prometheus registry
  (:attr:`floorwalker.engine.runners.metrics.Metrics.registry`), read with
  ``collect()`` (thread-safe) by :class:`MetricsReader`. Decision latency
  (device timestamp -> publish) and timer lateness are the p50/p99 of the
  runner's histograms since the start, interpolated within buckets the way
  Prometheus' ``histogram_quantile`` does, so they agree with ``/metrics``.
  Arrival -> publish (the engine's own share) is shown next to device ->
  publish, because the latter includes presence debouncing: an action on
  entering a zone carries the time of the first sighting of that run, a few
  sightings before the engine could know;
  The runner syncs the engine's counters into the registry about once a
  second, so counts trail by up to a second;
* the tail of the last actions from :class:`ActionTail`, an MQTT probe that
  subscribes to the offer and alert topics like a phone or a wristband would.

Nothing here touches the engine or runs on the runner's core thread: the
dashboard has a thread of its own that takes a :class:`Snapshot` from a
callable and renders it. On a terminal that is a ``rich`` ``Live`` display;
anywhere else (CI, a pipe, a file) it is a block of plain text lines every few
seconds, see :func:`render_plain`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Final, TextIO

import orjson
from prometheus_client import CollectorRegistry
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from floorwalker.dashboards.quantiles import histogram_quantile
from floorwalker.devices.topics import DEFAULT_PREFIX, OutboundKind, action_filters, parse_outbound
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.mqtt import MqttClient
from floorwalker.simulators.live_devices import StaffCounts

log = logging.getLogger("floorwalker.dashboard")

TAIL_SIZE: Final = 8
TOP_REASONS: Final = 6


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True)
class TailLine:
    """One action as a device received it."""

    at: float
    """Wall clock (epoch s) when the probe received it."""
    topic: str
    kind: str
    """``offer`` or ``alert``"""
    rule: str
    text: str


@dataclass(frozen=True, slots=True)
class RuleResponse:
    """One alert rule's staff response, against its ``response_target``."""

    rule: str
    answered: int = 0
    p50_s: float | None = None
    p90_s: float | None = None
    mean_s: float | None = None
    target_s: float | None = None
    within: int = 0
    """Answers within the target."""
    unanswered: int = 0

    @property
    def within_share(self) -> float | None:
        return self.within / self.answered if self.answered and self.target_s else None


@dataclass(frozen=True)
class Snapshot:
    """Everything one dashboard frame shows; plain data, easy to fake in tests."""

    elapsed_s: float = 0.0
    store: str = ""
    clock: str = ""
    """Store-local time of day, e.g. ``08:14:03``."""
    tz: tzinfo | None = None
    """The store's timezone, for the times of the tail (None: this machine's)."""
    events_in: int = 0
    events_per_s: float = 0.0
    published: int = 0
    """Messages the simulated store published (0 when not known)."""
    active_shoppers: int = 0
    actions: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(rule, ``offer``|``alert``) -> actions sent."""
    suppressed: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(rule, reason) -> firings that sent nothing."""
    escalations: int = 0
    decision_p50_s: float | None = None
    decision_p99_s: float | None = None
    arrival_p50_s: float | None = None
    """Arrival at the runner -> publish: the engine's own share of the decision latency."""
    arrival_p99_s: float | None = None
    timer_p50_s: float | None = None
    timer_p99_s: float | None = None
    alerts_open: int = 0
    alerts_by_state: Mapping[str, int] = field(default_factory=dict)
    """Alerts the engine holds by state (open, acknowledged, unanswered, done)."""
    responses: int = 0
    """Alerts acknowledged by staff, as the engine recorded them."""
    response_mean_s: float | None = None
    response_by_rule: Sequence[RuleResponse] = ()
    pages: Mapping[str, int] = field(default_factory=dict)
    """band -> pages sent to it."""
    staff: StaffCounts | None = None
    deadletters: Mapping[str, int] = field(default_factory=dict)
    tail: Sequence[TailLine] = ()
    notes: Sequence[str] = ()
    """Recent warnings worth showing."""

    def rules(self) -> list[str]:
        """Rules that did anything, busiest first."""
        sent: Counter[str] = Counter()
        held: Counter[str] = Counter()
        for (rule, _), n in self.actions.items():
            sent[rule] += n
        for (rule, _), n in self.suppressed.items():
            held[rule] += n
        busy = [r for r in sent.keys() | held.keys() if sent[r] or held[r]]
        return sorted(busy, key=lambda r: (-sent[r], -held[r], r))

    def sent(self, rule: str, kind: str) -> int:
        return self.actions.get((rule, kind), 0)

    def suppressed_for(self, rule: str) -> int:
        return sum(n for (r, _), n in self.suppressed.items() if r == rule)

    def total(self, kind: str) -> int:
        return sum(n for (_, k), n in self.actions.items() if k == kind)

    def alerts_in(self, state: str) -> int:
        """Alerts in ``state``; ``open`` falls back to the older open-alerts gauge."""
        if state == "open" and state not in self.alerts_by_state:
            return self.alerts_open
        return self.alerts_by_state.get(state, 0)

    def busiest_bands(self, n: int = TOP_REASONS) -> list[tuple[str, int]]:
        return sorted(self.pages.items(), key=lambda x: (-x[1], x[0]))[:n]

    def top_reasons(self, n: int = TOP_REASONS) -> list[tuple[str, int]]:
        by_reason: Counter[str] = Counter()
        for (_, reason), count in self.suppressed.items():
            by_reason[reason] += count
        return [(r, c) for r, c in by_reason.most_common() if c][:n]


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True, slots=True)
class MetricsReading:
    """The runner's registry, parsed into what the dashboard shows."""

    events_in: int = 0
    actions: Mapping[tuple[str, str], int] = field(default_factory=dict)
    suppressed: Mapping[tuple[str, str], int] = field(default_factory=dict)
    escalations: int = 0
    deadletters: Mapping[str, int] = field(default_factory=dict)
    decision: Sequence[tuple[float, float]] = ()
    """Cumulative buckets of the device -> publish latency."""
    arrival: Sequence[tuple[float, float]] = ()
    timers: Sequence[tuple[float, float]] = ()
    responses: int = 0
    response_sum_s: float = 0.0
    alerts_open: int = 0
    active_shoppers: int = 0
    alerts_by_state: Mapping[str, int] = field(default_factory=dict)
    response_buckets: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)
    """rule -> cumulative buckets of its staff response time."""
    response_count: Mapping[str, int] = field(default_factory=dict)
    response_sum: Mapping[str, float] = field(default_factory=dict)
    response_target: Mapping[str, float] = field(default_factory=dict)
    within_target: Mapping[str, int] = field(default_factory=dict)
    unanswered: Mapping[str, int] = field(default_factory=dict)
    pages: Mapping[str, int] = field(default_factory=dict)

    def by_rule(self) -> list[RuleResponse]:
        """Every rule that paged, answered or went unanswered, by name."""
        names = (
            set(self.response_count)
            | set(self.response_target)
            | {r for r, n in self.unanswered.items() if n}
        )
        out = []
        for rule in sorted(names):
            n = self.response_count.get(rule, 0)
            buckets = self.response_buckets.get(rule, ())
            out.append(
                RuleResponse(
                    rule=rule,
                    answered=n,
                    p50_s=histogram_quantile(0.5, buckets) if n else None,
                    p90_s=histogram_quantile(0.9, buckets) if n else None,
                    mean_s=self.response_sum.get(rule, 0.0) / n if n else None,
                    target_s=self.response_target.get(rule),
                    within=self.within_target.get(rule, 0),
                    unanswered=self.unanswered.get(rule, 0),
                )
            )
        return out


_Rows = Mapping[str, list[tuple[dict[str, str], float]]]


def _total(samples: _Rows) -> Callable[[str], float]:
    return lambda name: sum(value for _, value in samples.get(name, ()))


def _by(samples: _Rows) -> Callable[..., dict[Any, int]]:
    def by(name: str, *keys: str) -> dict[Any, int]:
        out: dict[Any, int] = {}
        for labels, value in samples.get(name, ()):
            key = tuple(labels[k] for k in keys)
            one = key if len(keys) > 1 else key[0]
            out[one] = out.get(one, 0) + int(value)
        return out

    return by


def _summed(rows: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    total: dict[float, float] = defaultdict(float)
    for le, value in rows:
        total[le] += value
    return sorted(total.items())


def _buckets(samples: _Rows) -> Callable[..., list[tuple[float, float]]]:
    def buckets(name: str, **match: str) -> list[tuple[float, float]]:
        return _summed(
            (float(labels["le"]), value)
            for labels, value in samples.get(name, ())
            if all(labels.get(k) == v for k, v in match.items())
        )

    return buckets


def _per_rule_buckets(samples: _Rows) -> Callable[[str], dict[str, list[tuple[float, float]]]]:
    def per_rule(name: str) -> dict[str, list[tuple[float, float]]]:
        out: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for labels, value in samples.get(name, ()):
            out[labels["rule"]].append((float(labels["le"]), value))
        return {rule: _summed(rows) for rule, rows in out.items()}

    return per_rule


def _floats(samples: _Rows) -> Callable[[str, str], dict[str, float]]:
    def floats(name: str, key: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for labels, value in samples.get(name, ()):
            out[labels[key]] += value
        return dict(out)

    return floats


def read_registry(registry: CollectorRegistry) -> MetricsReading:
    """Parse a runner's :class:`~floorwalker.engine.runners.metrics.Metrics` registry.

    Series carry a ``store`` label; the terminal view adds the stores up.
    """
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in registry.collect():
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    total, by, buckets = _total(samples), _by(samples), _buckets(samples)
    per_rule_buckets, floats = _per_rule_buckets(samples), _floats(samples)
    return MetricsReading(
        events_in=int(total("floorwalker_events_in_total")),
        actions=by("floorwalker_actions_total", "rule", "type"),
        suppressed=by("floorwalker_suppressed_total", "rule", "reason"),
        escalations=int(total("floorwalker_escalations_total")),
        deadletters=by("floorwalker_deadletters_total", "reason"),
        decision=buckets("floorwalker_decision_latency_seconds_bucket", path="device"),
        arrival=buckets("floorwalker_decision_latency_seconds_bucket", path="arrival"),
        timers=buckets("floorwalker_timer_lateness_seconds_bucket"),
        responses=int(total("floorwalker_staff_response_seconds_count")),
        response_sum_s=total("floorwalker_staff_response_seconds_sum"),
        alerts_open=int(total("floorwalker_alerts_open")),
        active_shoppers=int(total("floorwalker_active_shoppers")),
        alerts_by_state=by("floorwalker_alerts", "state"),
        response_buckets=per_rule_buckets("floorwalker_staff_response_seconds_bucket"),
        response_count=by("floorwalker_staff_response_seconds_count", "rule"),
        response_sum=floats("floorwalker_staff_response_seconds_sum", "rule"),
        response_target={
            labels["rule"]: value
            for labels, value in samples.get("floorwalker_staff_response_target_seconds", ())
        },
        within_target=by("floorwalker_staff_responses_within_target_total", "rule"),
        unanswered=by("floorwalker_alerts_unanswered_total", "rule"),
        pages=by("floorwalker_alert_pages_total", "band"),
    )


class MetricsReader:
    """Turns a runner's registry into :class:`Snapshot` values; also measures events/s."""

    def __init__(self, registry: CollectorRegistry, *, rate_window_s: float = 5.0) -> None:
        self.registry = registry
        self.rate_window_s = rate_window_s
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def read(self) -> MetricsReading:
        return read_registry(self.registry)

    def rate(self, total: int, now: float | None = None) -> float:
        """Events per second over the last ``rate_window_s``, given the running total."""
        now = time.monotonic() if now is None else now
        with self._lock:
            samples = self._samples
            samples.append((now, total))
            while len(samples) > 2 and now - samples[1][0] >= self.rate_window_s:
                samples.popleft()
            t0, n0 = samples[0]
        return (total - n0) / (now - t0) if now > t0 else 0.0

    def snapshot(
        self,
        *,
        elapsed_s: float = 0.0,
        store: str = "",
        clock: str = "",
        tz: tzinfo | None = None,
        published: int = 0,
        staff: StaffCounts | None = None,
        tail: Sequence[TailLine] = (),
        notes: Sequence[str] = (),
    ) -> Snapshot:
        m = self.read()
        return Snapshot(
            elapsed_s=elapsed_s,
            store=store,
            clock=clock,
            tz=tz,
            events_in=m.events_in,
            events_per_s=self.rate(m.events_in),
            published=published,
            active_shoppers=m.active_shoppers,
            actions=m.actions,
            suppressed=m.suppressed,
            escalations=m.escalations,
            decision_p50_s=histogram_quantile(0.5, m.decision),
            decision_p99_s=histogram_quantile(0.99, m.decision),
            arrival_p50_s=histogram_quantile(0.5, m.arrival),
            arrival_p99_s=histogram_quantile(0.99, m.arrival),
            timer_p50_s=histogram_quantile(0.5, m.timers),
            timer_p99_s=histogram_quantile(0.99, m.timers),
            alerts_open=m.alerts_open,
            alerts_by_state=m.alerts_by_state,
            responses=m.responses,
            response_mean_s=m.response_sum_s / m.responses if m.responses else None,
            response_by_rule=m.by_rule(),
            pages=m.pages,
            staff=staff,
            deadletters=m.deadletters,
            tail=tail,
            notes=notes,
        )


# --------------------------------------------------------------------------- action tail


def describe(
    topic: str, payload: Mapping[str, object], *, prefix: str = DEFAULT_PREFIX
) -> TailLine | None:
    """A received offer or alert as a tail line; None for anything else."""
    parsed = parse_outbound(topic, prefix)
    kind = None if parsed is None else parsed.kind
    rule = str(payload.get("rule", "?"))
    if kind is OutboundKind.OFFER:
        text = f"{payload.get('offer', '?')} {payload.get('code', '')}".strip()
        return TailLine(time.time(), topic, "offer", rule, text)
    if kind is OutboundKind.ALERT:
        step = payload.get("step", 1)
        zone = payload.get("zone", "?")
        text = f"step {step} {payload.get('priority', '')} @{zone}: {payload.get('message', '')}"
        return TailLine(time.time(), topic, "alert", rule, " ".join(text.split()))
    return None


class ActionTail:
    """An MQTT probe on the action topics: the last few offers and alerts, and their counts."""

    def __init__(
        self,
        host: str | BrokerAddress,
        port: int | None = None,
        *,
        prefix: str = "fw",
        size: int = TAIL_SIZE,
        client_id: str = "floorwalker-dashboard",
    ) -> None:
        self.host, self.port, self.prefix = host, port, prefix
        self.client_id = client_id
        self._lines: deque[TailLine] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.received: Counter[str] = Counter()
        """``offer``/``alert`` -> messages received."""
        self._client: MqttClient | None = None

    def start(self) -> ActionTail:
        self._client = MqttClient(
            self.client_id,
            self.host,
            self.port,
            subscriptions=action_filters(prefix=self.prefix),
            on_message=self._on,
        ).connect()
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def lines(self) -> tuple[TailLine, ...]:
        with self._lock:
            return tuple(self._lines)

    def _on(self, topic: str, payload: bytes) -> None:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        line = describe(topic, obj, prefix=self.prefix) if isinstance(obj, dict) else None
        if line is not None:
            with self._lock:
                self._lines.append(line)
                self.received[line.kind] += 1


# --------------------------------------------------------------------------- rendering


def fmt_seconds(value: float | None) -> str:
    """``0.0012`` -> ``1.2 ms``; None -> ``-``."""
    if value is None:
        return "-"
    if value < 0.001:
        return f"{value * 1e6:.0f} µs"
    if value < 1.0:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.1f} s"


def fmt_elapsed(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _pairs(items: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{k} {v}" for k, v in items) or "none"


def _staff_line(s: Snapshot) -> str:
    parts = []
    if s.staff is not None:
        st = s.staff
        parts.append(
            f"{st.alerts} alerts on wristbands, {st.acks} acked, {st.done} done, "
            f"{st.declined} declined, {st.unanswered} unanswered"
        )
    mean = f", mean {s.response_mean_s:.1f} s" if s.response_mean_s is not None else ""
    parts.append(f"response n={s.responses}{mean}")
    parts.append(f"escalations {s.escalations}")
    parts.append(_alert_states(s))
    return "; ".join(parts)


def _alert_states(s: Snapshot) -> str:
    return (
        f"alerts open {s.alerts_in('open')}, acknowledged {s.alerts_in('acknowledged')}, "
        f"unanswered {s.alerts_in('unanswered')}"
    )


def _response_text(r: RuleResponse) -> str:
    """``p50 12.0 s p90 40.0 s / target 120 s, 90% within`` (what is known of it)."""
    if r.answered:
        text = f"p50 {fmt_seconds(r.p50_s)} p90 {fmt_seconds(r.p90_s)}"
    else:
        text = "none answered"
    if r.target_s is not None:
        text += f" / target {r.target_s:g} s"
        share = r.within_share
        if share is not None:
            text += f", {share:.0%} within"
    if r.unanswered:
        text += f", {r.unanswered} unanswered"
    return text


def render_plain(s: Snapshot, *, tail: int = 3) -> str:
    """A few plain text lines (no colour, no cursor moves) for logs, CI and pipes."""
    rules = s.rules()
    acts = []
    for rule in rules:
        bits = [f"{s.sent(rule, k)} {k}s" for k in ("offer", "alert") if s.sent(rule, k)]
        n_sup = s.suppressed_for(rule)
        if n_sup:
            bits.append(f"{n_sup} suppressed")
        acts.append(f"{rule} ({', '.join(bits) or '0'})")
    lines = [
        f"[{fmt_elapsed(s.elapsed_s)}] store {s.store or '?'} {s.clock}".rstrip()
        + f" | events in {s.events_in} ({s.events_per_s:.1f}/s), published {s.published}"
        f" | shoppers {s.active_shoppers} | offers {s.total('offer')},"
        f" alerts {s.total('alert')}, alerts open {s.alerts_open}",
        f"  latency device->publish p50 {fmt_seconds(s.decision_p50_s)}"
        f" p99 {fmt_seconds(s.decision_p99_s)} | arrival->publish"
        f" p50 {fmt_seconds(s.arrival_p50_s)} p99 {fmt_seconds(s.arrival_p99_s)} | timer lateness"
        f" p50 {fmt_seconds(s.timer_p50_s)} p99 {fmt_seconds(s.timer_p99_s)}",
        f"  actions by rule: {'; '.join(acts) or 'none yet'}",
        f"  suppressed by reason: {_pairs(s.top_reasons())}",
        f"  staff: {_staff_line(s)}",
    ]
    if s.response_by_rule:
        per_rule = "; ".join(f"{r.rule} {_response_text(r)}" for r in s.response_by_rule)
        lines.append(f"  response vs target: {per_rule}")
    if s.pages:
        lines.append(f"  pages per band: {_pairs(s.busiest_bands())}")
    lines.append(f"  dead letters: {_pairs(sorted(s.deadletters.items()))}")
    for line in list(s.tail)[-tail:] if tail else ():
        lines.append(f"  > {line.topic} {line.rule}: {line.text}")
    lines.extend(f"  ! {note}" for note in s.notes)
    return "\n".join(lines) + "\n"


def _kv(rows: Iterable[tuple[str, str]]) -> Table:
    """Keys dim on the left (shortened if need be), values right-aligned at full width."""
    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column(justify="right", no_wrap=True)
    for key, value in rows:
        table.add_row(Text(key, style="dim"), value)
    return table


def _panel(body: RenderableType, title: str) -> Panel:
    return Panel(body, title=title, title_align="left", border_style="blue")


def _actions_table(s: Snapshot) -> Table:
    acts = Table(
        box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False, show_footer=True
    )
    rules = s.rules()
    width = min(24, max((len(rule) for rule in rules), default=5))
    acts.add_column("rule", footer="total", no_wrap=True, overflow="ellipsis", min_width=width)
    acts.add_column("offers", justify="right", footer=str(s.total("offer")), style="green")
    acts.add_column("alerts", justify="right", footer=str(s.total("alert")), style="yellow")
    acts.add_column(
        "suppressed", justify="right", footer=str(sum(s.suppressed.values())), style="dim"
    )
    for rule in rules:
        acts.add_row(
            rule,
            str(s.sent(rule, "offer") or ""),
            str(s.sent(rule, "alert") or ""),
            str(s.suppressed_for(rule) or ""),
        )
    if not rules:
        acts.add_row(Text("(nothing yet)", style="dim"), "", "", "")
    return acts


def _side_table(s: Snapshot) -> Group:
    latency = _kv(
        [
            (
                "device->publish",
                f"p50 {fmt_seconds(s.decision_p50_s)}  p99 {fmt_seconds(s.decision_p99_s)}",
            ),
            (
                "arrival->publish",
                f"p50 {fmt_seconds(s.arrival_p50_s)}  p99 {fmt_seconds(s.arrival_p99_s)}",
            ),
            (
                "timer lateness",
                f"p50 {fmt_seconds(s.timer_p50_s)}  p99 {fmt_seconds(s.timer_p99_s)}",
            ),
        ]
    )
    rows: list[tuple[str, str]] = []
    if s.staff is not None:
        st = s.staff
        rows += [
            ("alerts on wristbands", str(st.alerts)),
            ("acked / done", f"{st.acks} / {st.done}"),
            ("declined / unanswered", f"{st.declined} / {st.unanswered}"),
        ]
    mean = f"{s.response_mean_s:.1f} s" if s.response_mean_s is not None else "-"
    rows += [
        ("response time", f"n={s.responses}  mean {mean}"),
        ("escalations", str(s.escalations)),
        (
            "alerts open / acked / unanswered",
            f"{s.alerts_in('open')} / {s.alerts_in('acknowledged')} / {s.alerts_in('unanswered')}",
        ),
    ]
    parts: list[RenderableType] = [
        Text("Decision latency, since start", style="bold"),
        latency,
        Text(""),
        Text("Staff", style="bold"),
        _kv(rows),
    ]
    if s.response_by_rule:
        parts += [
            Text(""),
            Text("Response vs target, by rule", style="bold"),
            _kv([(r.rule, _response_text(r)) for r in s.response_by_rule]),
        ]
    if s.pages:
        parts += [
            Text(""),
            Text("Pages per band", style="bold"),
            _kv([(band, str(n)) for band, n in s.busiest_bands()]),
        ]
    return Group(*parts)


def _tail_table(s: Snapshot, tail: int) -> Table:
    recent = Table(box=None, show_header=False, pad_edge=False, expand=True)
    recent.add_column(style="dim", no_wrap=True)
    recent.add_column(no_wrap=True, overflow="ellipsis", ratio=2)
    recent.add_column(no_wrap=True, overflow="ellipsis", ratio=3)
    lines = list(s.tail)[-tail:] if tail else []
    for line in reversed(lines):
        colour = "green" if line.kind == "offer" else "yellow"
        recent.add_row(
            datetime.fromtimestamp(line.at, s.tz).strftime("%H:%M:%S"),
            Text(line.topic, style=colour),
            Text.assemble((line.rule, "bold"), " ", line.text),
        )
    if not lines:
        recent.add_row("", Text("(no actions yet)", style="dim"), "")
    return recent


def render_rich(
    s: Snapshot,
    *,
    title: str = "Floorwalker live demo",
    tail: int = TAIL_SIZE,
    compact: bool = False,
) -> Group:
    """One dashboard frame (about 36 lines high with every rule active).

    ``compact`` folds the suppression reasons and dead letters into one line,
    for short terminals.
    """
    head = Text.assemble(
        (f" {title} ", "bold white on blue"),
        f"  store {s.store or '?'}  ",
        ("store time ", "dim"),
        (s.clock or "-", "bold"),
        ("  up ", "dim"),
        fmt_elapsed(s.elapsed_s),
        ("   Ctrl-C to stop", "dim"),
    )
    flow = Text.assemble(
        ("events in ", "dim"),
        (f"{s.events_in:,}", "bold"),
        f" ({s.events_per_s:.1f}/s)",
        ("   published ", "dim"),
        f"{s.published:,}",
        ("   shoppers in store ", "dim"),
        f"{s.active_shoppers}",
        ("   offers ", "dim"),
        (f"{s.total('offer')}", "bold green"),
        ("   alerts ", "dim"),
        (f"{s.total('alert')}", "bold yellow"),
        ("   open ", "dim"),
        f"{s.alerts_open}",
    )
    reasons = _kv([(r, str(n)) for r, n in s.top_reasons()] or [("none", "")])
    dead_rows = sorted(s.deadletters.items(), key=lambda x: (-x[1], x[0]))[:TOP_REASONS]
    dead = _kv([(r, str(n)) for r, n in dead_rows] or [("none", "")])
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(_panel(_actions_table(s), "Actions by rule"), _panel(_side_table(s), "Engine"))
    parts: list[RenderableType] = [head, flow]
    if compact:
        dead_text = _pairs(dead_rows)
        parts.append(
            Text.assemble(
                ("suppressed ", "dim"),
                _pairs(s.top_reasons(3)),
                ("   dead letters ", "dim"),
                (dead_text, "bold red" if dead_rows else ""),
                overflow="ellipsis",
                no_wrap=True,
            )
        )
    else:
        grid.add_row(_panel(reasons, "Suppressed, top reasons"), _panel(dead, "Dead letters"))
    parts += [grid, _panel(_tail_table(s, tail), "Last actions")]
    parts.extend(Text(f"! {note}", style="red") for note in s.notes)
    return Group(*parts)


# --------------------------------------------------------------------------- the dashboard


class LiveDashboard:
    """Renders snapshots from ``source`` in a thread of its own until :meth:`stop`.

    ``live=None`` picks the rich ``Live`` display when ``out`` is a terminal and
    plain text blocks every ``plain_every_s`` otherwise.
    """

    def __init__(
        self,
        source: Callable[[], Snapshot],
        *,
        out: TextIO | None = None,
        live: bool | None = None,
        refresh_per_second: float = 4.0,
        plain_every_s: float = 5.0,
        title: str = "Floorwalker live demo",
    ) -> None:
        self.source = source
        self.out = out if out is not None else sys.stdout
        self.live = _isatty(self.out) if live is None else live
        self.period_s = 1.0 / refresh_per_second
        self.plain_every_s = plain_every_s
        self.title = title
        self.frames = 0
        self._shape: tuple[object, ...] = ()
        self._layout = (False, TAIL_SIZE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LiveDashboard:
        target = self._run_live if self.live else self._run_plain
        self._thread = threading.Thread(target=target, name="floorwalker-dashboard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Render a last frame and stop (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> LiveDashboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _snapshot(self) -> Snapshot | None:
        try:
            return self.source()
        except Exception:  # a bad frame must not end the dashboard
            log.exception("dashboard: could not take a snapshot")
            return None

    def _run_plain(self) -> None:
        while True:
            stopping = self._stop.wait(self.plain_every_s)
            snap = self._snapshot()
            if snap is not None:
                with contextlib.suppress(OSError, ValueError):
                    self.out.write(render_plain(snap))
                    self.out.flush()
                self.frames += 1
            if stopping:
                return

    def _run_live(self) -> None:
        console = Console(file=self.out)
        first = self._snapshot() or Snapshot()
        with Live(
            self._frame(first, console),
            console=console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            while True:
                stopping = self._stop.wait(self.period_s)
                snap = self._snapshot()
                if snap is not None:
                    live.update(self._frame(snap, console), refresh=True)
                    self.frames += 1
                if stopping:
                    return

    def _frame(self, snap: Snapshot, console: Console) -> RenderableType:
        """The fullest frame that fits the terminal: fewer tail lines, then compact.

        Trying sizes costs a few renders, so the choice is kept until something
        that changes the frame's height does.
        """
        size = console.size
        shape = (
            size,
            len(snap.rules()),
            len(snap.top_reasons()),
            min(len(snap.deadletters), TOP_REASONS),
            len(snap.notes),
            snap.staff is None,
            len(snap.response_by_rule),
            min(len(snap.pages), TOP_REASONS),
            min(len(snap.tail), TAIL_SIZE),
        )
        if shape != self._shape:
            self._shape, self._layout = shape, (True, 1)
            for compact, tail in itertools.product((False, True), (TAIL_SIZE, 5, 3, 1)):
                frame = render_rich(snap, title=self.title, tail=tail, compact=compact)
                if len(console.render_lines(frame, console.options, pad=False)) < size.height:
                    self._layout = (compact, tail)
                    break
        compact, tail = self._layout
        return render_rich(snap, title=self.title, tail=tail, compact=compact)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
