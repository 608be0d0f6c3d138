"""What a store unit's snapshot costs: bytes per active shopper, time each way.

A store fills up with ``shoppers`` arriving within half a minute (the same
generator as the other benchmarks), and once they are all inside, its state is
saved with :meth:`Engine.snapshot_store` and taken back into a fresh engine with
:meth:`Engine.restore_store`. Each way is timed ``repeat`` times; the best is
reported with the median. Targets (issue #7): at most 300 B per active
shopper, at most 20 ms each way for a store of 3,000 shoppers.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from floorwalker.devices.decode import Decoder
from floorwalker.devices.events import Rejection
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.rules.model import RuleSet
from floorwalker.simulators.traffic import DEMO_START, StoreLayout, TrafficSettings, generate_stores

TARGET_BYTES_PER_SHOPPER = 300
TARGET_MS = 20.0


def snapshot_figures(
    layout: StoreLayout,
    book: ProfileBook,
    rules: RuleSet,
    *,
    shoppers: int = 3000,
    known: tuple[str, ...] = (),
    seed: int = 7,
    repeat: int = 7,
) -> dict[str, Any]:
    registries = {layout.registry.store: layout.registry}
    sid = layout.registry.store
    engine = _filled(layout, book, rules, shoppers, known, seed)
    data = engine.snapshot_store(sid)
    active = engine.gauges().active_shoppers

    def save() -> object:
        return engine.snapshot_store(sid)

    def load() -> object:
        restored = Engine(rules, registries, profiles=book)
        restored.restore_store(data)
        return restored

    save_s, load_s = _times(save, repeat), _times(load, repeat)
    per_shopper = len(data) / max(1, active)
    return {
        "shoppers_arriving": shoppers,
        "active_shoppers": active,
        "pending_timers": engine.gauges().pending_timers,
        "bytes": len(data),
        "bytes_per_active_shopper": round(per_shopper),
        "snapshot_ms": {"best": round(1e3 * min(save_s), 2), "median": _ms(save_s)},
        "restore_ms": {"best": round(1e3 * min(load_s), 2), "median": _ms(load_s)},
        "targets": {
            "bytes_per_active_shopper": {
                "target": TARGET_BYTES_PER_SHOPPER,
                "measured": round(per_shopper),
                "met": per_shopper <= TARGET_BYTES_PER_SHOPPER,
            },
            "snapshot_ms": {
                "target": TARGET_MS,
                "measured": _ms(save_s),
                "met": _ms(save_s) <= TARGET_MS,
            },
            "restore_ms": {
                "target": TARGET_MS,
                "measured": _ms(load_s),
                "met": _ms(load_s) <= TARGET_MS,
            },
        },
    }


def _filled(
    layout: StoreLayout,
    book: ProfileBook,
    rules: RuleSet,
    shoppers: int,
    known: tuple[str, ...],
    seed: int,
) -> Engine:
    """An engine whose store holds ``shoppers`` who all arrived within 30 s."""
    arrival_s, settle_s = 30.0, 45.0
    settings = TrafficSettings(
        shoppers=shoppers, minutes=arrival_s / 60.0, seed=seed, start=DEMO_START, known=known
    )
    traffic = generate_stores([layout], [settings])
    limit = int(np.searchsorted(traffic.timestamps(), DEMO_START + arrival_s + settle_s, "right"))
    registries = {layout.registry.store: layout.registry}
    engine = Engine(rules, registries, profiles=book)
    decoder = Decoder(registries)
    clock = 0.0
    for topic, payload in traffic.wire_list(limit=limit):
        for ev in decoder.decode(topic, payload, clock):
            if isinstance(ev, Rejection):
                continue
            clock = ev.ts
            engine.advance_to(clock)
            engine.ingest(ev)
            engine.drain()
    return engine


def _times(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds per call; what the call made is freed after the clock stops (a restored
    engine is ready when restore returns: tearing it down again is no part of it)."""
    out = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        made = fn()
        out.append(time.perf_counter() - t0)
        del made
    return out


def _ms(samples: list[float]) -> float:
    return round(1e3 * statistics.median(samples), 2)


def format_snapshot(s: dict[str, Any]) -> str:
    return (
        f"snapshot: a store with {s['active_shoppers']:,} shoppers in it "
        f"({s['pending_timers']:,} timers): {s['bytes']:,} B, "
        f"{s['bytes_per_active_shopper']} B per active shopper; "
        f"snapshot {s['snapshot_ms']['median']} ms (best {s['snapshot_ms']['best']}), "
        f"restore {s['restore_ms']['median']} ms (best {s['restore_ms']['best']})"
    )
