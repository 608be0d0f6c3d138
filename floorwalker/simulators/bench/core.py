"""``floorwalker bench core``: how fast the engine core is, and what it costs to hold.

Everything is measured in one process, on one core, in one run, so the
baselines and the variants share the machine's state:

* **core throughput** — pre-built typed events (synthetic traffic of several
  stores, cloned from the demo store with different store ids, thousands of
  shoppers in the stores at once) through ``Engine.advance_to / ingest /
  drain``, exactly as a runner calls them. Four rule sets on the same events:
  none (presence tracking only), the 11 catalog rules, the catalog plus
  ``extra_rules`` rules the traffic can never trigger (which the index must
  skip), and the catalog plus ``extra_rules`` rules that do match the traffic
  in the proportions a real catalog might (see :mod:`.rulegen`). The catalog
  also runs through ``Engine.feed`` when the engine has it. Each rule set runs
  ``repeat`` times, interleaved; the best and the median are reported, with
  the process CPU time of the best (steal-free).
* **concurrency sweep** — the catalog on equal-sized workloads with fewer or
  more shoppers in the stores at once (does state size hurt?).
* **decode + core** — the same traffic as wire bytes through the real
  :class:`~floorwalker.devices.decode.Decoder`, then the engine.
* **memory per active shopper** — many shoppers arrive within a short window;
  wire bytes go through the decoder into a fresh engine (so every string the
  engine keeps is its own, as live) until all are in the store; the engine's
  growth (tracemalloc, and RSS as a cross-check) divided by the number of
  shoppers it tracks. That includes presence, visits, timers, guard-store
  entries for the offers they got: everything the engine holds for them.
* **rule compile time** — parsing and validating 11 + ``extra_rules`` rule
  files (``load_rules``) and indexing them for every store
  (``compile_rules``).
* optionally a **cProfile** of the catalog run, the top functions by own time.

Pinning the process to one CPU (``--cpu``, by default the last one) makes the
numbers steadier on a shared VM.

Targets: >= 250,000 events/s core-only with the catalog; 1,000 extra
non-matching rules cost <= 1.3x; <= 1 KB per active shopper.

``main(argv)`` is the ``floorwalker bench core`` command; ``run_core_bench``
returns the results as a JSON-ready dict.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import linecache
import math
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np
import orjson
import psutil

from floorwalker.devices.decode import Decoder
from floorwalker.devices.events import Event, Rejection, Sighting
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.actions import Alert, Offer
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.index import compile_rules
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.rules.loader import load_rules
from floorwalker.rules.model import RuleSet
from floorwalker.simulators.bench.snapshot import format_snapshot, snapshot_figures
from floorwalker.simulators.rulegen import Flavour, synthetic_rules, write_rules_dir
from floorwalker.simulators.shoppers import generate_profiles
from floorwalker.simulators.traffic import (
    DEMO_REGISTRY,
    DEMO_START,
    Traffic,
    TrafficSettings,
    generate_stores,
    load_layout,
)

CATALOG = Path(__file__).resolve().parents[2] / "rules" / "catalog"

TARGET_EVENTS_PER_S = 250_000.0
TARGET_EXTRA_RATIO = 1.3
TARGET_REALISTIC_RATIO = 2.0
"""1,000 extra rules that match the traffic in realistic proportions (issue #12)."""
TARGET_BYTES_PER_SHOPPER = 1024.0


@dataclass(frozen=True)
class BenchSettings:
    events: int = 1_000_000
    """Events replayed through the core in each throughput run."""
    extra_rules: int = 1000
    stores: int = 12
    arrival_minutes: float = 4.0
    """Shoppers of the throughput workload arrive within this window (high concurrency)."""
    decode_events: int | None = None
    """Events for the decode + core run (default: ``events``)."""
    memory_shoppers: int = 6000
    memory_arrival_s: float = 30.0
    memory_settle_s: float = 60.0
    """The memory run stops this long after the last arrival (everyone is in the store)."""
    profiles: int = 20_000
    snapshot_shoppers: int = 3000
    """Shoppers in the one store whose snapshot and restore are timed (0 = skip)."""
    repeat: int = 3
    """Throughput runs per rule set, interleaved; the best is reported, with the median."""
    sweep_events: int = 300_000
    """Events per run of the concurrency sweep (catalog rules)."""
    sweep_arrival_minutes: tuple[float, ...] = (120.0, 30.0, 4.0)
    """Arrival windows of the sweep: long windows mean fewer shoppers in store at once."""
    profile_events: int = 0
    """Events to run under cProfile (catalog rules); 0 = no profile."""
    profile_top: int = 15
    seed: int = 7
    cpu: int | None = None
    """Pin the process to this CPU while measuring (steadier numbers); None = no pinning."""
    registry: Path = DEMO_REGISTRY
    catalog: Path = CATALOG

    def __post_init__(self) -> None:
        if self.events < 1 or self.stores < 1 or self.repeat < 1:
            raise ValueError("events, stores and repeat must be at least 1")


@dataclass
class _Run:
    label: str
    rules: int
    events: int
    seconds: float
    cpu_seconds: float
    actions: int
    offers: int
    alerts: int
    rejected: int
    active_shoppers: int
    triggered: int
    extra: dict[str, Any] = field(default_factory=dict)
    samples_s: list[float] = field(default_factory=list)
    """Seconds of every repeat (the run itself is the fastest)."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.inf

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["events_per_s"] = round(self.rate)
        out["us_per_event"] = round(1e6 * self.seconds / max(1, self.events), 3)
        out["seconds"] = round(self.seconds, 4)
        out["cpu_seconds"] = round(self.cpu_seconds, 4)
        out["cpu_events_per_s"] = (
            round(self.events / self.cpu_seconds) if self.cpu_seconds else None
        )
        samples = self.samples_s or [self.seconds]
        out["samples_s"] = [round(x, 4) for x in samples]
        out["median_events_per_s"] = round(self.events / statistics.median(samples))
        return out


# --------------------------------------------------------------------------- workload


class _Chain:
    """Stores cloned from one layout, and a chain-wide loyalty base split between them."""

    def __init__(self, cfg: BenchSettings) -> None:
        base = load_layout(cfg.registry)
        self.layouts = [base.clone(f"s{i + 1:03d}") for i in range(cfg.stores)]
        self.registries: dict[str, Registry] = {
            lay.registry.store: lay.registry for lay in self.layouts
        }
        advisors = sorted(b for b, m in base.registry.staff.items() if m.role == "advisor")
        profiles = generate_profiles(cfg.profiles, seed=cfg.seed, advisors=advisors)
        self.book = ProfileBook({p.shopper: p for p in profiles})
        tokens = [p.shopper for p in profiles]
        per = len(tokens) // cfg.stores
        self.known = [tuple(tokens[i * per : (i + 1) * per]) for i in range(cfg.stores)]

    def traffic(self, shoppers_per_store: int, minutes: float, seed: int) -> Traffic:
        settings = [
            TrafficSettings(
                shoppers=shoppers_per_store, minutes=minutes, seed=seed, start=DEMO_START, known=k
            )
            for k in self.known
        ]
        return generate_stores(self.layouts, settings)


def _shoppers_for(chain: _Chain, events: int, minutes: float, seed: int) -> int:
    """Shoppers per store so that the traffic has at least ``events`` events."""
    pilot_n = 100
    pilot = generate_stores(
        chain.layouts[:1],
        TrafficSettings(
            shoppers=pilot_n, minutes=minutes, seed=seed + 1, start=DEMO_START, staff=False
        ),
    )
    per_shopper = max(1.0, len(pilot) / pilot_n)
    return max(1, math.ceil(1.1 * events / per_shopper / len(chain.layouts)))


# --------------------------------------------------------------------------- rule sets


@dataclass
class _RuleSets:
    none: RuleSet
    catalog: RuleSet
    extra: dict[str, RuleSet]
    load_s: dict[str, float]


def _load_rule_sets(cfg: BenchSettings, workdir: Path) -> _RuleSets:
    t0 = time.perf_counter()
    catalog = load_rules(cfg.catalog)
    load_s = {"catalog": time.perf_counter() - t0}
    extra: dict[str, RuleSet] = {}
    if cfg.extra_rules > 0:
        flavours: tuple[Flavour, ...] = ("disjoint", "realistic")
        for flavour in flavours:
            directory = workdir / flavour
            write_rules_dir(
                directory, synthetic_rules(cfg.extra_rules, flavour, cfg.seed), catalog=cfg.catalog
            )
            gc.collect()
            t0 = time.perf_counter()
            extra[flavour] = load_rules(directory)
            load_s[flavour] = time.perf_counter() - t0
    return _RuleSets(RuleSet((), catalog.policy), catalog, extra, load_s)


def _compile_times(rule_sets: _RuleSets, registries: Mapping[str, Registry]) -> dict[str, Any]:
    out: dict[str, Any] = {"stores": len(registries)}
    for name, rs in (("catalog", rule_sets.catalog), *rule_sets.extra.items()):
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            compile_rules(rs, registries)
            best = min(best, time.perf_counter() - t0)
        out[name] = {
            "rules": len(rs.rules),
            "load_s": round(rule_sets.load_s[name], 4),
            "index_s": round(best, 4),
            "total_s": round(rule_sets.load_s[name] + best, 4),
        }
    return out


# --------------------------------------------------------------------------- runs


def _engine(rules: RuleSet, chain: _Chain) -> Engine:
    return Engine(rules, chain.registries, profiles=chain.book)


def _finish(label: str, rules: RuleSet, engine: Engine, t: _Timing) -> _Run:
    offers = sum(1 for a in t.actions if isinstance(a, Offer))
    alerts = sum(1 for a in t.actions if isinstance(a, Alert))
    return _Run(
        label=label,
        rules=len(rules.rules),
        events=t.events,
        seconds=t.seconds,
        cpu_seconds=t.cpu_seconds,
        actions=len(t.actions),
        offers=offers,
        alerts=alerts,
        rejected=t.rejected,
        active_shoppers=engine.gauges().active_shoppers,
        triggered=sum(engine.stats.triggered.values()),
    )


class _Timing(NamedTuple):
    seconds: float
    """Wall time."""
    cpu_seconds: float
    """CPU time of this process: excludes time the VM's vCPU was descheduled (steal)."""
    events: int
    actions: list[Any]
    rejected: int


def _timed(fn: Callable[[], tuple[int, list[Any], int]]) -> _Timing:
    gc.collect()
    gc.freeze()  # the pre-built workload is not the engine's garbage to scan
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        n, actions, rejected = fn()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        gc.unfreeze()
    return _Timing(seconds, cpu, n, actions, rejected)


def _core_run(
    label: str, rules: RuleSet, chain: _Chain, events: Sequence[Event], *, via_feed: bool = False
) -> _Run:
    engine = _engine(rules, chain)
    feed: Callable[[Event], str | None] | None = getattr(engine, "feed", None)

    def loop() -> tuple[int, list[Any], int]:
        advance, ingest, drain = engine.advance_to, engine.ingest, engine.drain
        actions: list[Any] = []
        rejected = 0
        for ev in events:
            advance(ev.ts)
            if ingest(ev) is not None:
                rejected += 1
            out = drain()
            if out:
                actions.extend(out)
        return len(events), actions, rejected

    def feed_loop() -> tuple[int, list[Any], int]:
        assert feed is not None
        drain = engine.drain
        actions: list[Any] = []
        rejected = 0
        for ev in events:
            if feed(ev) is not None:
                rejected += 1
            out = drain()
            if out:
                actions.extend(out)
        return len(events), actions, rejected

    timing = _timed(feed_loop if via_feed and feed is not None else loop)
    return _finish(label, rules, engine, timing)


def _has_feed() -> bool:
    """Whether the engine offers ``feed(event)`` (advance + ingest in one call)."""
    return callable(getattr(Engine, "feed", None))


def _decode_run(
    label: str, rules: RuleSet, chain: _Chain, wire: Sequence[tuple[str, bytes]]
) -> _Run:
    engine = _engine(rules, chain)
    decoder = Decoder(chain.registries)

    def loop() -> tuple[int, list[Any], int]:
        return _feed(engine, decoder, wire)

    timing = _timed(loop)
    run = _finish(label, rules, engine, timing)
    run.extra["messages"] = len(wire)
    run.extra["messages_per_s"] = round(len(wire) / timing.seconds) if timing.seconds > 0 else None
    return run


def _feed(
    engine: Engine, decoder: Decoder, wire: Iterable[tuple[str, bytes]]
) -> tuple[int, list[Any], int]:
    advance, ingest, drain, decode = engine.advance_to, engine.ingest, engine.drain, decoder.decode
    actions: list[Any] = []
    rejected = n = 0
    clock = 0.0
    for topic, payload in wire:
        for ev in decode(topic, payload, clock):
            if isinstance(ev, Rejection):
                rejected += 1
                continue
            n += 1
            clock = ev.ts
            advance(clock)
            if ingest(ev) is not None:
                rejected += 1
            out = drain()
            if out:
                actions.extend(out)
    return n, actions, rejected


def _harness_floor(events: Sequence[Event]) -> float:
    """Seconds for the same loop with do-nothing engine calls: the per-event floor."""

    def advance(_ts: float) -> None:
        return None

    def ingest(_ev: Event) -> str | None:
        return None

    def drain() -> list[Any]:
        return []

    t0 = time.perf_counter()
    for ev in events:
        advance(ev.ts)
        if ingest(ev) is not None:
            pass
        out = drain()
        if out:
            pass
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- memory


def _memory_wire(cfg: BenchSettings, chain: _Chain) -> list[tuple[str, bytes]]:
    """Wire bytes of many shoppers arriving within a short window, up to when all are in."""
    per_store = max(1, cfg.memory_shoppers // cfg.stores)
    traffic = chain.traffic(per_store, cfg.memory_arrival_s / 60.0, cfg.seed + 2)
    cutoff = DEMO_START + cfg.memory_arrival_s + cfg.memory_settle_s
    limit = int(np.searchsorted(traffic.timestamps(), cutoff, side="right"))
    return traffic.wire_list(limit=limit)


def _memory(cfg: BenchSettings, chain: _Chain, rules: RuleSet) -> dict[str, Any]:
    wire = _memory_wire(cfg, chain)
    engine = _engine(rules, chain)
    decoder = Decoder(chain.registries)
    gc.collect()
    tracemalloc.start(1)
    base = tracemalloc.get_traced_memory()[0]
    _feed(engine, decoder, wire)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    active = engine.gauges().active_shoppers
    timers = engine.gauges().pending_timers
    sites = [
        {
            "where": f"{_short(frame.filename)}:{frame.lineno}",
            "code": linecache.getline(frame.filename, frame.lineno).strip()[:90],
            "bytes_per_shopper": round(stat.size / max(1, active)),
        }
        for stat in snapshot.statistics("lineno")[:40]
        if "floorwalker" in (frame := stat.traceback[0]).filename
    ][:12]
    out: dict[str, Any] = {
        "messages": len(wire),
        "active_shoppers": active,
        "bytes_per_active_shopper": round(grown / max(1, active)),
        "engine_bytes": grown,
        "pending_timers": timers,
        "timers_per_active_shopper": round(timers / max(1, active), 2),
        "top_allocation_sites": sites,
    }
    del engine, decoder, snapshot
    gc.collect()
    out["rss_bytes_per_active_shopper"] = _rss_in_child(cfg, wire)
    return out


def _rss_child(cfg: BenchSettings, wire_file: str) -> int | None:
    """In a fresh process: RSS growth of an engine fed the memory workload, per shopper.

    Everything allocated before the measurement stays referenced, so the engine
    cannot reuse memory freed earlier, which would hide its growth from RSS.
    """
    chain = _Chain(cfg)
    rules = load_rules(cfg.catalog)
    lines = Path(wire_file).read_bytes().split(b"\n")
    parts = [line.split(b"\t", 1) for line in lines if line]
    wire = [(topic.decode(), payload) for topic, payload in parts]
    engine = _engine(rules, chain)
    decoder = Decoder(chain.registries)
    proc = psutil.Process()
    gc.collect()
    rss0 = proc.memory_info().rss
    _feed(engine, decoder, wire)
    gc.collect()
    grown = proc.memory_info().rss - rss0
    return round(grown / max(1, engine.gauges().active_shoppers))


def _rss_in_child(cfg: BenchSettings, wire: Sequence[tuple[str, bytes]]) -> int | None:
    """RSS is only meaningful in a process that has not freed memory to reuse before."""
    with tempfile.TemporaryDirectory(prefix="fw-bench-") as tmp:
        path = Path(tmp) / "wire.bin"
        with path.open("wb") as out:
            for topic, payload in wire:
                out.write(topic.encode() + b"\t" + payload + b"\n")
        spec = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
        code = (
            "import sys, orjson\n"
            "from floorwalker.simulators.bench.core import _rss_child_main\n"
            "print(orjson.dumps(_rss_child_main(sys.argv[1], sys.argv[2])).decode())\n"
        )
        try:
            done = subprocess.run(
                [sys.executable, "-c", code, orjson.dumps(spec).decode(), str(path)],
                capture_output=True,
                check=True,
                timeout=1800,
            )
            value = orjson.loads(done.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None
    return value if isinstance(value, int) else None


def _rss_child_main(spec: str, wire_file: str) -> int | None:
    raw = orjson.loads(spec)
    raw["registry"], raw["catalog"] = Path(raw["registry"]), Path(raw["catalog"])
    return _rss_child(BenchSettings(**raw), wire_file)


def _short(path: str) -> str:
    marker = "floorwalker" + os.sep
    return path[path.rindex(marker) :] if marker in path else path


# --------------------------------------------------------------------------- profile


def _profile(
    rules: RuleSet, chain: _Chain, events: Sequence[Event], top: int
) -> list[dict[str, Any]]:
    engine = _engine(rules, chain)
    advance, ingest, drain = engine.advance_to, engine.ingest, engine.drain
    prof = cProfile.Profile()
    gc.collect()
    gc.freeze()  # as in the timed runs: the workload is not the engine's garbage to scan
    try:
        prof.enable()
        for ev in events:
            advance(ev.ts)
            ingest(ev)
            drain()
        prof.disable()
    finally:
        gc.unfreeze()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(file)}:{line}({func})",
                "calls": nc,
                "primitive_calls": cc,
                "tottime_s": round(tt, 4),
                "cumtime_s": round(ct, 4),
                "share": round(tt / total, 4) if total else 0.0,
            }
        )
    rows.sort(key=lambda r: -float(r["tottime_s"]))
    return rows[:top]


