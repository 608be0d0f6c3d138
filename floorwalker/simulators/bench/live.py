"""``floorwalker bench live``: the live edge runner against its floor, over a real broker.

One run, on this machine, everything on loopback:

1. starts Mosquitto and Redis (:mod:`floorwalker.services`, their settings as
   in production: ``max_inflight_messages`` 20, ``max_queued_messages`` 100k),
   or uses ``--mqtt`` (and ``--redis``/``--metrics``) of an existing broker and runner;
2. writes a bench store (the demo store plus 256 bells), two bench rules
   (bell press -> alert now, escalated 1 s later if nobody answered;
   infant-formula POS line -> coupon, no caps) and 2,000 consenting profiles,
   imported into Redis;
3. **floor**: a minimal paho echo process (:func:`.live_clients.echo_main`) on
   its own topic prefix: QoS 1 in, ``orjson.loads``, a QoS 1 reply for the
   messages the engine would act on. Offered load from a separate generator
   process at each rate; the probe process measures publish -> reply;
4. **engine**: the real edge runner as a ``floorwalker run`` subprocess
   (Redis-backed), the same rates. Per step: achieved rate (slope of the
   runner's ``floorwalker_events_in_total`` + ``floorwalker_deadletters_total``
   over the step), losses (sent vs processed, actions expected vs received),
   event-triggered latency (device publish -> action at the probe) p50/p99/p999,
   timer lateness (an escalation's due time -> its alert at the probe) p50/p99,
   CPU (% of one core) and RSS of the runner, and the CPU of every other
   process, since they all share this machine's cores;
5. prints a table with engine/floor ratios and the targets, and writes ``--json``.

The workload (:class:`.live_clients.Workload`) is deterministic in the event
number: 0.5 % bell presses (one alert at once and one escalation 1 s later,
which the probe answers with ``done``), 1 % infant-formula POS lines (one
coupon each), 98.5 % beacon sightings of 2,000 shoppers.

Targets: engine throughput >= 0.8x the floor's maximum; event-triggered p99 <=
floor p99 + 1 ms at 5k events/s; timer lateness p99 <= 5 ms.

``main(argv)`` is the command; :func:`run_live_bench` returns the JSON-ready dict.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

import numpy as np
import orjson
import psutil
import yaml

from floorwalker import services
from floorwalker.errors import ConfigError, ServiceError
from floorwalker.simulators.bench import live_clients
from floorwalker.simulators.bench.core import code_state
from floorwalker.simulators.traffic import DEMO_REGISTRY

FLOOR_PREFIX: Final = "fwfloor"
ENGINE_PREFIX: Final = "fw"
ESCALATE_S: Final = 1.0
RATE_CAP: Final = 50_000
"""Most messages per second any step may send (a step at rate 0 = "as fast as possible")."""

FULL_RATES: Final = (1000, 2000, 5000)
FULL_SATURATION: Final = (8000, 12000)
QUICK_RATES: Final = (300, 1000)

TARGET_RATE_RATIO: Final = 0.8
TARGET_P99_EXTRA_MS: Final = 1.0
TARGET_P99_AT: Final = 5000
TARGET_TIMER_P99_MS: Final = 5.0

_RULES: Final = {
    "policy.yaml": "# bench: no cross-rule caps, no fatigue\noffers_per_shopper: []\n"
    "fatigue: null\nquiet_hours: []\n",
    "bench-bell.yaml": (
        "id: bench-bell\n"
        "description: A bell press pages the nearest staff member, then the next after 1 s.\n"
        "when:\n  bell: {}\n"
        "alert:\n  to: nearest\n  priority: high\n  message: Bell {bell} in {zone}.\n"
        f"  escalate:\n    - {{after: {ESCALATE_S:g}s, to: next}}\n"
    ),
    "bench-formula.yaml": (
        "id: bench-formula\n"
        "description: Infant formula at the till gets a baby food coupon, every time.\n"
        "when:\n  pos_item: {category: infant-formula}\n"
        "offer:\n  id: bench-babyfood\n  message: 10% off baby food.\n  expires: 1d\n"
    ),
}


@dataclass(frozen=True)
class LiveSettings:
    rates: tuple[int, ...] = FULL_RATES
    """Fixed offered rates (events/s), each for ``step_s``."""
    saturation: tuple[int, ...] = FULL_SATURATION
    """Further steps, each for ``saturation_s``; 0 = as fast as the generator can."""
    step_s: float = 15.0
    saturation_s: float = 10.0
    settle_s: float = 5.0
    """After a step, give up waiting for the drain after this long without progress..."""
    drain_cap_s: float = 120.0
    """...or after this long in all (a saturated step leaves a backlog in the broker)."""
    """Longest wait after a step for the backlog to drain and the actions to arrive."""
    mqtt: str | None = None
    """An existing broker (with a runner on it: give ``metrics``); None starts both."""
    redis: str | None = None
    metrics: str | None = None
    """The existing runner's /metrics URL (with ``mqtt``)."""
    broker_inflight: int | None = None
    """Mosquitto ``max_inflight_messages``; None keeps services.py's default."""
    gen_inflight: int = 1000
    workdir: Path | None = None
    floor: bool = True
    engine: bool = True

    def __post_init__(self) -> None:
        if not self.rates and not self.saturation:
            raise ValueError("no steps")
        if any(r < 0 or r > RATE_CAP for r in (*self.rates, *self.saturation)):
            raise ValueError(f"rates must be between 0 and {RATE_CAP}")
        if not 0 < self.step_s <= 120 or not 0 < self.saturation_s <= 120:
            raise ValueError("steps must last between 0 and 120 s")
        if not 0 < self.settle_s <= 120 or not 0 < self.drain_cap_s <= 600:
            raise ValueError("settle_s must be in (0, 120] s and drain_cap_s in (0, 600] s")


