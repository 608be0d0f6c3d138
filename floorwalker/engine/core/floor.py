"""A read-only picture of each store's floor, for people to look at (the live floor page).

:func:`floor_view` reads an engine's stores and returns plain frozen values:
how many shoppers are in each zone, where each staff band is, every alert not
yet done with its escalation schedule, staff response times against the rule's
target, and the store's coupon counts. It decides nothing and changes nothing.

It must run on the thread that drives the engine (it reads the stores'
dicts); what it returns is immutable, so a runner can hand it to another
thread (the web server) as it is. It costs one pass over each store's
presence records, alerts and staff: a runner calls it a couple of times a
second at most, never per event.

"Now" is the engine's clock: a shopper unseen for their leave gap by then
counts as gone even before a timer noticed, as routing does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from floorwalker.devices.registry import Registry
from floorwalker.engine.core.alerts import OpenAlert
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.store import Store

SHOWN_STATES = ("open", "acknowledged", "unanswered")
"""Alerts on the floor page: done ones are gone from it."""


@dataclass(frozen=True, slots=True)
class BandSpot:
    band: str
    name: str
    role: str
    zone: str | None
    """Where the band is now; None when not seen lately."""
    online: bool
    alerts: tuple[str, ...]
    """Ids of the open alerts paged to this band and not answered, oldest first."""
    on: str | None
    """The alert this band acknowledged and has not finished, if any."""


@dataclass(frozen=True, slots=True)
class AlertView:
    id: str
    rule: str
    zone: str
    priority: str
    message: str
    state: str
    """``open``, ``acknowledged`` or ``unanswered``."""
    step: int
    steps: int
    """1 + the rule's escalation steps."""
    paged: tuple[str, ...]
    """Bands paged, in order (a band paged twice appears twice)."""
    holder: str | None
    """The band holding the page now (the latest paged that did not decline)."""
    declined: tuple[str, ...]
    created: float
    acked_by: str | None
    acked_at: float | None
    next_step_at: float | None
    """When the next escalation step is due, while open and a step is left."""
    ends_at: float | None
    """When an open alert nobody answers becomes unanswered."""
    target_s: float | None


@dataclass(frozen=True, slots=True)
class ResponseView:
    """Answers to one rule's alerts among those the store still holds (``alert_keep_s``)."""

    rule: str
    answered: int
    median_s: float
    worst_s: float
    target_s: float | None
    within: int
    """Answers within the target (all of them when there is no target)."""
    unanswered: int


@dataclass(frozen=True, slots=True)
class StoreFloor:
    store: str
    registry: Registry
    """The registry in force (immutable; replaced, never changed, by a reload)."""
    clock: float = field(compare=False)
    """The engine clock it was read at (not part of what a person sees change)."""
    shoppers: Mapping[str, int]
    """zone -> shoppers there now (zones of the registry only, every one present)."""
    bands: tuple[BandSpot, ...]
    alerts: tuple[AlertView, ...]
    """Oldest first."""
    responses: tuple[ResponseView, ...]
    coupons_issued: int
    """Since this engine started (the runner turns it into "today")."""
    coupons_redeemed: int

    @property
    def shoppers_total(self) -> int:
        return sum(self.shoppers.values())


def floor_view(engine: Engine) -> dict[str, StoreFloor]:
    """Every store of the engine, as of its clock; see the module docstring."""
    out: dict[str, StoreFloor] = {}
    for sid, store in engine.stores.items():
        stats = engine.stats_for(sid)  # the store's own counters: live, nothing summed
        out[sid] = store_floor(
            store,
            engine.clock,
            engine.settings.unanswered_after_s,
            issued=stats.store_coupons.get(sid, 0),
            redeemed=stats.store_redeemed.get(sid, 0),
        )
    return out


