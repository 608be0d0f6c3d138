"""The store registry: zones, devices and staff of one store, as the operator wrote it.

The registry is the only place where a store's device ids appear. Rules name
zones by tag and staff by role or section; :class:`Registry` resolves them and
precomputes what the hot path needs (beacon -> zone, tag -> zones, zone hop
distances for "nearest staff").

:func:`load_registry` reads the file as rule files are read
(:mod:`floorwalker.yamlpos`): at most :data:`MAX_REGISTRY_FILE_BYTES`,
strict UTF-8, no control characters, anchors or aliases, bounded nesting. Every
problem, including an unforeseen one, is a :class:`~floorwalker.errors.ConfigError`
with the file and, where the problem was written, ``line:col``; a running
runner's reload catches exactly that and keeps the registries it has. Store and
device ids are at most :data:`MAX_ID_CHARS` characters, as the wire decoder
requires of every id.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from floorwalker.devices.topics import is_valid_id
from floorwalker.errors import ConfigError
from floorwalker.yamlpos import (
    YamlDocument,
    YamlError,
    YamlIssue,
    decode_text,
    load_yaml,
    read_capped,
)

log = logging.getLogger(__name__)

UNREACHABLE = 1_000_000
MAX_REGISTRY_FILE_BYTES = 1024 * 1024
"""Largest registry file: about 25,000 devices written one a line."""
MAX_ID_CHARS = 128
"""Longest store or device id (and, on the wire, shopper token or message id)."""

_Path = tuple[str | int, ...]
"""Where in the registry file: keys and list indexes from the top."""
_Lines = Callable[[_Path], tuple[int, int] | None]
"""(line, col) of the deepest node along a path that the file has, if any."""


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    tags: frozenset[str]
    section: str | None
    adjacent: tuple[str, ...]
    at: tuple[float, float] | None = None
    """Where the floor page draws it (``at: [column, row]``, optional); else a layout
    is made from the adjacency."""


@dataclass(frozen=True, slots=True)
class StaffMember:
    band: str
    name: str
    role: str
    sections: frozenset[str]
    report_every: float | None = None
    """How often the band reports, when the operator states it (else it is learnt)."""


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
    terminal_zones: Mapping[str, str] = field(default_factory=dict)
    """terminal id -> zone, for the terminals the file places (``terminals: {pos-1:
    {zone: checkout}}``; the list form places none)"""
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

    def pos_zone(self, terminal: str | None) -> str | None:
        """Where a POS terminal stands: its zone in the file, else the store's zone tagged
        ``checkout`` (the first by id), else None."""
        if terminal is not None:
            placed = self.terminal_zones.get(terminal)
            if placed is not None:
                return placed
        checkouts = self.zones_by_tag.get("checkout")
        return min(checkouts) if checkouts else None

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
        """Build from already-parsed data (no line numbers in errors)."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                "a registry is a mapping with store, timezone, zones, ...", file=source
            )
        return _build(data, source)


def load_registry(path: str | Path) -> Registry:
    """Load and validate a registry YAML file; raise :class:`ConfigError` on any problem.

    Errors carry the file and, where the problem was written, its line and column.
    """
    p = Path(path)
    try:
        return _load(p)
    except ConfigError:
        raise
    except Exception as exc:  # a bug; still the operator's file that triggered it
        log.warning("unexpected failure loading registry %s", p, exc_info=exc)
        message = f"could not be read ({type(exc).__name__}); please report this file"
        raise ConfigError(message, file=str(p), line=1, col=1) from exc


def _load(p: Path) -> Registry:
    source = str(p)
    try:
        text = decode_text(read_capped(p, max_bytes=MAX_REGISTRY_FILE_BYTES, what="a registry"))
    except OSError as exc:
        raise ConfigError(f"cannot read registry: {exc.strerror or exc}", file=source) from exc
    except YamlError as exc:
        raise _yaml_error("cannot read registry", exc.issues, source) from None
    try:
        doc = load_yaml(text)
    except YamlError as exc:
        raise _yaml_error("not valid YAML", exc.issues, source) from None
    if not isinstance(doc.data, Mapping):
        raise ConfigError(
            "a registry is a YAML mapping with store, timezone, zones, ...",
            file=source,
            line=1,
            col=1,
        )
    return _build(doc.data, source, lambda where: _pos_of(doc, where))


