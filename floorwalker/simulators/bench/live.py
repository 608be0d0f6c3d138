"""``floorwalker bench live``: the live path against its floor, and against Node-RED.

One run, on this machine, everything on loopback, the broker with
authentication and ACLs on (``floorwalker broker-config``'s generator):

1. starts Mosquitto (production settings: ``max_inflight_messages`` 20,
   ``max_queued_messages`` 100k) and Redis; writes a bench store (the demo store,
   256 bells and two dwell zones), the bench rules (a bell press pages the
   nearest staff band and escalates to the next after 1 s; 3 s in a dwell zone
   gets an offer) and the dwellers' profiles, imported into Redis;
2. measures each target on the same load, on its own topic prefix:

   * **floor**: a minimal paho process (:func:`.live_clients.echo_main`) that
     decodes every message and answers each bell press;
   * **floorwalker**: ``floorwalker run`` as a subprocess, Redis-backed;
   * **nodered** (``--target nodered``): Node-RED from npm running the equivalent
     dwell-and-bell flow (:mod:`.nodered`);

   per series (single sightings; gateway batches of 20 and of 200 sightings per
   message) and offered rate (sightings/s): background sightings from the
   raw-socket generators (:mod:`.live_load`), bell presses at 20/s and 20
   dwellers from the probe (:func:`.live_clients.probe_main`). Per step: events
   processed and the processing rate, losses, press -> step-1 alert latency,
   escalation and dwell lateness (due time -> arrival), CPU of every process;
3. prints every target of issue #12 as met / not met with its numbers
   (:mod:`.live_report`), writes ``--json`` and, with ``--plots DIR``, the
   latency-vs-rate plots (:mod:`.live_plots`).

Last, it **calibrates the instrument**: the generator processes alone (nobody
subscribed) at twice the highest rate each series tested; the report says
whether they kept up, so that a target's ceiling is known not to be the
generator's.

``main(argv)`` is the command; :func:`run_live_bench` returns the JSON-ready dict.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import orjson
import yaml

from floorwalker import services
from floorwalker.devices.broker_config import (
    ANY_PREFIX,
    SIMULATOR_USER,
    BrokerConfig,
    write_broker_config,
)
from floorwalker.devices.registry import load_registry
from floorwalker.errors import ConfigError, ServiceError
from floorwalker.simulators.bench import live_clients as lc
from floorwalker.simulators.bench import live_load, live_measure, live_report, nodered
from floorwalker.simulators.bench.core import code_state
from floorwalker.simulators.traffic import DEMO_REGISTRY

TARGETS: Final = ("floor", "floorwalker", "floorwalker-thread", "floorwalker-memory", "nodered")
"""``floorwalker-thread`` is the runner with paho's network thread (``--network-loop thread``),
the design before issue #12's levers; ``floorwalker-memory`` the runner without Redis (guards,
dedup, profiles and the alert journal in memory): what the Redis round trips cost. Both are
measured in the same run, to compare; only ``floorwalker`` is held to the targets."""
PREFIXES: Final = {
    "floor": "fwfloor",
    "floorwalker": "fw",
    "floorwalker-thread": "fwt",
    "floorwalker-memory": "fwm",
    "nodered": "fwnr",
    "generator": "fwgen",
}
RATE_CAP: Final = 200_000
FIXED_RATES: Final = (1000, 5000, 10000)
RAMP_RATES: Final = (15000, 20000, 25000, 30000)
BATCHES: Final = (20, 200)
BATCH_RATES: Final = (5000, 20000, 40000)
QUICK: Final = {"rates": (1000,), "ramp": (3000,), "batches": (20,), "batch_rates": (2000,)}
WARM_UP_S: Final = 2.0
STATS_TIMEOUT_S: Final = 5.0
KEPT_UP: Final = 0.95
"""A step kept up if it processed >= this share of the offered rate and lost nothing."""

_RULES: Final = {
    "policy.yaml": "# bench: no cross-rule caps, no fatigue\noffers_per_shopper: []\n"
    "fatigue: null\nquiet_hours: []\n",
    "bench-bell.yaml": (
        "id: bench-bell\n"
        "description: A bell press pages the nearest staff member, then the next after 1 s.\n"
        "when:\n  bell: {}\n"
        "alert:\n  to: nearest\n  priority: high\n  message: Bell {bell} in {zone}.\n"
        f"  escalate:\n    - {{after: {lc.ESCALATE_S:g}s, to: next}}\n"
    ),
    "bench-dwell.yaml": (
        "id: bench-dwell\n"
        "description: A shopper who stays 3 s in a bench dwell zone gets an offer, every stay.\n"
        f"when:\n  dwell: {{zone_tag: {lc.DWELL_TAG}, at_least: {lc.DWELL_AT_LEAST_S:g}s}}\n"
        "offer:\n  id: bench-dwell-offer\n  message: 10% off here today.\n  expires: 1d\n"
    ),
}


@dataclass(frozen=True)
class LiveSettings:
    targets: tuple[str, ...] = ("floor", "floorwalker")
    rates: tuple[int, ...] = FIXED_RATES
    """Single sightings, sightings/s: every target runs all of them (the latency targets)."""
    ramp: tuple[int, ...] = RAMP_RATES
    """Further single-sighting rates, up to a target's saturation (and ``past_saturation`` more)."""
    batches: tuple[int, ...] = BATCHES
    batch_rates: tuple[int, ...] = BATCH_RATES
    """Gateway batch series: sightings/s (messages/s = rate / batch)."""
    step_s: float = 10.0
    settle_s: float = 5.0
    """After a step, stop waiting for the drain after this long without progress..."""
    drain_cap_s: float = 60.0
    """...or after this long in all (a saturated step leaves a backlog in the broker)."""
    past_saturation: int = 1
    press_rate: float = lc.PRESS_RATE
    generators: int = 1
    window: int = 20_000
    """Most PUBLISH frames a generator leaves unacknowledged."""
    qos: int = 1
    calibrate: bool = True
    broker_inflight: int | None = None
    workdir: Path | None = None
    nodered_dir: Path | None = None

    def __post_init__(self) -> None:
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ValueError(f"targets are some of {', '.join(TARGETS)}; got {bad or 'none'}")
        rates = (*self.rates, *self.ramp, *self.batch_rates)
        if not self.rates or any(not 0 < r <= RATE_CAP for r in rates):
            raise ValueError(f"rates must be between 1 and {RATE_CAP} sightings/s")
        if any(not 1 < b <= 1000 for b in self.batches):
            raise ValueError("a gateway batch has 2 to 1,000 sightings (the wire contract's limit)")
        if not 0 < self.step_s <= 120 or not 0 < self.settle_s <= 120:
            raise ValueError("steps and settle time must be in (0, 120] s")
        if not 0 < self.drain_cap_s <= 600 or not 0 <= self.press_rate <= 200:
            raise ValueError("drain_cap_s must be in (0, 600] s and press_rate in [0, 200]/s")
        if not 1 <= self.generators <= 8 or self.qos not in (0, 1) or self.window < 1:
            raise ValueError("1 to 8 generators, QoS 0 or 1, a window >= 1")

    def series(self) -> list[tuple[str, int, tuple[int, ...], tuple[int, ...]]]:
        """(name, sightings per message, fixed rates, ramp rates)."""
        out = [("single", 1, self.rates, self.ramp)]
        out += [(f"batch{b}", b, self.batch_rates, ()) for b in self.batches]
        return out

    def top_rate(self, batch: int) -> int:
        if batch == 1:
            return max((*self.rates, *self.ramp))
        return max(self.batch_rates)


