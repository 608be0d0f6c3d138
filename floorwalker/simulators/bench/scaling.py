"""``floorwalker bench scaling``: how the core's per-event cost grows with rules and shoppers.

Engine core only, virtual clock, one process, traffic of the large demo store
(:mod:`floorwalker.simulators.store`), typed events pre-built:

* **rules** — the same events (``rule_events`` of them, several stores, a
  busy hour) through a fresh engine with N = 10, 30, 100, 300, 1000 synthetic
  rules (:mod:`floorwalker.simulators.rulegen`, written as rule files and
  loaded by the real loader): ``realistic`` rules, which match the traffic in
  the proportions a chain's catalog might, and ``disjoint`` rules, which the
  index must skip. Best of ``repeat`` runs.
* **concurrent shoppers** — N = 1k, 3k, 10k, 30k, 100k shoppers arrive within
  ``arrival_s`` seconds (in stores of at most ``per_store`` shoppers, clones of
  the large store) and stay a few minutes; the engine (catalog rules) takes
  every event until the last arrival (warm-up, under tracemalloc), then the
  next ``measure_events`` events are timed. Reported: µs per event in that
  window, the shoppers truly in the stores at its start, the engine's tracked
  shoppers (:meth:`Engine.active_shoppers`), and the engine's memory growth
  per tracked shopper (tracemalloc: presence, visits, timers, guard entries).

``--plots DIR`` draws both curves from the results (matplotlib, Agg backend) as
``scaling-rules.png`` and ``scaling-shoppers.png``; ``--json`` writes the
results; ``--quick`` is a seconds-long smoke run for tests.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import orjson

from floorwalker.devices.events import Event
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.rules.loader import load_rules, load_rules_for
from floorwalker.rules.model import RuleSet
from floorwalker.simulators.rulegen import Flavour, synthetic_rules, write_rules_dir
from floorwalker.simulators.store import LARGE_REGISTRY, Simulation, SimulationSettings, simulate
from floorwalker.simulators.traffic import TrafficSettings, load_layout

CATALOG = Path(__file__).resolve().parents[2] / "rules" / "catalog"
DOCS_BENCH = Path(__file__).resolve().parents[3] / "docs" / "bench"

SCALING_TRAFFIC = TrafficSettings(stops_mean=2.0, dwell_mean_s=30.0, buy_share=0.6)
"""Shorter visits than the default walk (fewer zones): the same in-store crowd
for fewer generated events."""


@dataclass(frozen=True)
class ScalingSettings:
    rule_counts: tuple[int, ...] = (10, 30, 100, 300, 1000)
    flavours: tuple[str, ...] = ("realistic", "disjoint")
    rule_events: int = 300_000
    rule_stores: int = 4
    rule_shoppers: int = 1500
    """Shoppers per store over ``rule_minutes`` for the rules workload."""
    rule_minutes: float = 30.0
    shopper_counts: tuple[int, ...] = (1_000, 3_000, 10_000, 30_000, 100_000)
    per_store: int = 5_000
    arrival_s: float = 45.0
    measure_events: int = 200_000
    repeat: int = 2
    seed: int = 7
    registry: Path = LARGE_REGISTRY
    catalog: Path = CATALOG

    def __post_init__(self) -> None:
        if not self.rule_counts and not self.shopper_counts:
            raise ValueError("nothing to measure")
        if self.repeat < 1 or self.per_store < 1 or self.arrival_s <= 0:
            raise ValueError("repeat, per_store >= 1 and arrival_s > 0")


QUICK = ScalingSettings(
    rule_counts=(10, 30),
    rule_events=5_000,
    rule_stores=1,
    rule_shoppers=60,
    rule_minutes=5.0,
    shopper_counts=(100, 300),
    per_store=200,
    arrival_s=20.0,
    measure_events=2_000,
    repeat=1,
)


# --------------------------------------------------------------------------- helpers


def _feed_timed(engine: Engine, events: Sequence[Event]) -> float:
    feed, drain = engine.feed, engine.drain
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for ev in events:
            feed(ev)
            drain()
        return time.perf_counter() - t0
    finally:
        if was:
            gc.enable()


def _book(sim: Simulation) -> ProfileBook:
    return ProfileBook({p.shopper: p for p in sim.profiles})


def _synthetic_ruleset(
    count: int, flavour: Flavour, seed: int, registries: Mapping[str, Registry], workdir: Path
) -> RuleSet:
    directory = workdir / f"{flavour}-{count}"
    write_rules_dir(directory, synthetic_rules(count, flavour, seed=seed + count))
    tags = sorted({t for r in registries.values() for t in r.tags})
    roles = sorted({m.role for r in registries.values() for m in r.staff.values()})
    return load_rules(directory, extra_tags=tags, extra_roles=roles)


# --------------------------------------------------------------------------- rules


def rules_curve(cfg: ScalingSettings, say: Any) -> list[dict[str, Any]]:
    layout = load_layout(cfg.registry)
    sim = simulate(
        layout,
        SimulationSettings(
            shoppers=cfg.rule_shoppers,
            minutes=cfg.rule_minutes,
            seed=cfg.seed,
            stores=cfg.rule_stores,
        ),
    )
    events = sim.traffic.event_list(limit=cfg.rule_events)
    regs, book = sim.registries, _book(sim)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fw-scaling-") as tmp:
        for flavour in cfg.flavours:
            for n in cfg.rule_counts:
                rules = _synthetic_ruleset(n, flavour, cfg.seed, regs, Path(tmp))  # type: ignore[arg-type]
                best = math.inf
                actions = 0
                for _ in range(cfg.repeat):
                    engine = Engine(rules, regs, profiles=book)
                    best = min(best, _feed_timed(engine, events))
                    actions = sum(engine.stats.sent.values())
                    del engine
                say(f"rules: {flavour} x{n}: {1e6 * best / len(events):.2f} us/event")
                rows.append(
                    {
                        "flavour": flavour,
                        "rules": n,
                        "events": len(events),
                        "us_per_event": round(1e6 * best / max(1, len(events)), 3),
                        "events_per_s": round(len(events) / best) if best > 0 else None,
                        "actions_sent": actions,
                    }
                )
    return rows


# --------------------------------------------------------------------------- shoppers


def _in_store(sim: Simulation, at: float) -> int:
    return sum(
        1
        for t in sim.truth
        if not t.staff and t.intervals and t.intervals[0].enter <= at < t.intervals[-1].leave
    )


def shoppers_point(cfg: ScalingSettings, n: int, catalog: RuleSet | None) -> dict[str, Any]:
    stores = max(1, math.ceil(n / cfg.per_store))
    per_store = max(1, round(n / stores))
    layout = load_layout(cfg.registry)
    sim = simulate(
        layout,
        SimulationSettings(
            shoppers=per_store,
            minutes=cfg.arrival_s / 60.0,
            seed=cfg.seed,
            stores=stores,
            traffic=SCALING_TRAFFIC,
        ),
    )
    regs = sim.registries
    rules = catalog if catalog is not None else load_rules_for(cfg.catalog, regs)
    ts = sim.traffic.timestamps()
    cut = sim.settings.start + cfg.arrival_s
    warm_n = int((ts <= cut).sum())
    engine = Engine(rules, regs, profiles=_book(sim))
    it = sim.traffic.events()
    # The generator builds its column lists on the first step: before measuring.
    first = list(itertools.islice(it, 1))
    feed, drain = engine.feed, engine.drain
    gc.collect()
    tracemalloc.start(1)
    base = tracemalloc.get_traced_memory()[0]
    for ev in itertools.chain(first, itertools.islice(it, max(0, warm_n - 1))):
        feed(ev)
        drain()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    tracked = engine.gauges().active_shoppers
    measure = list(itertools.islice(it, cfg.measure_events))
    seconds = _feed_timed(engine, measure)
    out = {
        "shoppers": per_store * stores,
        "stores": stores,
        "in_store_at_measure": _in_store(sim, cut),
        "tracked_shoppers": tracked,
        "warm_events": warm_n,
        "measured_events": len(measure),
        "us_per_event": round(1e6 * seconds / max(1, len(measure)), 3),
        "events_per_s": round(len(measure) / seconds) if seconds > 0 else None,
        "engine_bytes": grown,
        "bytes_per_tracked_shopper": round(grown / max(1, tracked)),
        "pending_timers": engine.gauges().pending_timers,
    }
    del engine, measure, it, sim, first
    gc.collect()
    return out


def shoppers_curve(cfg: ScalingSettings, say: Any) -> list[dict[str, Any]]:
    rows = []
    for n in cfg.shopper_counts:
        row = shoppers_point(cfg, n, None)
        say(
            f"shoppers: {row['in_store_at_measure']:,} in store "
            f"({row['tracked_shoppers']:,} tracked): {row['us_per_event']:.2f} us/event, "
            f"{row['bytes_per_tracked_shopper']} B/shopper"
        )
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- runs


def run_scaling_bench(cfg: ScalingSettings, log: TextIO | None = None) -> dict[str, Any]:
    def say(msg: str) -> None:
        if log is not None:
            print(msg, file=log, flush=True)

    started = time.perf_counter()
    settings = asdict(cfg)
    settings["registry"], settings["catalog"] = str(cfg.registry), str(cfg.catalog)
    return {
        "bench": "scaling",
        "settings": settings,
        "rules": rules_curve(cfg, say) if cfg.rule_counts else [],
        "shoppers": shoppers_curve(cfg, say) if cfg.shopper_counts else [],
        "python": sys.version.split()[0],
        "seconds": round(time.perf_counter() - started, 1),
    }


def write_plots(results: Mapping[str, Any], directory: str | Path) -> list[Path]:
    """``scaling-rules.png`` and ``scaling-shoppers.png`` from the results (Agg backend)."""
    import matplotlib  # noqa: PLC0415 - only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    rules = results.get("rules") or []
    if rules:
        fig, ax = plt.subplots(figsize=(6.0, 3.8), dpi=100)
        for flavour in sorted({r["flavour"] for r in rules}):
            pts = sorted((r["rules"], r["us_per_event"]) for r in rules if r["flavour"] == flavour)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=flavour)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("rules")
        ax.set_ylabel("core cost (µs per event)")
        ax.set_title("Per-event core cost vs number of rules")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / "scaling-rules.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    shoppers = results.get("shoppers") or []
    if shoppers:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.8), dpi=100)
        xs = [r["in_store_at_measure"] for r in shoppers]
        left.plot(xs, [r["us_per_event"] for r in shoppers], marker="o")
        left.set_xscale("log")
        left.set_ylim(bottom=0)
        left.set_xlabel("shoppers in store at once")
        left.set_ylabel("core cost (µs per event)")
        left.set_title("Per-event cost vs concurrency")
        left.grid(True, which="both", alpha=0.3)
        right.plot(
            [r["tracked_shoppers"] for r in shoppers],
            [r["bytes_per_tracked_shopper"] for r in shoppers],
            marker="o",
            color="tab:orange",
        )
        right.set_xscale("log")
        right.set_ylim(bottom=0)
        right.set_xlabel("shoppers tracked by the engine")
        right.set_ylabel("bytes per shopper")
        right.set_title("Engine memory per active shopper")
        right.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        path = out_dir / "scaling-shoppers.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def format_report(r: Mapping[str, Any]) -> str:
    lines: list[str] = []
    if r.get("rules"):
        lines.append("per-event core cost vs rules")
        lines.append(f"{'flavour':>10} {'rules':>6} {'events':>8} {'us/event':>9} {'events/s':>9}")
        for row in r["rules"]:
            lines.append(
                f"{row['flavour']:>10} {row['rules']:>6} {row['events']:>8} "
                f"{row['us_per_event']:>9.2f} {row['events_per_s'] or 0:>9,}"
            )
    if r.get("shoppers"):
        if lines:
            lines.append("")
        lines.append("per-event core cost and memory vs concurrent shoppers (catalog rules)")
        lines.append(
            f"{'shoppers':>9} {'stores':>6} {'in store':>9} {'tracked':>8} {'us/event':>9} "
            f"{'B/shopper':>9} {'timers':>8}"
        )
        for row in r["shoppers"]:
            lines.append(
                f"{row['shoppers']:>9,} {row['stores']:>6} {row['in_store_at_measure']:>9,} "
                f"{row['tracked_shoppers']:>8,} {row['us_per_event']:>9.2f} "
                f"{row['bytes_per_tracked_shopper']:>9} {row['pending_timers']:>8,}"
            )
    return "\n".join(lines)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _parser() -> argparse.ArgumentParser:
    d = ScalingSettings()
    p = argparse.ArgumentParser(
        prog="floorwalker bench scaling", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tests)")
    p.add_argument("--rules", type=_ints, default=None, help="rule counts, comma-separated")
    p.add_argument("--shoppers", type=_ints, default=None, help="shopper counts, comma-separated")
    p.add_argument("--rule-events", type=int, default=None, help=f"({d.rule_events})")
    p.add_argument("--measure-events", type=int, default=None, help=f"({d.measure_events})")
    p.add_argument("--repeat", type=int, default=None, help=f"({d.repeat})")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--registry", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results as JSON")
    p.add_argument("--plots", type=Path, default=None, metavar="DIR", help="write PNG plots here")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``floorwalker bench scaling [--quick] [--json FILE] [--plots DIR] ...``"""
    args = _parser().parse_args(argv)
    cfg = QUICK if args.quick else ScalingSettings()
    changes: dict[str, Any] = {}
    for flag, name in (
        ("rules", "rule_counts"),
        ("shoppers", "shopper_counts"),
        ("rule_events", "rule_events"),
        ("measure_events", "measure_events"),
        ("repeat", "repeat"),
        ("seed", "seed"),
        ("registry", "registry"),
    ):
        value = getattr(args, flag)
        if value is not None:
            changes[name] = value
    cfg = replace(cfg, **changes)
    results = run_scaling_bench(cfg, log=None if args.quiet else sys.stderr)
    print(format_report(results))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    if args.plots is not None:
        for path in write_plots(results, args.plots):
            print(f"plot: {path}", file=sys.stderr)
    return 0


__all__ = [
    "DOCS_BENCH",
    "QUICK",
    "ScalingSettings",
    "format_report",
    "main",
    "run_scaling_bench",
    "write_plots",
]


if __name__ == "__main__":
    raise SystemExit(main())
