"""The live demo (``floorwalker demo``): broker, Redis, engine and a simulated store on one machine.

:func:`run_demo` does, in order, and undoes all of it on Ctrl-C, SIGTERM or an
error (one :class:`contextlib.ExitStack`):

1. starts Mosquitto and Redis on free loopback ports in a temporary workdir
   (:mod:`floorwalker.services`); the broker with authentication and ACLs on,
   its config generated from the demo store's registry
   (:mod:`floorwalker.devices.broker_config`, in ``<workdir>/broker``): the
   engine connects as the engine, the simulated store, staff and the dashboard
   as the ``store-simulator`` (every device topic of the store, no forged action);
2. imports the demo shopper profiles into Redis;
3. starts the edge runner (Redis-backed, ``/metrics`` on a free port) on the
   demo store and the shipped rule catalog;
4. starts the simulated staff (:class:`~floorwalker.simulators.live_devices.StaffSimulator`):
   wristbands that acknowledge most alerts after a realistic delay, decline
   some and let some pass, so escalations and response times show;
5. starts the live dashboard (:mod:`floorwalker.dashboards.live`) and the live
   floor page (:mod:`floorwalker.dashboards.web`, on a free port unless
   ``http_port`` says which; its token is generated into ``<workdir>/http-token``);
6. starts the simulated store (:class:`~floorwalker.simulators.live_devices.TrafficPlayer`):
   synthetic traffic of the demo store published live over MQTT, re-timed to
   the wall clock, in blocks of ``block_minutes`` of store time, until stopped.

The engine runs on the real wall clock, as in production. So that the
breakfast daypart (08:00-10:00 store time) is on whenever the demo runs, the
demo store gets a fixed-offset timezone (``Etc/GMT-N``) in which it is now
08:xx; ``real_clock=True`` keeps the registry's own timezone.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Final, Protocol, TextIO
from zoneinfo import ZoneInfo

import yaml

from floorwalker import services
from floorwalker.dashboards.live import (
    ActionTail,
    LiveDashboard,
    MetricsReader,
    Snapshot,
    fmt_elapsed,
    fmt_seconds,
)
from floorwalker.dashboards.web.server import FloorServer, floor_page
from floorwalker.devices.broker_config import SIMULATOR_USER, write_broker_config
from floorwalker.devices.registry import load_registry
from floorwalker.engine.core.stats import EngineStats
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.edge import EdgeRunner, running
from floorwalker.engine.runners.settings import EdgeSettings
from floorwalker.engine.runners.summary import format_summary
from floorwalker.engine.stores.redis_profiles import import_profiles
from floorwalker.errors import ServiceError
from floorwalker.simulators.live_devices import (
    StaffCounts,
    StaffSettings,
    StaffSimulator,
    TrafficPlayer,
)
from floorwalker.simulators.traffic import (
    DEMO_PROFILES,
    DEMO_REGISTRY,
    StoreLayout,
    load_layout,
    load_tokens,
)

log = logging.getLogger("floorwalker.demo")

CATALOG: Final = Path(__file__).resolve().parent.parent / "rules" / "catalog"
DEMO_HOUR: Final = 8
"""Store-local hour the demo starts in (unless ``real_clock``): breakfast time."""


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
    http_port: int = 0
    """The floor page's port; 0: a free one."""

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
    page_url: str
    """Where the floor page was (its token was in ``<workdir>/http-token``)."""


# --------------------------------------------------------------------------- the demo


def demo_timezone(now: float, hour: int = DEMO_HOUR) -> str:
    """A fixed-offset IANA zone (``Etc/GMT-N``, sign inverted) in which it is ``hour``:xx now."""
    offset = (hour - datetime.fromtimestamp(now, UTC).hour) % 24
    if offset > 14:  # Etc/GMT zones span UTC-12 to UTC+14
        offset -= 24
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT+0"


def demo_registry(source: Path, workdir: Path, timezone: str) -> Path:
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
def sigterm_interrupts() -> Iterator[None]:
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
        stack.enter_context(sigterm_interrupts())
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
    page: FloorServer