# --------------------------------------------------------------------------- set-up


@dataclass
class _Setup:
    registry: Path
    rules: Path
    profiles: Path
    beacons: list[tuple[str, str]]
    """Background (beacon, gateway) pairs: every beacon but the dwell zones'."""
    layout: dict[str, Any]


def write_inputs(workdir: Path) -> _Setup:
    """The bench store, rules and dwellers' profiles under ``workdir``."""
    raw = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    raw["store"] = lc.STORE
    zones = list(raw["zones"])
    raw["bells"] = {b: {"zone": zones[k % len(zones)]} for k, b in enumerate(lc.bell_ids())}
    gateways = sorted(raw["gateways"])
    beacons = [
        (str(b), str(spec.get("gateway") or gateways[k % len(gateways)]))
        for k, (b, spec) in enumerate(raw["beacons"].items())
    ]
    for zone, beacon in zip(lc.DWELL_ZONES, lc.DWELL_BEACONS, strict=True):
        raw["zones"][zone] = {"tags": [lc.DWELL_TAG], "section": "bench"}
        raw["beacons"][beacon] = {"zone": zone, "gateway": lc.DWELL_GATEWAY}
    registry = workdir / "bench-store.yaml"
    registry.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    rules = workdir / "rules"
    rules.mkdir(exist_ok=True)
    for name, text in _RULES.items():
        (rules / name).write_text(text, encoding="utf-8")
    profiles = workdir / "profiles.jsonl"
    with profiles.open("wb") as f:
        for k, shopper in enumerate(lc.dweller_ids()):
            profile: dict[str, Any] = {"shopper": shopper, "tier": ("member", "gold")[k % 2]}
            profile.update(segment="regular", consent={"marketing": True}, lifetime_value=100.0)
            f.write(orjson.dumps(profile) + b"\n")
    return _Setup(registry, rules, profiles, beacons, raw)


