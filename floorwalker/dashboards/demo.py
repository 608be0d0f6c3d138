"""The live demo (``floorwalker demo``): broker, Redis, engine and a simulated store on one machine.

:func:`run_demo` does, in order, and undoes all of it on Ctrl-C, SIGTERM or an
error (one :class:`contextlib.ExitStack`):

1. starts Mosquitto and Redis on free loopback ports in a temporary workdir
   (:mod:`floorwalker.services`);
2. imports the demo shopper profiles into Redis;
3. starts the edge runner (Redis-backed, ``/metrics`` on a free port) on the
   demo store and the shipped rule catalog;
4. starts the simulated staff (:class:`StaffSimulator`): wristbands that
   acknowledge most alerts after a realistic delay, decline some and let some
   pass, so escalations and response times show;
5. starts the live dashboard (:mod:`floorwalker.dashboards.live`);
6. starts the simulated store (:class:`TrafficPlayer`): synthetic traffic of
   the demo store (:mod:`floorwalker.simulators.traffic`) published live over
   MQTT with QoS 1, re-timed to the wall clock (every payload's ``ts`` is the
   moment it is published), at real time or ``speed`` times faster, in blocks
   of ``block_minutes`` of store time generated one after another with the
   next seed, so it runs until stopped.

The engine runs on the real wall clock, as in production. So that the
breakfast daypart (08:00-10:00 store time) is on whenever the demo runs, the
demo store gets a fixed-offset timezone (``Etc/GMT-N``) in which it is now
08:xx; ``real_clock=True`` keeps the registry's own timezone.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import random
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO
from zoneinfo import ZoneInfo

import orjson
import paho.mqtt.client as paho
import yaml

from floorwalker import services
from floorwalker.dashboards import _mqtt
from floorwalker.dashboards.live import (
    ActionTail,
    LiveDashboard,
    MetricsReader,
    Snapshot,
    StaffCounts,
    fmt_elapsed,
    fmt_seconds,
)
from floorwalker.engine.core.stats import EngineStats
from floorwalker.engine.runners.edge import EdgeRunner, running
from floorwalker.engine.runners.settings import EdgeSettings
from floorwalker.engine.runners.summary import format_summary
from floorwalker.engine.stores.redis_profiles import import_profiles
from floorwalker.errors import ServiceError
from floorwalker.simulators.traffic import (
    DEMO_PROFILES,
    DEMO_REGISTRY,
    StoreLayout,
    TrafficSettings,
    generate,
    load_layout,
    load_tokens,
)

log = logging.getLogger("floorwalker.demo")

CATALOG: Final = Path(__file__).resolve().parent.parent / "rules" / "catalog"
DEMO_HOUR: Final = 8
"""Store-local hour the demo starts in (unless ``real_clock``): breakfast time."""


@dataclass(frozen=True)
class StaffSettings:
    """How the simulated staff answer the alerts on their wristbands (wall-clock seconds)."""

    ack_share: float = 0.7
    decline_share: float = 0.1
    """The rest (0.2 by default) let the alert pass; the engine escalates it."""
    ack_delay_s: tuple[float, float] = (5.0, 60.0)
    decline_delay_s: tuple[float, float] = (2.0, 10.0)
    done_after_s: tuple[float, float] = (20.0, 120.0)
    """After acknowledging, the time until the member of staff reports ``done``."""


@dataclass(frozen=True)
class DemoSettings:
    minutes: float | None = None
    """Wall-clock minutes to run; None runs until Ctrl-C."""
    shoppers: int = 100
    """Shoppers arriving per 10 minutes of store time (a busy morning)."""
    seed: int = 7
    speed: float = 1.0
    """Store time runs this many times faster than the wall clock (traffic only: the
    engine's dwell thresholds and escalations stay in real seconds)."""
    real_clock: bool = False
    """Keep the registry's timezone instead of one in which it is breakfast time now."""
    staff: StaffSettings = field(default_factory=StaffSettings)
    registry: Path = DEMO_REGISTRY
    profiles: Path = DEMO_PROFILES
    rules: Path = CATALOG
    prefix: str = "fw"
    block_minutes: float = 30.0
    """Store minutes of traffic generated at a time."""
    warm_minutes: float = 5.0
    """Store minutes of traffic skipped at the start, so the store is already busy
    (those shoppers are first seen wherever they are by then)."""
    workdir: Path | None = None
    """Where the servers keep configs and logs; None: a temporary directory, removed after."""
    live: bool | None = None
    """Rich live display; None: when stdout is a terminal, else plain text lines."""
    refresh_per_second: float = 4.0
    plain_every_s: float = 5.0

    def __post_init__(self) -> None:
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError("minutes must be positive")
        if self.shoppers < 0 or self.speed <= 0 or self.block_minutes <= 0:
            raise ValueError("shoppers must be >= 0, speed and block_minutes > 0")
        if not 0 <= self.warm_minutes <= self.block_minutes:
            raise ValueError("warm_minutes must be between 0 and block_minutes")


@dataclass(frozen=True)
class DemoResult:
    stats: EngineStats
    """The engine's counters at the end (per rule: fired, sent, suppressed, responses...)."""
    final: Snapshot
    """The dashboard's last snapshot."""
    published: int
    """Messages the simulated store published."""
    received: dict[str, int]
    """``offer``/``alert`` -> actions the dashboard's probe received over MQTT."""
    staff: StaffCounts
    elapsed_s: float
    interrupted: bool
    server_pids: tuple[int, ...]
    """Process ids of the Mosquitto and Redis the demo started (all stopped by now)."""


# --------------------------------------------------------------------------- the store


class TrafficPlayer:
    """Publishes synthetic store traffic live, re-timed to the wall clock, until stopped."""

    def __init__(
        self,
        layout: StoreLayout,
        known: Sequence[str],
        host: str,
        port: int,
        *,
        shoppers: int = 40,
        seed: int = 7,
        speed: float = 1.0,
        block_minutes: float = 30.0,
        warm_minutes: float = 0.0,
        prefix: str = "fw",
        client_id: str = "floorwalker-demo-store",
    ) -> None:
        self.layout = layout
        # Consecutive blocks overlap (the last shoppers of one are still in the
        # store when the next one's arrive): give them disjoint known shoppers,
        # so that nobody is in two places at once.
        self.pools = (tuple(known[0::2]), tuple(known[1::2]))
        self.host, self.port = host, port
        self.per_block = round(shoppers * block_minutes / 10.0)
        self.seed, self.speed, self.prefix = seed, speed, prefix
        self.block_s = block_minutes * 60.0
        self.warm_s = warm_minutes * 60.0
        self.client_id = client_id
        self.published = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: paho.Client | None = None

    def start(self) -> TrafficPlayer:
        self._client = _mqtt.connect(self.client_id, self.host, self.port, max_inflight=200)
        self._thread = threading.Thread(
            target=self._run, name="floorwalker-demo-store", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._client is not None:
            _mqtt.close(self._client)
            self._client = None

    def messages(self, t0: float) -> Iterator[tuple[float, str, dict[str, Any]]]:
        """``(store ts, topic, payload)`` from ``t0`` on, blocks merged in ts order, endless."""
        heap: list[tuple[float, int, int, str, dict[str, Any], Iterator[Any]]] = []
        order = itertools.count()

        def push(block: int, it: Iterator[tuple[float, str, dict[str, Any]]]) -> None:
            item = next(it, None)
            if item is not None:
                heapq.heappush(heap, (item[0], next(order), block, item[1], item[2], it))

        newest, next_at = -1, t0
        while True:
            while not heap or heap[0][0] >= next_at:
                newest += 1
                push(newest, self._block(newest, next_at))
                next_at += self.block_s
            ts, _, block, topic, payload, it = heapq.heappop(heap)
            push(block, it)
            if block < newest and "band" in payload:
                continue  # the staff walk on in the newest block only
            yield ts, topic, payload

    def _block(self, k: int, start: float) -> Iterator[tuple[float, str, dict[str, Any]]]:
        cfg = TrafficSettings(
            shoppers=self.per_block,
            minutes=self.block_s / 60.0,
            seed=self.seed + k,
            start=start,
            known=self.pools[k % 2],
        )
        for topic, payload in generate(self.layout, cfg).messages(self.prefix):
            # Message ids and receipts restart in every block: keep them unique,
            # or the engine would drop them as duplicates.
            for key in ("id", "receipt"):
                if key in payload:
                    payload[key] = f"{payload[key]}.{k}"
            yield float(payload["ts"]), topic, payload

    def _run(self) -> None:
        client = self._client
        assert client is not None
        t0, mono0 = time.time(), time.monotonic()
        try:
            for ts, topic, payload in self.messages(t0 - self.warm_s):
                if ts < t0 and "online" not in payload:
                    continue  # the warm start: only the devices' status is kept
                delay = mono0 + (ts - t0) / self.speed - time.monotonic()
                if (delay > 0 and self._stop.wait(delay)) or self._stop.is_set():
                    return
                payload["ts"] = round(time.time(), 3)
                client.publish(topic, orjson.dumps(payload), qos=1)
                self.published += 1
        except Exception as exc:
            log.exception("the simulated store stopped")
            self.error = exc


# --------------------------------------------------------------------------- the staff


class StaffSimulator:
    """Wristbands that answer alerts: most acknowledge (then report done), some decline,
    some never answer. Only the first acknowledgement of an alert is sent."""

    def __init__(
        self,
        host: str,
        port: int,
        store: str,
        settings: StaffSettings | None = None,
        *,
        prefix: str = "fw",
        seed: int = 7,
        client_id: str = "floorwalker-demo-staff",
    ) -> None:
        self.host, self.port, self.store, self.prefix = host, port, store, prefix
        self.settings = settings or StaffSettings()
        self.client_id = client_id
        self._rng = random.Random(seed)
        self._due: list[tuple[float, int, str, str, str]] = []
        """(monotonic due time, seq, band, alert id, action)"""
        self._seq = itertools.count()
        self._acked: set[str] = set()
        self._counts = {"alerts": 0, "acks": 0, "done": 0, "declined": 0, "unanswered": 0}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._client: paho.Client | None = None

    def start(self) -> StaffSimulator:
        topic = f"{self.prefix}/{self.store}/band/+/alert"
        self._client = _mqtt.connect(
            self.client_id, self.host, self.port, subscriptions=(topic,), on_message=self._on
        )
        self._thread = threading.Thread(
            target=self._run, name="floorwalker-demo-staff", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._client is not None:
            _mqtt.close(self._client)
            self._client = None

    def counts(self) -> StaffCounts:
        with self._cond:
            return StaffCounts(**self._counts)

    def _on(self, topic: str, payload: bytes) -> None:
        """paho's thread: decide how this wearer answers, and when."""
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
            return
        band, alert = topic.split("/")[-2], obj["id"]
        s, rng = self.settings, self._rng
        with self._cond:
            self._counts["alerts"] += 1
            if alert in self._acked:
                return
            draw = rng.random()
            if draw < s.ack_share:
                self._schedule(rng.uniform(*s.ack_delay_s), band, alert, "ack")
            elif draw < s.ack_share + s.decline_share:
                self._schedule(rng.uniform(*s.decline_delay_s), band, alert, "decline")
            else:
                self._counts["unanswered"] += 1

    def _schedule(self, delay_s: float, band: str, alert: str, action: str) -> None:
        heapq.heappush(
            self._due, (time.monotonic() + delay_s, next(self._seq), band, alert, action)
        )
        self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                _, _, band, alert, action = heapq.heappop(self._due)
                if action != "done" and alert in self._acked:
                    continue  # somebody else took it meanwhile
                if action == "ack":
                    self._acked.add(alert)
                    self._counts["acks"] += 1
                    self._schedule(
                        self._rng.uniform(*self.settings.done_after_s), band, alert, "done"
                    )
                else:
                    self._counts["done" if action == "done" else "declined"] += 1
                n = next(self._seq)
            self._send(band, alert, action, n)

    def _send(self, band: str, alert: str, action: str, n: int) -> None:
        client = self._client
        if client is None:
            return
        topic = f"{self.prefix}/{self.store}/band/{band}/ack"
        payload = {"id": f"{band}-{action}-{n}", "ts": round(time.time(), 3), "alert": alert}
        payload["action"] = action
        client.publish(topic, orjson.dumps(payload), qos=1)


# --------------------------------------------------------------------------- the demo


def demo_timezone(now: float, hour: int = DEMO_HOUR) -> str:
    """A fixed-offset IANA zone (``Etc/GMT-N``, sign inverted) in which it is ``hour``:xx now."""
    offset = (hour - datetime.fromtimestamp(now, UTC).hour) % 24
    if offset > 14:  # Etc/GMT zones span UTC-12 to UTC+14
        offset -= 24
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT+0"


def _demo_registry(source: Path, workdir: Path, timezone: str) -> Path:
    """The registry file with another timezone (and the simulator's extras kept)."""
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    raw["timezone"] = timezone
    path = workdir / source.name
    path.write_text(
        f"# {source} with the demo's timezone\n" + yaml.safe_dump(raw, sort_keys=False),
        encoding="utf-8",
    )
    return path


class _Notes(logging.Handler):
    """Keeps the last few warnings for the dashboard (a live display can't share stderr)."""

    def __init__(self, size: int = 3) -> None:
        super().__init__(logging.WARNING)
        self.lines: deque[str] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}"[:160])


@contextlib.contextmanager
def _demo_logging(workdir: Path) -> Iterator[_Notes]:
    logger = logging.getLogger("floorwalker")
    notes = _Notes()
    file = logging.FileHandler(workdir / "floorwalker.log", encoding="utf-8")
    file.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(file)
    logger.addHandler(notes)
    try:
        yield notes
    finally:
        logger.removeHandler(notes)
        logger.removeHandler(file)
        logger.setLevel(level)
        file.close()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the demo like Ctrl-C does (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(settings: DemoSettings | None = None, *, out: TextIO | None = None) -> DemoResult:
    """Run the live demo until ``settings.minutes`` pass or Ctrl-C; print a summary at the end.

    A Ctrl-C while it runs ends it normally (``interrupted=True``); one during
    start-up propagates as :class:`KeyboardInterrupt`, after everything started
    so far has been stopped.
    """
    s = settings or DemoSettings()
    out = out if out is not None else sys.stdout
    with contextlib.ExitStack() as stack:
        if s.workdir is not None:
            workdir = s.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="floorwalker-demo-"))
            workdir = Path(tmp)
        notes = stack.enter_context(_demo_logging(workdir))
        stack.enter_context(_sigterm_interrupts())
        demo = _start(stack, s, workdir, notes, out)
        interrupted = _wait(s.minutes, demo.player)
        result = _finish(demo, interrupted)
    out.write(summary_text(result))
    out.flush()
    return result


@dataclass
class _Running:
    """The parts of a running demo, for :func:`_finish`."""

    runner: EdgeRunner
    tail: ActionTail
    staff: StaffSimulator
    player: TrafficPlayer
    dashboard: LiveDashboard
    snapshot: Callable[[], Snapshot]
    server_pids: tuple[int, ...]
    started: float


def _start(
    stack: contextlib.ExitStack, s: DemoSettings, workdir: Path, notes: _Notes, out: TextIO
) -> _Running:
    """Start everything, each part registered on ``stack`` to be stopped in reverse."""
    broker = stack.enter_context(services.mosquitto(services.MosquittoSettings(), workdir))
    redis = stack.enter_context(services.redis(services.RedisSettings(), workdir))
    profiles = import_profiles(redis.url, s.profiles)

    layout = load_layout(s.registry)
    timezone = layout.registry.timezone
    registry = s.registry
    if not s.real_clock:
        timezone = demo_timezone(time.time())
        registry = _demo_registry(s.registry, workdir, timezone)
        layout = load_layout(registry)
    store = layout.registry.store
    tz = ZoneInfo(timezone)

    edge = EdgeSettings(
        mqtt=broker.url,
        redis=redis.url,
        registries=(registry,),
        rules=s.rules,
        metrics_port=0,
        prefix=s.prefix,
        client_id="floorwalker-demo-edge",
    )
    runner = stack.enter_context(running(edge))
    if not runner.link.connected.wait(10.0):
        raise ServiceError(f"the edge runner could not connect to {broker.url}")
    tail = ActionTail(broker.host, broker.port, prefix=s.prefix).start()
    stack.callback(tail.stop)
    staff = StaffSimulator(broker.host, broker.port, store, s.staff, prefix=s.prefix, seed=s.seed)
    staff.start()
    stack.callback(staff.stop)
    player = TrafficPlayer(
        layout,
        load_tokens(s.profiles),
        broker.host,
        broker.port,
        shoppers=s.shoppers,
        seed=s.seed,
        speed=s.speed,
        block_minutes=s.block_minutes,
        warm_minutes=s.warm_minutes,
        prefix=s.prefix,
    )
    reader = MetricsReader(runner.metrics.registry)
    started = time.monotonic()

    def snapshot() -> Snapshot:
        return reader.snapshot(
            elapsed_s=time.monotonic() - started,
            store=store,
            clock=datetime.now(tz).strftime("%H:%M:%S"),
            tz=tz,
            published=player.published,
            staff=staff.counts(),
            tail=tail.lines(),
            notes=tuple(notes.lines),
        )

    _print_where(out, s, broker, redis, runner, profiles, registry, timezone, tz)
    dashboard = LiveDashboard(
        snapshot,
        out=out,
        live=s.live,
        refresh_per_second=s.refresh_per_second,
        plain_every_s=s.plain_every_s,
    )
    dashboard.start()
    stack.callback(dashboard.stop)
    player.start()
    stack.callback(player.stop)
    return _Running(
        runner, tail, staff, player, dashboard, snapshot, (broker.pid, redis.pid), started
    )


def _finish(demo: _Running, interrupted: bool) -> DemoResult:
    """Stop the producers, let the engine finish what is in flight, then take the count.

    The servers are still up; the caller's ExitStack stops them (and calls
    these ``stop`` methods again, which is harmless).
    """
    demo.player.stop()
    time.sleep(0.3)
    demo.staff.stop()
    demo.runner.stop()
    engine = demo.runner.engine
    assert engine is not None
    demo.runner.metrics.sync(engine)  # the core thread has stopped: safe to read the engine
    demo.dashboard.stop()
    return DemoResult(
        stats=engine.stats,
        final=demo.snapshot(),
        published=demo.player.published,
        received=dict(demo.tail.received),
        staff=demo.staff.counts(),
        elapsed_s=time.monotonic() - demo.started,
        interrupted=interrupted,
        server_pids=demo.server_pids,
    )


def _wait(minutes: float | None, player: TrafficPlayer) -> bool:
    """Until ``minutes`` have passed (True if Ctrl-C came first); re-raises the store's error."""
    deadline = None if minutes is None else time.monotonic() + minutes * 60.0
    try:
        while True:
            if player.error is not None:
                raise ServiceError(f"the simulated store failed: {player.error}")
            left = 0.5 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.5, left))
    except KeyboardInterrupt:
        return True


