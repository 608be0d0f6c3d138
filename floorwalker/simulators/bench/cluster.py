"""``floorwalker bench cluster``: the cluster runner's throughput and failover, on tansu.

Everything in one run, on one tansu broker started for it (in memory, loopback):

* **throughput** — a simulated multi-store capture is produced once to the events
  topic (``kafka load``, as the bridge would). Then, one after the other and each
  from the start of the topic with a fresh consumer group: a faust pass-through
  agent (:mod:`floorwalker.engine.runners.cluster.passthrough`: same faust settings,
  copies every record to another topic), one event-time worker, and two
  event-time workers sharing the partitions. Each process counts the records it
  handled and when the first and the last came; records per second is count /
  (last - first), summed over the workers of a run. ``--rounds`` repeats the three
  in turn; ratios are taken within a round. (Event time: the capture's timestamps
  are in the past, and a wall-clock worker would refuse them as late.)
* **failover** — two wall-clock workers on fresh topics; a record for one store
  that its engine dead-letters goes in every 20 ms; the store's owner is killed
  with SIGKILL; failover time is the kill to the first actions record for that
  store produced by the other worker (its ``fw-worker`` header), ``--failovers``
  times (the killed worker is started again and the partitions shared before the
  next one).

Latency and failover figures on tansu are not those of Apache Kafka (see
docs/cluster.md): they follow tansu's rebalance and the fetch settings stated in
the report.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from floorwalker.engine.runners.cluster.kafka import (
    failover_time,
    load,
    partition_of,
)
from floorwalker.engine.runners.cluster.launch import FLOORWALKER, Child, Cluster, wait_shared
from floorwalker.engine.runners.cluster.tansu import tansu
from floorwalker.engine.runners.cluster.worker import WorkerSettings
from floorwalker.errors import ServiceError

ROOT = Path(__file__).resolve().parents[2]
DEMO_REGISTRY = ROOT / "simulators" / "data" / "demo-store.yaml"
CATALOG = ROOT / "rules" / "catalog"
_HANDLED = re.compile(
    r"floorwalker (?:worker|passthrough): handled (\d+) records from ([\d.]+) to ([\d.]+)"
)


@dataclass(frozen=True)
class ClusterBenchSettings:
    stores: int = 8
    shoppers: int = 40
    """Per store, over ``minutes`` of store time."""
    minutes: float = 6.0
    seed: int = 11
    partitions: int = 8
    rounds: int = 2
    failovers: int = 2
    quick: bool = False


QUICK = ClusterBenchSettings(stores=2, shoppers=6, minutes=2.0, rounds=1, failovers=1, quick=True)


@dataclass(frozen=True)
class Run:
    what: str
    records: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def _fw(*args: str | Path | int) -> None:
    done = subprocess.run(
        [*FLOORWALKER, *map(str, args)], capture_output=True, check=False, timeout=600
    )
    if done.returncode != 0:
        raise ServiceError(f"floorwalker {args[0]} failed: {done.stderr.decode()[-2000:]}")


def _workload(cfg: ClusterBenchSettings, workdir: Path) -> tuple[list[Path], Path, Path]:
    """Registries s001..sNNN (the demo store cloned), a capture and its profiles."""
    text = DEMO_REGISTRY.read_text(encoding="utf-8")
    registries = []
    for i in range(1, cfg.stores + 1):
        path = workdir / f"s{i:03d}.yaml"
        path.write_text(re.sub(r"(?m)^store: s001$", f"store: s{i:03d}", text), encoding="utf-8")
        registries.append(path)
    capture, profiles = workdir / "capture.jsonl", workdir / "profiles.jsonl"
    _fw(
        "simulate", "--registry", registries[0], "--stores", cfg.stores,
        "--shoppers", cfg.shoppers * cfg.stores, "--minutes", str(cfg.minutes), "--seed", cfg.seed,
        "--capture", capture, "--profiles-out", profiles,
    )  # fmt: skip
    return registries, capture, profiles


def _handled(proc: Child) -> tuple[int, float, float] | None:
    found = _HANDLED.findall(proc.text())
    if not found:
        return None
    n, first, last = found[-1]
    return int(n), float(first), float(last)


def _wait_drained(records: int, procs: Sequence[Child], limit_s: float) -> None:
    """Until the processes together handled ``records`` records, or went quiet (their
    progress lines come every 2 s while records come; the final count comes at stop)."""
    deadline = time.monotonic() + limit_s
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive:
                raise ServiceError(f"{p.name} exited:\n{p.tail()}")
        count = sum(h[0] for p in procs if (h := _handled(p)) is not None)
        if count >= records:
            return
        if count != seen:
            seen, since = count, time.monotonic()
        elif count > 0 and time.monotonic() - since > 6.0:
            return
        time.sleep(0.5)
    raise ServiceError(f"{records} records not handled within {limit_s:g} s")


def _measured(what: str, procs: Sequence[Child]) -> Run:
    count, first, last = 0, float("inf"), 0.0
    for p in procs:
        p.stop()
        handled = _handled(p)
        if handled is None:
            raise ServiceError(f"{p.name} did not report its count:\n{p.tail()}")
        n, a, b = handled
        if n:  # a worker whose partitions held no record has no first or last
            count, first, last = count + n, min(first, a), max(last, b)
    return Run(what, count, last - first)


def _throughput_round(
    cfg: ClusterBenchSettings,
    workdir: Path,
    kafka: str,
    cluster: Cluster,
    profiles: Path,
    records: int,
    round_no: int,
    log: TextIO | None,
) -> list[Run]:
    runs: list[Run] = []
    group = f"bench-pt-{round_no}"
    argv = [sys.executable, "-m", "floorwalker.engine.runners.cluster.passthrough"]
    argv += ["--kafka", kafka, "--prefix", cluster.prefix, "--partitions", str(cfg.partitions)]
    argv += ["--to", f"bench.copy-{round_no}", "--app-id", group]
    passthrough = Child("passthrough", argv, workdir / f"{group}.log").start()
    try:
        _wait_drained(records, [passthrough], 900)
    finally:
        runs.append(_measured("faust pass-through agent", [passthrough]))
    for n in (1, 2):
        group = f"bench-w{n}-{round_no}"
        mine = dataclasses.replace(cluster, app_id=group)
        extra = ["--profiles", str(profiles)]
        procs = [
            Child(
                f"{group}-{i}",
                mine.worker_argv(f"{group}-{i}", clock="event", extra=extra),
                workdir / f"{group}-{i}.log",
            ).start()
            for i in range(n)
        ]
        try:
            _wait_drained(records, procs, 900)
        finally:
            runs.append(_measured(f"{n} worker{'s' if n > 1 else ''}", procs))
    if log is not None:
        for r in runs:
            print(f"  round {round_no}: {r.what}: {r.records} in {r.seconds:.1f} s", file=log)
    return runs


def _failovers(
    cfg: ClusterBenchSettings, workdir: Path, kafka: str, registries: list[Path], log: TextIO | None
) -> list[float]:
    cluster = Cluster(
        kafka=kafka,
        registries=tuple(registries),
        rules=CATALOG,
        workdir=workdir,
        prefix="fo",
        partitions=cfg.partitions,
        app_id="bench-failover",
    )
    store = "s001"
    partition = partition_of(store, cfg.partitions)
    workers = [
        Child(name, cluster.worker_argv(name), workdir / f"{name}.log") for name in ("fo-a", "fo-b")
    ]
    times: list[float] = []
    try:
        for w in workers:
            w.start()
        for i in range(cfg.failovers):
            owned = wait_shared(workers, cfg.partitions, timeout_s=120)
            owner = next(w for w in workers if partition in owned[w.name])
            other = next(w for w in workers if w is not owner)
            took = asyncio.run(
                failover_time(
                    kafka, prefix=cluster.prefix, store=store, survivor=other.name, kill=owner.kill9
                )
            )
            times.append(took)
            if log is not None:
                print(f"  failover {i + 1}: {took:.2f} s", file=log)
            owner.log.write_text("")  # the restarted worker's "ready" line is the next one
            owner.start()
    finally:
        for w in workers:
            w.stop()
    return times


def run_cluster_bench(cfg: ClusterBenchSettings, log: TextIO | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fw-bench-cluster-") as tmp:
        workdir = Path(tmp)
        registries, capture, profiles = _workload(cfg, workdir)
        with tansu(workdir / "tansu.log") as kafka:
            cluster = Cluster(
                kafka=kafka,
                registries=tuple(registries),
                rules=CATALOG,
                workdir=workdir,
                prefix="bench",
                partitions=cfg.partitions,
            )
            records, _skipped = asyncio.run(
                load(kafka, capture, prefix=cluster.prefix, partitions=cfg.partitions)
            )
            if log is not None:
                print(f"loaded {records} records of {cfg.stores} stores", file=log)
            rounds = [
                _throughput_round(cfg, workdir, kafka, cluster, profiles, records, r, log)
                for r in range(1, cfg.rounds + 1)
            ]
            failovers = _failovers(cfg, workdir, kafka, registries, log)
    defaults = WorkerSettings(kafka="-")
    return {
        "settings": asdict(cfg),
        "records": records,
        "rounds": [[{**asdict(r), "rate": r.rate} for r in runs] for runs in rounds],
        "failover_s": failovers,
        "worker": {
            "fetch_max_wait_ms": defaults.fetch_max_wait_ms,
            "session_timeout_s": defaults.session_timeout_s,
            "heartbeat_s": defaults.heartbeat_s,
            "checkpoint_every_s": defaults.checkpoint_every_s,
            "batch": defaults.batch,
        },
    }


def format_report(results: dict[str, Any]) -> str:
    w = results["worker"]
    lines = [
        f"floorwalker bench cluster: {results['records']} records, "
        f"{results['settings']['stores']} stores, {results['settings']['partitions']} partitions, "
        "tansu (in memory, loopback)",
        f"worker settings: fetch wait {w['fetch_max_wait_ms']} ms, session timeout "
        f"{w['session_timeout_s']:g} s, heartbeat {w['heartbeat_s']:g} s, checkpoint every "
        f"{w['checkpoint_every_s']:g} s, batches of up to {w['batch']}",
        "",
        "round  pass-through rec/s  1 worker rec/s  (x pass-through)  "
        "2 workers rec/s  (x 1 worker)",
    ]
    for i, runs in enumerate(results["rounds"], start=1):
        pt, one, two = (r["rate"] for r in runs)
        lines.append(
            f"{i:>5}  {pt:>18,.0f}  {one:>14,.0f}  {one / pt:>15.2f}x  {two:>15,.0f}  "
            f"{two / one:>11.2f}x"
        )
    fo = results["failover_s"]
    if fo:
        lines.append("")
        lines.append(
            "failover (kill -9 to the first action from the new owner; tansu, not Apache "
            f"Kafka): {', '.join(f'{t:.1f} s' for t in fo)}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``floorwalker bench cluster [--quick] [--rounds N] [--failovers N] [--json FILE]``"""
    parser = argparse.ArgumentParser(prog="floorwalker bench cluster")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--stores", type=int)
    parser.add_argument("--shoppers", type=int, help="per store")
    parser.add_argument("--minutes", type=float, help="store minutes of traffic")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--failovers", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else ClusterBenchSettings()
    changes = {
        k: v
        for k, v in vars(args).items()
        if k in ("stores", "shoppers", "minutes", "rounds", "failovers") and v is not None
    }
    cfg = ClusterBenchSettings(**{**asdict(cfg), **changes})
    results = run_cluster_bench(cfg, log=sys.stderr)
    print(format_report(results))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    return 0