def _yaml_error(what: str, issues: list[YamlIssue], source: str) -> ConfigError:
    first = issues[0]
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return ConfigError(
        f"{what}: {first.message}{more}", file=source, line=first.line, col=first.col
    )


def load_registries(paths: Iterable[str | Path]) -> dict[str, Registry]:
    """Load several stores' registries, keyed by store id; a store twice is an error."""
    registries: dict[str, Registry] = {}
    for path in paths:
        registry = load_registry(path)
        if registry.store in registries:
            raise ConfigError(f"store {registry.store} is in two registries", file=str(path))
        registries[registry.store] = registry
    return registries


def _pos_of(doc: YamlDocument, where: _Path) -> tuple[int, int] | None:
    """Where the deepest node along ``where`` was written: a mapping entry's key, a list item.

    Duplicate keys never get here: the YAML layer refuses them (for a registry a
    repeated key would be a beacon quietly moving to another zone).
    """
    for end in range(len(where), 0, -1):
        prefix = where[:end]
        pos = doc.keys.get(prefix) if isinstance(prefix[-1], str) else doc.values.get(prefix)
        if pos is not None:
            return pos.line, pos.col
    return None


def _no_lines(where: _Path) -> tuple[int, int] | None:
    return None


class _Builder:
    """Reads a registry mapping; every error names the file and, when known, the line."""

    def __init__(self, source: str, lines: _Lines) -> None:
        self.source = source
        self.lines = lines

    def fail(self, message: str, *where: str | int) -> NoReturn:
        at = self.lines(where)
        line, col = at if at is not None else (None, None)
        raise ConfigError(message, file=self.source, line=line, col=col)

    def mapping(self, raw: Any, message: str, *where: str | int) -> Mapping[Any, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.fail(message, *where)
        return raw

    def words(self, raw: Any, *where: str | int) -> list[str]:
        """A list of plain values (tags, adjacent zones, sections) as strings."""
        if raw is None:
            return []
        if not isinstance(raw, list) or any(isinstance(x, (list, Mapping)) for x in raw):
            name = where[-1]
            self.fail(f"`{name}` must be a list of names, e.g. {name}: [a, b]", *where)
        return [str(x) for x in raw]

    def device_id(self, raw: Any, what: str, *where: str | int) -> str:
        # Device ids become MQTT topic levels (fw/{store}/device/{id}/status).
        dev = str(raw)
        if not is_valid_id(dev):
            self.fail(
                f"{what} id {dev[:MAX_ID_CHARS]!r} cannot be used in an MQTT topic "
                "(no '/', '+', '#')",
                *where,
            )
        if len(dev) > MAX_ID_CHARS:
            self.fail(f"{what} id {_too_long(dev)}", *where)
        return dev


def _too_long(text: str) -> str:
    return f"`{text[:40]}…` is {len(text)} characters long; ids have at most {MAX_ID_CHARS}"


def _build(data: Mapping[str, Any], source: str, lines: _Lines = _no_lines) -> Registry:
    b = _Builder(source, lines)
    if "store" not in data:
        b.fail("missing required key `store` (the store id used in MQTT topics)")
    if not isinstance(data["store"], str) or not is_valid_id(data["store"]):
        b.fail("`store` must be a store id string without '/', '+' or '#'", "store")
    if len(data["store"]) > MAX_ID_CHARS:
        b.fail(f"store id {_too_long(data['store'])}", "store")
    if "zones" not in data:
        b.fail("missing required key `zones`")
    timezone = str(data.get("timezone") or "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        b.fail(f"unknown timezone {timezone!r} (use an IANA name like Asia/Shanghai)", "timezone")
    zones = _zones(b, data["zones"])
    return Registry(
        store=data["store"],
        timezone=timezone,
        zones=zones,
        beacons=_placed(b, data.get("beacons"), "beacons", zones),
        bells=_placed(b, data.get("bells"), "bells", zones),
        gateways=frozenset(_ids(b, data.get("gateways"), "gateways")),
        terminals=frozenset(_ids(b, data.get("terminals"), "terminals")),
        staff=_staff(b, data.get("staff")),
        terminal_zones=_terminal_zones(b, data.get("terminals"), zones),
    )


def _zones(b: _Builder, raw: Any) -> dict[str, Zone]:
    if not isinstance(raw, Mapping):
        b.fail("`zones` must map each zone id to {tags, section, adjacent}", "zones")
    zones: dict[str, Zone] = {}
    for zid, spec in raw.items():
        at = ("zones", zid)
        spec_map = b.mapping(spec, f"zone `{zid}` must be a mapping like {{tags: [...]}}", *at)
        section = spec_map.get("section")
        zones[str(zid)] = Zone(
            id=str(zid),
            tags=frozenset(b.words(spec_map.get("tags"), *at, "tags")),
            section=str(section) if section is not None else None,
            adjacent=tuple(b.words(spec_map.get("adjacent"), *at, "adjacent")),
            at=_grid_at(b, spec_map.get("at"), str(zid)),
        )
    for zone in zones.values():
        for other in zone.adjacent:
            if other not in zones:
                b.fail(
                    f"zone `{zone.id}` is adjacent to unknown zone `{other}`",
                    "zones",
                    zone.id,
                    "adjacent",
                )
    return zones


def _grid_at(b: _Builder, raw: Any, zone: str) -> tuple[float, float] | None:
    """``at: [column, row]`` (an optional key, read by the floor page only)."""
    if raw is None:
        return None
    ok = (
        isinstance(raw, list)
        and len(raw) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw)
        and all(0 <= v <= 1000 for v in raw)
    )
    if not ok:
        b.fail(
            f"`at` of zone `{zone}` must be [column, row], two numbers from 0 to 1000,"
            " e.g. at: [2, 0]",
            "zones",
            zone,
            "at",
        )
    return float(raw[0]), float(raw[1])


def _placed(b: _Builder, raw: Any, what: str, zones: Mapping[str, Zone]) -> dict[str, str]:
    devices = b.mapping(raw, f"`{what}` must map device ids to {{zone: ...}}", what)
    placed: dict[str, str] = {}
    for dev, spec in devices.items():
        dev_id = b.device_id(dev, what.rstrip("s"), what, dev)
        zone = spec.get("zone") if isinstance(spec, Mapping) else None
        if not isinstance(zone, str) or zone not in zones:
            known = ", ".join(sorted(zones))
            b.fail(
                f"{what.rstrip('s')} `{dev_id}`: zone {zone!r} is not a zone of this store"
                f" (zones: {known})",
                what,
                dev,
            )
        placed[dev_id] = zone
    return placed


def _terminal_zones(b: _Builder, raw: Any, zones: Mapping[str, Zone]) -> dict[str, str]:
    """The zones of the terminals written as a mapping with a ``zone`` (others: none)."""
    if not isinstance(raw, Mapping):
        return {}
    placed = {
        str(dev): spec for dev, spec in raw.items() if isinstance(spec, Mapping) and "zone" in spec
    }
    return _placed(b, placed, "terminals", zones) if placed else {}


def _staff(b: _Builder, raw: Any) -> dict[str, StaffMember]:
    bands = b.mapping(raw, "`staff` must map band ids to {name, role, sections}", "staff")
    staff: dict[str, StaffMember] = {}
    for band, spec in bands.items():
        band_id = b.device_id(band, "band", "staff", band)
        if not isinstance(spec, Mapping) or spec.get("role") is None:
            b.fail(f"staff `{band_id}` needs at least a `role`", "staff", band)
        staff[band_id] = StaffMember(
            band=band_id,
            name=str(spec.get("name", band_id)),
            role=str(spec["role"]),
            sections=frozenset(b.words(spec.get("sections"), "staff", band, "sections")),
            report_every=_report_every(b, spec.get("report_every"), band),
        )
    return staff


def _report_every(b: _Builder, raw: Any, band: str) -> float | None:
    """Seconds, as a number or a string like ``5s`` (an optional key: DESIGN.md allows them)."""
    if raw is None:
        return None
    text = str(raw).strip()
    number = text[:-1] if text.endswith("s") else text
    try:
        seconds = float(number)
    except ValueError:
        seconds = -1.0
    if isinstance(raw, bool) or not 0.1 <= seconds <= 300.0:
        b.fail(
            f"`report_every` of `{band}` must be a time between 0.1s and 300s, like `5s`",
            "staff",
            band,
            "report_every",
        )
    return seconds


def _ids(b: _Builder, raw: Any, what: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        raw = list(raw)
    if not isinstance(raw, list):
        b.fail(f"`{what}` must be a list of ids, e.g. {what}: [a, b]", what)
    return [b.device_id(x, what.rstrip("s"), what, i) for i, x in enumerate(raw)]


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
