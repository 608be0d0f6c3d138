#!/usr/bin/env python3
"""What the floor page costs the core thread: one floor_view, against the events it displaces.

usage: .venv/bin/python scripts/bench_floor_view.py

The 40-zone large store with the catalog; N shoppers placed in zones (the
catalog's greeting rule opens alerts for some of them, and 3 bells are pressed).
For each N: the time of one ``floor_view`` (best of 15) and, in the same run,
the time of one engine event (a shopper seen again, the commonest), so the
result reads as "one picture costs as much as K events" and as the share of
one core the page takes at two pictures a second.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path

from floorwalker.devices.events import BellPress, Sighting
from floorwalker.devices.registry import load_registry
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.floor import floor_view
from floorwalker.rules.loader import load_rules_for

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "floorwalker" / "simulators" / "data" / "large-store.yaml"
CATALOG = ROOT / "floorwalker" / "rules" / "catalog"
T0 = 1795395600.0


def main() -> None:
    reg = load_registry(REGISTRY)
    registries = {reg.store: reg}
    beacons = sorted(reg.beacons)
    print("shoppers  alerts  floor_view ms  event us  one view = events  core share at 2/s")
    for n in (100, 1_000, 10_000):
        engine = Engine(load_rules_for(CATALOG, registries), registries)
        t = T0
        for k in range(4):  # four sightings each: everyone is placed in a zone
            for i in range(n):
                b = beacons[i % len(beacons)]
                ev = Sighting(
                    reg.store,
                    "gw-1",
                    t,
                    b,
                    reg.beacons[b],
                    -60,
                    f"s{i}",
                    False,
                    None,
                    f"s{i}|{b}|{k}",
                )
                engine.feed(ev)
                t += 0.8 / n
            engine.drain()
        for j, bell in enumerate(sorted(reg.bells)[:3]):
            engine.feed(
                BellPress(reg.store, bell, f"p{j}", t, reg.bells[bell], None, "help", f"b|{j}")
            )
        engine.drain()
        gc.collect()
        view_s = min(_time(floor_view, engine) for _ in range(15))
        repeat = [
            Sighting(
                reg.store,
                "gw-1",
                t + 0.5 + i * 1e-6,
                beacons[i % len(beacons)],
                reg.beacons[beacons[i % len(beacons)]],
                -60,
                f"s{i}",
                False,
                None,
                f"r{i}",
            )
            for i in range(n)
        ]
        start = time.perf_counter()
        for ev in repeat:
            engine.ingest(ev)
        event_s = (time.perf_counter() - start) / n
        alerts = len(floor_view(engine)[reg.store].alerts)
        print(
            f"{n:>8}  {alerts:>6}  {view_s * 1e3:>13.2f}  {event_s * 1e6:>8.2f}"
            f"  {view_s / event_s:>17.0f}  {2 * view_s:>17.2%}"
        )


def _time(fn: Callable[[Engine], object], engine: Engine) -> float:
    start = time.perf_counter()
    fn(engine)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
