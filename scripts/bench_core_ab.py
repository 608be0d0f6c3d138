#!/usr/bin/env python3
"""The core's hot loop of two trees in ONE process, their runs interleaved.

usage: python scripts/bench_core_ab.py [--rounds N] [--chunk EVENTS] [--rules DIR] [--catalog-only] TREE_A TREE_B

`bench_core_loop.py` runs each tree in its own process, one after the other; on
this VM the speed of a whole process drifts by +-20 % (a neighbour's load, the
host's caches), so two processes a minute apart disagree more than two trees
do. Here both trees are imported into one process (each under its own copy of
the ``floorwalker`` modules), both workloads are built, and then the runs
alternate A B / B A round after round: a slow phase of the machine hits both.
The figure to read is the median over rounds of the paired ratio B/A.

With ``--chunk 2000`` (recommended) the two trees' engines take turns within
one run, 2,000 events (~10 ms) at a time, so even a slow second is shared: two
copies of one tree then agree within +-1.5 % per round, where whole runs
alternating disagree by up to +-30 % on this VM.

Each run is `bench core`'s 300,000-event, 12-store workload (seed 7) through
advance_to / ingest / drain, with no rules and with the tree's catalog, pinned
to CPU 1, in events per second of process CPU time. For counts that no noise
moves, run `bench_core_loop.py --instructions` under callgrind (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

RULE_SETS = ("no_rules", "catalog")


def _ours(name: str) -> bool:
    return name == "floorwalker" or name.startswith("floorwalker.")


def _swap_in(modules: dict[str, ModuleType]) -> None:
    for name in [n for n in sys.modules if _ours(n)]:
        del sys.modules[name]
    sys.modules.update(modules)


def load_tree(path: str, rules_dir: str | None = None) -> dict[str, Any]:
    """Import a tree's floorwalker, build its workload; keep its modules apart.

    ``rules_dir`` (both trees the same rules) stands in for the tree's own catalog."""
    _swap_in({})
    sys.path.insert(0, path)
    # Imported here, after the path is set: each tree's own floorwalker.
    try:
        from floorwalker.simulators.bench import core as bc  # noqa: PLC0415
    except ImportError:  # the layout before simulators/bench/
        from floorwalker.simulators import bench_core as bc  # type: ignore[no-redef]  # noqa: PLC0415
    from floorwalker.rules.loader import load_rules  # noqa: PLC0415
    from floorwalker.rules.model import RuleSet  # noqa: PLC0415

    cfg = bc.BenchSettings(events=300_000, stores=12)
    chain = bc._Chain(cfg)
    _traffic, events, _ = bc._workload(cfg, chain)
    catalog = load_rules(Path(rules_dir) if rules_dir else Path(path, "floorwalker/rules/catalog"))
    rules = {"no_rules": RuleSet(()), "catalog": catalog}
    sys.path.remove(path)
    modules = {n: m for n, m in sys.modules.items() if _ours(n)}
    return {"bc": bc, "chain": chain, "events": events, "rules": rules, "modules": modules}


def run(tree: dict[str, Any], rule_set: str) -> float:
    """One run: a fresh engine of that tree through the whole workload; events/s."""
    _swap_in(tree["modules"])  # a lazy import inside the tree finds its own modules
    engine = tree["bc"]._engine(tree["rules"][rule_set], tree["chain"])
    advance, ingest, drain = engine.advance_to, engine.ingest, engine.drain
    t0 = time.process_time()
    for ev in tree["events"]:
        advance(ev.ts)
        ingest(ev)
        drain()
    return len(tree["events"]) / (time.process_time() - t0)


def run_chunked(trees: list[dict[str, Any]], rule_set: str, chunk: int) -> list[float]:
    """One pass of both trees' engines through the workload, taking turns every
    ``chunk`` events (A B, then B A): CPU seconds each spent in its turns.

    A turn lasts ~10 ms, so a slow second of the machine is shared by both trees
    instead of landing on one tree's whole run.
    """
    engines = []
    for tree in trees:
        _swap_in(tree["modules"])
        engine = tree["bc"]._engine(tree["rules"][rule_set], tree["chain"])
        engines.append((engine.advance_to, engine.ingest, engine.drain))
    spent = [0.0, 0.0]
    for turn, start in enumerate(range(0, len(trees[0]["events"]), chunk)):
        for i in (0, 1) if turn % 2 == 0 else (1, 0):
            _swap_in(trees[i]["modules"])
            advance, ingest, drain = engines[i]
            events = trees[i]["events"][start : start + chunk]
            t0 = time.process_time()
            for ev in events:
                advance(ev.ts)
                ingest(ev)
                drain()
            spent[i] += time.process_time() - t0
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="take turns every CHUNK events within one run (0: whole runs alternate)",
    )
    parser.add_argument(
        "--rules",
        help="a rule directory for both trees in place of their catalogs (e.g. one catalog "
        "file and policy.yaml copied into a directory: which rule costs what)",
    )
    parser.add_argument("--catalog-only", action="store_true", help="skip the no-rules runs")
    parser.add_argument("tree_a")
    parser.add_argument("tree_b")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    trees = [load_tree(args.tree_a, args.rules), load_tree(args.tree_b, args.rules)]
    rule_sets = ("catalog",) if args.catalog_only else RULE_SETS
    gc.collect()
    gc.freeze()
    rates: dict[tuple[int, str], list[float]] = {(i, n): [] for i in (0, 1) for n in rule_sets}
    n_events = len(trees[0]["events"])
    for r in range(args.rounds):
        for name in rule_sets:
            if args.chunk:
                spent = run_chunked(trees, name, args.chunk)
                for i in (0, 1):
                    rates[(i, name)].append(n_events / spent[i])
                continue
            for i in (0, 1) if r % 2 == 0 else (1, 0):
                rates[(i, name)].append(run(trees[i], name))
        paired = {n: round(rates[(1, n)][-1] / rates[(0, n)][-1], 3) for n in rule_sets}
        print(f"round {r + 1}: B/A {paired}", flush=True)
    for name in rule_sets:
        a, b = rates[(0, name)], rates[(1, name)]
        ratios = sorted(y / x for x, y in zip(a, b, strict=True))
        print(
            f"{name:9s} A best {max(a):9,.0f} median {statistics.median(a):9,.0f} | "
            f"B best {max(b):9,.0f} median {statistics.median(b):9,.0f} | "
            f"B/A median of paired ratios {statistics.median(ratios):.3f} "
            f"(quartiles {ratios[len(ratios) // 4]:.3f}-{ratios[(3 * len(ratios)) // 4]:.3f})"
        )


if __name__ == "__main__":
    main()
