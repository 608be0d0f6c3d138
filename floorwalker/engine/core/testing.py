"""Drive the engine core by hand: events in, a virtual clock, actions out.

Shipped with the engine (like ``bytewax.testing``) so that tests, marketers'
notebooks and bug reports can all say exactly what happened::

    store = StoreScenario(rules, registry, profiles=[Profile("app-1", marketing=True)])
    store.linger("app-1", "b-dairy-1", start=T0, seconds=12)
    store.run_until(T0 + 30)
    assert [o.rule for o in store.offers()] == ["chilled-dwell-bogo"]

Events are built with the registry resolving beacons and bells to zones, just
as the wire decoder would; the clock only moves when you say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

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
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.actions import Action, Alert, Decision, Offer
from floorwalker.engine.core.alerts import AlertJournal
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.guards import GuardStore
from floorwalker.engine.core.profiles import Profile, ProfileBook
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.rules.model import RuleSet

#: 2026-11-23 09:00:00 Asia/Shanghai — a Monday morning, handy for daypart tests.
T0 = 1795395600.0


def run_events(engine: Engine, events: Iterable[Event], until: float | None = None) -> list[Action]:
    """Feed events on their own timestamps, then advance to ``until``; return all actions."""
    out: list[Action] = []
    for event in events:
        engine.feed(event)
        out.extend(engine.drain())
    if until is not None:
        engine.advance_to(until)
        out.extend(engine.drain())
    return out


class StoreScenario:
    """One store, one engine, a virtual clock, and builders for every event kind."""

    def __init__(
        self,
        rules: RuleSet | str | Path,
        registry: Registry | Mapping[str, object],
        *,
        profiles: Iterable[Profile] = (),
        settings: EngineSettings | None = None,
        guards: GuardStore | None = None,
        journal: AlertJournal | None = None,
        device_health: bool = False,
    ) -> None:
        if not isinstance(rules, RuleSet):
            from floorwalker.rules.loader import load_rules  # noqa: PLC0415 - optional front end

            rules = load_rules(rules)
        self.registry = (
            registry if isinstance(registry, Registry) else Registry.from_mapping(registry)
        )
        self.store = self.registry.store
        self.profiles = ProfileBook({p.shopper: p for p in profiles})
        self.decisions: list[Decision] = []
        if settings is None:
            # Scenarios rarely make every gateway talk; page about silence only if asked.
            silence = EngineSettings().device_silence_s if device_health else float("inf")
            settings = EngineSettings(device_silence_s=silence)
        self.engine = Engine(
            rules,
            {self.store: self.registry},
            profiles=self.profiles,
            guards=guards,
            settings=settings,
            on_decision=self.decisions.append,
            journal=journal,
        )
        self.actions: list[Action] = []
        self.rejections: list[str] = []
        self._pending: list[Event] = []
        self._seq = 0

    # ------------------------------------------------------------------ clock

    def send(self, *events: Event) -> None:
        """Queue events; they are delivered in timestamp order by :meth:`run_until`."""
        self._pending.extend(events)

    def deliver(self, event: Event) -> str | None:
        """Deliver one event *now*, at the current clock (for arrival-order tests)."""
        reason = self.engine.ingest(event)
        if reason is not None:
            self.rejections.append(reason)
        self.actions.extend(self.engine.drain())
        return reason

    def run_until(self, ts: float) -> list[Action]:
        """Deliver queued events up to ``ts`` in time order, firing timers on the way."""
        due = sorted((e for e in self._pending if e.ts <= ts), key=lambda e: (e.ts, e.order_key))
        self._pending = [e for e in self._pending if e.ts > ts]
        before = len(self.actions)
        for event in due:
            self.engine.advance_to(event.ts)
            self.actions.extend(self.engine.drain())
            self.deliver(event)
        self.engine.advance_to(ts)
        self.actions.extend(self.engine.drain())
        return self.actions[before:]

    # ------------------------------------------------------------------ results

    def offers(self, rule: str | None = None) -> list[Offer]:
        return [a for a in self.actions if isinstance(a, Offer) and rule in (None, a.rule)]

    def alerts(self, rule: str | None = None) -> list[Alert]:
        return [a for a in self.actions if isinstance(a, Alert) and rule in (None, a.rule)]

    def suppressed(self, rule: str | None = None) -> list[str]:
        return [d.reason for d in self.decisions if not d.sent and rule in (None, d.rule)]

    # ------------------------------------------------------------------ event builders

    def _key(self, base: str) -> str:
        self._seq += 1
        return f"{base}#{self._seq:08d}"

    def sighting(
        self, ts: float, subject: str, beacon: str, rssi: int = -65, *, staff: bool = False
    ) -> Sighting:
        gateway = next(iter(sorted(self.registry.gateways)), "gw")
        zone = self.registry.beacons[beacon]
        return Sighting(
            self.store, gateway, ts, beacon, zone, rssi, subject, staff, None, f"{subject}|{beacon}"
        )

    def linger(
        self,
        subject: str,
        beacon: str,
        *,
        start: float,
        seconds: float,
        every: float = 1.0,
        rssi: int = -65,
        staff: bool = False,
    ) -> list[Sighting]:
        """Queue sightings of one beacon every ``every`` seconds for ``seconds``."""
        events = []
        t = start
        while t <= start + seconds + 1e-9:
            events.append(self.sighting(t, subject, beacon, rssi, staff=staff))
            t += every
        self.send(*events)
        return events

    def bell(
        self,
        ts: float,
        bell: str,
        *,
        reason: str | None = None,
        shopper: str | None = None,
        id: str | None = None,
    ) -> BellPress:
        press = id or self._key("press")
        ev = BellPress(
            self.store,
            bell,
            press,
            ts,
            self.registry.bells[bell],
            shopper,
            reason,
            f"bell|{bell}|{press}",
        )
        self.send(ev)
        return ev

    def pos_item(
        self,
        ts: float,
        *,
        category: str | None = None,
        sku: str | None = None,
        shopper: str | None = None,
        receipt: str = "r-1",
        price: float | None = 9.9,
        terminal: str | None = None,
        id: str | None = None,
    ) -> PosItem:
        term = terminal or next(iter(sorted(self.registry.terminals)), "pos-1")
        line = id or self._key("line")
        ev = PosItem(
            self.store,
            term,
            line,
            ts,
            receipt,
            shopper,
            sku,
            category,
            1.0,
            price,
            f"pos|{term}|{line}",
        )
        self.send(ev)
        return ev

    def checkout(
        self,
        ts: float,
        *,
        total: float,
        shopper: str | None = None,
        receipt: str = "r-1",
        id: str | None = None,
    ) -> Checkout:
        term = next(iter(sorted(self.registry.terminals)), "pos-1")
        line = id or self._key("line")
        ev = Checkout(self.store, term, line, ts, receipt, shopper, total, f"pos|{term}|{line}")
        self.send(ev)
        return ev

    def redeem(
        self,
        ts: float,
        code: str,
        *,
        shopper: str | None = None,
        receipt: str = "r-1",
        id: str | None = None,
    ) -> CouponRedeemed:
        term = next(iter(sorted(self.registry.terminals)), "pos-1")
        line = id or self._key("line")
        ev = CouponRedeemed(
            self.store, term, line, ts, receipt, shopper, code, f"pos|{term}|{line}"
        )
        self.send(ev)
        return ev

    def ack(
        self,
        ts: float,
        band: str,
        alert: str,
        action: str = "ack",
        id: str | None = None,
    ) -> StaffAck:
        answer = id or self._key("ack")
        ev = StaffAck(self.store, band, answer, ts, alert, action, f"ack|{band}|{answer}")
        self.send(ev)
        return ev

    def status(
        self, ts: float, device: str, *, online: bool, battery: float | None = None
    ) -> DeviceStatus:
        ev = DeviceStatus(self.store, device, ts, online, battery, f"st|{device}")
        self.send(ev)
        return ev