def _start(
    stack: contextlib.ExitStack, s: DemoSettings, workdir: Path, notes: _Notes, out: TextIO
) -> _Running:
    """Start everything, each part registered on ``stack`` to be stopped in reverse."""
    layout = load_layout(s.registry)
    timezone = layout.registry.timezone
    registry = s.registry
    if not s.real_clock:
        timezone = demo_timezone(time.time())
        registry = demo_registry(s.registry, workdir, timezone)
        layout = load_layout(registry)
    store = layout.registry.store
    tz = ZoneInfo(timezone)

    config = write_broker_config(
        [load_registry(registry)], workdir / "broker", prefix=s.prefix, simulator=True
    )
    auth = services.MosquittoSettings(auth=config.auth)
    broker = stack.enter_context(services.mosquitto(auth, workdir))
    redis = stack.enter_context(services.redis(services.RedisSettings(), workdir))
    profiles = import_profiles(redis.url, s.profiles)
    engine = config.credentials.engine
    sim = config.credentials.identity(SIMULATOR_USER)
    devices = BrokerAddress(broker.host, broker.port).with_identity(sim.username, sim.password)

    edge = EdgeSettings(
        mqtt=broker.url,
        mqtt_username=engine.username,
        mqtt_password=engine.password,
        redis=redis.url,
        registries=(registry,),
        rules=s.rules,
        metrics_port=0,
        prefix=s.prefix,
        client_id="floorwalker-demo-edge",
        http_port=s.http_port,
        http_token_file=workdir / "http-token",
    )
    runner = stack.enter_context(running(edge))
    if not runner.link.connected.wait(10.0):
        raise ServiceError(f"the edge runner could not connect to {broker.url}")
    page = stack.enter_context(floor_page(runner))
    tail = ActionTail(devices, prefix=s.prefix).start()
    stack.callback(tail.stop)
    staff, player = simulated_store(stack, s, layout, devices)
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

    _print_where(out, s, broker, redis, runner, page, profiles, registry, timezone, tz)
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
    return _Running(
        runner, tail, staff, player, dashboard, snapshot, (broker.pid, redis.pid), started, page
    )


class StoreTraffic(Protocol):
    """What the simulated store and staff are made of (both demos' settings have it)."""

    @property
    def staff(self) -> StaffSettings: ...
    @property
    def profiles(self) -> Path: ...
    @property
    def shoppers(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def speed(self) -> float: ...
    @property
    def block_minutes(self) -> float: ...
    @property
    def warm_minutes(self) -> float: ...
    @property
    def prefix(self) -> str: ...


def simulated_store(
    stack: contextlib.ExitStack, s: StoreTraffic, layout: StoreLayout, devices: BrokerAddress
) -> tuple[StaffSimulator, TrafficPlayer]:
    """The simulated staff (started) and store traffic (to start), stopped with ``stack``."""
    store = layout.registry.store
    staff = StaffSimulator(devices, None, store, s.staff, prefix=s.prefix, seed=s.seed)
    staff.start()
    stack.callback(staff.stop)
    player = TrafficPlayer(
        layout,
        load_tokens(s.profiles),
        devices,
        shoppers=s.shoppers,
        seed=s.seed,
        speed=s.speed,
        block_minutes=s.block_minutes,
        warm_minutes=s.warm_minutes,
        prefix=s.prefix,
    )
    stack.callback(player.stop)
    return staff, player


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
        page_url=demo.page.url,
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
    page: FloorServer,
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
    creds = broker.dir.parent / "broker" / "credentials.json"
    lines = [
        "Floorwalker live demo: broker, Redis, engine and a simulated store on this machine.",
        f"  broker   {broker.url}   (authentication on; identities in {creds})",
        f"  watch    mosquitto_sub -p {broker.port} -u {SIMULATOR_USER} -P <its password> "
        f"-t '{s.prefix}/#' -v",
        f"  redis    {redis.url}   ({profiles} shopper profiles imported)",
        f"  metrics  http://127.0.0.1:{runner.metrics_port}/metrics",
        f"  page     {page.url}   (the live floor page; its token is in {page.token.file}:",
        f"           open {page.url}?token=$(cat {page.token.file}) )",
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
