"""A store unit's complete state as versioned bytes, and back.

Layout: the 4-byte magic ``FWST``, a 2-byte big-endian schema version, the
store id (1-byte length, UTF-8), then one MessagePack document (msgspec).
Everything is written in iteration order (dicts keep insertion order, which
decides some firing orders) except sets, which are sorted so the same state
always gives the same bytes. Floats are 64-bit and round-trip exactly, ints
stay ints, so a restored store takes the same decisions, with the same ids, as
the one it was saved from. Records are positional lists, zone ids are indices
into the registry's zones, and a presence field equal to its neighbour is
written as nil: a shopper in the store costs well under 100 bytes.

Compatibility: a build reads every version from 1 to :data:`VERSION`,
upgrading older documents step by step through :data:`MIGRATIONS`; anything
else (another magic, a newer or unknown version, a broken document) is refused
with :class:`~floorwalker.errors.StateError`. Not pickle: nothing in a snapshot
can run code.
"""

from __future__ import annotations

import contextlib
import gc
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import msgspec

from floorwalker.devices.events import (
    BellPress,
    Checkout,
    CouponRedeemed,
    DeviceStatus,
    PosItem,
    Sighting,
    StaffAck,
)
from floorwalker.engine.core.actions import Action, Alert, Offer
from floorwalker.engine.core.alerts import OpenAlert
from floorwalker.engine.core.context import Context
from floorwalker.engine.core.health import alert_spec
from floorwalker.engine.core.presence import (
    INTERVALS,
    Candidate,
    Presence,
    PresenceTracker,
    quantize,
)
from floorwalker.engine.core.state import StoreState
from floorwalker.engine.core.timers import Held, Timer, TimerQueue
from floorwalker.errors import StateError
from floorwalker.rules.model import AlertSpec

MAGIC = b"FWST"
VERSION = 1
"""Bump when the document changes shape; add the upgrade from the old shape to MIGRATIONS."""
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
"""version n -> function turning a version-n document into a version n+1 one"""
_HEADER = struct.Struct(">4sHB")
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()

_EVENTS: dict[str, type] = {
    "S": Sighting,
    "B": BellPress,
    "P": PosItem,
    "C": Checkout,
    "R": CouponRedeemed,
    "A": StaffAck,
    "D": DeviceStatus,
}
_EVENT_TAGS = {cls: tag for tag, cls in _EVENTS.items()}
_ACTIONS: dict[str, type] = {"O": Offer, "L": Alert}
_ACTION_TAGS = {cls: tag for tag, cls in _ACTIONS.items()}


class StoreUnit(Protocol):
    """What the codec reads and writes of a store unit (the class lives in ``store.py``)."""

    id: str
    state: StoreState
    clock: float
    timers: TimerQueue
    held: list[Held]
    held_seq: int
    recent_ids: dict[str, float]
    outbox: list[Action]
    sweeping: bool
    draining: bool


# --------------------------------------------------------------------------- header


def pack(
    doc: Mapping[str, Any], magic: bytes = MAGIC, version: int = VERSION, *, label: str
) -> bytes:
    """Header (magic, version, a short label such as the store id), then the document."""
    name = label.encode()
    if len(name) > 255:
        raise ValueError(f"label too long for a snapshot header: {label[:40]!r}...")
    return _HEADER.pack(magic, version, len(name)) + name + _ENCODER.encode(doc)


def peek_label(data: bytes, magic: bytes = MAGIC, what: str = "store snapshot") -> str:
    """The header's label (a store snapshot's store id), without parsing the document."""
    if len(data) < _HEADER.size or data[:4] != magic:
        raise StateError(f"not a Floorwalker {what} (expected it to start with {magic!r})")
    size = data[_HEADER.size - 1]
    try:
        return data[_HEADER.size : _HEADER.size + size].decode()
    except UnicodeDecodeError as exc:
        raise StateError(f"{what} is damaged: its header names no store") from exc


