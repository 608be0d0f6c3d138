"""The store registry: zones, devices and staff of one store, as the operator wrote it.

The registry is the only place where a store's device ids appear. Rules name
zones by tag and staff by role or section; :class:`Registry` resolves them and
precomputes what the hot path needs (beacon -> zone, tag -> zones, zone hop
distances for "nearest staff").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from floorwalker.errors import ConfigError

UNREACHABLE = 1_000_000


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    tags: frozenset[str]
    section: str | None
    adjacent: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StaffMember:
    band: str
    name: str
    role: str
    sections: frozenset[str]


@dataclass(frozen=True)
class Registry:
    """One store's layout. Build with :func:`load_registry` or :meth:`from_mapping`."""

    store: str
    timezone: str
    zones: Mapping[str, Zone]
    beacons: Mapping[str, str]
    """beacon id -> zone id"""
    bells: Mapping[str, str]
    """bell id -> zone id"""
    gateways: frozenset[str]
    terminals: frozenset[str]
    staff: Mapping[str, StaffMember]
    tzinfo: ZoneInfo = field(init=False, compare=False, repr=False)
    zones_by_tag: Mapping[str, frozenset[str]] = field(init=False, compare=False, repr=False)
    distance: Mapping[tuple[str, str], int] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"store {self.store}: unknown timezone {self.timezone!r}") from exc
        object.__setattr__(self, "tzinfo", tz)
        by_tag: dict[str, set[str]] = {}
        for zone in self.zones.values():
            for tag in zone.tags:
                by_tag.setdefault(tag, set()).add(zone.id)
        object.__setattr__(self, "zones_by_tag", {t: frozenset(z) for t, z in by_tag.items()})
        object.__setattr__(self, "distance", _hop_distances(self.zones))

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self.zones_by_tag)

    def hops(self, a: str, b: str) -> int:
        """Zone hops from ``a`` to ``b`` along adjacency; :data:`UNREACHABLE` if none."""
        if a == b:
            return 0
        return self.distance.get((a, b), UNREACHABLE)

    def knows_device(self, device: str) -> bool:
        return (
            device in self.beacons
            or device in self.bells
            or device in self.gateways
            or device in self.terminals
            or device in self.staff
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<registry>") -> Registry:
        return _build(data, source)


def load_registry(path: str | Path) -> Registry:
    """Load and validate a registry YAML file; raise :class:`ConfigError` on any problem."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read registry: {exc}", file=str(p)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"not valid YAML: {exc}", file=str(p), line=line) from exc
    if not isinstance(data, Mapping):
        raise ConfigError("a registry is a YAML mapping with store, timezone, zones, ...", file=str(p))
    return _build(data, str(p))


def _build(data: Mapping[str, Any], source: str) -> Registry:
    def need(key: str, kind: type) -> Any:
        if key not in data:
            raise ConfigError(f"missing required key `{key}`", file=source)
        value = data[key]
        if not isinstance(value, kind):
            raise ConfigError(f"`{key}` must be a {kind.__name__}", file=source)
        return value

    store = str(need("store", str))
    timezone = str(data.get("timezone", "UTC"))
    zones = _zones(need("zones", Mapping), source)
    beacons = _placed(data.get("beacons") or {}, "beacons", zones, source)
    bells = _placed(data.get("bells") or {}, "bells", zones, source)
    staff = _staff(data.get("staff") or {}, source)
    return Registry(
        store=store,
        timezone=timezone,
        zones=zones,
        beacons=beacons,
        bells=bells,
        gateways=frozenset(_ids(data.get("gateways") or [], "gateways", source)),
        terminals=frozenset(_ids(data.get("terminals") or [], "terminals", source)),
        staff=staff,
    )


def _zones(raw: Mapping[str, Any], source: str) -> dict[str, Zone]:
    zones: dict[str, Zone] = {}
    for zid, spec in raw.items():
        spec = spec or {}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"zone `{zid}` must be a mapping", file=source)
        zones[str(zid)] = Zone(
            id=str(zid),
            tags=frozenset(str(t) for t in spec.get("tags") or ()),
            section=str(spec["section"]) if spec.get("section") is not None else None,
            adjacent=tuple(str(a) for a in spec.get("adjacent") or ()),
        )
    for zone in zones.values():
        for other in zone.adjacent:
            if other not in zones:
                raise ConfigError(f"zone `{zone.id}` is adjacent to unknown zone `{other}`", file=source)
    return zones


def _placed(raw: Any, what: str, zones: Mapping[str, Zone], source: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"`{what}` must map device ids to {{zone: ...}}", file=source)
    placed: dict[str, str] = {}
    for dev, spec in raw.items():
        zone = spec.get("zone") if isinstance(spec, Mapping) else None
        if zone not in zones:
            raise ConfigError(f"{what} `{dev}`: zone {zone!r} is not a zone of this store", file=source)
        placed[str(dev)] = str(zone)
    return placed


def _staff(raw: Any, source: str) -> dict[str, StaffMember]:
    if not isinstance(raw, Mapping):
        raise ConfigError("`staff` must map band ids to {name, role, sections}", file=source)
    staff: dict[str, StaffMember] = {}
    for band, spec in raw.items():
        if not isinstance(spec, Mapping) or "role" not in spec:
            raise ConfigError(f"staff `{band}` needs at least a `role`", file=source)
        staff[str(band)] = StaffMember(
            band=str(band),
            name=str(spec.get("name", band)),
            role=str(spec["role"]),
            sections=frozenset(str(s) for s in spec.get("sections") or ()),
        )
    return staff


def _ids(raw: Any, what: str, source: str) -> list[str]:
    if isinstance(raw, Mapping):
        return [str(k) for k in raw]
    if not isinstance(raw, list):
        raise ConfigError(f"`{what}` must be a list of ids", file=source)
    return [str(x) for x in raw]


def _hop_distances(zones: Mapping[str, Zone]) -> dict[tuple[str, str], int]:
    """All-pairs hop counts by BFS; adjacency is treated as symmetric (a wall has two sides)."""
    graph: dict[str, set[str]] = {z: set() for z in zones}
    for zone in zones.values():
        for other in zone.adjacent:
            graph[zone.id].add(other)
            graph[other].add(zone.id)
    dist: dict[tuple[str, str], int] = {}
    for start in graph:
        seen = {start: 0}
        todo = deque([start])
        while todo:
            here = todo.popleft()
            for nxt in sorted(graph[here]):
                if nxt not in seen:
                    seen[nxt] = seen[here] + 1
                    todo.append(nxt)
        for end, hops in seen.items():
            if end != start:
                dist[(start, end)] = hops
    return dist
