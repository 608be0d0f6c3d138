"""Closed-loop simulation: the engine in the loop, shoppers answering the coupons they got.

``floorwalker simulate ... --closed-loop`` generates a store's traffic as usual
(:mod:`floorwalker.simulators.store`), then plays it through the engine on the
virtual clock, exactly as ``floorwalker replay`` would (the same
:class:`~floorwalker.engine.runners.replay.Replay`: the core and the replay step,
in-memory guards, the rules given). Every offer the engine sends goes to a
simulated phone, and the :class:`ResponseModel` decides whether and when that
shopper redeems it; a redemption becomes a POS ``coupon`` line (wire contract
v1) with the engine's real code, fed back into the engine at its time, so caps,
budgets, fatigue and ``coupon_redeemed`` rules see it as they would live. The
capture written is every message in the order the engine took it: a replay of
it makes the same decisions, and now contains redemptions with real codes and
the checkouts they came with.

**The response model** (stated, seeded, deterministic):

* A shopper who gets an offer redeems it with probability
  ``offer_p[offer id]`` if given, else ``min(max_p, base_p + p_per_cost * cost)``
  (the offer's ``cost`` stands for its value to the shopper: a 20 CNY welcome-back
  coupon tempts more than a 1.20 yogurt BOGO). The draw uses a random stream of
  its own per offer (seed and action id), so one change elsewhere does not
  reshuffle every other answer.
* **When**: a shopper who checks out later in this visit (a loyalty-scanned
  checkout at least ``planned_after_s`` after the offer, before it expires)
  redeems on that receipt, just before its checkout line. A shopper who would
  not have bought anything makes a trip to a till ``delay_min_s`` plus an
  exponential delay of mean ``delay_mean_s`` after the offer, and buys a basket
  of lognormal total (median ``basket_median``, sigma ``basket_sigma``): the
  coupon brought that purchase about, which is what a holdout lift measures. A
  trip that would come after the coupon expired does not happen.
* Shoppers in a rule's holdout never get its offers, so they behave exactly as
  the generated baseline: same walks, same checkouts, no redemptions.
* Redemption lines carry the shopper (the app shows the coupon: the shopper is
  known). Staff alerts are not answered in the loop (nobody acknowledges).

Known limits: a loyalty checkout the generator made without a scan (15 %) is
not seen as "planned", so such a shopper redeeming makes an extra trip; offers
sent by timers after the last generated message (the tail) get no answer.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from floorwalker.devices.events import Checkout
from floorwalker.devices.topics import parse_outbound, pos_topic
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.engine.runners.replay import CaptureLine, Replay, ReplaySettings
from floorwalker.errors import ConfigError
from floorwalker.rules.model import OfferSpec, RuleSet
from floorwalker.simulators.store import Simulation, SimulationSettings, simulate
from floorwalker.simulators.traffic import load_layout

TAIL_S = 4 * 3600.0
"""After the last generated message, keep the loop (and the redemptions) going this long."""


@dataclass(frozen=True)
class ResponseModel:
    """How simulated shoppers answer the coupons they get; see the module docstring."""

    base_p: float = 0.2
    p_per_cost: float = 0.02
    max_p: float = 0.7
    offer_p: Mapping[str, float] = field(default_factory=dict)
    """offer id -> redemption probability, overriding the cost rule"""
    planned_after_s: float = 60.0
    delay_min_s: float = 30.0
    delay_mean_s: float = 600.0
    basket_median: float = 45.0
    basket_sigma: float = 0.6

    def __post_init__(self) -> None:
        shares = [self.base_p, self.max_p, *self.offer_p.values()]
        if not all(0.0 <= p <= 1.0 for p in shares) or self.p_per_cost < 0:
            raise ValueError("probabilities must be within [0, 1] and p_per_cost >= 0")
        if min(self.delay_min_s, self.delay_mean_s, self.planned_after_s) < 0:
            raise ValueError("delays must be >= 0")
        if self.basket_median <= 0 or self.basket_sigma < 0:
            raise ValueError("basket_median must be > 0 and basket_sigma >= 0")

    def probability(self, offer: str, cost: float) -> float:
        if offer in self.offer_p:
            return self.offer_p[offer]
        return min(self.max_p, self.base_p + self.p_per_cost * cost)


def load_response_model(path: Path) -> ResponseModel:
    """A response model from YAML or JSON: the field names above, ``offer_p`` a mapping."""
    from floorwalker.yamlpos import YamlError, read_yaml_file  # noqa: PLC0415

    try:
        doc = read_yaml_file(path, max_bytes=64 * 1024, what="a response model").data
    except (OSError, YamlError) as exc:
        raise ConfigError(f"cannot read the response model: {exc}", file=str(path)) from exc
    if not isinstance(doc, dict):
        raise ConfigError("a response model is a mapping of the fields", file=str(path))
    known = set(ResponseModel.__dataclass_fields__)
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            file=str(path),
        )
    try:
        return ResponseModel(**doc)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"response model: {exc}", file=str(path)) from exc


@dataclass
class ClosedLoopResult:
    lines: int = 0
    events: int = 0
    offers: int = 0
    redemptions: int = 0
    """Coupon lines fed back: on a planned receipt or on a trip of their own."""
    planned: int = 0
    trips: int = 0
    expired_before_trip: int = 0
    codes: set[str] = field(default_factory=set)
    """Every coupon code the engine issued in the loop."""

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "events": self.events,
            "offers": self.offers,
            "redemptions": self.redemptions,
            "redeemed_on_planned_checkout": self.planned,
            "redeemed_on_a_trip": self.trips,
            "expired_before_trip": self.expired_before_trip,
        }


class _Visit:
    """A shopper's loyalty checkouts from the generated traffic, to redeem on."""

    def __init__(self, sim: Simulation) -> None:
        self.checkouts: dict[tuple[str, str], list[Checkout]] = {}
        for ev in sim.traffic.events():
            if isinstance(ev, Checkout) and ev.shopper is not None:
                self.checkouts.setdefault((ev.store, ev.shopper), []).append(ev)

    def next_checkout(self, store: str, shopper: str, after: float, by: float) -> Checkout | None:
        for ev in self.checkouts.get((store, shopper), ()):
            if after <= ev.ts <= by:
                return ev
        return None