def store_floor(
    store: Store, now: float, unanswered_after_s: float, *, issued: int = 0, redeemed: int = 0
) -> StoreFloor:
    st = store.state
    registry = st.registry
    alerts = sorted(st.alerts.alerts.values(), key=lambda a: (a.created, a.id))
    return StoreFloor(
        store=store.id,
        registry=registry,
        clock=now,
        shoppers=_shoppers(store, registry, now),
        bands=_bands(store, registry, alerts, now),
        alerts=tuple(_alert(a, unanswered_after_s) for a in alerts if a.state in SHOWN_STATES),
        responses=_responses(alerts),
        coupons_issued=issued,
        coupons_redeemed=redeemed,
    )


def _shoppers(store: Store, registry: Registry, now: float) -> dict[str, int]:
    counts = dict.fromkeys(registry.zones, 0)
    presence = store.state.presence
    # Every leave gap is at least leave_after_s: most shoppers were seen more recently
    # than that, and need no gap of their own (the one loop here that grows with traffic).
    surely_here = presence.settings.leave_after_s
    for subject, p in presence.states.items():
        zone = p.zone
        if zone is None or zone not in counts:
            continue
        age = now - p.last_seen
        # Unseen for the leave gap: gone, whether or not a leave timer has noticed yet.
        if age < surely_here or age < presence.leave_gap(p, subject):
            counts[zone] += 1
    return counts


def _bands(
    store: Store, registry: Registry, alerts: list[OpenAlert], now: float
) -> tuple[BandSpot, ...]:
    staff = store.state.staff
    holding: dict[str, list[str]] = {}
    on: dict[str, str] = {}
    for a in alerts:
        state = a.state
        if state == "open" and (band := a.paged_band) is not None:
            holding.setdefault(band, []).append(a.id)
        elif state == "acknowledged" and a.acked_by is not None:
            on[a.acked_by] = a.id
    return tuple(
        BandSpot(
            band=band,
            name=member.name,
            role=member.role,
            zone=staff.zone_of(band, now),
            online=band not in staff.offline,
            alerts=tuple(holding.get(band, ())),
            on=on.get(band),
        )
        for band, member in sorted(registry.staff.items())
    )


def _alert(a: OpenAlert, unanswered_after_s: float) -> AlertView:
    escalate = a.spec.escalate
    state = a.state
    next_at = ends = None
    if state == "open":
        # Step k+2 is taken when escalate[k] fires: at step s the next one is escalate[s-1].
        if a.step - 1 < len(escalate):
            next_at = a.created + escalate[a.step - 1].after_s
        last = escalate[-1].after_s if escalate else 0.0
        ends = a.created + last + unanswered_after_s
    return AlertView(
        id=a.id,
        rule=a.rule,
        zone=a.zone,
        priority=a.priority,
        message=a.message,
        state=state,
        step=a.step,
        steps=1 + len(escalate),
        paged=tuple(a.bands),
        holder=a.paged_band,
        declined=tuple(sorted(a.declined)),
        created=a.created,
        acked_by=a.acked_by,
        acked_at=a.acked_at,
        next_step_at=next_at,
        ends_at=ends,
        target_s=a.spec.response_target_s,
    )


def _responses(alerts: Iterable[OpenAlert]) -> tuple[ResponseView, ...]:
    times: dict[str, list[float]] = {}
    targets: dict[str, float | None] = {}
    unanswered: dict[str, int] = {}
    for a in alerts:
        targets.setdefault(a.rule, a.spec.response_target_s)
        times.setdefault(a.rule, [])
        if a.acked_at is not None:
            times[a.rule].append(max(0.0, a.acked_at - a.created))
        elif a.state == "unanswered":
            unanswered[a.rule] = unanswered.get(a.rule, 0) + 1
    out = []
    for rule in sorted(times):
        got = sorted(times[rule])
        if not got and not unanswered.get(rule):
            continue
        target = targets[rule]
        out.append(
            ResponseView(
                rule=rule,
                answered=len(got),
                median_s=got[len(got) // 2] if got else 0.0,
                worst_s=got[-1] if got else 0.0,
                target_s=target,
                within=sum(1 for t in got if target is None or t <= target),
                unanswered=unanswered.get(rule, 0),
            )
        )
    return tuple(out)