# --------------------------------------------------------------------------- helpers


def _require_loopback(url: str, what: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"bench live only loads loopback addresses; {what} is {url!r}")
    return host, parts.port or 0


def _pct(values: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    if not values:
        return [None for _ in qs]
    arr = np.asarray(values, dtype=np.float64) * 1000.0
    return [round(float(np.percentile(arr, q)), 3) for q in qs]


def _latency(values: Sequence[float], three: bool = True) -> dict[str, Any]:
    qs = (50.0, 99.0, 99.9) if three else (50.0, 99.0)
    names = ("p50_ms", "p99_ms", "p999_ms")[: len(qs)]
    out: dict[str, Any] = dict(zip(names, _pct(values, qs), strict=True))
    out["n"] = len(values)
    out["max_ms"] = round(max(values) * 1000.0, 3) if values else None
    return out


def _slope(samples: Sequence[tuple[float, int]], t_from: float, t_to: float) -> float | None:
    pts = [(t, c) for t, c in samples if t_from <= t <= t_to]
    if len(pts) >= 3 and pts[-1][0] > pts[0][0]:
        t = np.array([p[0] for p in pts])
        c = np.array([p[1] for p in pts], dtype=np.float64)
        return float(np.polyfit(t - t[0], c, 1)[0])
    if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
        return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
    return None


def _scrape(url: str) -> dict[str, float]:
    """Sums of the runner's counters we need, from its /metrics text."""
    with urllib.request.urlopen(url, timeout=2.0) as resp:  # loopback only
        text = resp.read().decode("utf-8", "replace")
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in ("floorwalker_events_in_total", "floorwalker_deadletters_total"):
            continue
        value = float(line.rsplit(" ", 1)[1])
        sums[name] = sums.get(name, 0.0) + value
        if 'reason="' in line:
            key = "deadletter:" + line.split('reason="', 1)[1].split('"', 1)[0]
            sums[key] = sums.get(key, 0.0) + value
    return sums


class _Cpu:
    """CPU seconds of named processes, to turn into % of one core over a window."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.procs: dict[str, psutil.Process] = {}
        for name, pid in pids.items():
            with contextlib.suppress(psutil.Error):
                self.procs[name] = psutil.Process(pid)

    def snapshot(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                out[name] = t.user + t.system
        m = psutil.cpu_times()
        out["_machine_busy"] = sum(m) - m.idle - getattr(m, "iowait", 0.0)
        out["_wall"] = time.monotonic()
        return out

    @staticmethod
    def percent(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
        wall = b["_wall"] - a["_wall"]
        if wall <= 0:
            return {}
        out = {
            k.lstrip("_"): round(100.0 * (b[k] - a[k]) / wall, 1)
            for k in b
            if k != "_wall" and k in a
        }
        busy = out.pop("machine_busy", 0.0)  # all cores: 200 = both cores of 2 busy
        ours = sum(out.values())
        out["machine_busy"] = round(busy, 1)
        out["others"] = round(max(0.0, busy - ours), 1)
        return out

    def rss_mb(self, name: str) -> float | None:
        proc = self.procs.get(name)
        if proc is None:
            return None
        try:
            return round(proc.memory_info().rss / 2**20, 1)
        except psutil.Error:
            return None


@dataclass
class _Child:
    name: str
    process: Any
    conn: Connection

    def ask(self, cmd: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        self.conn.send(cmd)
        if not self.conn.poll(timeout_s):
            raise ServiceError(f"bench live: the {self.name} process did not answer in time")
        reply: dict[str, Any] = self.conn.recv()
        return reply

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send({"op": "stop"})
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)


def _spawn(
    stack: contextlib.ExitStack,
    name: str,
    target: Callable[..., None],
    host: str,
    port: int,
    spec: dict[str, Any],
) -> _Child:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=target, args=(child, host, port, spec), name=f"bench-live-{name}", daemon=True
    )
    proc.start()
    handle = _Child(name, proc, parent)
    stack.callback(handle.stop)
    if not parent.poll(30.0):
        raise ServiceError(f"bench live: the {name} process did not start")
    parent.recv()
    return handle


# --------------------------------------------------------------------------- set-up


@dataclass
class _Setup:
    registry: Path
    rules: Path
    profiles: Path
    beacons: list[tuple[str, str]]
    staff: int


def _write_inputs(workdir: Path) -> _Setup:
    raw = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    raw["store"] = live_clients.STORE
    zones = list(raw["zones"])
    raw["bells"] = {
        b: {"zone": zones[k % len(zones)]} for k, b in enumerate(live_clients.bell_ids())
    }
    registry = workdir / "bench-store.yaml"
    registry.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    rules = workdir / "rules"
    rules.mkdir(exist_ok=True)
    for name, text in _RULES.items():
        (rules / name).write_text(text, encoding="utf-8")
    profiles = workdir / "profiles.jsonl"
    with profiles.open("wb") as f:
        for k, shopper in enumerate(live_clients.shopper_ids()):
            f.write(
                orjson.dumps(
                    {
                        "shopper": shopper,
                        "tier": ("member", "silver", "gold")[k % 3],
                        "segment": "regular",
                        "consent": {"marketing": True},
                        "lifetime_value": 100.0 + k,
                    }
                )
                + b"\n"
            )
    beacons = []
    gateways = sorted(raw["gateways"])
    for k, (beacon, spec) in enumerate(raw["beacons"].items()):
        beacons.append((str(beacon), str(spec.get("gateway") or gateways[k % len(gateways)])))
    return _Setup(registry, rules, profiles, beacons, len(raw["staff"]))


class _Runner:
    """``floorwalker run`` as a subprocess (the production entry point)."""

    def __init__(self, setup: _Setup, mqtt: str, redis: str, workdir: Path, run: str) -> None:
        self.metrics_port = services.free_port()
        self.log_path = workdir / "runner.log"
        self._log = self.log_path.open("ab")
        argv = [
            sys.executable,
            "-m",
            "floorwalker.cli",
            "run",
            "--mqtt",
            mqtt,
            "--redis",
            redis,
            "--registry",
            str(setup.registry),
            "--rules",
            str(setup.rules),
            "--metrics-port",
            str(self.metrics_port),
            "--client-id",
            f"bench-live-edge-{run}",
            "--redis-prefix",
            f"bench{run}:",
        ]
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
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
                _scrape(self.metrics_url)
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


# --------------------------------------------------------------------------- one step


@dataclass
class _Bench:
    cfg: LiveSettings
    gen: _Child
    probe: _Child
    say: Callable[[str], None]
    next_event: int = 0
    steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _processed_fn(target: str, echo: _Child | None, metrics: str | None) -> Callable[[], int]:
    if target == "floor":
        assert echo is not None

        def floor_count() -> int:
            return int(echo.ask({"op": "count"}, 10.0)["received"])

        return floor_count
    assert metrics is not None

    def engine_count() -> int:
        m = _scrape(metrics)
        return int(
            m.get("floorwalker_events_in_total", 0) + m.get("floorwalker_deadletters_total", 0)
        )

    return engine_count


def _drive(
    b: _Bench, rate: int, seconds: float, processed: Callable[[], int]
) -> tuple[dict[str, Any], list[tuple[float, int]], int, float]:
    """Tell the generator to send; sample the processed count meanwhile."""
    start_event = b.next_event
    cap = int((rate or RATE_CAP) * seconds)
    base = processed()
    t0 = time.monotonic()
    b.gen.conn.send(
        {"op": "send", "rate": rate, "seconds": seconds, "start": start_event, "max": cap}
    )
    samples: list[tuple[float, int]] = [(0.0, 0)]
    while not b.gen.conn.poll(0.25):
        samples.append((time.monotonic() - t0, processed() - base))
        if time.monotonic() - t0 > seconds + 30:
            raise ServiceError("bench live: the generator did not finish its step")
    gen_result: dict[str, Any] = b.gen.conn.recv()
    samples.append((time.monotonic() - t0, processed() - base))
    b.next_event = start_event + int(gen_result["sent"])
    return gen_result, samples, base, t0


def _complete(target: str, done: int, sent: int, kinds: Mapping[str, int], peek: Any) -> bool:
    if target == "floor":
        return done >= sent and peek["replies"] >= kinds["bell"] + kinds["formula"]
    return bool(
        done >= sent + peek["acks_sent"]
        and peek["offers"] >= kinds["formula"]
        and peek["alerts_step1"] >= kinds["bell"]
        and peek["alerts_step2"] >= kinds["bell"]
    )


def _step(
    b: _Bench,
    target: str,
    rate: int,
    seconds: float,
    processed: Callable[[], int],
    cpu: _Cpu,
    metrics: str | None,
    *,
    record: bool = True,
) -> dict[str, Any]:
    """One offered rate: send, wait for the drain and the actions, measure."""
    b.probe.ask({"op": "collect"}, 10.0)  # drop whatever came before
    dl_base = _scrape(metrics) if metrics else {}
    cpu0 = cpu.snapshot()
    gen_result, samples, base, t0 = _drive(b, rate, seconds, processed)
    cpu1 = cpu.snapshot()
    window = float(gen_result["elapsed_s"])
    at_end = samples[-1][1]
    sent = int(gen_result["sent"])
    kinds = gen_result["kinds"]
    # Drain: until everything sent is processed and every expected action (or reply)
    # is in; give up after settle_s without progress, or drain_cap_s in all.
    now = time.monotonic()
    cap_at, stall_at, last = now + b.cfg.drain_cap_s, now + b.cfg.settle_s, -1
    while True:
        done = processed() - base
        peek = b.probe.ask({"op": "peek"}, 10.0)
        progress = done + peek["offers"] + peek["alerts_step1"] + peek["alerts_step2"]
        progress += peek["replies"]
        now = time.monotonic()
        if progress > last:
            last, stall_at = progress, now + b.cfg.settle_s
        if _complete(target, done, sent, kinds, peek) or now > stall_at or now > cap_at:
            break
        time.sleep(0.1)
    drained_s = time.monotonic() - t0 - window
    if target == "engine":
        time.sleep(1.1)  # the runner's counters sync once a second: let a late count land
        done = processed() - base
    got = b.probe.ask({"op": "collect"}, 10.0)
    rate_achieved = _slope(samples, min(2.0, 0.2 * window), window + 0.3)
    result: dict[str, Any] = {
        "offered_rate": rate if rate else "max",
        "seconds": round(window, 2),
        "generator": {
            "sent": sent,
            "publish_rate": round(gen_result["publish_rate"], 1),
            "acked": gen_result["acked"],
            "acked_in_window": gen_result["acked_in_window"],
            "max_behind": gen_result["behind_max"],
            "kinds": kinds,
        },
        "achieved_rate": round(rate_achieved, 1) if rate_achieved is not None else None,
        "processed_in_window": at_end,
        "backlog_at_end": max(0, sent - at_end),
        "drain_s": round(drained_s, 2),
        "processed": done,
        "cpu_pct": cpu.percent(cpu0, cpu1),
    }
    if target == "floor":
        result["lost"] = max(0, sent - done)
        result["replies"] = {
            "expected": kinds["bell"] + kinds["formula"],
            "received": got["replies"],
        }
        result["latency_ms"] = _latency(got["floor_latency_s"])
        result["rss_mb"] = cpu.rss_mb("echo")
    else:
        result.update(_engine_result(got, kinds, sent, done, dl_base, metrics))
        result["rss_mb"] = cpu.rss_mb("runner")
    if record:
        b.steps.setdefault(target, []).append(result)
        b.say(_step_line(target, result))
    return result


def _engine_result(
    got: Mapping[str, Any],
    kinds: Mapping[str, int],
    sent: int,
    done: int,
    dl_base: Mapping[str, float],
    metrics: str | None,
) -> dict[str, Any]:
    expected_in = sent + got["acks_sent"]
    dl = _scrape(metrics) if metrics else {}
    return {
        "lost": max(0, expected_in - done),
        "extra_processed": max(0, done - expected_in),
        "probe_acks_sent": got["acks_sent"],
        "deadletters": {
            k.split(":", 1)[1]: int(v - dl_base.get(k, 0))
            for k, v in dl.items()
            if k.startswith("deadletter:") and v - dl_base.get(k, 0) > 0
        },
        "actions": {
            "expected": {
                "offers": kinds["formula"],
                "alerts": kinds["bell"],
                "escalations": kinds["bell"],
            },
            "received": {
                "offers": got["offers"],
                "alerts": got["alerts_step1"],
                "escalations": got["alerts_step2"],
                "other": got["alerts_other"],
            },
            "duplicates": got["duplicates"],
        },
        "latency_ms": _latency(got["event_latency_s"]),
        "timer_lateness_ms": _latency(got["timer_lateness_s"], three=False),
    }


def _step_line(target: str, r: Mapping[str, Any]) -> str:
    lat = r["latency_ms"]
    who = "runner" if target == "engine" else "echo"
    extra = ""
    if target == "engine":
        tl = r["timer_lateness_ms"]
        extra = f" timer p99 {tl['p99_ms']} ms"
    return (
        f"  {target:6s} offered {r['offered_rate']!s:>5}:"
        f" gen {r['generator']['publish_rate']:>8.0f}/s,"
        f" processed {r['achieved_rate'] or 0:>8.0f}/s, lost {r['lost']},"
        f" p50/p99/p999 {lat['p50_ms']}/{lat['p99_ms']}/{lat['p999_ms']} ms{extra},"
        f" {who} cpu {r['cpu_pct'].get(who, 0)} %, backlog {r['backlog_at_end']}"
    )


# --------------------------------------------------------------------------- the run


@contextlib.contextmanager
def _workdir(cfg: LiveSettings) -> Iterator[Path]:
    if cfg.workdir is not None:
        cfg.workdir.mkdir(parents=True, exist_ok=True)
        yield cfg.workdir
        return
    with tempfile.TemporaryDirectory(prefix="floorwalker-bench-live-") as tmp:
        yield Path(tmp)


@dataclass
class _Env:
    """What both phases share: the broker, Redis, the probe, the processes to watch."""

    cfg: LiveSettings
    stack: contextlib.ExitStack
    workdir: Path
    setup: _Setup
    run: str
    host: str
    port: int
    mqtt_url: str
    redis_url: str | None
    say: Callable[[str], None]
    pids: dict[str, int] = field(default_factory=dict)
    broker_inflight: int | None = None
    probe: _Child | None = None

    def spawn(self, name: str, target: Callable[..., None], prefix: str) -> _Child:
        spec = {
            "run": self.run,
            "beacons": self.setup.beacons,
            "inflight": self.cfg.gen_inflight,
            "prefix": prefix,
        }
        return _spawn(self.stack, name, target, self.host, self.port, spec)

    def steps(self) -> list[tuple[int, float]]:
        cfg = self.cfg
        fixed = [(r, cfg.step_s) for r in cfg.rates]
        return fixed + [(r, cfg.saturation_s) for r in cfg.saturation]


def _servers(env_cfg: LiveSettings, stack: contextlib.ExitStack, workdir: Path) -> dict[str, Any]:
    cfg = env_cfg
    out: dict[str, Any] = {"pids": {}}
    if cfg.mqtt is None:
        bset = services.MosquittoSettings()
        if cfg.broker_inflight is not None:
            bset = services.MosquittoSettings(max_inflight_messages=cfg.broker_inflight)
        broker = stack.enter_context(services.mosquitto(bset, workdir))
        out.update(host=broker.host, port=broker.port, url=broker.url)
        out["inflight"] = bset.max_inflight_messages
        out["pids"]["broker"] = broker.pid
    else:
        host, port = _require_loopback(cfg.mqtt, "--mqtt")
        out.update(host=host, port=port, url=cfg.mqtt, inflight=None)
    out["redis"] = cfg.redis
    if cfg.redis is None and cfg.engine and cfg.mqtt is None:
        redis_srv = stack.enter_context(services.redis(services.RedisSettings(), workdir))
        out["redis"] = redis_srv.url
        out["pids"]["redis"] = redis_srv.pid
    elif cfg.redis is not None:
        _require_loopback(cfg.redis, "--redis")
    return out


def _floor_phase(env: _Env) -> list[dict[str, Any]]:
    env.say("floor: paho echo process (QoS 1 in, orjson.loads, QoS 1 reply)")
    assert env.probe is not None
    echo = env.spawn("echo", live_clients.echo_main, FLOOR_PREFIX)
    gen = env.spawn("generator", live_clients.generator_main, FLOOR_PREFIX)
    cpu = _Cpu({**env.pids, "echo": echo.process.pid, "generator": gen.process.pid})
    bench = _Bench(env.cfg, gen, env.probe, env.say)
    count = _processed_fn("floor", echo, None)
    _step(bench, "floor", 200, 1.0, count, cpu, None, record=False)  # warm-up
    for rate, secs in env.steps():
        _step(bench, "floor", rate, secs, count, cpu, None)
    gen.stop()
    echo.stop()
    return bench.steps.get("floor", [])


def _engine_phase(env: _Env, runner_info: dict[str, Any]) -> list[dict[str, Any]]:
    cfg = env.cfg
    assert env.probe is not None
    metrics = cfg.metrics
    if cfg.mqtt is None:
        assert env.redis_url is not None
        redis_prefix = f"bench{env.run}:"
        import_argv = ["profiles", "import", str(env.setup.profiles), "--redis", env.redis_url]
        subprocess.run(
            [sys.executable, "-m", "floorwalker.cli", *import_argv, "--redis-prefix", redis_prefix],
            check=True,
            capture_output=True,
            timeout=60,
        )
        runner = _Runner(env.setup, env.mqtt_url, env.redis_url, env.workdir, env.run)
        env.stack.callback(runner.stop)
        runner.wait_ready()
        metrics = runner.metrics_url
        env.pids["runner"] = runner.proc.pid
        runner_info.update(argv=runner.argv[1:], pid=runner.proc.pid)
        env.say(f"engine: `floorwalker run` subprocess {runner.proc.pid}, metrics {metrics}")
    elif metrics is None:
        raise ConfigError("with --mqtt, give --metrics URL of the runner's /metrics")
    else:
        _require_loopback(metrics, "--metrics")
        env.say(f"engine: the runner on {env.mqtt_url}, metrics {metrics}")
    gen = env.spawn("generator", live_clients.generator_main, ENGINE_PREFIX)
    cpu = _Cpu({**env.pids, "generator": gen.process.pid})
    bench = _Bench(cfg, gen, env.probe, env.say)
    count = _processed_fn("engine", None, metrics)
    _step(bench, "engine", 200, 1.0, count, cpu, metrics, record=False)  # warm-up
    for rate, secs in env.steps():
        _step(bench, "engine", rate, secs, count, cpu, metrics)
    runner_info["rss_mb_end"] = cpu.rss_mb("runner")
    gen.stop()
    return bench.steps.get("engine", [])


def run_live_bench(cfg: LiveSettings, out: TextIO | None = None) -> dict[str, Any]:
    """Run the floor, then the engine, at every step; return the JSON-ready results."""

    def say(msg: str) -> None:
        if out is not None:
            print(msg, file=out, flush=True)

    run = f"{os.getpid():x}{int(time.time()) % 100000:05d}"
    results: dict[str, list[dict[str, Any]]] = {"floor": [], "engine": []}
    runner_info: dict[str, Any] = {}
    with _workdir(cfg) as workdir, contextlib.ExitStack() as stack:
        setup = _write_inputs(workdir)
        srv = _servers(cfg, stack, workdir)
        env = _Env(
            cfg, stack, workdir, setup, run, srv["host"], srv["port"], srv["url"], srv["redis"], say
        )
        env.pids.update(srv["pids"], bench=os.getpid())
        env.broker_inflight = srv["inflight"]
        say(f"bench live: broker {env.mqtt_url}, redis {env.redis_url}, workdir {workdir}")
        env.probe = env.spawn("probe", live_clients.probe_main, ENGINE_PREFIX)
        env.pids["probe"] = env.probe.process.pid
        if cfg.floor:
            results["floor"] = _floor_phase(env)
        if cfg.engine:
            results["engine"] = _engine_phase(env, runner_info)
    report: dict[str, Any] = {
        "bench": "live",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "machine": _machine(),
        "code": code_state(),
        "setup": {
            "broker": "started (floorwalker.services)" if cfg.mqtt is None else cfg.mqtt,
            "broker_max_inflight_messages": env.broker_inflight,
            "broker_max_queued_messages": services.MosquittoSettings().max_queued_messages,
            "runner_link_max_inflight": 200,
            "generator_max_inflight": cfg.gen_inflight,
            "workload": {
                "bell_share": 1 / live_clients.BELL_EVERY,
                "formula_share": 1 / live_clients.FORMULA_EVERY,
                "sighting_share": 1 - 1 / live_clients.BELL_EVERY - 1 / live_clients.FORMULA_EVERY,
                "shoppers": live_clients.SHOPPERS,
                "bells": live_clients.BELLS,
                "staff": setup.staff,
                "escalate_after_s": ESCALATE_S,
            },
            "runner": runner_info,
        },
        "floor": results["floor"],
        "engine": results["engine"],
    }
    report["summary"] = _summary(report)
    return report


def _summary(r: Mapping[str, Any]) -> dict[str, Any]:
    floor = {str(s["offered_rate"]): s for s in r["floor"]}
    engine = {str(s["offered_rate"]): s for s in r["engine"]}

    def best(steps: Sequence[Mapping[str, Any]]) -> float | None:
        rates = [s["achieved_rate"] for s in steps if s["achieved_rate"] is not None]
        return max(rates) if rates else None

    fmax, emax = best(r["floor"]), best(r["engine"])
    ratios = []
    for key, e in engine.items():
        f = floor.get(key)
        if f is None:
            continue
        fp, ep = f["latency_ms"]["p99_ms"], e["latency_ms"]["p99_ms"]
        ratios.append(
            {
                "offered_rate": e["offered_rate"],
                "rate_ratio": _ratio(e["achieved_rate"], f["achieved_rate"]),
                "p50_ratio": _ratio(e["latency_ms"]["p50_ms"], f["latency_ms"]["p50_ms"]),
                "p99_ratio": _ratio(ep, fp),
                "p99_extra_ms": round(ep - fp, 3) if ep is not None and fp is not None else None,
            }
        )
    targets: dict[str, Any] = {}
    if fmax and emax:
        ratio = emax / fmax
        targets["throughput"] = {
            "target": f">= {TARGET_RATE_RATIO}x floor max",
            "floor_max": round(fmax, 1),
            "engine_max": round(emax, 1),
            "ratio": round(ratio, 3),
            "met": ratio >= TARGET_RATE_RATIO,
        }
    at = str(TARGET_P99_AT)
    if at in floor and at in engine:
        fp, ep = floor[at]["latency_ms"]["p99_ms"], engine[at]["latency_ms"]["p99_ms"]
        kept_up = all(
            (x["achieved_rate"] or 0) >= 0.95 * TARGET_P99_AT for x in (floor[at], engine[at])
        )
        if fp is not None and ep is not None:
            targets["event_p99_at_5k"] = {
                "target": f"<= floor p99 + {TARGET_P99_EXTRA_MS} ms",
                "floor_p99_ms": fp,
                "engine_p99_ms": ep,
                "both_kept_up": kept_up,  # else both p99s are queueing delay: not comparable
                "met": kept_up and ep <= fp + TARGET_P99_EXTRA_MS,
            }
    lateness = [
        (s["offered_rate"], s["timer_lateness_ms"]["p99_ms"])
        for s in r["engine"]
        if s["timer_lateness_ms"]["p99_ms"] is not None
    ]
    if lateness:
        fixed = [(k, v) for k, v in lateness if isinstance(k, int) and k <= TARGET_P99_AT]
        worst = max(v for _, v in fixed) if fixed else None
        targets["timer_lateness_p99"] = {
            "target": f"<= {TARGET_TIMER_P99_MS} ms",
            "by_rate": {str(k): v for k, v in lateness},
            "worst_up_to_5k_ms": worst,
            "met": worst is not None and worst <= TARGET_TIMER_P99_MS,
        }
    return {"floor_max_rate": fmax, "engine_max_rate": emax, "ratios": ratios, "targets": targets}


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def _machine() -> dict[str, Any]:
    model = platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    version = ""
    with contextlib.suppress(OSError, ServiceError, subprocess.SubprocessError):
        done = subprocess.run(
            [services.find_binary("mosquitto"), "-h"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
        version = (done.stdout or done.stderr).splitlines()[0]
    return {
        "python": platform.python_version(),
        "cpu": model,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "mosquitto": version,
    }


# --------------------------------------------------------------------------- report


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def format_report(r: Mapping[str, Any]) -> str:
    lines = ["", "floorwalker bench live", ""]
    head = (
        "| target | offered/s | generator publish/s | processed/s | backlog at end | lost "
        "| actions exp/recv | p50 ms | p99 ms | p99.9 ms | timer p50/p99 ms "
        "| proc CPU % | RSS MB | broker CPU % | gen CPU % | machine busy % | others CPU % |"
    )
    lines += [head, "|" + "---|" * 17]
    for target in ("floor", "engine"):
        for s in r[target]:
            lat = s["latency_ms"]
            who = "runner" if target == "engine" else "echo"
            if target == "engine":
                a = s["actions"]
                exp = sum(a["expected"].values())
                rec = sum(v for k, v in a["received"].items() if k != "other")
                actions = f"{exp}/{rec}"
                tl = s["timer_lateness_ms"]
                timer = f"{_cell(tl['p50_ms'])}/{_cell(tl['p99_ms'])}"
            else:
                actions = f"{s['replies']['expected']}/{s['replies']['received']}"
                timer = "-"
            cpu = s["cpu_pct"]
            lines.append(
                f"| {target} | {_cell(s['offered_rate'])} "
                f"| {_cell(s['generator']['publish_rate'])} "
                f"| {_cell(s['achieved_rate'])} | {_cell(s['backlog_at_end'])} "
                f"| {_cell(s['lost'])} "
                f"| {actions} | {_cell(lat['p50_ms'])} | {_cell(lat['p99_ms'])} "
                f"| {_cell(lat['p999_ms'])} | {timer} | {_cell(cpu.get(who))} "
                f"| {_cell(s['rss_mb'])} "
                f"| {_cell(cpu.get('broker'))} | {_cell(cpu.get('generator'))} "
                f"| {_cell(cpu.get('machine_busy'))} | {_cell(cpu.get('others'))} |"
            )
    summ = r["summary"]
    if summ["ratios"]:
        lines += [
            "",
            "| offered/s | engine/floor rate | p50 ratio | p99 ratio "
            "| engine p99 - floor p99 (ms) |",
        ]
        lines.append("|---|---|---|---|---|")
        for x in summ["ratios"]:
            lines.append(
                f"| {_cell(x['offered_rate'])} | {_cell(x['rate_ratio'])} "
                f"| {_cell(x['p50_ratio'])} "
                f"| {_cell(x['p99_ratio'])} | {_cell(x['p99_extra_ms'])} |"
            )
    lines.append("")
    for name, t in summ["targets"].items():
        status = "MET" if t["met"] else "NOT MET"
        detail = ", ".join(f"{k}={v}" for k, v in t.items() if k not in ("met", "target"))
        lines.append(f"target {name} ({t['target']}): {status} ({detail})")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CLI


def _rates(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"rates are comma-separated integers: {text!r}") from exc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="floorwalker bench live",
        description="The live edge runner vs a paho echo floor, over a real Mosquitto (loopback).",
    )
    p.add_argument("--quick", action="store_true", help="two low rates, 3 s each (a smoke test)")
    p.add_argument(
        "--rates", type=_rates, help="fixed offered rates, events/s (default 1000,2000,5000)"
    )
    p.add_argument(
        "--saturation",
        type=_rates,
        help="further rates up to saturation; 0 = as fast as possible (default 8000,12000)",
    )
    p.add_argument("--step-seconds", type=float, help="seconds per fixed-rate step (default 15)")
    p.add_argument(
        "--saturation-seconds", type=float, help="seconds per saturation step (default 10)"
    )
    p.add_argument(
        "--settle-seconds",
        type=float,
        default=5.0,
        help="after a step, stop waiting for the drain after this long without progress",
    )
    p.add_argument(
        "--drain-cap-seconds", type=float, default=120.0, help="longest drain wait per step"
    )
    p.add_argument(
        "--mqtt", help="an existing loopback broker with a runner on it (with --metrics)"
    )
    p.add_argument("--redis", help="the existing runner's Redis (profiles are not imported)")
    p.add_argument("--metrics", help="the existing runner's /metrics URL")
    p.add_argument(
        "--broker-inflight", type=int, help="Mosquitto max_inflight_messages (default 20)"
    )
    p.add_argument("--no-floor", action="store_true", help="skip the echo floor")
    p.add_argument("--no-engine", action="store_true", help="skip the engine")
    p.add_argument("--workdir", type=Path, help="keep configs and logs here")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results as JSON")
    return p


def settings_from_args(args: argparse.Namespace) -> LiveSettings:
    quick = bool(args.quick)
    return LiveSettings(
        rates=args.rates if args.rates is not None else (QUICK_RATES if quick else FULL_RATES),
        saturation=args.saturation
        if args.saturation is not None
        else (() if quick else FULL_SATURATION),
        step_s=args.step_seconds or (3.0 if quick else 15.0),
        saturation_s=args.saturation_seconds or (3.0 if quick else 10.0),
        settle_s=args.settle_seconds,
        drain_cap_s=args.drain_cap_seconds,
        mqtt=args.mqtt,
        redis=args.redis,
        metrics=args.metrics,
        broker_inflight=args.broker_inflight,
        workdir=args.workdir,
        floor=not args.no_floor,
        engine=not args.no_engine,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``floorwalker bench live [--quick] [--rates 1000,2000,5000] [--json FILE] ...``"""
    args = _parser().parse_args(argv)
    try:
        cfg = settings_from_args(args)
    except ValueError as exc:
        raise ConfigError(f"bench live: {exc}") from exc
    results = run_live_bench(cfg, out=sys.stderr)
    print(format_report(results))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
