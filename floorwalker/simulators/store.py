"""The store simulator (``floorwalker simulate``): shoppers, devices and staff, with ground truth.

Built on :mod:`floorwalker.simulators.traffic` (the shoppers' walks, the
path-loss RSSI model, bells, baskets and staff walks come from its generator)
and :mod:`floorwalker.simulators.shoppers` (the loyalty base), it adds what a
load or accuracy test needs on top:

* **Many stores.** ``stores = K`` clones the registry as ``s001`` ... ``sNNN``
  (one store keeps its own id); each store draws its own random numbers from
  the seed and its id, and gets a disjoint slice of the chain's loyalty base.
* **Profiles.** ``profiles`` shoppers in realistic tier / segment mixes (about
  70 % member, 20 % silver, 8 % gold, 2 % VIP; regular, loyal, growing,
  dormant), VIPs' advisors drawn from the store's ``advisor`` bands;
  ``known_share`` of the shoppers are drawn from them, the rest are anonymous
  first-time visitors. :meth:`Simulation.write_profiles` writes them as the
  profiles JSON Lines the engine loads.
* **RSSI noise.** ``sigma_db`` is the Gaussian noise on the log-distance
  path-loss RSSI (the traffic generator's model).
* **Gateway batching.** Sightings are not published one by one: every gateway
  publishes a JSON *array* of the sightings it heard every ``batch_s`` (about a
  second, each gateway at its own phase), as contract v1 allows. Bells, POS
  lines and status messages go out one per message, when they happen.
* **Ground truth.** For every shopper and staff band, the true zone
  intervals ``[enter, leave)`` (so the true dwells) the sightings were made
  from: :meth:`Simulation.write_truth` writes them as JSON Lines, one object
  per subject::

      {"store": "s001", "subject": "app-...", "kind": "shopper", "intervals": [
        {"zone": "entrance-main", "enter": 1795..., "leave": 1795..., "dwell": 7.9}, ...]}

  Every sighting of a subject falls in one of its intervals and names a beacon
  of that interval's zone, or (``neighbour_share`` of them, weaker) of an
  adjacent zone.
* **Live mode** (:func:`run_live`): publishes over MQTT (QoS 1) at a target
  rate, re-timed to the wall clock; subscribes to the offer topics and has
  ``redeem_share`` of the offers redeemed (a POS ``coupon`` line with the
  received code, by a terminal of that store, a little later); wristbands
  acknowledge, decline or ignore alerts after realistic delays (the demo's
  :class:`~floorwalker.simulators.live_devices.StaffSimulator`, for every store).

  A **capture** (:meth:`Simulation.write_capture`) cannot contain redemptions
  or acknowledgements: their coupon codes and alert ids come from the engine,
  which has not run yet. Replaying a capture therefore shows no redemptions and
  every alert escalates; use live mode, or the closed loop
  (:mod:`floorwalker.simulators.closed_loop`, ``simulate --closed-loop``: the
  engine in the loop, real codes redeemed in the capture).

Everything is deterministic for a seed (live mode's redemptions and answers
depend on what the engine sends, and when).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from floorwalker.devices.events import Event, Sighting
from floorwalker.devices.topics import offer_filter, parse_outbound, pos_topic
from floorwalker.engine.core.profiles import Profile
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.errors import ConfigError
from floorwalker.simulators.shoppers import generate_profiles, write_profiles
from floorwalker.simulators.traffic import (
    DATA,
    DEMO_START,
    StoreLayout,
    Traffic,
    TrafficSettings,
    WireEncoder,
    _StoreGenerator,
    load_layout,
)

log = logging.getLogger("floorwalker.simulate")

LARGE_REGISTRY = DATA / "large-store.yaml"
"""A hypermarket: 40 zones, 60 beacons, 8 gateways, 10 bells, 8 tills, 15 staff."""

MAX_BATCH = 500
"""A gateway publishes early rather than exceed this many sightings in one array."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SimulationSettings:
    shoppers: int = 200
    """Shoppers arriving in each store over ``minutes``."""
    minutes: float = 30.0
    seed: int = 7
    start: float = DEMO_START
    sigma_db: float = 4.0
    """Gaussian RSSI noise (dB) on top of the path-loss model."""
    stores: int = 1
    """Clone the registry into this many stores, ids s001..sNNN (1: keep the registry's id)."""
    profiles: int | None = None
    """Size of the chain's loyalty base (default: the shoppers of all stores)."""
    known_share: float = 0.8
    batch_s: float = 1.0
    """Gateways publish an array of what they heard this often; 0 = one message each."""
    redeem_share: float = 0.3
    """Live mode: share of received offers redeemed at a till."""
    redeem_delay_s: tuple[float, float] = (30.0, 300.0)
    """Live mode: store seconds from receiving an offer to its redemption."""
    traffic: TrafficSettings = field(default_factory=TrafficSettings)
    """Everything else of the walk (report interval, losses, dwell means...); its
    shoppers, minutes, seed, start, sigma and known tokens are overridden from above."""

    def __post_init__(self) -> None:
        if self.shoppers < 0 or self.minutes <= 0 or self.stores < 1:
            raise ValueError("shoppers must be >= 0, minutes > 0 and stores >= 1")
        if self.sigma_db < 0 or self.batch_s < 0:
            raise ValueError("sigma and batch interval must be >= 0")
        if not 0.0 <= self.redeem_share <= 1.0 or not 0.0 <= self.known_share <= 1.0:
            raise ValueError("shares must be within [0, 1]")


# --------------------------------------------------------------------------- ground truth


class Interval(NamedTuple):
    """A subject truly in ``zone`` from ``enter`` (inclusive) to ``leave`` (exclusive)."""

    zone: str
    enter: float
    leave: float

    @property
    def dwell(self) -> float:
        return self.leave - self.enter


@dataclass(frozen=True)
class Truth:
    """Where one shopper or staff band really was."""

    store: str
    subject: str
    staff: bool
    intervals: tuple[Interval, ...]

    def zone_at(self, ts: float) -> str | None:
        """The zone at ``ts``, None when not in the store."""
        for iv in self.intervals:
            if iv.enter <= ts < iv.leave:
                return iv.zone
        return None

    def to_json(self, shift: float = 0.0, scale: float = 1.0) -> dict[str, Any]:
        """As JSON; times mapped by ``shift + t * scale`` (live mode's wall clock)."""
        return {
            "store": self.store,
            "subject": self.subject,
            "kind": "staff" if self.staff else "shopper",
            "intervals": [
                {
                    "zone": iv.zone,
                    "enter": round(shift + iv.enter * scale, 3),
                    "leave": round(shift + iv.leave * scale, 3),
                    "dwell": round(iv.dwell * scale, 3),
                }
                for iv in self.intervals
            ],
        }


def _truth_of(gen: _StoreGenerator) -> list[Truth]:
    """The true intervals behind one store generator's sightings (consecutive stays merged)."""
    st, zones, store = gen.stays, gen.floor.zones, gen.store
    per: dict[int, list[Interval]] = {}
    for zone, start, dur, subject in zip(st.zone, st.start, st.dur, st.subject, strict=True):
        ivs = per.setdefault(subject, [])
        name = zones[zone]
        if ivs and ivs[-1].zone == name and abs(ivs[-1].leave - start) < 1e-9:
            ivs[-1] = Interval(name, ivs[-1].enter, start + dur)
        else:
            ivs.append(Interval(name, start, start + dur))
    staff = {subj for subj, is_staff in zip(st.subject, st.staff, strict=True) if is_staff}
    return [
        Truth(store, gen.subjects[subj], subj in staff, tuple(ivs))
        for subj, ivs in sorted(per.items())
    ]


# --------------------------------------------------------------------------- simulation


class Published(NamedTuple):
    """One MQTT message: published at ``at`` (store time) on ``topic``; ``events`` inside."""

    at: float
    topic: str
    payload: dict[str, Any] | list[dict[str, Any]]
    events: int


@dataclass
class Simulation:
    """Generated traffic of one or more stores, its ground truth and the loyalty base."""

    settings: SimulationSettings
    layouts: list[StoreLayout]
    traffic: Traffic
    truth: list[Truth]
    profiles: list[Profile]

    @property
    def registries(self) -> dict[str, Any]:
        return {lay.registry.store: lay.registry for lay in self.layouts}

    def events(self) -> Iterator[Event]:
        """Typed events in timestamp order (what the decoder makes of the messages)."""
        return self.traffic.events()

    def published(self, prefix: str = "fw") -> Iterator[Published]:
        """The messages as devices publish them, in publish order: sightings batched per
        gateway every ``batch_s`` (each gateway at its own phase), the rest one each."""
        batch_s = self.settings.batch_s
        wire = WireEncoder(prefix)
        if batch_s <= 0:
            for ev in self.traffic.events():
                topic, payload = wire.encode(ev)
                yield Published(ev.ts, topic, payload, 1)
            return
        open_: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        due: list[tuple[float, str]] = []  # (window end, topic), a heap
        phases: dict[str, float] = {}
        for ev in self.traffic.events():
            ts = ev.ts
            while due and due[0][0] <= ts:
                end, topic = heapq.heappop(due)
                items = open_.pop(topic)[1]
                yield Published(end, topic, items, len(items))
            topic, payload = wire.encode(ev)
            if type(ev) is not Sighting:
                yield Published(ts, topic, payload, 1)
                continue
            slot = open_.get(topic)
            if slot is None:
                phase = phases.get(topic)
                if phase is None:
                    phase = phases[topic] = (_stable_unit(topic) * batch_s) % batch_s
                end = phase + batch_s * (math.floor((ts - phase) / batch_s) + 1)
                slot = open_[topic] = (end, [])
                heapq.heappush(due, (end, topic))
            slot[1].append(payload)
            if len(slot[1]) >= MAX_BATCH:  # publish early; the heap entry goes stale
                del open_[topic]
                due = [(e, t) for e, t in due if t != topic]
                heapq.heapify(due)
                yield Published(ts, topic, slot[1], len(slot[1]))
        for end, topic in sorted(due):
            items = open_.pop(topic)[1]
            yield Published(end, topic, items, len(items))

    def write_capture(self, path: str | Path, prefix: str = "fw") -> tuple[int, int]:
        """Write the capture (batches as array payloads); return (lines, events)."""
        lines = events = 0
        dumps = orjson.dumps
        with Path(path).open("wb") as out:
            for msg in self.published(prefix):
                out.write(dumps({"topic": msg.topic, "payload": msg.payload}) + b"\n")
                lines += 1
                events += msg.events
        return lines, events

    def write_truth(self, path: str | Path, shift: float = 0.0, scale: float = 1.0) -> int:
        """Ground truth as JSON Lines, one subject a line (times mapped as in live mode)."""
        with Path(path).open("wb") as out:
            for t in self.truth:
                out.write(orjson.dumps(t.to_json(shift, scale)) + b"\n")
        return len(self.truth)

    def write_profiles(self, path: str | Path) -> int:
        write_profiles(path, self.profiles)
        return len(self.profiles)


def _stable_unit(text: str) -> float:
    """A deterministic number in [0, 1) for ``text`` (Python's hash() is salted)."""
    value = 0
    for ch in text.encode():
        value = (value * 131 + ch) % 1_000_003
    return value / 1_000_003


def store_ids(count: int) -> list[str]:
    return [f"s{i:03d}" for i in range(1, count + 1)]


def simulate(layout: StoreLayout, settings: SimulationSettings | None = None) -> Simulation:
    """Simulate ``settings.stores`` copies of ``layout`` (deterministic for the seed)."""
    cfg = settings or SimulationSettings()
    layouts = [layout] if cfg.stores == 1 else [layout.clone(s) for s in store_ids(cfg.stores)]
    reg = layout.registry
    advisors = tuple(sorted(b for b, m in reg.staff.items() if m.role == "advisor"))
    today = datetime.fromtimestamp(cfg.start, reg.tzinfo).date()
    n_profiles = cfg.profiles if cfg.profiles is not None else cfg.shoppers * cfg.stores
    profiles = _profiles(n_profiles, cfg.seed, today, reg.timezone, advisors)
    tokens = [p.shopper for p in profiles]
    gens: list[_StoreGenerator] = []
    for k, lay in enumerate(layouts):
        per_store = replace(
            cfg.traffic,
            shoppers=cfg.shoppers,
            minutes=cfg.minutes,
            seed=cfg.seed,
            start=cfg.start,
            rssi_sigma_db=cfg.sigma_db,
            known=tuple(tokens[k :: len(layouts)]),
            known_share=cfg.known_share,
        )
        gens.append(_StoreGenerator(lay, per_store))
    chunks = [g.run() for g in gens]
    truth = [t for g in gens for t in _truth_of(g)]
    return Simulation(cfg, layouts, Traffic(chunks), truth, profiles)


def _profiles(
    count: int, seed: int, today: date, timezone: str, advisors: Sequence[str]
) -> list[Profile]:
    if count <= 0:
        return []
    return generate_profiles(
        count,
        seed=seed,
        today=today,
        timezone=timezone,
        advisors=advisors,
        namespace=f"sim-{seed}",
    )


# --------------------------------------------------------------------------- live mode


@dataclass
class LiveResult:
    published: int = 0
    """MQTT messages published (batches count once)."""
    events: int = 0
    """Events inside them (every sighting of a batch counts)."""
    seconds: float = 0.0
    speed: float = 1.0
    """Store seconds per wall-clock second."""
    offers_received: int = 0
    redeemed: int = 0
    staff: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.rate, 1),
            "speed": round(self.speed, 4),
            "offers_received": self.offers_received,
            "redeemed": self.redeemed,
            "staff": self.staff,
        }


