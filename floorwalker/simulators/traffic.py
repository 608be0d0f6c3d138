"""Synthetic store traffic: shoppers walking a store's floor, seen by its devices.

A deterministic generator (one :class:`numpy.random.Generator` per store, from
the seed) that turns a store registry into the traffic its devices would
publish:

* ``shoppers`` shoppers arrive uniformly over ``minutes`` minutes. Each enters
  by a zone tagged ``entrance``, walks a random path along zone adjacency
  (never straight back where it came from), stays in each zone an
  exponential-ish time (longer at ``high-consideration`` and
  ``cosmetics-testers`` zones, shorter at the entrance), and most end at a
  zone tagged ``checkout``, walking the shortest way there.
* Their phone reports a sighting about once a second through the gateway of
  the beacon it hears (a few reports are lost). RSSI follows a log-distance
  path-loss model plus Gaussian noise; now and then the phone hears a beacon
  of an adjacent zone instead, weaker, as phones near a boundary do.
* In zones with a bell, a shopper presses it now and then (sometimes two or
  three times, impatiently); a bell with ``reasons`` in the registry file
  (for example a "call staff" QR code) sends one of them.
* At checkout, a buyer's receipt gets POS item lines in categories of the
  zones they browsed (yogurt at the dairy shelf, infant formula at the baby
  aisle, ...), with a loyalty scan for known shoppers, and a checkout line.
* Staff bands wander the zones of their sections and report sightings too;
  at the start every band and gateway reports its status.

Staff acknowledgements need the alert ids only the engine knows, and coupon
redemptions need its coupon codes, so neither is generated here.

The same traffic comes out two ways, both in timestamp order:
:meth:`Traffic.events` (typed events, exactly what the wire decoder makes of
the messages, for core-only benchmarks) and :meth:`Traffic.messages` (wire
contract v1 ``(topic, payload)`` pairs, the capture format of DESIGN.md).
Sightings are generated column-wise with numpy, so a few million events take
seconds.

Re-create the bundled demo capture with::

    python -m floorwalker.simulators.traffic --demo

or any other with ``--registry F --shoppers N --minutes M --seed S --start
2026-11-23T08:30 --out FILE``.
"""

from __future__ import annotations

import argparse
import gc
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import orjson
import yaml

from floorwalker.devices.events import (
    BellPress,
    Checkout,
    CouponRedeemed,
    DeviceStatus,
    Event,
    PosItem,
    Sighting,
    StaffAck,
)
from floorwalker.devices.registry import Registry, load_registry
from floorwalker.devices.topics import inbound_topic
from floorwalker.engine.core.profiles import iter_profiles
from floorwalker.errors import ConfigError