def _print_where(
    out: TextIO,
    s: DemoSettings,
    broker: services.RunningService,
    redis: services.RunningService,
    runner: EdgeRunner,
    profiles: int,
    registry: Path,
    timezone: str,
    tz: ZoneInfo,
) -> None:
    clock = datetime.now(tz).strftime("%H:%M")
    if s.real_clock:
        why = "the store's own timezone"
    else:
        why = (
            f"the demo's timezone, so that breakfast rules are on; "
            f"--real-clock keeps {load_layout(s.registry).registry.timezone}"
        )
    length = f"for {s.minutes:g} min" if s.minutes is not None else "until Ctrl-C"
    lines = [
        "Floorwalker live demo: broker, Redis, engine and a simulated store on this machine.",
        f"  broker   {broker.url}   (watch: mosquitto_sub -p {broker.port} -t '{s.prefix}/#' -v)",
        f"  redis    {redis.url}   ({profiles} shopper profiles imported)",
        f"  metrics  http://127.0.0.1:{runner.metrics_port}/metrics",
        f"  store    {registry} with the rules in {s.rules}",
        f"  clock    store time {clock} ({timezone}: {why})",
        f"  traffic  {s.shoppers} shoppers per 10 min, seed {s.seed}, speed {s.speed:g}x, {length}",
        f"  workdir  {broker.dir.parent} (configs and logs; a temporary one is removed at exit)",
        "",
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()


def summary_text(result: DemoResult) -> str:
    """What the demo prints when it ends."""
    how = "interrupted" if result.interrupted else "done"
    f = result.final
    head = (
        f"\nFloorwalker demo {how} after {fmt_elapsed(result.elapsed_s)}: "
        f"{result.published} messages published by the store, "
        f"{result.received.get('offer', 0)} offers and {result.received.get('alert', 0)} "
        "alerts delivered to devices.\n"
    )
    tail = (
        f"latency device->publish p50 {fmt_seconds(f.decision_p50_s)}, "
        f"p99 {fmt_seconds(f.decision_p99_s)}; arrival->publish "
        f"p50 {fmt_seconds(f.arrival_p50_s)}, p99 {fmt_seconds(f.arrival_p99_s)}; "
        f"timer lateness p50 {fmt_seconds(f.timer_p50_s)}, p99 {fmt_seconds(f.timer_p99_s)}\n"
    )
    st = result.staff
    staff = (
        f"staff: {st.alerts} alerts on wristbands, {st.acks} acknowledged, {st.done} done, "
        f"{st.declined} declined, {st.unanswered} unanswered\n"
    )
    dead = ", ".join(f"{k}={v}" for k, v in sorted(f.deadletters.items())) or "none"
    return head + format_summary(result.stats) + tail + staff + f"dead letters: {dead}\n"