def unpack(
    data: bytes,
    magic: bytes = MAGIC,
    version: int | None = None,
    migrations: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
    what: str = "store snapshot",
) -> dict[str, Any]:
    """Check the header, parse, and upgrade an older document to the current version."""
    current = VERSION if version is None else version
    steps = MIGRATIONS if migrations is None else migrations
    if len(data) < _HEADER.size or data[:4] != magic:
        raise StateError(f"not a Floorwalker {what} (expected it to start with {magic!r})")
    _magic, found, size = _HEADER.unpack_from(data)
    if not 1 <= found <= current or any(v not in steps for v in range(found, current)):
        raise StateError(
            f"{what} schema version {found} is not one this build reads "
            f"(versions 1 to {current}); restore it with the Floorwalker release that wrote it"
        )
    try:
        doc = _DECODER.decode(data[_HEADER.size + size :])
    except msgspec.DecodeError as exc:
        raise StateError(f"{what} is damaged: {exc}") from exc
    if not isinstance(doc, dict):
        raise StateError(f"{what} is damaged: the document is not an object")
    upgraded: dict[str, Any] = doc
    for v in range(found, current):
        upgraded = steps[v](upgraded)
    return upgraded


# --------------------------------------------------------------------------- encode


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """The cyclic GC off while a snapshot's tens of thousands of small lists are made.

    Each of them counts towards a collection, and in a runner whose heap holds
    millions of objects (profiles, other stores) the older generations' passes
    took most of the time: restoring a 3,000-shopper store went from ~40 ms to
    ~10 ms without them. Nothing made here is garbage; collections resume after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def encode_store(store: StoreUnit) -> bytes:
    with _no_collection():
        return _encode_store(store)


def _encode_store(store: StoreUnit) -> bytes:
    st = store.state
    zones = list(st.registry.zones)
    zone_ix = {z: i for i, z in enumerate(zones)}
    doc = {
        "store": store.id,
        "rules": st.compiled.fingerprint,
        "clock": _finite(store.clock),
        "generation": st.generation,
        "first_heard": st.first_heard,
        "sweeping": store.sweeping,
        "draining": store.draining,
        "timers": [store.timers.seq, [[t.due, t.seq, t.kind, t.args] for t in store.timers.heap]],
        "held": [store.held_seq, [[h.ts, h.order_key, h.seq, _event(h.event)] for h in store.held]],
        "dedup": list(store.recent_ids.items()),
        "outbox": [[_ACTION_TAGS[type(a)], *a] for a in store.outbox],
        "zones": zones,
        "presence": _presence(st.presence, zone_ix),
        "staff": [
            _presence(st.staff.presence, zone_ix),
            sorted(st.staff.offline),
        ],
        "alerts": [_alert(a) for a in st.alerts.alerts.values()],
        "open_by_source": [[r, k, i] for (r, k), i in st.alerts.open_by_source.items()],
        "alert_memory": [
            [[r, k, t] for (r, k), t in table.items()]
            for table in (st.alerts.unanswered, st.alerts.last_paged, st.alerts.last_raised)
        ],
        "leave_watch": [sorted(st.leave_watch), sorted(st.staff_leave_watch)],
        "visits": list(st.visits.items()),
        "seq_first": [[r, k, t] for (r, k), t in st.seq_first.items()],
        "absence": [[r, k, _context(c)] for (r, k), c in st.absence.items()],
        "counts": [[r, k, w] for (r, k), w in st.counts.items()],
        "bought": _bought(st),
        "devices": [[d, *v] for d, v in st.devices.items()],
        "last_heard": list(st.last_heard.items()),
        "unhealthy": list(st.unhealthy.items()),
    }
    return pack(doc, label=store.id)


def _finite(value: float) -> float | None:
    return value if value > float("-inf") else None


def _event(event: Any) -> list[Any]:
    return [_EVENT_TAGS[type(event)], *event]


def _presence(tracker: PresenceTracker, zone_ix: dict[str, int]) -> list[list[Any]]:
    """One row per subject; a zone is its index, a field equal to its neighbour is nil."""
    out = []
    ix = zone_ix.get
    for subject, p in tracker.states.items():
        c = p.cand
        cand = None if c is None else _cand(c, ix)
        zone = None if p.zone is None else ix(p.zone, p.zone)
        last_zone = None if p.last_zone == p.zone else ix(p.last_zone, p.last_zone)
        seen = None if p.seen == p.last_seen else p.seen
        visit = None if p.visit_start == p.since else p.visit_start
        row = [subject, zone, p.since, p.last_seen, seen, last_zone, cand, visit, p.prev_visit]
        if p.interval is not None:
            row.append(p.interval)
        out.append(row)
    return out


def _cand(c: Candidate, ix: Any) -> list[Any]:
    row = [ix(c.zone, c.zone), c.first, c.last, c.score]
    if c.prev is not None:
        row.append(_cand(c.prev, ix))
    return row


def _cand_from(row: list[Any], zone_of: Any) -> Candidate:
    c = Candidate(zone_of(row[0]), row[1])
    c.last, c.score = row[2], row[3]
    if len(row) > 4:
        c.prev = _cand_from(row[4], zone_of)
    return c


def _alert(a: OpenAlert) -> list[Any]:
    """Everything but the spec (found again by rule id), positionally."""
    return [
        a.id,
        a.rule,
        a.zone,
        a.message,
        a.created,
        a.source_key,
        a.shopper,
        a.bell,
        a.summary,
        a.advisor,
        a.step,
        a.bands,
        sorted(a.declined),
        a.acked_at,
        a.acked_by,
        a.closed_at,
        a.ended_at,
        a.priority,
    ]


def _context(ctx: Context) -> list[Any]:
    return [getattr(ctx, name) for name in Context.__slots__]


def _bought(st: StoreState) -> list[list[Any]]:
    keys = st.compiled.bought_keys
    return [[keys[slot], shopper, ts] for (slot, shopper), ts in st.bought.items() if slot in keys]


# --------------------------------------------------------------------------- decode


def decode_into(store: StoreUnit, data: bytes) -> bool:
    """Replace ``store``'s state with the snapshot ``data`` (of the same store id).

    Returns whether the snapshot was taken under the rules the store runs now.
    """
    with _no_collection():
        return _decode_into(store, data)


def _decode_into(store: StoreUnit, data: bytes) -> bool:
    doc = unpack(data)
    if doc.get("store") != store.id:
        raise StateError(f"snapshot is of store {doc.get('store')!r}, not of {store.id!r}")
    try:
        _load(store, doc)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise StateError(f"store snapshot of {store.id!r} is damaged: {exc!r}") from exc
    return bool(doc.get("rules") == store.state.compiled.fingerprint)


def _load(store: StoreUnit, doc: dict[str, Any]) -> None:
    st = store.state
    clock = doc["clock"]
    store.clock = float("-inf") if clock is None else clock
    st.generation = doc["generation"]
    st.first_heard = doc["first_heard"]
    store.sweeping, store.draining = doc["sweeping"], doc["draining"]
    seq, timers = doc["timers"]
    # tuple.__new__ straight: a NamedTuple's own __new__ is a Python call per timer.
    new = tuple.__new__
    store.timers.load([new(Timer, (d, s, k, tuple(a))) for d, s, k, a in timers], seq)
    store.held_seq, held = doc["held"]
    store.held[:] = [Held(t, key, s, _event_from(e)) for t, key, s, e in held]
    store.recent_ids.clear()
    store.recent_ids.update(doc["dedup"])
    store.outbox[:] = [_ACTIONS[tag](*fields) for tag, *fields in doc["outbox"]]
    own = {z: z for z in st.registry.zones}
    zones = [own.get(z, z) for z in doc["zones"]]
    _load_presence(st.presence, doc["presence"], zones)
    staff_presence, offline = doc["staff"]
    _load_presence(st.staff.presence, staff_presence, zones)
    st.staff.offline = set(offline)
    _load_alerts(st, doc)
    leave, staff_leave = doc["leave_watch"]
    st.leave_watch, st.staff_leave_watch = set(leave), set(staff_leave)
    st.visits = dict(doc["visits"])
    st.seq_first = {(r, k): t for r, k, t in doc["seq_first"]}
    st.absence = {(r, k): _context_from(c) for r, k, c in doc["absence"]}
    st.counts = {(r, k): list(w) for r, k, w in doc["counts"]}
    slots = {name: slot for slot, name in st.compiled.bought_keys.items()}
    st.bought = {(slots[n], s): t for n, s, t in doc["bought"] if n in slots}
    st.devices = {d: (online, ts, battery) for d, online, ts, battery in doc["devices"]}
    st.last_heard.clear()
    st.last_heard.update(doc["last_heard"])
    st.unhealthy = dict(doc["unhealthy"])


def _event_from(fields: list[Any]) -> Any:
    tag, *values = fields
    return _EVENTS[tag](*values)


def _load_presence(tracker: PresenceTracker, rows: list[list[Any]], zones: list[Any]) -> None:
    """Zones come back as the registry's own strings, shared by every record."""

    def zone_of(value: Any) -> Any:
        return zones[value] if type(value) is int else value

    # Zone indices straight to the registry's strings; an unknown one (a zone since
    # removed) stays as written, through zone_of.
    by_index = dict(enumerate(zones))
    levels = _LEVELS
    states = tracker.states  # kept, not replaced: the hot path holds a reference to it
    states.clear()
    new = Presence.__new__  # every slot is set below: skip __init__'s defaults
    for row in rows:
        # Whole-row unpacking: a starred target would build a list per shopper.
        if len(row) == 10:
            subject, zone, since, last_seen, seen, last_zone, cand, visit, prev, learnt = row
            interval = levels.get(learnt) or quantize(learnt)
        else:
            subject, zone, since, last_seen, seen, last_zone, cand, visit, prev = row
            interval = None
        p = new(Presence)
        p.interval = interval
        here = None if zone is None else by_index.get(zone) or zone_of(zone)
        p.zone = here
        p.since, p.last_seen, p.prev_visit = since, last_seen, prev
        p.seen = last_seen if seen is None else seen
        p.visit_start = since if visit is None else visit
        p.last_zone = here if last_zone is None else by_index.get(last_zone) or zone_of(last_zone)  # type: ignore[assignment]
        p.cand = None if cand is None else _cand_from(cand, zone_of)
        states[subject] = p