def parse_mqtt_url(url: str | BrokerAddress) -> BrokerAddress:
    """The broker of ``--mqtt`` (``host:port`` alone means ``mqtt://host:port``)."""
    if isinstance(url, BrokerAddress):
        return url
    return BrokerAddress.from_url(url if "://" in url else f"mqtt://{url}")


def natural_rate(sim: Simulation) -> float:
    """Events per store second, on average over the simulation."""
    span = max(sim.traffic.end - sim.traffic.start, 1e-9)
    return len(sim.traffic) / span


class _Redeemer:
    """Phones that got an offer: some shoppers show the coupon at a till a little later."""

    def __init__(self, sim: Simulation, prefix: str) -> None:
        cfg = sim.settings
        self.prefix = prefix
        self.share, self.delay = cfg.redeem_share, cfg.redeem_delay_s
        self.rng = random.Random(cfg.seed * 7919 + 1)
        self.terminals = {lay.registry.store: sorted(lay.registry.terminals) for lay in sim.layouts}
        self.inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self.received = 0
        self.seq = itertools.count(1)

    def on_message(self, topic: str, payload: bytes) -> None:
        """The network thread: just queue it."""
        self.inbox.put((topic, payload))

    def take(self, now_store: float) -> list[tuple[float, str, dict[str, Any]]]:
        """(due store time, topic, payload) for the offers received since the last call."""
        out: list[tuple[float, str, dict[str, Any]]] = []
        while True:
            try:
                topic, raw = self.inbox.get_nowait()
            except queue.Empty:
                return out
            self.received += 1
            offer = parse_outbound(topic, self.prefix)
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if offer is None or offer.target is None:
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("code"), str):
                continue
            store, shopper = offer.store, offer.target
            tills = self.terminals.get(store)
            if not tills or self.rng.random() >= self.share:
                continue
            n = next(self.seq)
            till = tills[self.rng.randrange(len(tills))]
            payload = {
                "id": f"{till}-cpn-{n:07d}",
                "receipt": f"r-{store}-cpn-{n:07d}",
                "coupon": obj["code"],
                "shopper": shopper,
            }
            at = now_store + self.rng.uniform(*self.delay)
            out.append((at, pos_topic(store, till, prefix=self.prefix), payload))


def run_live(
    sim: Simulation,
    url: str | BrokerAddress,
    *,
    rate: float | None = None,
    prefix: str = "fw",
    truth_path: Path | None = None,
    client_id: str = "floorwalker-simulate",
    stop: threading.Event | None = None,
) -> LiveResult:
    """Publish the simulation over MQTT, re-timed to the wall clock.

    Store time runs ``speed = rate / natural_rate`` times faster than the wall
    clock (``rate=None``: real time), so the mean published rate is ``rate``
    events/s. Every ``ts`` becomes the wall-clock moment it stands for (batch
    elements keep their offsets within the batch). At speed > 1 the engine sees
    compressed time: dwell thresholds and escalations pass ``speed`` times
    sooner in store terms. Ground truth, if asked for, is written on the same
    wall-clock scale.
    """
    from floorwalker.engine.runners.mqtt import MqttClient  # noqa: PLC0415 - paho only when live
    from floorwalker.simulators.live_devices import StaffSimulator  # noqa: PLC0415

    broker = parse_mqtt_url(url)
    speed = 1.0 if not rate else rate / max(natural_rate(sim), 1e-9)
    start = sim.traffic.start
    stop = stop or threading.Event()
    redeemer = _Redeemer(sim, prefix)
    client = MqttClient(
        client_id,
        broker,
        subscriptions=(offer_filter(prefix=prefix),),
        on_message=redeemer.on_message,
        max_inflight=1000,
    ).connect()
    staff = [
        StaffSimulator(
            broker, None, store, prefix=prefix, seed=sim.settings.seed + i,
            client_id=f"{client_id}-staff-{store}",
        ).start()
        for i, store in enumerate(sorted(sim.registries))
    ]  # fmt: skip
    result = LiveResult(speed=speed)
    t0 = time.time()
    mono0 = time.monotonic()
    if truth_path is not None:
        sim.write_truth(truth_path, shift=t0 - start / speed, scale=1.0 / speed)

    def wall(store_ts: float) -> float:
        return t0 + (store_ts - start) / speed

    later: list[tuple[float, int, str, dict[str, Any]]] = []  # redemptions, a heap
    seq = itertools.count()
    dumps = orjson.dumps
    try:
        for msg in sim.published(prefix):
            for at, topic, payload in redeemer.take(start + (time.monotonic() - mono0) * speed):
                heapq.heappush(later, (at, next(seq), topic, payload))
            while later and later[0][0] <= msg.at:
                at, _, topic, payload = heapq.heappop(later)
                _sleep_until(mono0 + (at - start) / speed, stop)
                payload["ts"] = round(wall(at), 3)
                client.publish(topic, dumps(payload))
                result.published += 1
                result.events += 1
                result.redeemed += 1
            if _sleep_until(mono0 + (msg.at - start) / speed, stop):
                break
            body = msg.payload
            if isinstance(body, list):
                for item in body:
                    item["ts"] = round(wall(float(item["ts"])), 3)
            else:
                body["ts"] = round(wall(float(body["ts"])), 3)
            client.publish(msg.topic, dumps(body))
            result.published += 1
            result.events += msg.events
    finally:
        result.seconds = time.monotonic() - mono0
        result.offers_received = redeemer.received
        counts: dict[str, int] = {}
        for s in staff:
            for key, value in asdict(s.counts()).items():
                counts[key] = counts.get(key, 0) + int(value)
            s.stop()
        result.staff = counts
        client.close()
    return result


