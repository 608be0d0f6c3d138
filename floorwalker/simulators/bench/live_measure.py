"""``bench live``'s measuring tools: percentiles, rates, CPU of processes, child processes.

Everything here is about watching the run, not about what runs: latency
percentiles in ms (:func:`latency`), the processing rate from sampled counts
(:func:`slope`), the runner's counters from its ``/metrics`` (:func:`scrape`),
CPU seconds of named processes turned into % of one core (:class:`Cpu`), the
:mod:`multiprocessing` children that take dict commands (:class:`Child`,
:func:`spawn`) and a description of the machine (:func:`machine`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final

import numpy as np
import psutil

from floorwalker import services
from floorwalker.errors import ServiceError


def _pct(values: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    if not values:
        return [None for _ in qs]
    arr = np.asarray(values, dtype=np.float64) * 1000.0
    return [round(float(np.percentile(arr, q)), 3) for q in qs]


def latency(values: Sequence[float]) -> dict[str, Any]:
    """p50/p99/p99.9, count and max of ``values`` (seconds), in ms."""
    out: dict[str, Any] = dict(
        zip(("p50_ms", "p99_ms", "p999_ms"), _pct(values, (50.0, 99.0, 99.9)), strict=True)
    )
    out["n"] = len(values)
    out["max_ms"] = round(max(values) * 1000.0, 3) if values else None
    return out


def slope(samples: Sequence[tuple[float, int]], t_from: float, t_to: float) -> float | None:
    """Least-squares rate of ``(t, count)`` samples between ``t_from`` and ``t_to``."""
    pts = [(t, c) for t, c in samples if t_from <= t <= t_to]
    if len(pts) >= 3 and pts[-1][0] > pts[0][0]:
        t = np.array([p[0] for p in pts])
        c = np.array([p[1] for p in pts], dtype=np.float64)
        return float(np.polyfit(t - t[0], c, 1)[0])
    if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
        return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
    return None


_SCRAPED: Final = frozenset(
    {
        "floorwalker_events_in_total",
        "floorwalker_deadletters_total",
        "floorwalker_snapshot_seconds_sum",
        "floorwalker_snapshot_seconds_count",
        "floorwalker_snapshot_bytes",
    }
)


def scrape(url: str) -> dict[str, float]:
    """Sums of the runner's counters we need, from its /metrics text."""
    with urllib.request.urlopen(url, timeout=2.0) as resp:  # loopback only
        text = resp.read().decode("utf-8", "replace")
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in _SCRAPED:
            continue
        value = float(line.rsplit(" ", 1)[1])
        sums[name] = sums.get(name, 0.0) + value
        if 'reason="' in line:
            key = "deadletter:" + line.split('reason="', 1)[1].split('"', 1)[0]
            sums[key] = sums.get(key, 0.0) + value
    return sums


class Cpu:
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
                out[name] = t.user + t.system + t.children_user + t.children_system
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
        gens = [v for k, v in out.items() if k.startswith("generator-")]
        if gens:
            out["generator"] = round(sum(gens), 1)
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
class Child:
    name: str
    process: Any
    conn: Connection

    def ask(self, cmd: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        self.conn.send(cmd)
        if not self.conn.poll(timeout_s):
            raise ServiceError(f"bench live: the {self.name} process did not answer in time")
        reply: dict[str, Any] = self.conn.recv()
        return reply

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send({"op": "quit"})
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)


def spawn(
    stack: contextlib.ExitStack, name: str, target: Callable[..., None], spec: dict[str, Any]
) -> Child:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, spec), name=f"bench-live-{name}", daemon=True)
    proc.start()
    handle = Child(name, proc, parent)
    stack.callback(handle.stop)
    if not parent.poll(60.0):
        raise ServiceError(f"bench live: the {name} process did not start")
    hello = parent.recv()
    if not hello.get("ready"):
        raise ServiceError(f"bench live: the {name} process failed: {hello.get('error')}")
    return handle


def machine() -> dict[str, Any]:
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
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