_LEVELS = {level: level for level in INTERVALS}
"""A learnt interval as written -> the shared float of its level (most are one already)."""


_UNSEEN: Any = object()


def _load_alerts(st: StoreState, doc: dict[str, Any]) -> None:
    book = st.alerts
    book.alerts.clear()
    book.open_by_source.clear()
    specs: dict[str, AlertSpec | None] = {}
    store = st.store
    alerts = book.alerts
    for (
        alert_id, rule, zone, message, created, source_key, shopper, bell, summary, advisor,
        step, bands, declined, acked_at, acked_by, closed_at, ended_at, priority,
    ) in doc["alerts"]:  # fmt: skip
        spec = specs.get(rule, _UNSEEN)
        if spec is _UNSEEN:
            spec = specs[rule] = alert_spec(st, rule)
        if spec is not None:  # a rule since removed takes its alerts with it
            alerts[alert_id] = OpenAlert(
                alert_id, store, rule, spec, zone, message, created, source_key, shopper,
                bell, summary, advisor, step, bands, set(declined), acked_at, acked_by, closed_at,
                ended_at, priority,
            )  # fmt: skip
    book.reindex()
    for rule, key, alert_id in doc["open_by_source"]:
        if alert_id in book.alerts:
            book.open_by_source[(rule, key)] = alert_id
    for table, rows in zip(
        (book.unanswered, book.last_paged, book.last_raised), doc["alert_memory"], strict=True
    ):
        table.clear()
        table.update(((r, k), t) for r, k, t in rows)


def _context_from(values: list[Any]) -> Context:
    fields = dict(zip(Context.__slots__, values, strict=True))
    ctx = Context(fields["kind"], fields["store"], fields["ts"], fields["source"])
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx
