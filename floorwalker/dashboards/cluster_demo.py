"""``floorwalker cluster-demo``: the cluster runner live on one machine.

Starts, on loopback, in a temporary workdir, and stops all of it on Ctrl-C,
SIGTERM, the end of ``--seconds`` or an error (one :class:`contextlib.ExitStack`):

1. Mosquitto with authentication and ACLs (the demo store's generated config),
   Redis (the demo shopper profiles imported) and tansu, an in-memory
   Kafka-protocol broker;
2. the bridge (``floorwalker bridge``, as the engine's MQTT identity, dedup in
   Redis) and two wall-clock workers (``floorwalker worker --clock wall``), as
   child processes with their logs in the workdir;
3. once the workers share the partitions: the simulated staff, an action tail
   and the simulated store of ``floorwalker demo`` (its traffic over MQTT).

Each worker serves the live floor page of the stores it holds (``--http-port 0``,
one token for all of them, generated into ``<workdir>/http-token``); the banner
gives every page's address and where the token is, never the token.

It prints what runs where (never a password), a status line every few seconds
and, at the end, what flowed and how every child exited.
"""

from __future__ import annotations

import contextlib
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from floorwalker import services
from floorwalker.dashboards.demo import (
    CATALOG,
    demo_registry,
    demo_timezone,
    sigterm_interrupts,
    simulated_store,
)
from floorwalker.dashboards.live import ActionTail
from floorwalker.dashboards.web.auth import resolve_token
from floorwalker.devices.broker_config import SIMULATOR_USER, write_broker_config
from floorwalker.devices.registry import load_registry
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.cluster.launch import Child, Cluster, wait_shared
from floorwalker.engine.runners.cluster.tansu import tansu
from floorwalker.engine.stores.redis_profiles import import_profiles
from floorwalker.errors import ServiceError
from floorwalker.simulators.live_devices import StaffSettings, StaffSimulator, TrafficPlayer
from floorwalker.simulators.traffic import DEMO_PROFILES, DEMO_REGISTRY, load_layout

PAGE_LINE = re.compile(r"floor page (http://\S+/)")
PAGE_WAIT_S = 15.0


@dataclass(frozen=True)
class ClusterDemoSettings:
    seconds: float | None = None
    """Wall-clock seconds to run once everything is up; None runs until Ctrl-C."""
    shoppers: int = 100
    seed: int = 7
    speed: float = 1.0
    partitions: int = 4
    workers: int = 2
    status_every_s: float = 5.0
    block_minutes: float = 30.0
    warm_minutes: float = 5.0
    staff: StaffSettings = field(default_factory=StaffSettings)
    registry: Path = DEMO_REGISTRY
    profiles: Path = DEMO_PROFILES
    rules: Path = CATALOG
    prefix: str = "fw"
    workdir: Path | None = None

    def __post_init__(self) -> None:
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError("seconds must be positive")
        if self.workers < 1 or self.partitions < self.workers:
            raise ValueError("at least one worker, and no more workers than partitions")


@dataclass(frozen=True)
class ClusterDemoResult:
    published: int
    received: dict[str, int]
    """``offer``/``alert`` -> actions that reached the devices over MQTT."""
    exit_codes: dict[str, int | None]
    """Child process -> its exit code after the stop (0: stopped cleanly)."""
    pids: tuple[int, ...]
    """Every process the demo started (servers and children), all gone by now."""
    interrupted: bool
    pages: dict[str, str] = field(default_factory=dict)
    """Worker -> the address of its floor page (gone by now)."""
    token_file: Path | None = None
    """Where the pages' token was (``<workdir>/http-token``)."""


def run_cluster_demo(
    settings: ClusterDemoSettings | None = None, *, out: TextIO | None = None
) -> ClusterDemoResult:
    s = settings or ClusterDemoSettings()
    out = out if out is not None else sys.stdout
    with contextlib.ExitStack() as stack:
        if s.workdir is not None:
            workdir = s.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fw-cluster-")))
        stack.enter_context(sigterm_interrupts())
        running = stack.enter_context(_started(s, workdir, out))
        interrupted = _wait(s, running, out)
        exit_codes = running.stop_all()
        result = ClusterDemoResult(
            published=running.player.published,
            received=dict(running.tail.received),
            exit_codes=exit_codes,
            pids=running.pids,
            interrupted=interrupted,
            pages=running.pages,
            token_file=running.token_file,
        )
    out.write(_summary(result))
    out.flush()
    return result


@dataclass
class _Running:
    children: list[Child]
    tail: ActionTail
    staff: StaffSimulator
    player: TrafficPlayer
    pids: tuple[int, ...]
    pages: dict[str, str]
    token_file: Path

    def stop_all(self) -> dict[str, int | None]:
        """Traffic first, then the children (SIGTERM: final checkpoints); their exit codes."""
        self.player.stop()
        self.staff.stop()
        time.sleep(0.5)
        codes = {child.name: child.stop() for child in reversed(self.children)}
        self.tail.stop()
        return codes


@contextlib.contextmanager
def _started(s: ClusterDemoSettings, workdir: Path, out: TextIO) -> Iterator[_Running]:
    with contextlib.ExitStack() as stack:
        timezone = demo_timezone(time.time())
        registry = demo_registry(s.registry, workdir, timezone)
        config = write_broker_config(
            [load_registry(registry)], workdir / "broker", prefix=s.prefix, simulator=True
        )
        broker = stack.enter_context(
            services.mosquitto(services.MosquittoSettings(auth=config.auth), workdir)
        )
        redis = stack.enter_context(services.redis(services.RedisSettings(), workdir))
        profiles = import_profiles(redis.url, s.profiles)
        tansu_log = workdir / "tansu.log"
        kafka = stack.enter_context(tansu(tansu_log))
        engine = config.credentials.engine
        sim = config.credentials.identity(SIMULATOR_USER)
        plain = BrokerAddress(broker.host, broker.port)
        cluster = Cluster(
            kafka=kafka,
            registries=(registry,),
            rules=s.rules,
            workdir=workdir,
            prefix=s.prefix,
            partitions=s.partitions,
            redis=redis.url,
        )
        bridge = Child(
            "bridge",
            cluster.bridge_argv(plain.with_identity(engine.username, engine.password), "fw-bridge"),
            workdir / "bridge.log",
        )
        token_file = workdir / "http-token"
        resolve_token(None, token_file, 0)  # made once here: every worker reads the same
        page_args = ("--http-port", "0", "--http-token-file", str(token_file))
        workers = [
            Child(
                f"worker-{i}",
                cluster.worker_argv(f"worker-{i}", extra=page_args),
                workdir / f"worker-{i}.log",
            )
            for i in range(s.workers)
        ]
        started: list[Child] = []

        def stop_children() -> None:
            for child in reversed(started):
                child.stop()

        stack.callback(stop_children)
        for child in [bridge, *workers]:
            started.append(child.start())
        owned = wait_shared(workers, s.partitions, timeout_s=120)
        pages = {w.name: _page_of(w) for w in workers}
        devices = plain.with_identity(sim.username, sim.password)
        tail = ActionTail(devices, prefix=s.prefix, client_id="fw-cluster-demo-tail").start()
        stack.callback(tail.stop)
        staff, player = simulated_store(stack, s, load_layout(registry), devices)
        _print_where(out, s, broker, redis, kafka, started, owned, profiles, workdir)
        _print_pages(out, pages, token_file)
        player.start()
        yield _Running(
            started,
            tail,
            staff,
            player,
            (broker.pid, redis.pid, *(child.pid for child in started)),
            pages,
            token_file,
        )


def _page_of(worker: Child) -> str:
    """The floor page address the worker printed at start."""
    deadline = time.monotonic() + PAGE_WAIT_S
    while True:
        found = PAGE_LINE.search(worker.text())
        if found:
            return found[1]
        if not worker.alive or time.monotonic() > deadline:
            raise ServiceError(f"{worker.name} did not start its floor page:\n{worker.tail()}")
        time.sleep(0.05)


def _print_pages(out: TextIO, pages: dict[str, str], token_file: Path) -> None:
    lines = [
        f"  page     {url}   (the floor page of {name}'s stores)" for name, url in pages.items()
    ]
    first = next(iter(pages.values()))
    lines += [
        f"           token in {token_file}: open {first}?token=$(cat {token_file})",
        "",
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()


def _print_where(
    out: TextIO,
    s: ClusterDemoSettings,
    broker: services.RunningService,
    redis: services.RunningService,
    kafka: str,
    started: list[Child],
    owned: dict[str, list[int]],
    profiles: int,
    workdir: Path,
) -> None:
    length = f"for {s.seconds:g} s" if s.seconds is not None else "until Ctrl-C"
    lines = [
        "Floorwalker cluster demo: every part on this machine, on loopback.",
        f"  mqtt     {broker.url}   (authentication on; identities in "
        f"{workdir / 'broker' / 'credentials.json'})",
        f"  redis    {redis.url}   ({profiles} shopper profiles; guards, dedup)",
        f"  kafka    {kafka}   (tansu, in memory; topics {s.prefix}.events, {s.prefix}.actions, "
        f"{s.partitions} partitions)",
    ]
    for child in started:
        parts = owned.get(child.name)
        what = f"partitions {parts}" if parts is not None else "MQTT <-> Kafka"
        lines.append(f"  {child.name:<8} pid {child.pid}   {what}   log {child.log}")
    lines += [
        f"  traffic  {s.shoppers} shoppers per 10 min, seed {s.seed}, speed {s.speed:g}x, {length}",
        f"  workdir  {workdir} (a temporary one is removed at exit)",
        "",
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()


def _wait(s: ClusterDemoSettings, running: _Running, out: TextIO) -> bool:
    """Until ``seconds`` pass (True if Ctrl-C came first); a status line now and then."""
    start = time.monotonic()
    deadline = None if s.seconds is None else start + s.seconds
    next_status = start + s.status_every_s
    try:
        while True:
            if running.player.error is not None:
                raise ServiceError(f"the simulated store failed: {running.player.error}")
            dead = [c.name for c in running.children if not c.alive]
            if dead:
                raise ServiceError(f"{', '.join(dead)} exited; see the logs in the workdir")
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            if now >= next_status:
                next_status += s.status_every_s
                out.write(_status(now - start, running) + "\n")
                out.flush()
            time.sleep(0.2)
    except KeyboardInterrupt:
        return True


def _status(elapsed: float, running: _Running) -> str:
    got = running.tail.received
    return (
        f"[{elapsed:5.0f} s] published {running.player.published}, "
        f"delivered {got.get('offer', 0)} offers and {got.get('alert', 0)} alerts"
    )


def _summary(result: ClusterDemoResult) -> str:
    how = "interrupted" if result.interrupted else "done"
    codes = ", ".join(f"{name} {code}" for name, code in result.exit_codes.items())
    return (
        f"\nFloorwalker cluster demo {how}: {result.published} messages published by the store, "
        f"{result.received.get('offer', 0)} offers and {result.received.get('alert', 0)} alerts "
        f"delivered to devices.\nexit codes: {codes}\n"
    )
