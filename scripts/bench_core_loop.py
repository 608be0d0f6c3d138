#!/usr/bin/env python3
"""The core's hot loop alone, in whatever tree is on PYTHONPATH (old layouts too).

usage: PYTHONPATH=TREE python scripts/bench_core_loop.py RULES_DIR
       PYTHONPATH=TREE PYTHONHASHSEED=0 valgrind --tool=callgrind --collect-atstart=no \
           --toggle-collect=functools_reduce python scripts/bench_core_loop.py \
           --instructions RULES_DIR|none

300,000 events of `bench core`'s workload (12 stores, seed 7) through
advance_to / ingest / drain, pinned to CPU 1, best of 3 in events per second of
process CPU time, with no rules and with RULES_DIR. Run it for two trees one
after the other, twice, to compare them on one machine (see BENCHMARKS.md).

With ``--instructions`` the loop runs once, inside ``functools.reduce``, so that
callgrind counts the instructions of the loop alone (``--toggle-collect``): a
count no neighbour on the machine moves, for comparing two trees exactly.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import time
from pathlib import Path

try:
    from floorwalker.simulators.bench import core as bc
except ImportError:  # the layout before simulators/bench/
    from floorwalker.simulators import bench_core as bc  # type: ignore[no-redef]
from floorwalker.rules.loader import load_rules
from floorwalker.rules.model import RuleSet


def instructions(rules_dir: str) -> None:
    """One pass of the loop inside functools.reduce (callgrind's toggle), nothing else."""
    cfg = bc.BenchSettings(events=300_000, stores=12)
    chain = bc._Chain(cfg)
    _traffic, events, _ = bc._workload(cfg, chain)
    rules = RuleSet(()) if rules_dir == "none" else load_rules(Path(rules_dir))
    gc.freeze()
    engine = bc._engine(rules, chain)
    advance, ingest, drain = engine.advance_to, engine.ingest, engine.drain

    def step(acc: None, ev: object) -> None:
        advance(ev.ts)  # type: ignore[attr-defined]
        ingest(ev)  # type: ignore[arg-type]
        drain()

    functools.reduce(step, events, None)
    print(f"{len(events)} events")


def main() -> None:
    if sys.argv[1] == "--instructions":
        instructions(sys.argv[2])
        return
    os.sched_setaffinity(0, {1})
    cfg = bc.BenchSettings(events=300_000, stores=12)
    chain = bc._Chain(cfg)
    _traffic, events, _ = bc._workload(cfg, chain)
    gc.freeze()
    out = {}
    for name, rules in (("no_rules", RuleSet(())), ("catalog", load_rules(Path(sys.argv[1])))):
        best = 0.0
        for _ in range(3):
            engine = bc._engine(rules, chain)
            advance, ingest, drain = engine.advance_to, engine.ingest, engine.drain
            t0 = time.process_time()
            for ev in events:
                advance(ev.ts)
                ingest(ev)
                drain()
            best = max(best, len(events) / (time.process_time() - t0))
        out[name] = round(best)
    print(out)


if __name__ == "__main__":
    main()