DATA = Path(__file__).parent / "data"
DEMO_REGISTRY = DATA / "demo-store.yaml"
DEMO_PROFILES = DATA / "demo-profiles.jsonl"
DEMO_CAPTURE = DATA / "demo-capture.jsonl"
DEMO_START = datetime(2026, 11, 23, 8, 30, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
"""2026-11-23 08:30 store time (Asia/Shanghai): breakfast daypart rules can fire."""

TX_POWER_DBM = -59.0
"""RSSI at 1 m of a typical BLE beacon."""
PATH_LOSS_EXPONENT = 2.2
"""Indoor log-distance path loss (2 in free space, 2-3 in a shop)."""
RSSI_FLOOR = -100
RSSI_CEILING = -35

TAG_DWELL_FACTOR: dict[str, float] = {
    "high-consideration": 2.2,
    "cosmetics-testers": 1.4,
    "baby": 1.2,
    "produce": 1.1,
    "coffee-bar": 0.9,
    "chilled": 0.9,
    "beverages": 0.7,
}
"""Mean dwell in a zone with this tag, relative to ``dwell_mean_s`` (the largest applies)."""
ENTRANCE_DWELL_FACTOR = 0.25

CATEGORIES_BY_TAG: dict[str, tuple[str, ...]] = {
    "dairy": ("yogurt", "milk", "cheese"),
    "deli": ("deli-meat", "salad"),
    "coffee-bar": ("coffee", "pastry"),
    "bakery": ("bread", "pastry"),
    "produce": ("fruit", "vegetables"),
    "frozen": ("ice-cream", "frozen-meals"),
    "beverages": ("soft-drinks", "water", "juice"),
    "pantry": ("pasta", "rice", "snacks", "canned-goods"),
    "baby": ("infant-formula", "diapers", "baby-food"),
    "pharmacy": ("vitamins", "otc-medicine"),
    "cosmetics-testers": ("cosmetics", "skincare"),
    "electronics": ("small-appliances",),
    "high-consideration": ("furniture", "home-decor"),
}
"""POS categories a shopper may buy after browsing a zone with this tag."""
BUY_SHARE_BY_TAG: dict[str, float] = {"high-consideration": 0.12, "cosmetics-testers": 0.4}
DEFAULT_BUY_SHARE = 0.55
PRICE_RANGE: dict[str, tuple[float, float]] = {
    "infant-formula": (120.0, 320.0),
    "cosmetics": (60.0, 400.0),
    "skincare": (80.0, 500.0),
    "furniture": (300.0, 3000.0),
    "home-decor": (40.0, 400.0),
    "small-appliances": (150.0, 1500.0),
    "coffee": (15.0, 35.0),
    "vitamins": (60.0, 200.0),
}
DEFAULT_PRICE = (3.0, 40.0)
SKUS_PER_CATEGORY = 25

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


# --------------------------------------------------------------------------- store layout


@dataclass(frozen=True)
class StoreLayout:
    """A registry plus what only a simulator needs from the registry file.

    ``beacon_gateways`` maps a beacon to the gateway that relays its sightings
    (registry key ``beacons.<id>.gateway``; otherwise gateways are dealt to
    zones in turn). ``bell_reasons`` lists the reasons a bell's presses carry
    (``bells.<id>.reasons``).
    """

    registry: Registry
    beacon_gateways: Mapping[str, str] = field(default_factory=dict)
    bell_reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, registry: Registry, raw: Mapping[str, Any] | None = None) -> StoreLayout:
        """The layout of ``registry``; ``raw`` is the registry file's mapping, for the extras."""
        gateways = sorted(registry.gateways)
        if not gateways:
            raise ConfigError(f"store {registry.store}: the simulator needs at least one gateway")
        zone_ids = list(registry.zones)
        dealt = {z: gateways[i % len(gateways)] for i, z in enumerate(zone_ids)}
        beacon_gw = {b: dealt[z] for b, z in registry.beacons.items()}
        reasons: dict[str, tuple[str, ...]] = {}
        raw_beacons = (raw or {}).get("beacons") or {}
        for beacon, spec in raw_beacons.items():
            gw = spec.get("gateway") if isinstance(spec, Mapping) else None
            if gw is not None:
                if gw not in registry.gateways:
                    raise ConfigError(f"beacon `{beacon}`: gateway `{gw}` is not a gateway")
                beacon_gw[str(beacon)] = str(gw)
        for bell, spec in ((raw or {}).get("bells") or {}).items():
            if isinstance(spec, Mapping) and spec.get("reasons"):
                reasons[str(bell)] = tuple(str(r) for r in spec["reasons"])
        return cls(registry, beacon_gw, reasons)

    def clone(self, store: str) -> StoreLayout:
        """The same floor under another store id (for multi-store workloads)."""
        reg = self.registry
        copy = Registry(
            store=store,
            timezone=reg.timezone,
            zones=reg.zones,
            beacons=reg.beacons,
            bells=reg.bells,
            gateways=reg.gateways,
            terminals=reg.terminals,
            staff=reg.staff,
        )
        return StoreLayout(copy, self.beacon_gateways, self.bell_reasons)


def load_layout(path: str | Path) -> StoreLayout:
    """Load a registry file with its simulator extras."""
    registry = load_registry(path)  # reports problems with file and line
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return StoreLayout.of(registry, raw if isinstance(raw, Mapping) else None)


def load_tokens(path: str | Path) -> tuple[str, ...]:
    """The shopper tokens of a profiles file (to draw known shoppers from)."""
    return tuple(p.shopper for p in iter_profiles(path))


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TrafficSettings:
    shoppers: int = 40
    minutes: float = 10.0
    seed: int = 7
    start: float = DEMO_START
    """Epoch seconds of the first arrival window's start."""
    known: tuple[str, ...] = ()
    """Profile tokens; known shoppers are drawn from these without replacement."""
    known_share: float = 0.8
    """Share of shoppers with a profile (the rest are first-time, anonymous app users)."""
    report_every_s: float = 1.0
    staff_report_every_s: float = 2.0
    staff_report_every: Mapping[str, float] = field(default_factory=dict)
    """Per-band report interval (s), overriding ``staff_report_every_s`` for those bands."""
    miss_share: float = 0.03
    """Reports lost on the way (radio, gateway batching)."""
    rssi_sigma_db: float = 4.0
    neighbour_share: float = 0.08
    """Share of sightings that hear an adjacent zone's beacon instead (weaker)."""
    stops_mean: float = 5.0
    """Zones a shopper browses after the entrance (Poisson, at least 1)."""
    dwell_mean_s: float = 30.0
    min_dwell_s: float = 4.0
    transit_mean_s: float = 5.0
    """Mean stay in zones crossed on the way to the checkout."""
    buy_share: float = 0.8
    """Shoppers who end at a checkout and buy something."""
    loyalty_scan_share: float = 0.85
    bell_share: float = 0.04
    """Chance that a stay (of at least 8 s) in a zone with a bell includes a press."""
    repeat_press_share: float = 0.3
    bell_round_s: float = 0.0
    """Besides the shoppers' presses: every ``bell_round_s`` the next bell of the store
    (bells in zone order, in turn) is pressed once, by nobody known; 0 = off."""
    staff: bool = True
    status: bool = True
    """Every band and gateway reports its status at the start."""

    def __post_init__(self) -> None:
        if self.shoppers < 0 or self.minutes <= 0:
            raise ValueError("shoppers must be >= 0 and minutes > 0")
        if self.report_every_s <= 0 or self.staff_report_every_s <= 0:
            raise ValueError("report intervals must be positive")
        if any(v <= 0 for v in self.staff_report_every.values()):
            raise ValueError("report intervals must be positive")
        if self.bell_round_s < 0:
            raise ValueError("bell_round_s must be >= 0")


