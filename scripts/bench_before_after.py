#!/usr/bin/env python3
"""Core throughput of this tree against an older commit, measured in one run.

usage: scripts/bench_before_after.py [REV] [--rounds N] [--events N] [--json FILE]

REV (default d78db69, the last commit before the per-store state units) is
checked out into a temporary git worktree. Then, in alternation, each tree runs
the same `floorwalker bench core` workload (same seed, same events, pinned to
the same CPU) in its own process, ROUNDS times. The machine's noise hits both
sides alike, so the figure to read is the median over rounds of the paired
ratio after/before, next to the best of each side. Rates are events per second
of the process's CPU time (steal and waiting for a core left out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ("catalog", "catalog_feed", "no_rules")


def bench(tree: Path, events: int, out: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, "-m", "floorwalker.cli", "bench", "core", "--events", str(events)]
    cmd += ["--extra-rules", "10", "--sweep-events", "0", "--memory-shoppers", "200"]
    cmd += ["--decode-events", "1000", "--repeat", "3", "--json", str(out), "--quiet"]
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    core = json.loads(out.read_text())["core"]
    # Events per second of process CPU time: what a busy machine's other work
    # disturbs least (wall time is reported by bench core itself too).
    return {name: float(core[name]["cpu_events_per_s"]) for name in RUNS if name in core}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rev", nargs="?", default="d78db69")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="fw-before-") as tmp:
        before = Path(tmp) / "tree"
        git = ["git", "-C", str(ROOT)]
        subprocess.run([*git, "worktree", "add", "-q", "--detach", str(before), args.rev], check=True)
        try:
            rounds = []
            for k in range(args.rounds):
                b = bench(before, args.events, Path(tmp) / "b.json")
                a = bench(ROOT, args.events, Path(tmp) / "a.json")
                rounds.append({"before": b, "after": a})
                print(f"round {k + 1}: before {b}  after {a}", file=sys.stderr)
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(before)], check=False)
    report = {"rev": args.rev, "events": args.events, "rounds": rounds, "summary": {}}
    for name in RUNS:
        pairs = [(r["after"][name], r["before"][name]) for r in rounds if name in r["before"]]
        if not pairs:
            continue
        report["summary"][name] = {
            "before_best": max(b for _, b in pairs),
            "after_best": max(a for a, _ in pairs),
            "after_over_before_median": round(statistics.median(a / b for a, b in pairs), 3),
        }
    print(json.dumps(report["summary"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