def _sleep_until(deadline: float, stop: threading.Event) -> bool:
    """Wait until the monotonic ``deadline``; True if asked to stop."""
    delay = deadline - time.monotonic()
    if delay > 0:
        return stop.wait(delay)
    return stop.is_set()


# --------------------------------------------------------------------------- command line


def settings_from(
    *,
    shoppers: int,
    minutes: float,
    seed: int,
    sigma_db: float = 4.0,
    stores: int = 1,
    start: float | None = None,
    batch_s: float = 1.0,
    redeem_share: float = 0.3,
    profiles: int | None = None,
) -> SimulationSettings:
    try:
        return SimulationSettings(
            shoppers=shoppers,
            minutes=minutes,
            seed=seed,
            sigma_db=sigma_db,
            stores=stores,
            start=DEMO_START if start is None else start,
            batch_s=batch_s,
            redeem_share=redeem_share,
            profiles=profiles,
        )
    except ValueError as exc:
        raise ConfigError(f"simulate: {exc}") from exc


def run_simulate(
    registry: Path,
    settings: SimulationSettings,
    *,
    capture: Path | None = None,
    mqtt: str | BrokerAddress | None = None,
    rate: float | None = None,
    truth: Path | None = None,
    profiles_out: Path | None = None,
    prefix: str = "fw",
    log_to: Any = None,
) -> dict[str, Any]:
    """``floorwalker simulate``: capture or live; returns a JSON-ready summary."""
    if (capture is None) == (mqtt is None):
        raise ConfigError("simulate: give exactly one of --capture FILE or --mqtt URL")
    if rate is not None and rate <= 0:
        raise ConfigError("simulate: --rate must be positive")
    layout = load_layout(registry)
    sim = simulate(layout, settings)
    summary: dict[str, Any] = {
        "stores": len(sim.layouts),
        "shoppers": settings.shoppers * len(sim.layouts),
        "events": len(sim.traffic),
        "sightings": sim.traffic.sightings,
        "store_seconds": round(sim.traffic.end - sim.traffic.start, 1),
        "natural_rate": round(natural_rate(sim), 1),
    }
    if profiles_out is not None:
        summary["profiles"] = sim.write_profiles(profiles_out)
    if capture is not None:
        lines, events = sim.write_capture(capture, prefix)
        summary.update(capture=str(capture), lines=lines, events_published=events)
        if truth is not None:
            summary["truth_subjects"] = sim.write_truth(truth)
        return summary
    assert mqtt is not None
    broker = parse_mqtt_url(mqtt)
    if log_to is not None:
        speed = 1.0 if not rate else rate / max(natural_rate(sim), 1e-9)
        span = (sim.traffic.end - sim.traffic.start) / speed
        print(
            f"simulate: {len(sim.traffic):,} events over {span:,.0f} s "
            f"(store time x{speed:.2f}) to {broker.redact()}",
            file=log_to,
            flush=True,
        )
    live = run_live(sim, broker, rate=rate, prefix=prefix, truth_path=truth)
    summary.update(live.to_json())
    if truth is not None:
        summary["truth_subjects"] = len(sim.truth)
    return summary


__all__ = [
    "LARGE_REGISTRY",
    "Interval",
    "LiveResult",
    "Published",
    "Simulation",
    "SimulationSettings",
    "Truth",
    "natural_rate",
    "run_live",
    "run_simulate",
    "settings_from",
    "simulate",
]