# --------------------------------------------------------------------------- the bench


def code_state() -> dict[str, Any]:
    """Which engine was measured: the commit, and whether the core had local changes."""
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "floorwalker/engine", "floorwalker/devices"],
            check=False,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "core_modified": []}
    return {
        "commit": head or None,
        "core_modified": sorted(line[3:] for line in dirty if line.strip()),
    }


def _machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu": model,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }


class _Log:
    def __init__(self, out: TextIO | None) -> None:
        self.out = out

    def __call__(self, message: str) -> None:
        if self.out is not None:
            print(message, file=self.out, flush=True)


def _workload(cfg: BenchSettings, chain: _Chain) -> tuple[Traffic, list[Event], dict[str, Any]]:
    t0 = time.perf_counter()
    per_store = _shoppers_for(chain, cfg.events, cfg.arrival_minutes, cfg.seed)
    traffic = chain.traffic(per_store, cfg.arrival_minutes, cfg.seed)
    events = traffic.event_list(limit=cfg.events)
    gen_s = time.perf_counter() - t0
    sightings = sum(1 for e in events if type(e) is Sighting)
    info = {
        "events": len(events),
        "stores": cfg.stores,
        "shoppers": per_store * cfg.stores,
        "arrival_minutes": cfg.arrival_minutes,
        "virtual_seconds": round(events[-1].ts - events[0].ts, 1) if events else 0.0,
        "sighting_share": round(sightings / max(1, len(events)), 4),
        "generate_s": round(gen_s, 2),
        "generated_events_per_s": round(len(events) / gen_s) if gen_s > 0 else None,
    }
    return traffic, events, info