class _Phones:
    """The simulated phones: each offer received becomes, maybe, a coupon line later."""

    def __init__(self, sim: Simulation, rules: RuleSet, model: ResponseModel, prefix: str) -> None:
        self.sim, self.model, self.prefix = sim, model, prefix
        self.seed = sim.settings.seed
        self.costs = {
            (rule.id, a.offer): a.cost
            for rule in rules.rules
            for a in rule.actions
            if isinstance(a, OfferSpec)
        }
        self.visits = _Visit(sim)
        self.terminals = {s: sorted(reg.terminals) for s, reg in sim.registries.items()}
        self.due: list[tuple[float, int, str, dict[str, Any]]] = []  # a heap of lines
        self.seq = itertools.count(1)
        self.result = ClosedLoopResult()

    def receive(self, topic: str, payload: dict[str, Any]) -> None:
        target = parse_outbound(topic, self.prefix)
        if target is None or target.kind != "offer" or target.target is None:
            return
        res = self.result
        res.offers += 1
        res.codes.add(str(payload["code"]))
        rng = random.Random(f"closed-loop\x1f{self.seed}\x1f{payload['id']}")
        cost = self.costs.get((str(payload["rule"]), str(payload["offer"])), 0.0)
        if rng.random() >= self.model.probability(str(payload["offer"]), cost):
            return
        store, shopper, ts = target.store, target.target, float(payload["ts"])
        expires = float(payload["expires"])
        planned = self.visits.next_checkout(
            store, shopper, ts + self.model.planned_after_s, expires
        )
        if planned is not None:
            res.planned += 1
            at = round(planned.ts - 0.5, 3)
            self._coupon(at, store, planned.terminal, planned.receipt, shopper, payload["code"])
            return
        at = ts + self.model.delay_min_s + rng.expovariate(1.0 / max(self.model.delay_mean_s, 1e-9))
        if at > expires or not self.terminals.get(store):
            res.expired_before_trip += 1
            return
        res.trips += 1
        tills = self.terminals[store]
        till = tills[rng.randrange(len(tills))]
        n = next(self.seq)
        receipt = f"r-{store}-loop-{n:06d}"
        model = self.model
        total = round(model.basket_median * math.exp(rng.gauss(0.0, model.basket_sigma)), 2)
        at = round(at, 3)
        self._coupon(at, store, till, receipt, shopper, payload["code"])
        checkout = {
            "id": f"{till}-loop-{n:06d}-co",
            "ts": round(at + 2.0, 3),
            "receipt": receipt,
            "checkout": True,
            "total": total,
            "shopper": shopper,
        }
        self._later(at + 2.0, pos_topic(store, till, prefix=self.prefix), checkout)

    def _coupon(
        self, at: float, store: str, till: str, receipt: str, shopper: str, code: object
    ) -> None:
        self.result.redemptions += 1
        n = next(self.seq)
        line = {"id": f"{till}-loop-{n:06d}-cp", "ts": at, "receipt": receipt}
        line.update(coupon=str(code), shopper=shopper)
        self._later(at, pos_topic(store, till, prefix=self.prefix), line)

    def _later(self, at: float, topic: str, payload: dict[str, Any]) -> None:
        heapq.heappush(self.due, (at, next(self.seq), topic, payload))

    def take(self, until: float) -> Iterator[tuple[str, dict[str, Any]]]:
        """The lines due by ``until``, in time order."""
        while self.due and self.due[0][0] <= until:
            _, _, topic, payload = heapq.heappop(self.due)
            yield topic, payload