class _Runner:
    """``floorwalker run`` as a subprocess (the production entry point), with its credentials."""

    def __init__(self, setup: _Setup, env: _Env, name: str, redis_prefix: str, loop: str) -> None:
        self.metrics_port = services.free_port()
        self.log_path = env.workdir / f"{name}.log"
        self._log = self.log_path.open("ab")
        engine = env.broker.credentials.engine
        secret = env.workdir / "engine.password"
        secret.touch(mode=0o600)
        secret.write_text(engine.password + "\n", encoding="utf-8")
        self.argv = [
            sys.executable,
            "-m",
            "floorwalker.cli",
            "run",
            "--mqtt",
            f"mqtt://{env.host}:{env.port}",
            "--mqtt-username",
            engine.username,
            "--mqtt-password-file",
            str(secret),
            *(
                ["--profiles", str(setup.profiles)]
                if name == "floorwalker-memory"
                else ["--redis", env.redis_url, "--redis-prefix", redis_prefix]
            ),
            "--registry",
            str(setup.registry),
            "--rules",
            str(setup.rules),
            "--metrics-port",
            str(self.metrics_port),
            "--client-id",
            f"bench-live-{name}-{env.run}",
            "--prefix",
            PREFIXES[name],
            "--network-loop",
            loop,
        ]
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                live_measure.scrape(self.metrics_url)
                if b"floorwalker: running on" in self.log_path.read_bytes():
                    return
            time.sleep(0.1)
        tail = self.log_path.read_text("utf-8", "replace")[-2000:]
        raise ServiceError(f"bench live: the runner did not start:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# --------------------------------------------------------------------------- the run


@dataclass
class _Env:
    """What every phase shares: settings, broker, Redis, the probe, the processes to watch."""

    cfg: LiveSettings
    stack: contextlib.ExitStack
    workdir: Path
    setup: _Setup
    broker: BrokerConfig
    run: str
    host: str
    port: int
    redis_url: str
    say: Callable[[str], None]
    pids: dict[str, int] = field(default_factory=dict)
    probe: live_measure.Child | None = None
    next_generator: int = 0

    def identity(self, who: str) -> dict[str, Any]:
        ident = self.broker.credentials.identity(who)
        return {
            "host": self.host,
            "port": self.port,
            "username": ident.username,
            "password": ident.password,
            "run": self.run,
        }

    def generators(self) -> list[live_measure.Child]:
        """The generator processes, fresh connections (one per process)."""
        n = self.cfg.generators
        kids = []
        for g in range(n):
            spec = self.identity(SIMULATOR_USER)
            self.next_generator += 1
            spec.update(
                index=g,
                of=n,
                beacons=self.setup.beacons,
                window=self.cfg.window,
                client_id=f"bench-live-gen-{self.run}-{self.next_generator}",
            )
            kids.append(
                live_measure.spawn(self.stack, f"generator-{g}", live_load.generator_main, spec)
            )
        return kids


@dataclass
class _Target:
    """One target under test: how to count what it processed, and its processes."""

    name: str
    processed: Callable[[], int]
    pids: dict[str, int]
    deadletters: Callable[[], dict[str, float]] = dict
    stop: Callable[[], None] = lambda: None


def _start_target(env: _Env, name: str) -> _Target:
    if name == "floor":
        spec = env.identity("engine")
        spec.update(prefix=PREFIXES["floor"], band=next(iter(env.setup.layout["staff"])))
        echo = live_measure.spawn(env.stack, "echo", lc.echo_main, spec)
        env.say("floor: paho echo process (QoS 1 in, orjson.loads, a step-1 alert per press)")
        return _Target(
            name,
            lambda: int(echo.ask({"op": "count"})["events"]),
            {"floor": echo.process.pid},
            stop=echo.stop,
        )
    if name.startswith("floorwalker"):
        return _start_runner(env, name)
    return _start_nodered(env)


def _start_runner(env: _Env, name: str) -> _Target:
    redis_prefix = f"bench{env.run}{PREFIXES[name]}:"
    if name != "floorwalker-memory":
        import_argv = ["profiles", "import", str(env.setup.profiles), "--redis", env.redis_url]
        import_argv += ["--redis-prefix", redis_prefix]
        subprocess.run(
            [sys.executable, "-m", "floorwalker.cli", *import_argv],
            check=True,
            capture_output=True,
            timeout=60,
        )
    loop = "thread" if name == "floorwalker-thread" else "core"
    runner = _Runner(env.setup, env, name, redis_prefix, loop)
    env.stack.callback(runner.stop)
    runner.wait_ready()
    env.say(f"{name}: `floorwalker run --network-loop {loop}` subprocess {runner.proc.pid}")
    url = runner.metrics_url

    def count() -> int:
        m = live_measure.scrape(url)
        return int(
            m.get("floorwalker_events_in_total", 0) + m.get("floorwalker_deadletters_total", 0)
        )

    def deadletters() -> dict[str, float]:
        # and the snapshot counters: the core thread serializes the store every second
        keep = ("deadletter:", "floorwalker_snapshot")
        return {k: v for k, v in live_measure.scrape(url).items() if k.startswith(keep)}

    return _Target(name, count, {name: runner.proc.pid}, deadletters, runner.stop)


def _start_nodered(env: _Env) -> _Target:
    env.say("nodered: installing / finding Node-RED (npm install --prefix, cached)")
    red = nodered.install(env.cfg.nodered_dir)
    layout = env.setup.layout
    engine = env.broker.credentials.engine
    flow = nodered.FlowConfig(
        host=env.host,
        port=env.port,
        username=engine.username,
        password=engine.password,
        prefix=PREFIXES["nodered"],
        client_id=f"bench-live-nodered-{env.run}",
        store=lc.STORE,
        beacon_zone={b: str(s["zone"]) for b, s in layout["beacons"].items()},
        bell_zone={b: str(s["zone"]) for b, s in layout["bells"].items()},
        bands=tuple(layout["staff"]),
        dwell_zones=lc.DWELL_ZONES,
        dwell_s=lc.DWELL_AT_LEAST_S,
        escalate_s=lc.ESCALATE_S,
    )
    proc = nodered.NodeRed(red, flow, env.workdir / "nodered")
    proc.start()
    env.stack.callback(proc.stop)
    env.say(f"nodered: Node-RED {nodered.VERSION}, pid {proc.pid}, {red}")
    last = [0]

    def count() -> int:
        # A swamped Node-RED answers its HTTP port late: keep the last count then.
        with contextlib.suppress(ServiceError):
            last[0] = int(proc.stats(timeout_s=STATS_TIMEOUT_S)["events"])
        return last[0]

    return _Target("nodered", count, {"nodered": proc.pid}, stop=proc.stop)


def _servers(env_cfg: LiveSettings, stack: contextlib.ExitStack, workdir: Path) -> dict[str, Any]:
    setup = write_inputs(workdir)
    broker = write_broker_config(
        [load_registry(setup.registry)], workdir / "broker", prefix=ANY_PREFIX, simulator=True
    )
    bset = services.MosquittoSettings(auth=broker.auth)
    if env_cfg.broker_inflight is not None:
        bset = services.MosquittoSettings(
            auth=broker.auth, max_inflight_messages=env_cfg.broker_inflight
        )
    mosq = stack.enter_context(services.mosquitto(bset, workdir))
    redis = stack.enter_context(services.redis(services.RedisSettings(), workdir))
    return {
        "setup": setup,
        "broker": broker,
        "mosquitto": mosq,
        "redis": redis,
        "inflight": bset.max_inflight_messages,
    }


@contextlib.contextmanager
def _workdir(cfg: LiveSettings) -> Iterator[Path]:
    if cfg.workdir is not None:
        cfg.workdir.mkdir(parents=True, exist_ok=True)
        yield cfg.workdir
        return
    with tempfile.TemporaryDirectory(prefix="floorwalker-bench-live-") as tmp:
        yield Path(tmp)


# --------------------------------------------------------------------------- one step


@dataclass
class _Phase:
    env: _Env
    target: _Target
    gens: list[live_measure.Child]
    cpu: live_measure.Cpu
    steps: list[dict[str, Any]] = field(default_factory=list)


def _send_all(gens: Sequence[live_measure.Child], cmd: dict[str, Any], rate: float) -> None:
    for gen in gens:
        gen.conn.send({**cmd, "rate": rate / len(gens)})


def _gather(gens: Sequence[live_measure.Child]) -> dict[str, Any]:
    reports = [g.conn.recv() for g in gens]
    merged: dict[str, Any] = {
        k: sum(r[k] for r in reports)
        for k in ("sent", "events", "acked_in_window", "acked", "publish_rate", "event_rate")
    }
    merged["elapsed_s"] = max(r["elapsed_s"] for r in reports)
    merged["blocked_s"] = max(r["blocked_s"] for r in reports)
    merged["behind_max"] = sum(r["behind_max"] for r in reports)
    merged["processes"] = len(reports)
    merged["buffer_frames"] = reports[0].get("buffer_frames")
    return merged


def _drive(
    ph: _Phase, prefix: str, batch: int, rate: int, seconds: float
) -> tuple[dict[str, Any], list[tuple[float, int]], int]:
    """Start presses, send the background load, sample the processed count meanwhile."""
    cfg, probe = ph.env.cfg, ph.env.probe
    assert probe is not None
    dwell = ph.target.name != "floor"  # the floor has no timers
    base = ph.target.processed()
    t0 = time.monotonic()
    cmd = {
        "op": "send",
        "prefix": prefix,
        "batch": batch,
        "qos": cfg.qos,
        "seconds": seconds,
        "max": int(rate / batch * seconds) + 1,
    }
    _send_all(ph.gens, cmd, rate / batch)
    probe.ask({"op": "start", "prefix": prefix, "press_rate": cfg.press_rate, "dwell": dwell})
    samples: list[tuple[float, int]] = [(0.0, 0)]
    while not all(g.conn.poll(0) for g in ph.gens):
        time.sleep(0.25)
        samples.append((time.monotonic() - t0, ph.target.processed() - base))
        if time.monotonic() - t0 > seconds + 60:
            raise ServiceError("bench live: a generator did not finish its step")
    probe.ask({"op": "stop"})
    gen = _gather(ph.gens)
    samples.append((time.monotonic() - t0, ph.target.processed() - base))
    return gen, samples, base


def _drain(ph: _Phase, base: int, expected: int, t0: float) -> tuple[int, dict[str, Any]]:
    """Wait until everything sent is processed and every alert is in, or it stops moving."""
    cfg, probe = ph.env.cfg, ph.env.probe
    assert probe is not None
    now = time.monotonic()
    cap_at, stall_at, last = now + cfg.drain_cap_s, now + cfg.settle_s, -1
    while True:
        done = ph.target.processed() - base
        peek = probe.ask({"op": "peek"})
        progress = done + peek["alerts_step1"] + peek["alerts_step2"] + peek["offers"]
        now = time.monotonic()
        if progress > last:
            last, stall_at = progress, now + cfg.settle_s
        alerts_in = peek["alerts_step1"] >= peek["presses"]
        if ph.target.name != "floor":
            alerts_in = alerts_in and peek["alerts_step2"] >= peek["presses"]
        if (done >= expected + peek["acks_sent"] and alerts_in) or now > stall_at or now > cap_at:
            return done, peek
        time.sleep(0.1)


def _step(
    ph: _Phase, series: str, batch: int, rate: int, *, warm_up: bool = False
) -> dict[str, Any]:
    """One offered rate of one series: send, wait for the drain and the alerts, measure."""
    env, target = ph.env, ph.target
    assert env.probe is not None
    env.probe.ask({"op": "collect"})  # drop whatever came before
    prefix = PREFIXES[target.name]
    dl0 = target.deadletters()
    cpu0 = ph.cpu.snapshot()
    t0 = time.monotonic()
    seconds = min(WARM_UP_S, env.cfg.step_s) if warm_up else env.cfg.step_s
    gen, samples, base = _drive(ph, prefix, batch, rate, seconds)
    cpu1 = ph.cpu.snapshot()
    window = float(gen["elapsed_s"])
    peek0 = env.probe.ask({"op": "peek"})
    expected = int(gen["events"]) + peek0["presses"] + peek0["dwell_sightings"]
    done, _ = _drain(ph, base, expected, t0)
    if target.name.startswith("floorwalker"):
        time.sleep(1.1)  # the runner's counters sync once a second: let a late count land
        done = target.processed() - base
    drained_s = time.monotonic() - t0 - window
    got = env.probe.ask({"op": "collect"})
    expected_in = expected + got["acks_sent"]
    achieved = live_measure.slope(samples, min(2.0, 0.2 * window), window + 0.3)
    dl1 = target.deadletters()
    result: dict[str, Any] = {
        "series": series,
        "batch": batch,
        "offered_rate": rate,
        "offered_msg_rate": round(rate / batch, 1),
        "seconds": round(window, 2),
        "generator": gen,
        "probe": {k: got[k] for k in ("presses", "dwell_sightings", "dwell_stays", "acks_sent")},
        "expected_events": expected_in,
        "processed": done,
        "lost": max(0, expected_in - done),
        "achieved_rate": round(achieved, 1) if achieved is not None else None,
        "processed_in_window": samples[-1][1],
        "backlog_at_end": max(0, expected - samples[-1][1]),
        "drain_s": round(drained_s, 2),
        "alerts": {
            "expected": got["presses"],
            "step1": got["alerts_step1"],
            "escalations_expected": got["presses"] if target.name != "floor" else 0,
            "step2": got["alerts_step2"],
            "offers": got["offers"],
            "dwell_stays": got["dwell_stays"],
            "other": got["alerts_other"],
            "duplicates": got["duplicates"],
        },
        "deadletters": {
            k.split(":", 1)[1]: int(v - dl0.get(k, 0))
            for k, v in dl1.items()
            if k.startswith("deadletter:") and v - dl0.get(k, 0) > 0
        },
        "snapshots": _snapshots(dl0, dl1),
        "latency_ms": live_measure.latency(got["press_latency_s"]),
        "escalation_lateness_ms": live_measure.latency(got["escalation_lateness_s"]),
        "dwell_lateness_ms": live_measure.latency(got["dwell_lateness_s"]),
        "timer_lateness_ms": live_measure.latency(
            got["escalation_lateness_s"] + got["dwell_lateness_s"]
        ),
        "cpu_pct": ph.cpu.percent(cpu0, cpu1),
        "rss_mb": ph.cpu.rss_mb(target.name),
    }
    result["kept_up"] = kept_up(result)
    if not warm_up:
        ph.steps.append(result)
        env.say(live_report.step_line(target.name, result))
    return result


def _snapshots(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, Any] | None:
    """The runner's store snapshots during a step: how many, mean and total time, size."""
    n = b.get("floorwalker_snapshot_seconds_count", 0) - a.get(
        "floorwalker_snapshot_seconds_count", 0
    )
    if n <= 0:
        return None
    total = b["floorwalker_snapshot_seconds_sum"] - a.get("floorwalker_snapshot_seconds_sum", 0)
    return {
        "rounds": int(n),
        "mean_ms": round(1000 * total / n, 2),
        "total_ms": round(1000 * total, 1),
        "bytes": int(b.get("floorwalker_snapshot_bytes", 0)),
    }


def kept_up(step: Mapping[str, Any]) -> bool:
    """Processed at >= 95 % of the offered rate, lost nothing, every press answered."""
    achieved = step["achieved_rate"] or 0.0
    offered = step["offered_rate"] + step["probe"]["presses"] / max(step["seconds"], 1e-9)
    return bool(
        achieved >= KEPT_UP * offered
        and step["lost"] == 0
        and step["alerts"]["step1"] >= step["alerts"]["expected"]
    )


def _phase(env: _Env, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every series and rate against one target; (steps, steps skipped and why)."""
    target = _start_target(env, name)
    gens = env.generators()
    pids = {**env.pids, **target.pids}
    pids.update({f"generator-{k}": g.process.pid for k, g in enumerate(gens)})
    cpu = live_measure.Cpu(pids)
    ph = _Phase(env, target, gens, cpu)
    skipped: list[dict[str, Any]] = []
    for series, batch, fixed, ramp in env.cfg.series():
        _step(ph, series, batch, min(fixed), warm_up=True)  # buffers, sessions, caches
        saturated, why = 0, ""
        for k, rate in enumerate((*fixed, *ramp)):
            if not why and k >= len(fixed) and saturated > env.cfg.past_saturation:
                why = f"saturated at {saturated} lower rate(s)"
            if why:
                skipped.append({"series": series, "offered_rate": rate, "why": why})
                continue
            step = _step(ph, series, batch, rate)
            if step["lost"]:
                # The broker still holds that backlog (or dropped it): every later step
                # of the series would measure it, not its own rate.
                why = f"the {rate:,}/s step left {step['lost']:,} events undrained"
            elif not step["kept_up"]:
                saturated += 1
    for gen in gens:
        gen.stop()
    target.stop()
    return ph.steps, skipped


def _tested(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, int]:
    """The highest offered rate of each series, over every target."""
    top: dict[str, int] = {}
    for steps in results.values():
        for s in steps:
            top[s["series"]] = max(top.get(s["series"], 0), int(s["offered_rate"]))
    return top


def _calibrate(env: _Env, tested: Mapping[str, int]) -> list[dict[str, Any]]:
    """The generators alone, nobody subscribed, at twice the highest rate each series tested."""
    gens = env.generators()
    pids = {"broker": env.pids["broker"]}
    pids.update({f"generator-{k}": g.process.pid for k, g in enumerate(gens)})
    cpu = live_measure.Cpu(pids)
    out = []
    for series, batch, _fixed, _ramp in env.cfg.series():
        top = tested.get(series, env.cfg.top_rate(batch))
        rate = 2 * top
        cmd = {"op": "send", "prefix": PREFIXES["generator"], "batch": batch, "qos": env.cfg.qos}
        warm = {**cmd, "seconds": 0.5, "max": 1000}
        _send_all(gens, warm, 1000.0)
        _gather(gens)
        seconds = min(env.cfg.step_s, 5.0)
        cmd.update(seconds=seconds, max=int(rate / batch * seconds) + 1)
        c0 = cpu.snapshot()
        _send_all(gens, cmd, rate / batch)
        gen = _gather(gens)
        c1 = cpu.snapshot()
        pct = cpu.percent(c0, c1)
        row = {
            "series": series,
            "batch": batch,
            "offered_rate": rate,
            "top_rate_tested": top,
            "generator": gen,
            "cpu_pct": pct,
        }
        row["sustained"] = bool(gen["event_rate"] >= 0.98 * rate and gen["acked"] >= gen["sent"])
        env.say(live_report.calibration_line(row))
        out.append(row)
    for child in gens:
        child.stop()
    return out


def run_live_bench(cfg: LiveSettings, out: TextIO | None = None) -> dict[str, Any]:
    """Calibrate the generators, then measure every target; return the JSON-ready results."""

    def say(msg: str) -> None:
        if out is not None:
            print(msg, file=out, flush=True)

    run = f"{os.getpid():x}{int(time.time()) % 100000:05d}"
    results: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, list[dict[str, Any]]] = {}
    calibration: list[dict[str, Any]] = []
    with _workdir(cfg) as workdir, contextlib.ExitStack() as stack:
        srv = _servers(cfg, stack, workdir)
        mosq, redis = srv["mosquitto"], srv["redis"]
        env = _Env(
            cfg, stack, workdir, srv["setup"], srv["broker"], run, mosq.host, mosq.port,
            redis.url, say,
        )  # fmt: skip
        env.pids.update(broker=mosq.pid, redis=redis.pid, bench=os.getpid())
        say(f"bench live: broker {mosq.url} (authentication on), redis {redis.url}, {workdir}")
        spec = env.identity(SIMULATOR_USER)
        spec["prefixes"] = [PREFIXES[t] for t in TARGETS]
        env.probe = live_measure.spawn(stack, "probe", lc.probe_main, spec)
        env.pids["probe"] = env.probe.process.pid
        for name in sorted(cfg.targets, key=TARGETS.index):
            results[name], skipped[name] = _phase(env, name)
        if cfg.calibrate:
            calibration = _calibrate(env, _tested(results))
        inflight = srv["inflight"]
    report: dict[str, Any] = {
        "bench": "live",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "machine": live_measure.machine(),
        "code": code_state(),
        "setup": _setup_json(cfg, inflight),
        "calibration": calibration,
        "targets": results,
        "skipped": skipped,
    }
    report["summary"] = live_report.summary(report)
    return report


def _setup_json(cfg: LiveSettings, inflight: int) -> dict[str, Any]:
    return {
        "broker": "Mosquitto started by floorwalker.services, authentication and ACLs on",
        "broker_max_inflight_messages": inflight,
        "broker_max_queued_messages": services.MosquittoSettings().max_queued_messages,
        "runner_link_max_inflight": 200,
        "generator": {
            "processes": cfg.generators,
            "qos": cfg.qos,
            "window": cfg.window,
            "kind": "raw socket, pre-encoded PUBLISH frames (simulators/mqtt_frames.py)",
        },
        "workload": {
            "background_shoppers": live_load.SHOPPERS,
            "background_beacons": "every demo-store beacon but the dwell zones'",
            "press_rate": cfg.press_rate,
            "bells": lc.BELLS,
            "escalate_after_s": lc.ESCALATE_S,
            "dwellers": lc.DWELLERS,
            "dwell_at_least_s": lc.DWELL_AT_LEAST_S,
            "dwell_stay_s": lc.DWELL_STAY_S,
            "dwell_sighting_every_s": lc.DWELL_SIGHTING_S,
        },
        "prefixes": PREFIXES,
    }


# --------------------------------------------------------------------------- CLI


def _rates(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"rates are comma-separated integers: {text!r}") from exc


def _targets(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    if names == ("all",):
        return TARGETS
    return names


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="floorwalker bench live",
        description="The live edge runner vs a paho echo floor (and Node-RED), over a real "
        "Mosquitto with authentication, loopback only.",
    )
    p.add_argument("--quick", action="store_true", help="one low rate per series, 2 s steps")
    p.add_argument(
        "--target",
        type=_targets,
        default=("floorwalker",),
        help="compared with the floor: floorwalker (default), nodered, floorwalker-thread "
        "(the runner with paho's network thread), floorwalker-memory (no Redis), "
        "comma-separated, or all",
    )
    p.add_argument("--no-floor", action="store_true", help="skip the echo floor")
    p.add_argument("--rates", type=_rates, help="single sightings/s (default 1000,5000,10000)")
    p.add_argument(
        "--ramp", type=_rates, help="further single rates to saturation (15000,...,40000)"
    )
    p.add_argument("--batches", type=_rates, help="gateway batch sizes (default 20,200; '' none)")
    p.add_argument("--batch-rates", type=_rates, help="batch series sightings/s (5000,20000,40000)")
    p.add_argument("--step-seconds", type=float, help="seconds per step (default 10)")
    p.add_argument(
        "--settle-seconds", type=float, default=5.0, help="drain: give up without progress"
    )
    p.add_argument("--drain-cap-seconds", type=float, default=60.0, help="longest drain wait")
    p.add_argument("--press-rate", type=float, default=lc.PRESS_RATE, help="bell presses/s")
    p.add_argument("--generators", type=int, default=1, help="generator processes (default 1)")
    p.add_argument("--qos", type=int, default=1, choices=(0, 1), help="background QoS")
    p.add_argument("--no-calibrate", action="store_true", help="skip the generator-alone step")
    p.add_argument("--broker-inflight", type=int, help="Mosquitto max_inflight_messages (20)")
    p.add_argument("--nodered-dir", type=Path, help="where Node-RED is installed (npm --prefix)")
    p.add_argument("--workdir", type=Path, help="keep configs and logs here")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results as JSON")
    p.add_argument("--plots", type=Path, default=None, metavar="DIR", help="latency plots here")
    return p


def settings_from_args(args: argparse.Namespace) -> LiveSettings:
    q = bool(args.quick)

    def pick(value: tuple[int, ...] | None, key: str, full: tuple[int, ...]) -> tuple[int, ...]:
        if value is not None:
            return value
        return QUICK[key] if q else full

    targets = tuple(t for t in args.target if t != "floor")
    return LiveSettings(
        targets=(() if args.no_floor else ("floor",)) + targets,
        rates=pick(args.rates, "rates", FIXED_RATES),
        ramp=pick(args.ramp, "ramp", RAMP_RATES),
        batches=pick(args.batches, "batches", BATCHES),
        batch_rates=pick(args.batch_rates, "batch_rates", BATCH_RATES),
        step_s=args.step_seconds or (2.0 if q else 10.0),
        settle_s=args.settle_seconds,
        drain_cap_s=args.drain_cap_seconds,
        press_rate=args.press_rate,
        generators=args.generators,
        qos=args.qos,
        calibrate=not args.no_calibrate,
        broker_inflight=args.broker_inflight,
        workdir=args.workdir,
        nodered_dir=args.nodered_dir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``floorwalker bench live [--quick] [--target floorwalker,nodered] [--json FILE] ...``"""
    args = _parser().parse_args(argv)
    try:
        cfg = settings_from_args(args)
    except ValueError as exc:
        raise ConfigError(f"bench live: {exc}") from exc
    results = run_live_bench(cfg, out=sys.stderr)
    print(live_report.format_report(results))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    if args.plots is not None:
        from floorwalker.simulators.bench.live_plots import write_plots  # noqa: PLC0415

        for path in write_plots(results, args.plots):
            print(f"plot: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