def _throughput(
    cfg: BenchSettings, chain: _Chain, rule_sets: _RuleSets, events: Sequence[Event], say: _Log
) -> dict[str, _Run]:
    """Every rule set on the same events, interleaved ``repeat`` times; the best run of each."""
    say("warm-up run ...")
    _core_run("warmup", rule_sets.catalog, chain, events[: min(len(events), 100_000)])
    plan: list[tuple[str, RuleSet, bool]] = [
        ("no_rules", rule_sets.none, False),
        ("catalog", rule_sets.catalog, False),
    ]
    plan += [(f"extra_{name}", rs, False) for name, rs in rule_sets.extra.items()]
    if _has_feed():
        plan.append(("catalog_feed", rule_sets.catalog, True))
    runs: dict[str, _Run] = {}
    for rep in range(cfg.repeat):
        for label, rules, via_feed in plan:
            say(f"core run {rep + 1}/{cfg.repeat}: {label} ({len(rules.rules)} rules) ...")
            run = _core_run(label, rules, chain, events, via_feed=via_feed)
            samples = [*runs[label].samples_s, run.seconds] if label in runs else [run.seconds]
            if label not in runs or run.seconds < runs[label].seconds:
                runs[label] = run
            runs[label].samples_s = samples
    return runs


def _in_store(events: Sequence[Event]) -> float:
    """Mean number of distinct shoppers seen per minute: the shoppers in the stores at once."""
    minutes: dict[int, set[str]] = {}
    for ev in events:
        if type(ev) is Sighting and not ev.is_staff:
            minutes.setdefault(int(ev.ts // 60.0), set()).add(ev.subject)
    return statistics.mean(len(s) for s in minutes.values()) if minutes else 0.0


def _concurrency_sweep(
    cfg: BenchSettings, chain: _Chain, rules: RuleSet, say: _Log
) -> list[dict[str, Any]]:
    """Catalog throughput on equal-sized workloads with fewer and more shoppers in store at once.

    The per-event work is the same; what changes is how much state the engine
    touches (memory locality), which matters in CPython.
    """
    n = min(cfg.events, cfg.sweep_events)
    rows: list[dict[str, Any]] = []
    for minutes in cfg.sweep_arrival_minutes:
        per_store = _shoppers_for(chain, n, minutes, cfg.seed)
        events = chain.traffic(per_store, minutes, cfg.seed + 3).event_list(limit=n)
        say(f"concurrency sweep: {len(events):,} events, arrivals over {minutes:g} min ...")
        best: _Run | None = None
        for _ in range(cfg.repeat):
            run = _core_run("sweep", rules, chain, events)
            best = run if best is None or run.seconds < best.seconds else best
        assert best is not None
        rows.append(
            {
                "arrival_minutes": minutes,
                "events": len(events),
                "shoppers": per_store * cfg.stores,
                "in_store_at_once": round(_in_store(events)),
                "events_per_s": round(best.rate),
                "us_per_event": round(1e6 * best.seconds / max(1, len(events)), 3),
            }
        )
        del events
    return rows


def _paired_ratio(run: _Run, base: _Run) -> float:
    """Median over rounds of (this run's time / the baseline's time in the same round).

    Rounds are interleaved, so a slow phase of a shared machine hits both runs of a
    round; pairing cancels most of it (best-to-best does not).
    """
    pairs = [a / b for a, b in zip(run.samples_s, base.samples_s, strict=False) if b > 0]
    return round(statistics.median(pairs), 3) if pairs else round(run.seconds / base.seconds, 3)


def _targets(base: _Run, ratios: Mapping[str, float], memory: Mapping[str, Any]) -> dict[str, Any]:
    per_shopper = float(memory["bytes_per_active_shopper"])
    return {
        "core_events_per_s": {
            "target": TARGET_EVENTS_PER_S,
            "measured": round(base.rate),
            "met": base.rate >= TARGET_EVENTS_PER_S,
        },
        "extra_rules_ratio": {
            "target": TARGET_EXTRA_RATIO,
            "measured": ratios.get("extra_disjoint"),
            "met": ratios.get("extra_disjoint", math.inf) <= TARGET_EXTRA_RATIO,
        },
        "extra_realistic_ratio": {
            "target": TARGET_REALISTIC_RATIO,
            "measured": ratios.get("extra_realistic"),
            "met": ratios.get("extra_realistic", math.inf) <= TARGET_REALISTIC_RATIO,
        },
        "bytes_per_active_shopper": {
            "target": TARGET_BYTES_PER_SHOPPER,
            "measured": round(per_shopper),
            "met": per_shopper <= TARGET_BYTES_PER_SHOPPER,
        },
    }


def _snapshot_targets(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    return {f"snapshot_{k}": v for k, v in snapshot.get("targets", {}).items()}


def _pin(cpu: int | None) -> set[int] | None:
    """Pin this process to ``cpu``; return the previous affinity to restore, if changed."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    return before


def last_cpu() -> int | None:
    """The highest-numbered CPU this process may use (usually the quietest), if known."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    return max(allowed) if len(allowed) > 1 else None


def run_core_bench(
    settings: BenchSettings | None = None, *, log: TextIO | None = None
) -> dict[str, Any]:
    """Run every measurement; return a JSON-ready dict (see the module docstring).

    Progress lines go to ``log`` (e.g. ``sys.stderr``) when given. With
    ``settings.cpu`` the process is pinned to that CPU for the run, then restored.
    """
    cfg = settings or BenchSettings()
    before = _pin(cfg.cpu)
    try:
        return _run(cfg, _Log(log))
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)


def _run(cfg: BenchSettings, say: _Log) -> dict[str, Any]:
    started = time.perf_counter()
    chain = _Chain(cfg)

    with tempfile.TemporaryDirectory(prefix="fw-bench-") as tmp:
        say(f"loading rules (catalog + 2 x {cfg.extra_rules} synthetic) ...")
        rule_sets = _load_rule_sets(cfg, Path(tmp))
    compile_info = _compile_times(rule_sets, chain.registries)

    say(f"memory: {cfg.memory_shoppers} shoppers arriving within {cfg.memory_arrival_s:g} s ...")
    memory = _memory(cfg, chain, rule_sets.catalog)

    snapshot: dict[str, Any] = {}
    if cfg.snapshot_shoppers > 0:
        say(f"snapshot: a store with {cfg.snapshot_shoppers:,} shoppers ...")
        layout, known = chain.layouts[0], chain.known[0]
        snapshot = snapshot_figures(
            layout, chain.book, rule_sets.catalog, shoppers=cfg.snapshot_shoppers, known=known
        )

    say(f"generating {cfg.events:,} events over {cfg.stores} stores ...")
    traffic, events, workload = _workload(cfg, chain)
    runs = _throughput(cfg, chain, rule_sets, events, say)
    floor = _harness_floor(events)
    workload["peak_active_shoppers"] = runs["catalog"].active_shoppers
    workload["in_store_at_once"] = round(_in_store(events))

    profile: list[dict[str, Any]] = []
    if cfg.profile_events > 0:
        say(f"profiling {min(cfg.profile_events, len(events)):,} events (catalog rules) ...")
        profile = _profile(rule_sets.catalog, chain, events[: cfg.profile_events], cfg.profile_top)
    del events

    sweep = _concurrency_sweep(cfg, chain, rule_sets.catalog, say) if cfg.sweep_events > 0 else []

    n_decode = min(cfg.decode_events or cfg.events, len(traffic))
    say(f"decode + core: {n_decode:,} events as wire bytes ...")
    wire = traffic.wire_list(limit=n_decode)
    del traffic
    decode_run = _decode_run("decode_catalog", rule_sets.catalog, chain, wire)
    del wire

    base = runs["catalog"]
    best_ratios = {
        label: round(run.seconds / base.seconds, 3)
        for label, run in runs.items()
        if label.startswith("extra_")
    }
    ratios = {label: _paired_ratio(runs[label], base) for label in best_ratios}
    return {
        "machine": _machine(),
        "code": code_state(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "workload": workload,
        "harness_floor": {
            "seconds": round(floor, 4),
            "us_per_event": round(1e6 * floor / max(1, base.events), 3),
        },
        "core": {label: run.to_json() for label, run in runs.items()},
        "decode_core": decode_run.to_json(),
        "concurrency_sweep": sweep,
        "memory": memory,
        "snapshot": snapshot,
        "compile": compile_info,
        "profile": profile,
        "extra_rule_cost_ratio": ratios,
        "extra_rule_cost_ratio_best_to_best": best_ratios,
        "targets": _targets(base, ratios, memory) | _snapshot_targets(snapshot),
        "wall_s": round(time.perf_counter() - started, 1),
    }


# --------------------------------------------------------------------------- report


def _json_ratio(run: Mapping[str, Any], base: Mapping[str, Any]) -> float:
    """Cost vs the baseline: the median of per-round ratios (see :func:`_paired_ratio`)."""
    pairs = [a / b for a, b in zip(run["samples_s"], base["samples_s"], strict=False) if b > 0]
    if len(pairs) > 1 or (pairs and len(base["samples_s"]) == 1):
        return float(statistics.median(pairs))
    return float(run["seconds"]) / float(base["seconds"])


def _row(label: str, *cells: object) -> str:
    widths = (6, 11, 11, 11, 10, 8, 9)
    return f"{label:<36}" + "".join(f"{c!s:>{w}}" for c, w in zip(cells, widths, strict=True))


def format_report(r: Mapping[str, Any]) -> str:
    """A readable table of :func:`run_core_bench` results."""
    m, w, core = r["machine"], r["workload"], r["core"]
    repeat = r["settings"]["repeat"]
    lines = [
        f"floorwalker bench core - Python {m['python']} on {m['cpu']} "
        f"({m['cores']} cores), one core used"
        + (
            f", pinned to CPU {r['settings']['cpu']}"
            if r["settings"].get("cpu") is not None
            else ""
        ),
        f"workload: {w['events']:,} events, {w['stores']} stores, {w['shoppers']:,} shoppers "
        f"arriving within {w['arrival_minutes']:g} min, ~{w['in_store_at_once']:,} in store "
        f"at once, {100 * w['sighting_share']:.1f}% sightings",
        f"          (generated at {_num(w['generated_events_per_s'])} events/s); "
        f"best and median of {repeat} interleaved runs (wall clock);",
        "          cpu ev/s: the best run's events per second of process CPU time;",
        "          cost: median over rounds of (time / catalog time in the same round)",
        "",
        _row(
            "measurement", "rules", "best ev/s", "median", "cpu ev/s", "us/event", "cost", "actions"
        ),
    ]
    base = core["catalog"]
    for label, run in [*core.items(), ("decode+core: catalog", r["decode_core"])]:
        name = label if label.startswith("decode") else f"core only: {label}"
        lines.append(
            _row(
                name,
                run["rules"],
                f"{run['events_per_s']:,}",
                f"{run['median_events_per_s']:,}",
                _num(run["cpu_events_per_s"]),
                f"{run['us_per_event']:.2f}",
                f"{_json_ratio(run, base):.2f}x",
                f"{run['actions']:,}",
            )
        )
    floor = r["harness_floor"]["us_per_event"]
    lines.append(
        _row("harness floor (loop, 3 no-op calls)", "", "", "", "", f"{floor:.2f}", "", "")
    )
    if r.get("concurrency_sweep"):
        lines += ["", "catalog throughput vs shoppers in store at once (same per-event work):"]
        for row in r["concurrency_sweep"]:
            lines.append(
                f"  {row['in_store_at_once']:>6,} in store ({row['shoppers']:,} arriving over "
                f"{row['arrival_minutes']:g} min): {row['events_per_s']:>9,} events/s "
                f"({row['us_per_event']:.2f} us)"
            )
    mem = r["memory"]
    lines += [
        "",
        f"memory: {mem['bytes_per_active_shopper']:,} B per active shopper (tracemalloc; RSS "
        f"delta {_num(mem['rss_bytes_per_active_shopper'])} B) over {mem['active_shoppers']:,} "
        f"shoppers, {mem['timers_per_active_shopper']} pending timers each",
    ]
    for site in mem.get("top_allocation_sites", [])[:6]:
        lines.append(f"  {site['bytes_per_shopper']:>5} B  {site['where']}  {site.get('code', '')}")
    if r.get("snapshot"):
        lines.append(format_snapshot(r["snapshot"]))
    comp = r["compile"]
    for name in ("catalog", "disjoint", "realistic"):
        if name in comp:
            c = comp[name]
            lines.append(
                f"rules {name}: {c['rules']:,} rules load+validate {c['load_s']:.3f} s, "
                f"index for {comp['stores']} stores {1000 * c['index_s']:.1f} ms"
            )
    lines += ["", "targets:"]
    for name, t in r["targets"].items():
        lines.append(
            f"  {name:<28} target {t['target']:>10,}  measured {t['measured']!s:>10}  "
            f"{'met' if t['met'] else 'NOT MET'}"
        )
    if r.get("profile"):
        lines += ["", "profile (catalog rules), top functions by own time:"]
        for row in r["profile"]:
            lines.append(
                f"  {100 * row['share']:5.1f}%  {row['tottime_s']:7.3f}s  {row['calls']:>10,}  "
                f"{row['function']}"
            )
    lines.append(f"\nwall time {r['wall_s']} s")
    return "\n".join(lines)


def _num(value: object) -> str:
    return f"{value:,}" if isinstance(value, int | float) else "n/a"


def _parser() -> argparse.ArgumentParser:
    d = BenchSettings()
    p = argparse.ArgumentParser(prog="floorwalker bench core", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=d.events, help="events per core run (%(default)s)")
    p.add_argument(
        "--extra-rules", type=int, default=d.extra_rules, help="synthetic rules added (%(default)s)"
    )
    p.add_argument(
        "--stores", type=int, default=d.stores, help="stores cloned from the registry (%(default)s)"
    )
    p.add_argument("--arrival-minutes", type=float, default=d.arrival_minutes)
    p.add_argument(
        "--decode-events",
        type=int,
        default=None,
        help="events in the decode run (default --events)",
    )
    p.add_argument("--memory-shoppers", type=int, default=d.memory_shoppers)
    p.add_argument(
        "--snapshot-shoppers",
        type=int,
        default=d.snapshot_shoppers,
        help="shoppers in the store whose snapshot is timed, 0 to skip (%(default)s)",
    )
    p.add_argument(
        "--repeat", type=int, default=d.repeat, help="runs per rule set, best kept (%(default)s)"
    )
    p.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also cProfile N events (catalog rules)"
    )
    p.add_argument(
        "--sweep-events",
        type=int,
        default=d.sweep_events,
        metavar="N",
        help="events per run of the concurrency sweep, 0 to skip (%(default)s)",
    )
    p.add_argument(
        "--cpu",
        type=int,
        default=last_cpu(),
        help="pin to this CPU while measuring; -1: no pinning (default: the last CPU, %(default)s)",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--registry", type=Path, default=d.registry)
    p.add_argument("--rules", type=Path, default=d.catalog, help="the catalog directory")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``floorwalker bench core [--events N] [--extra-rules 1000] [--json FILE] ...``"""
    args = _parser().parse_args(argv)
    settings = BenchSettings(
        events=args.events,
        extra_rules=args.extra_rules,
        stores=args.stores,
        arrival_minutes=args.arrival_minutes,
        decode_events=args.decode_events,
        memory_shoppers=args.memory_shoppers,
        snapshot_shoppers=args.snapshot_shoppers,
        repeat=args.repeat,
        profile_events=args.profile,
        sweep_events=args.sweep_events,
        cpu=args.cpu if args.cpu is not None and args.cpu >= 0 else None,
        seed=args.seed,
        registry=args.registry,
        catalog=args.rules,
    )
    results = run_core_bench(settings, log=None if args.quiet else sys.stderr)
    print(format_report(results))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


__all__ = ["BenchSettings", "format_report", "main", "run_core_bench"]


if __name__ == "__main__":
    raise SystemExit(main())
