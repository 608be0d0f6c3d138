"""Staff whereabouts and alert routing.

Staff bands are located by the same debounced presence as shoppers. "Nearest"
means, in this order: a band in the alert's zone, in an adjacent zone, in (or
assigned to) the zone's section, then anywhere else by zone hops; bands with no
known location come last. Among equals, free bands beat bands already holding
an open alert, then fewer hops, then the band id (so routing is deterministic).
Offline bands (status ``online: false``) are never chosen.
"""

from __future__ import annotations

from collections.abc import Iterable

from floorwalker.devices.registry import UNREACHABLE, Registry
from floorwalker.engine.core.presence import PresenceSettings, PresenceTracker
from floorwalker.rules.model import Advisor, ByRole, Nearest, NextNearest, Target

IN_ZONE, ADJACENT, SECTION, ELSEWHERE, UNKNOWN = range(5)


class StaffRoster:
    __slots__ = ("busy", "offline", "presence", "registry")

    def __init__(self, registry: Registry, settings: PresenceSettings) -> None:
        self.registry = registry
        hints = {b: m.report_every for b, m in registry.staff.items() if m.report_every is not None}
        self.presence = PresenceTracker(settings, hints)
        self.offline: set[str] = set()
        self.busy: dict[str, str] = {}
        """band -> id of the open alert it holds"""

    def zone_of(self, band: str) -> str | None:
        return self.presence.zone_of(band)

    def anyone_in(self, zone: str | None) -> bool:
        if zone is None:
            return False
        return any(
            self.presence.zone_of(band) == zone and band not in self.offline
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
    ) -> str | None:
        """The band for the first target (in order) that has an available band.

        ``next`` skips every band already paged for the alert; other targets skip
        only bands that declined it (a manager paged at step 1 may be paged again
        at step 3, as a reminder with a higher step).
        """
        for target in targets:
            exclude = paged if isinstance(target, NextNearest) else declined
            band = self._pick(target, zone, advisor, exclude)
            if band is not None:
                return band
        return None

    def _pick(
        self, target: Target, zone: str | None, advisor: str | None, exclude: frozenset[str]
    ) -> str | None:
        if isinstance(target, Advisor):
            ok = advisor is not None and advisor in self.registry.staff
            usable = ok and advisor not in self.offline and advisor not in exclude
            return advisor if usable else None
        ranked = self.ranked(zone, exclude)
        if isinstance(target, ByRole):
            ranked = [b for b in ranked if self.registry.staff[b].role == target.role]
        elif isinstance(target, Nearest | NextNearest):
            anywhere = target.anywhere if isinstance(target, Nearest) else True
            if not anywhere:
                ranked = [b for b in ranked if self._tier(b, zone)[0] <= SECTION]
        return ranked[0] if ranked else None

    def ranked(self, zone: str | None, exclude: frozenset[str] = frozenset()) -> list[str]:
        """Online bands not excluded, best first."""
        bands = [b for b in self.registry.staff if b not in self.offline and b not in exclude]
        return sorted(bands, key=lambda b: (self._tier(b, zone), b in self.busy, b))

    def _tier(self, band: str, zone: str | None) -> tuple[int, int]:
        here = self.presence.zone_of(band)
        if here is None or zone is None:
            return (UNKNOWN, UNREACHABLE)
        reg = self.registry
        hops = reg.hops(here, zone)
        if hops == 0:
            return (IN_ZONE, 0)
        if hops == 1:
            return (ADJACENT, 1)
        section = reg.zones[zone].section
        if section is not None and (
            reg.zones[here].section == section or section in reg.staff[band].sections
        ):
            return (SECTION, hops)
        return (ELSEWHERE, hops)
