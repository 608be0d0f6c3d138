"""Staff whereabouts and alert routing.

Staff bands are located by the same debounced presence as shoppers (adapting
to each band's reporting cadence). "Nearest" means, in this order: a band in
the alert's zone, in an adjacent zone, in (or assigned to) the zone's section,
then anywhere else by zone hops; bands with no known location (or unseen for
their leave gap) come last. Among equals, free bands beat busy ones (on an
acknowledged alert), then bands holding fewer open pages (the load is shared),
then fewer hops, then the band id (so routing is deterministic). Offline bands
(status ``online: false``) are never chosen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

from floorwalker.devices.registry import UNREACHABLE, Registry
from floorwalker.engine.core.presence import PresenceSettings, PresenceTracker
from floorwalker.rules.model import Advisor, ByRole, Nearest, NextNearest, Target

IN_ZONE, ADJACENT, SECTION, ELSEWHERE, UNKNOWN = range(5)


class Floor(NamedTuple):
    """What routing needs to know of the moment besides where bands are.

    A named tuple, not a frozen dataclass: one is built per route, and a frozen
    dataclass sets each field through ``object.__setattr__``.
    """

    now: float | None = None
    """Locations older than a band's leave gap by then count as unknown."""
    busy: frozenset[str] = frozenset()
    """Bands on an acknowledged alert."""
    load: Mapping[str, int] = MappingProxyType({})
    """Open pages each band holds (read during the route only: it may be the live figures)."""
    capped: frozenset[str] = frozenset()
    """Bands this rule may not page again yet (``band_every``)."""


class StaffRoster:
    __slots__ = ("_registry", "_tiers", "offline", "presence")

    def __init__(self, registry: Registry, settings: PresenceSettings) -> None:
        self.presence = PresenceTracker(settings)
        self.offline: set[str] = set()
        self._tiers: dict[tuple[str, str, str], tuple[int, int]] = {}
        """(band, where it is, alert zone) -> tier: the registry's answer, kept"""
        self.registry = registry

    @property
    def registry(self) -> Registry:
        return self._registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        """A new registry (a reload): its bands' stated cadences, tiers worked out anew."""
        self._registry = registry
        hints = self.presence.hints
        hints.clear()
        hints.update(
            (b, m.report_every) for b, m in registry.staff.items() if m.report_every is not None
        )
        self._tiers.clear()

    def zone_of(self, band: str, now: float | None = None) -> str | None:
        return self.presence.zone_of(band, now)

    def anyone_in(self, zone: str | None, now: float | None = None) -> bool:
        if zone is None:
            return False
        return any(
            self.presence.zone_of(band, now) == zone and band not in self.offline
            for band in self.registry.staff
        )

    def set_online(self, band: str, online: bool) -> None:
        if online:
            self.offline.discard(band)
        else:
            self.offline.add(band)

    def route(
        self,
        targets: Iterable[Target],
        zone: str | None,
        advisor: str | None,
        paged: frozenset[str] = frozenset(),
        declined: frozenset[str] = frozenset(),
        *,
        floor: Floor | None = None,
    ) -> str | None:
        """The band for the first target (in order) that has an available band.

        ``next`` skips every band already paged for the alert; other targets skip
        only bands that declined it (a manager paged at step 1 may be paged again
        at step 3, as a reminder with a higher step).
        """
        floor = floor or Floor()
        for target in targets:
            exclude = (paged if isinstance(target, NextNearest) else declined) | floor.capped
            band = self._pick(target, zone, advisor, exclude, floor)
            if band is not None:
                return band
        return None

    def _pick(
        self,
        target: Target,
        zone: str | None,
        advisor: str | None,
        exclude: frozenset[str],
        floor: Floor,
    ) -> str | None:
        if isinstance(target, Advisor):
            ok = advisor is not None and advisor in self.registry.staff
            usable = ok and advisor not in self.offline and advisor not in exclude
            return advisor if usable else None
        keyed = self._keyed(zone, exclude, floor)
        if isinstance(target, ByRole):
            staff = self.registry.staff
            keyed = [k for k in keyed if staff[k[-1]].role == target.role]
        elif isinstance(target, Nearest | NextNearest):
            anywhere = target.anywhere if isinstance(target, Nearest) else True
            if not anywhere:
                keyed = [k for k in keyed if k[0][0] <= SECTION]
        return min(keyed)[-1] if keyed else None  # only the best is wanted: no sort

    def ranked(
        self, zone: str | None, exclude: frozenset[str] = frozenset(), floor: Floor | None = None
    ) -> list[str]:
        """Online bands not excluded, best first."""
        return [k[-1] for k in sorted(self._keyed(zone, exclude, floor or Floor()))]

    def _keyed(
        self, zone: str | None, exclude: frozenset[str], f: Floor
    ) -> list[tuple[tuple[int, int], bool, int, str]]:
        """(tier, busy, load, band) of each online band not excluded: smaller is better.

        One loop with the tier and the band's location worked out inline: an alert
        routes over every band, twice or more with escalation (bench core measured
        the calls per band at a fifth of raising an alert).
        """
        offline, now, busy, load = self.offline, f.now, f.busy, f.load
        states, leave_gap, tiers = self.presence.states, self.presence.leave_gap, self._tiers
        out = []
        for b in self._registry.staff:
            if b in offline or b in exclude:
                continue
            st = states.get(b)
            if st is None or (here := st.zone) is None or zone is None:
                tier = _NOWHERE
            elif now is not None and now - st.last_seen >= leave_gap(st, b):
                tier = _NOWHERE  # not seen for its leave gap: location unknown
            else:
                tier = tiers.get((b, here, zone)) or self._tier(b, here, zone)
            out.append((tier, b in busy, load.get(b, 0), b))
        return out

    def _tier(self, band: str, here: str, zone: str) -> tuple[int, int]:
        """How near ``band`` in ``here`` is to ``zone``, by the registry (kept for next time)."""
        reg = self._registry
        hops = reg.hops(here, zone)
        if hops == 0:
            tier = _HERE
        elif hops == 1:
            tier = (ADJACENT, 1)
        else:
            section = reg.zones[zone].section
            near = section is not None and (
                reg.zones[here].section == section or section in reg.staff[band].sections
            )
            tier = (SECTION if near else ELSEWHERE, hops)
        if len(self._tiers) >= _MAX_TIERS:
            self._tiers.clear()  # bounded: a huge store's every pair is not worth keeping
        self._tiers[(band, here, zone)] = tier
        return tier


_NOWHERE = (UNKNOWN, UNREACHABLE)
_HERE = (IN_ZONE, 0)
_MAX_TIERS = 100_000