def run_closed_loop(
    sim: Simulation,
    rules: RuleSet,
    profiles: Path,
    capture: Path,
    *,
    model: ResponseModel | None = None,
    prefix: str = "fw",
) -> ClosedLoopResult:
    """Play ``sim`` through the engine with ``rules``, shoppers answering its offers;
    write every message the engine took, in order, to ``capture``.

    ``profiles`` is the profiles file the capture will be replayed with (the loop
    reads it back, so both see exactly the same profiles)."""
    phones = _Phones(sim, rules, model or ResponseModel(), prefix)
    settings = ReplaySettings(deadletters=False)
    replay = Replay(rules, sim.registries, ProfileBook.load(profiles), settings)
    res = phones.result
    dumps = orjson.dumps

    def out(_at: float, topic: str, payload: Any) -> None:
        if isinstance(payload, dict):
            phones.receive(topic, payload)

    with capture.open("wb") as fh:

        def feed(topic: str, payload: Any, events: int) -> None:
            body = dumps(payload)
            fh.write(dumps({"topic": topic, "payload": payload}) + b"\n")
            res.lines += 1
            res.events += events
            replay.feed(CaptureLine(res.lines, topic, body), out)

        last = sim.traffic.start
        for msg in sim.published(prefix):
            for topic, payload in phones.take(msg.at):
                feed(topic, payload, 1)
            feed(msg.topic, msg.payload, msg.events)
            last = max(last, msg.at)
        # The tail: timers fire and the last answers come in, each at its own time (a
        # line is fed before the clock passes it, as a replay of the capture will).
        end = last + TAIL_S
        while True:
            timer = replay.engine.next_due()
            line = phones.due[0][0] if phones.due else None
            if line is not None and line <= end and (timer is None or line <= timer):
                _, _, topic, payload = heapq.heappop(phones.due)
                feed(topic, payload, 1)
            elif timer is not None and timer <= end:
                # A timer already due (set by a late event) needs the clock to move on.
                replay.pause(max(timer, replay.engine.clock + 0.001), out)
            else:
                break
    return res


def simulate_closed_loop(
    registry: Path,
    settings: SimulationSettings,
    rules_dir: Path,
    *,
    capture: Path,
    profiles_out: Path,
    model: ResponseModel | None = None,
    truth: Path | None = None,
    prefix: str = "fw",
) -> dict[str, Any]:
    """``floorwalker simulate ... --closed-loop``: generate, loop, write; a JSON summary."""
    from floorwalker.rules.loader import load_rules_for  # noqa: PLC0415

    sim = simulate(load_layout(registry), settings)
    rules = load_rules_for(rules_dir, sim.registries)
    summary: dict[str, Any] = {
        "stores": len(sim.layouts),
        "shoppers": settings.shoppers * len(sim.layouts),
        "profiles": sim.write_profiles(profiles_out),
        "capture": str(capture),
        "closed_loop": True,
    }
    result = run_closed_loop(sim, rules, profiles_out, capture, model=model, prefix=prefix)
    summary.update(result.to_json())
    if truth is not None:
        summary["truth_subjects"] = sim.write_truth(truth)
    return summary


__all__ = [
    "ClosedLoopResult",
    "ResponseModel",
    "load_response_model",
    "run_closed_loop",
    "simulate_closed_loop",
]