# --------------------------------------------------------------------------- traffic


class Traffic:
    """Generated traffic of one or more stores, in timestamp order.

    Sightings are held column-wise (numpy arrays indexing small string tables)
    and become :class:`Sighting` values only when iterated; the rarer events
    (bells, POS lines, status) are held as typed events.
    """

    __slots__ = (
        "_b_gateway",
        "_b_name",
        "_b_prefix",
        "_b_store",
        "_b_zone",
        "_order",
        "_others",
        "_s_beacon",
        "_s_rssi",
        "_s_staff",
        "_s_subject",
        "_s_ts",
        "_subjects",
        "_ts",
    )

    def __init__(self, chunks: Sequence[_Chunk]) -> None:
        b_name: list[str] = []
        b_zone: list[str] = []
        b_gateway: list[str] = []
        b_store: list[str] = []
        subjects: list[str] = []
        beacons: list[IntArray] = []
        subj: list[IntArray] = []
        others: list[Event] = []
        for c in chunks:
            beacons.append(c.s_beacon + len(b_name))
            subj.append(c.s_subject + len(subjects))
            b_name.extend(c.beacon_names)
            b_zone.extend(c.beacon_zones)
            b_gateway.extend(c.beacon_gateways)
            b_store.extend([c.store] * len(c.beacon_names))
            subjects.extend(c.subjects)
            others.extend(c.others)
        self._b_name, self._b_zone, self._b_gateway, self._b_store = (
            b_name,
            b_zone,
            b_gateway,
            b_store,
        )
        self._b_prefix = [f"beacon/{gw}/" for gw in b_gateway]
        self._subjects = subjects
        self._s_ts = _cat([c.s_ts for c in chunks], np.float64)
        self._s_beacon = _cat(beacons, np.int64)
        self._s_rssi = _cat([c.s_rssi for c in chunks], np.int64)
        self._s_subject = _cat(subj, np.int64)
        self._s_staff = _cat([c.s_staff for c in chunks], np.bool_)
        self._others = others
        o_ts = np.array([e.ts for e in others], dtype=np.float64)
        ts = np.concatenate([self._s_ts, o_ts])
        code = np.concatenate(
            [
                np.arange(len(self._s_ts), dtype=np.int64),
                -1 - np.arange(len(others), dtype=np.int64),
            ]
        )
        order = np.argsort(ts, kind="stable")
        self._order = code[order]
        self._ts = ts[order]

    def __len__(self) -> int:
        return len(self._order)

    @property
    def start(self) -> float:
        return float(self._ts[0]) if len(self._ts) else 0.0

    @property
    def end(self) -> float:
        return float(self._ts[-1]) if len(self._ts) else 0.0

    @property
    def sightings(self) -> int:
        return len(self._s_ts)

    def timestamps(self) -> FloatArray:
        """Every event's ts, in order (a read-only view)."""
        view = self._ts.view()
        view.flags.writeable = False
        return view

    def events(self, limit: int | None = None) -> Iterator[Event]:
        """Typed events in timestamp order, equal to what the decoder makes of :meth:`messages`."""
        names, zones, gws, stores, pre = (
            self._b_name,
            self._b_zone,
            self._b_gateway,
            self._b_store,
            self._b_prefix,
        )
        subjects, others = self._subjects, self._others
        ts_l = self._s_ts.tolist()
        beacon_l = self._s_beacon.tolist()
        rssi_l = self._s_rssi.tolist()
        subj_l = self._s_subject.tolist()
        staff_l = self._s_staff.tolist()
        new = tuple.__new__
        order = self._order if limit is None else self._order[:limit]
        for code in order.tolist():
            if code < 0:
                yield others[-1 - code]
                continue
            b = beacon_l[code]
            who = subjects[subj_l[code]]
            staff = staff_l[code]
            rssi = rssi_l[code]
            name = names[b]
            key = f"{pre[b]}{'b' if staff else 's'}:{who}/{name}/{rssi}"
            yield new(
                Sighting,
                (stores[b], gws[b], ts_l[code], name, zones[b], rssi, who, staff, None, key),
            )

    def event_list(self, limit: int | None = None) -> list[Event]:
        """:meth:`events` as a list, built with the cyclic GC paused (several times faster:
        millions of surviving tuples would otherwise trigger repeated full collections)."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return list(self.events(limit))
        finally:
            if was_enabled:
                gc.enable()

    def wire_list(self, prefix: str = "fw", limit: int | None = None) -> list[tuple[str, bytes]]:
        """:meth:`wire` as a list, built with the cyclic GC paused (see :meth:`event_list`)."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return list(self.wire(prefix, limit))
        finally:
            if was_enabled:
                gc.enable()

    def messages(
        self, prefix: str = "fw", limit: int | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Wire messages ``(topic, payload)`` of contract v1, in timestamp order."""
        wire = WireEncoder(prefix)
        for event in self.events(limit):
            yield wire.encode(event)

    def wire(self, prefix: str = "fw", limit: int | None = None) -> Iterator[tuple[str, bytes]]:
        """Wire messages with their payloads serialised, as a broker would deliver them."""
        dumps = orjson.dumps
        for topic, payload in self.messages(prefix, limit):
            yield topic, dumps(payload)

    def write_capture(self, path: str | Path, prefix: str = "fw") -> int:
        """Write a capture (JSON Lines ``{"topic": ..., "payload": {...}}``); return the lines."""
        n = 0
        dumps = orjson.dumps
        with Path(path).open("wb") as out:
            for topic, payload in self.messages(prefix):
                out.write(dumps({"topic": topic, "payload": payload}) + b"\n")
                n += 1
        return n


def _cat(arrays: Sequence[npt.NDArray[Any]], dtype: type[Any]) -> npt.NDArray[Any]:
    if not arrays:
        return np.zeros(0, dtype=dtype)
    return np.concatenate(arrays).astype(dtype, copy=False)


class WireEncoder:
    """Typed events back to wire contract v1 ``(topic, payload)`` (topics cached, shared)."""

    __slots__ = ("_topics", "prefix")

    def __init__(self, prefix: str = "fw") -> None:
        self.prefix = prefix
        self._topics: dict[tuple[str, str, str], str] = {}

    def _topic(self, kind: str, store: str, device: str) -> str:
        key = (kind, store, device)
        topic = self._topics.get(key)
        if topic is None:
            topic = inbound_topic(kind, store, device, prefix=self.prefix)
            self._topics[key] = topic
        return topic

    def encode(self, ev: Event) -> tuple[str, dict[str, Any]]:
        """One event as its wire message; :meth:`Decoder.decode` gives the event back."""
        if type(ev) is Sighting:
            payload: dict[str, Any] = {"ts": ev.ts, "beacon": ev.beacon, "rssi": ev.rssi}
            payload["band" if ev.is_staff else "shopper"] = ev.subject
            if ev.dwell_s is not None:
                payload["dwell_s"] = ev.dwell_s
            return self._topic("beacon", ev.store, ev.gateway), payload
        if isinstance(ev, BellPress):
            payload = {"id": ev.id, "ts": ev.ts}
            _put(payload, shopper=ev.shopper, reason=ev.reason)
            return self._topic("bell", ev.store, ev.bell), payload
        if isinstance(ev, PosItem | Checkout | CouponRedeemed):
            return self._topic("pos", ev.store, ev.terminal), _pos_payload(ev)
        if isinstance(ev, StaffAck):
            payload = {"id": ev.id, "ts": ev.ts, "alert": ev.alert, "action": ev.action}
            return self._topic("ack", ev.store, ev.band), payload
        if isinstance(ev, DeviceStatus):
            payload = {"ts": ev.ts, "online": ev.online}
            _put(payload, battery=ev.battery)
            return self._topic("status", ev.store, ev.device), payload
        raise TypeError(f"not an event: {ev!r}")


def _put(payload: dict[str, Any], **optional: object) -> None:
    """Add the optional fields that are set (the wire omits absent ones)."""
    for key, value in optional.items():
        if value is not None:
            payload[key] = value


def _pos_payload(ev: PosItem | Checkout | CouponRedeemed) -> dict[str, Any]:
    payload: dict[str, Any] = {"id": ev.id, "ts": ev.ts, "receipt": ev.receipt}
    if isinstance(ev, PosItem):
        _put(payload, sku=ev.sku, category=ev.category, qty=ev.qty, price=ev.price)
    elif isinstance(ev, Checkout):
        payload["checkout"] = True
        _put(payload, total=ev.total)
    else:
        payload["coupon"] = ev.code
    _put(payload, shopper=ev.shopper)
    return payload


# --------------------------------------------------------------------------- generation


@dataclass
class _Chunk:
    """One store's generated traffic before merging."""

    store: str
    beacon_names: list[str]
    beacon_zones: list[str]
    beacon_gateways: list[str]
    subjects: list[str]
    s_ts: FloatArray
    s_beacon: IntArray
    s_rssi: IntArray
    s_subject: IntArray
    s_staff: BoolArray
    others: list[Event]


class _Floor:
    """One layout as index arrays, for vectorised sighting generation."""

    def __init__(self, layout: StoreLayout) -> None:
        reg = layout.registry
        self.registry = reg
        self.zones = list(reg.zones)
        self.index = {z: i for i, z in enumerate(self.zones)}
        graph: list[set[int]] = [set() for _ in self.zones]
        for zone in reg.zones.values():
            for other in zone.adjacent:
                a, b = self.index[zone.id], self.index[other]
                graph[a].add(b)
                graph[b].add(a)
        self.adjacent = [sorted(g) for g in graph]
        by_zone: list[list[str]] = [[] for _ in self.zones]
        for beacon in sorted(reg.beacons):
            by_zone[self.index[reg.beacons[beacon]]].append(beacon)
        self.beacon_names = [b for bs in by_zone for b in bs]
        self.beacon_zones = [reg.beacons[b] for b in self.beacon_names]
        self.beacon_gateways = [layout.beacon_gateways[b] for b in self.beacon_names]
        counts = np.array([len(bs) for bs in by_zone], dtype=np.int64)
        self.zb_count = counts
        self.zb_start = np.cumsum(counts) - counts
        adj_counts = np.array([len(a) for a in self.adjacent], dtype=np.int64)
        self.adj_count = adj_counts
        self.adj_start = np.cumsum(adj_counts) - adj_counts
        self.adj_flat = np.array([b for a in self.adjacent for b in a] or [0], dtype=np.int64)
        sighted = [i for i in range(len(self.zones)) if counts[i] > 0]
        if not sighted:
            raise ConfigError(f"store {reg.store}: the simulator needs beacons")
        tagged = reg.zones_by_tag
        self.entrances = sorted(
            self.index[z] for z in tagged.get("entrance", ()) if counts[self.index[z]]
        )
        if not self.entrances:
            self.entrances = [sighted[0]]
        self.checkouts = sorted(
            self.index[z] for z in tagged.get("checkout", ()) if counts[self.index[z]]
        )
        self.dwell_factor = [self._dwell_factor(reg.zones[z].tags) for z in self.zones]
        self.categories = [self._categories(reg.zones[z].tags) for z in self.zones]
        self.buy_share = [self._buy_share(reg.zones[z].tags) for z in self.zones]
        bells: list[list[str]] = [[] for _ in self.zones]
        for bell in sorted(reg.bells):
            bells[self.index[reg.bells[bell]]].append(bell)
        self.bells = bells
        self.reasons = layout.bell_reasons
        self.to_checkout = self._paths_to(self.checkouts)
        self.terminals = sorted(reg.terminals)

    @staticmethod
    def _dwell_factor(tags: frozenset[str]) -> float:
        if "entrance" in tags:
            return ENTRANCE_DWELL_FACTOR
        factors = [TAG_DWELL_FACTOR[t] for t in sorted(tags) if t in TAG_DWELL_FACTOR]
        return max(factors) if factors else 1.0

    @staticmethod
    def _categories(tags: frozenset[str]) -> tuple[str, ...]:
        found: list[str] = []
        for tag in sorted(tags):
            for cat in CATEGORIES_BY_TAG.get(tag, ()):
                if cat not in found:
                    found.append(cat)
        return tuple(found)

    @staticmethod
    def _buy_share(tags: frozenset[str]) -> float:
        shares = [BUY_SHARE_BY_TAG[t] for t in sorted(tags) if t in BUY_SHARE_BY_TAG]
        return min(shares) if shares else DEFAULT_BUY_SHARE

    def _paths_to(self, targets: Sequence[int]) -> list[list[int]]:
        """For each zone, the zones walked (excluding it) to the nearest target; [] if none."""
        parent: dict[int, int] = {}
        seen = set(targets)
        todo = deque(targets)
        while todo:
            here = todo.popleft()
            for nxt in self.adjacent[here]:
                if nxt not in seen:
                    seen.add(nxt)
                    parent[nxt] = here
                    todo.append(nxt)
        paths: list[list[int]] = []
        for z in range(len(self.zones)):
            walk: list[int] = []
            cur = z
            while cur in parent:
                cur = parent[cur]
                walk.append(cur)
            paths.append(walk)
        return paths


@dataclass
class _Stays:
    zone: list[int] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    dur: list[float] = field(default_factory=list)
    subject: list[int] = field(default_factory=list)
    staff: list[bool] = field(default_factory=list)

    def add(self, zone: int, start: float, dur: float, subject: int, staff: bool) -> None:
        self.zone.append(zone)
        self.start.append(start)
        self.dur.append(dur)
        self.subject.append(subject)
        self.staff.append(staff)


class _StoreGenerator:
    def __init__(self, layout: StoreLayout, settings: TrafficSettings) -> None:
        self.layout = layout
        self.cfg = settings
        self.floor = _Floor(layout)
        self.store = layout.registry.store
        seed_seq = np.random.SeedSequence([settings.seed, _stable_int(self.store)])
        self.rng = np.random.default_rng(seed_seq)
        self.stays = _Stays()
        self.subjects: list[str] = []
        self.others: list[Event] = []
        self.profiled: set[str] = set(settings.known)
        self._ids = 0

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def run(self) -> _Chunk:
        cfg, rng = self.cfg, self.rng
        arrivals = np.sort(rng.uniform(0.0, cfg.minutes * 60.0, size=cfg.shoppers)) + cfg.start
        tokens = self._shopper_tokens(cfg.shoppers)
        end = cfg.start
        for i, token in enumerate(tokens):
            end = max(end, self._shopper(token, float(arrivals[i])))
        if cfg.status:
            self._status(cfg.start)
        if cfg.bell_round_s > 0:
            self._bell_round(cfg.start, end)
        if cfg.staff:
            for band in sorted(self.layout.registry.staff):
                self._staff(band, cfg.start, end)
        return self._sightings()

    def _shopper_tokens(self, n: int) -> list[str]:
        cfg, rng = self.cfg, self.rng
        known = list(cfg.known)
        n_known = min(len(known), round(n * cfg.known_share))
        picks = rng.permutation(len(known))[:n_known] if known else np.zeros(0, dtype=np.int64)
        tokens = [known[int(i)] for i in picks]
        salt = rng.integers(0, 2**62)
        tokens += [_anon_token(int(salt), i) for i in range(n - n_known)]
        order = rng.permutation(len(tokens))
        return [tokens[int(i)] for i in order]

    # -- shoppers ----------------------------------------------------------------

    def _path(self) -> tuple[list[int], list[bool], bool]:
        """Zones visited in order, whether each is a mere transit, and whether they buy."""
        rng, fl = self.rng, self.floor
        here = fl.entrances[int(rng.integers(len(fl.entrances)))]
        path, transit = [here], [False]
        prev = -1
        for _ in range(max(1, int(rng.poisson(self.cfg.stops_mean)))):
            options = [z for z in fl.adjacent[here] if z != prev] or fl.adjacent[here]
            if not options:
                break
            prev, here = here, options[int(rng.integers(len(options)))]
            path.append(here)
            transit.append(False)
        buys = bool(fl.checkouts) and rng.random() < self.cfg.buy_share
        if buys:
            walk = fl.to_checkout[here]
            path.extend(walk)
            transit.extend([True] * len(walk))
            if walk:
                transit[-1] = False
            elif here not in fl.checkouts:
                buys = False
        return path, transit, buys

    def _shopper(self, token: str, arrival: float) -> float:
        cfg, rng, fl = self.cfg, self.rng, self.floor
        subject = len(self.subjects)
        self.subjects.append(token)
        path, transit, buys = self._path()
        known = token in self.profiled
        t = arrival
        browsed: list[int] = []
        n_lines_est = 0
        for k, zone in enumerate(path):
            is_checkout = buys and k == len(path) - 1
            if is_checkout:
                lines = self._basket(browsed)
                n_lines_est = len(lines)
                dur = 15.0 + 3.0 * n_lines_est + float(rng.exponential(20.0))
            elif transit[k]:
                dur = cfg.min_dwell_s + float(rng.exponential(cfg.transit_mean_s))
            else:
                mean = cfg.dwell_mean_s * fl.dwell_factor[zone]
                dur = cfg.min_dwell_s + float(rng.exponential(mean))
                browsed.append(zone)
            self.stays.add(zone, t, dur, subject, False)
            if fl.bells[zone] and dur >= 8.0 and not transit[k] and rng.random() < cfg.bell_share:
                self._press(zone, t, dur, token if known else None)
            if is_checkout:
                self._receipt(lines, t + 10.0, token if known else None)
            t += dur
        return t

    def _press(self, zone: int, start: float, dur: float, shopper: str | None) -> None:
        rng, fl = self.rng, self.floor
        bell = fl.bells[zone][int(rng.integers(len(fl.bells[zone])))]
        reasons = fl.reasons.get(bell, ())
        at = start + 2.0 + float(rng.uniform(0.0, max(0.0, dur - 4.0)))
        presses = 1
        if rng.random() < self.cfg.repeat_press_share:
            presses += int(rng.integers(1, 3))
        with_shopper = shopper is not None and rng.random() < 0.5
        reason = reasons[int(rng.integers(len(reasons)))] if reasons else None
        for _ in range(presses):
            pid = f"{bell}-{self._next_id():06d}"
            self.others.append(
                BellPress(
                    self.store,
                    bell,
                    pid,
                    _ms(at),
                    fl.registry.bells[bell],
                    shopper if with_shopper else None,
                    reason,
                    f"bell/{bell}/{pid}",
                )
            )
            at += float(rng.uniform(15.0, 50.0))

    def _bell_round(self, start: float, end: float) -> None:
        """Press the store's bells in turn (zone order), one every ``bell_round_s``."""
        fl = self.floor
        bells = [b for zone in range(len(fl.zones)) for b in fl.bells[zone]]
        if not bells:
            return
        at, k = start + self.cfg.bell_round_s, 0
        while at < end:
            bell = bells[k % len(bells)]
            pid = f"{bell}-r{self._next_id():06d}"
            self.others.append(
                BellPress(
                    self.store,
                    bell,
                    pid,
                    _ms(at),
                    fl.registry.bells[bell],
                    None,
                    None,
                    f"bell/{bell}/{pid}",
                )
            )
            at += self.cfg.bell_round_s
            k += 1

    def _basket(self, browsed: Iterable[int]) -> list[tuple[str, str, float, float]]:
        """(category, sku, qty, price) lines for what the shopper picked up."""
        rng, fl = self.rng, self.floor
        lines: list[tuple[str, str, float, float]] = []
        for zone in browsed:
            cats = fl.categories[zone]
            if not cats or rng.random() >= fl.buy_share[zone]:
                continue
            for _ in range(1 + int(rng.poisson(0.6))):
                cat = cats[int(rng.integers(len(cats)))]
                low, high = PRICE_RANGE.get(cat, DEFAULT_PRICE)
                price = round(float(rng.uniform(low, high)), 1) - 0.01
                qty = 2.0 if rng.random() < 0.15 else 1.0
                sku = f"{cat}-{int(rng.integers(SKUS_PER_CATEGORY)):03d}"
                lines.append((cat, sku, qty, round(price, 2)))
        if not lines:
            lines.append(("snacks", f"snacks-{int(rng.integers(SKUS_PER_CATEGORY)):03d}", 1.0, 9.9))
        return lines

    def _receipt(
        self, lines: list[tuple[str, str, float, float]], at: float, shopper: str | None
    ) -> None:
        rng, fl = self.rng, self.floor
        if not fl.terminals:
            return
        terminal = fl.terminals[int(rng.integers(len(fl.terminals)))]
        receipt = f"r-{self.store}-{self._next_id():06d}"
        scanned = (
            shopper if shopper is not None and rng.random() < self.cfg.loyalty_scan_share else None
        )
        total = 0.0
        for cat, sku, qty, price in lines:
            lid = f"{terminal}-{self._next_id():06d}"
            self.others.append(
                PosItem(
                    self.store,
                    terminal,
                    lid,
                    _ms(at),
                    receipt,
                    scanned,
                    sku,
                    cat,
                    qty,
                    price,
                    f"pos/{terminal}/{lid}",
                )
            )
            total += qty * price
            at += float(rng.uniform(1.5, 4.0))
        lid = f"{terminal}-{self._next_id():06d}"
        self.others.append(
            Checkout(
                self.store,
                terminal,
                lid,
                _ms(at),
                receipt,
                scanned,
                round(total, 2),
                f"pos/{terminal}/{lid}",
            )
        )

    # -- staff and devices -----------------------------------------------------------

    def _status(self, at: float) -> None:
        reg, rng = self.layout.registry, self.rng
        ts = _ms(at)
        for gw in sorted(reg.gateways):
            self.others.append(DeviceStatus(self.store, gw, ts, True, None, f"status/{gw}/1/None"))
        for band in sorted(reg.staff):
            battery = round(float(rng.uniform(0.35, 1.0)), 2)
            key = f"status/{band}/1/{battery}"
            self.others.append(DeviceStatus(self.store, band, ts, True, battery, key))

    def _staff(self, band: str, start: float, end: float) -> None:
        rng, fl = self.rng, self.floor
        reg = fl.registry
        sections = reg.staff[band].sections
        home = [fl.index[z] for z, zone in reg.zones.items() if zone.section in sections]
        home = [z for z in home if fl.zb_count[z] > 0] or [
            z for z in range(len(fl.zones)) if fl.zb_count[z] > 0
        ]
        subject = len(self.subjects)
        self.subjects.append(band)
        here = home[int(rng.integers(len(home)))]
        t = start
        while t < end:
            dur = 30.0 + float(rng.exponential(150.0))
            self.stays.add(here, t, dur, subject, True)
            t += dur
            near = fl.adjacent[here]
            inside = [z for z in near if z in home]
            if inside and rng.random() < 0.75:
                here = inside[int(rng.integers(len(inside)))]
            elif near:
                here = near[int(rng.integers(len(near)))]

    # -- sightings, column-wise ------------------------------------------------------

    def _sightings(self) -> _Chunk:
        cfg, rng, fl = self.cfg, self.rng, self.floor
        st = self.stays
        zone = np.array(st.zone, dtype=np.int64)
        start = np.array(st.start, dtype=np.float64)
        dur = np.array(st.dur, dtype=np.float64)
        staff = np.array(st.staff, dtype=np.bool_)
        subject = np.array(st.subject, dtype=np.int64)
        by_band = cfg.staff_report_every
        band_every = np.array(
            [by_band.get(name, cfg.staff_report_every_s) for name in self.subjects] or [1.0],
            dtype=np.float64,
        )
        every = np.where(staff, band_every[subject], cfg.report_every_s)
        n_per = np.maximum(1, np.floor(dur / every)).astype(np.int64)
        total = int(n_per.sum())
        stay = np.repeat(np.arange(len(zone), dtype=np.int64), n_per)
        first = np.cumsum(n_per) - n_per
        k = np.arange(total, dtype=np.int64) - np.repeat(first, n_per)
        ts = start[stay] + (k + rng.uniform(0.0, 0.3, size=total)) * every[stay]
        home = zone[stay]
        neighbour = (rng.random(total) < cfg.neighbour_share) & (fl.adj_count[home] > 0)
        pick = np.floor(rng.random(total) * np.maximum(fl.adj_count[home], 1)).astype(np.int64)
        other = fl.adj_flat[np.minimum(fl.adj_start[home] + pick, len(fl.adj_flat) - 1)]
        seen = np.where(neighbour, other, home)
        has_beacon = fl.zb_count[seen] > 0
        which = np.floor(rng.random(total) * np.maximum(fl.zb_count[seen], 1)).astype(np.int64)
        beacon = fl.zb_start[seen] + which
        near = np.where(
            staff[stay], rng.uniform(1.0, 3.0, size=total), rng.uniform(1.2, 5.0, size=total)
        )
        dist = np.where(neighbour, rng.uniform(7.0, 15.0, size=total), near)
        loss = 10.0 * PATH_LOSS_EXPONENT * np.log10(dist)
        noise = rng.normal(0.0, cfg.rssi_sigma_db, size=total)
        rssi = np.clip(np.rint(TX_POWER_DBM - loss + noise), RSSI_FLOOR, RSSI_CEILING).astype(
            np.int64
        )
        keep = has_beacon & (rng.random(total) >= cfg.miss_share)
        return _Chunk(
            store=self.store,
            beacon_names=fl.beacon_names,
            beacon_zones=fl.beacon_zones,
            beacon_gateways=fl.beacon_gateways,
            subjects=self.subjects,
            s_ts=np.round(ts[keep], 3),
            s_beacon=beacon[keep],
            s_rssi=rssi[keep],
            s_subject=subject[stay][keep],
            s_staff=staff[stay][keep],
            others=self.others,
        )


def _ms(ts: float) -> float:
    """Device clocks report milliseconds."""
    return round(ts, 3)


def _stable_int(text: str) -> int:
    value = 0
    for ch in text.encode():
        value = (value * 131 + ch) % (2**61 - 1)
    return value


def _anon_token(salt: int, index: int) -> str:
    """A first-time visitor's app token (no profile)."""
    mixed = (salt * 6364136223846793005 + index * 1442695040888963407) % 2**64
    return f"app-n{mixed:016x}"


def generate(layout: StoreLayout, settings: TrafficSettings | None = None) -> Traffic:
    """Traffic of one store."""
    return Traffic([_StoreGenerator(layout, settings or TrafficSettings()).run()])


def generate_stores(
    layouts: Sequence[StoreLayout], settings: Sequence[TrafficSettings] | TrafficSettings
) -> Traffic:
    """Traffic of several stores at once, merged in timestamp order.

    With one :class:`TrafficSettings`, every store uses it (each store draws its
    own random numbers from the seed and its store id).
    """
    per_store = [settings] * len(layouts) if isinstance(settings, TrafficSettings) else settings
    if len(per_store) != len(layouts):
        raise ValueError("one TrafficSettings per layout")
    return Traffic(
        [_StoreGenerator(lay, cfg).run() for lay, cfg in zip(layouts, per_store, strict=True)]
    )


# --------------------------------------------------------------------------- command line


def parse_start(text: str, timezone: str) -> float:
    """Epoch seconds from an epoch number or an ISO date-time (naive = store time)."""
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.timestamp()


def write_demo_capture(
    path: str | Path = DEMO_CAPTURE,
    *,
    registry: str | Path = DEMO_REGISTRY,
    profiles: str | Path | None = DEMO_PROFILES,
    settings: TrafficSettings | None = None,
) -> int:
    """(Re)write the bundled demo capture: 40 shoppers over 10 minutes from 08:30, seed 7."""
    layout = load_layout(registry)
    known = load_tokens(profiles) if profiles is not None else ()
    cfg = settings or TrafficSettings(shoppers=40, minutes=10.0, seed=7, start=DEMO_START)
    return generate(layout, replace(cfg, known=known)).write_capture(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m floorwalker.simulators.traffic",
        description="Generate synthetic store traffic as a capture (JSON Lines of MQTT messages).",
    )
    parser.add_argument("--demo", action="store_true", help="re-create the bundled demo capture")
    parser.add_argument("--registry", type=Path, default=DEMO_REGISTRY)
    parser.add_argument("--profiles", type=Path, default=None, help="draw known shoppers from here")
    parser.add_argument("--shoppers", type=int, default=40)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default="2026-11-23T08:30", help="ISO (store time) or epoch")
    parser.add_argument("--prefix", default="fw")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.demo:
        lines = write_demo_capture(args.out or DEMO_CAPTURE)
        print(f"wrote {lines} messages to {args.out or DEMO_CAPTURE}")
        return 0
    if args.out is None:
        parser.error("--out is required (or --demo)")
    layout = load_layout(args.registry)
    known = load_tokens(args.profiles) if args.profiles is not None else ()
    settings = TrafficSettings(
        shoppers=args.shoppers,
        minutes=args.minutes,
        seed=args.seed,
        start=parse_start(args.start, layout.registry.timezone),
        known=known,
    )
    lines = generate(layout, settings).write_capture(args.out, args.prefix)
    print(f"wrote {lines} messages to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
