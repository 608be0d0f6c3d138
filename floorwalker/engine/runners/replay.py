"""Replay a capture through the engine on a virtual clock.

The clock is the capture's own timestamps: before each event the engine is
advanced to that event's ``ts``, so timers fire exactly when they would have
live, and a day of traffic replays in seconds. No broker, no Redis, and no real
budget: guard state is a fresh in-memory store.

Replay in pieces. ``feed(line, out, until=TS)`` refuses (returns a :class:`Stop`)
the first line whose ts is past ``TS``; a line's ts is that of its first message
(a batch's first item) as the decoder reads it, and a line the decoder rejects
from its first message on (malformed, unknown device, bad ts) has none and goes
with the lines before it. :meth:`Replay.pause` then moves the clock to ``TS``
(timers due by then fire) and :meth:`Replay.save_state` returns the state; a new
replay :meth:`Replay.load_state` and goes on with the lines from the stop on.
What both pieces write, one after the other, is what one replay writes. If the
capture ends before a line past ``TS``, the clock is left where the capture
ended (nothing fires early), so a later piece's tail starts there too.

State file: the magic ``FWRP``, a 2-byte big-endian schema version
(:data:`STATE_VERSION`), then one orjson document: the stores it serves, the
reorder window, the engine (:meth:`Engine.snapshot`), guard store and profile
book snapshots (base64), and the replay's own ``arrival`` (the dead letters'
clock) and where it stopped. The summary counters are not saved: each piece's
summary covers that piece only.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from floorwalker.devices.decode import Decoder, DecoderSettings
from floorwalker.devices.events import Event, Rejection
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.actions import Action, Decision, wire_payload
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.guards import InMemoryGuardStore
from floorwalker.engine.core.profiles import ProfileBook, ProfileSource
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.runners.step import (
    DeadLetter,
    ErrorPolicy,
    EventClock,
    Step,
    log_and_continue,
)
from floorwalker.errors import StateError
from floorwalker.rules.model import RuleSet

STATE_MAGIC = b"FWRP"
STATE_VERSION = 1
"""Bump when the state document changes shape (and teach :meth:`Replay.load_state` the old one)."""
_STATE_HEADER = struct.Struct(">4sH")


@dataclass(frozen=True)
class ReplaySettings:
    engine: EngineSettings = field(default_factory=EngineSettings)
    decoder: DecoderSettings = field(default_factory=DecoderSettings)
    tail_s: float = 86400.0
    """After the last message, let timers set by the capture fire for up to this long."""
    deadletters: bool = True
    """Also write the dead letters the live runner would publish."""
    on_error: ErrorPolicy = log_and_continue
    """What an internal error on a line does; tests use ``step.reraise``."""


@dataclass
class CaptureLine:
    number: int
    topic: str
    payload: bytes


class Capture:
    """A capture file read line by line; ``position`` (bytes read) drives progress bars."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.position = 0

    def __iter__(self) -> Iterator[CaptureLine | Rejection]:
        with self.path.open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                self.position += len(line)
                if line.strip():
                    yield _parse_line(number, line)


def read_capture(path: Path) -> Iterator[CaptureLine | Rejection]:
    """Yield capture lines; a line that is not a capture record yields a Rejection."""
    return iter(Capture(path))


def _parse_line(number: int, line: bytes) -> CaptureLine | Rejection:
    try:
        record = orjson.loads(line)
        topic = record["topic"]
        payload = record["payload"]
        if not isinstance(topic, str):
            raise TypeError("topic")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raw = line.decode("utf-8", "replace").rstrip("\n")
        detail = f"capture line {number} is not a capture record"
        return Rejection("malformed_json", "", raw, detail, 0.0, None)
    body = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
    return CaptureLine(number, topic, body)


Out = Callable[[float, str, Any], None]
"""Where replay writes: ``out(at, topic, payload)``."""


def _discard(at: float, topic: str, payload: Any) -> None:
    pass


class Replay:
    """Feeds capture lines to an engine and collects what it did."""

    def __init__(
        self,
        rules: RuleSet,
        registries: Mapping[str, Registry],
        profiles: ProfileSource,
        settings: ReplaySettings | None = None,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        self.settings = settings or ReplaySettings()
        self.zones = {store: reg.tzinfo for store, reg in registries.items()}
        """store -> its timezone: actions carry ``ts_local`` beside ``ts``"""
        self.guards = InMemoryGuardStore()
        self.profiles = profiles
        self.engine = Engine(
            rules,
            registries,
            profiles=profiles,
            guards=self.guards,
            settings=self.settings.engine,
            on_decision=on_decision,
        )
        self.decoder = Decoder(registries, self.settings.decoder)
        self.prefix = self.settings.decoder.prefix
        self.arrival = 0.0
        """The decoder's arrival time (dead letters' ``ts``): the engine clock after
        the last line, 0.0 before any event."""
        self._out: Out = _discard
        self.step = Step(
            self.engine,
            self.decoder,
            clock=EventClock(),
            on_actions=self._actions,
            on_deadletter=self._dead,
            on_error=self.settings.on_error,
        )

    def feed(
        self, line: CaptureLine | Rejection, out: Out, *, until: float | None = None
    ) -> Stop | None:
        """Process one line; with ``until``, a line past it is left alone and a Stop returned."""
        self._out = out
        if isinstance(line, Rejection):
            self.step.reject(line)
            return None
        if until is None:
            self.step(line.topic, line.payload, self.arrival)
        else:
            decoded = self.step.decode(line.topic, line.payload, self.arrival)
            ts = _first_ts(decoded)
            if ts is not None and ts > until:
                return Stop(line.number, ts)
            self.step(line.topic, line.payload, self.arrival, decoded)
        self._moved()
        return None

    def line_ts(self, line: CaptureLine | Rejection) -> float | None:
        """A line's ts as ``feed(until=...)`` reads it; None if it has none."""
        if isinstance(line, Rejection):
            return None
        return _first_ts(self.step.decode(line.topic, line.payload, self.arrival))

    def _moved(self) -> None:
        clock = self.engine.clock
        if clock > float("-inf"):
            self.arrival = clock

    def finish(self, out: Out) -> None:
        """The end of the whole capture: let what it set in motion happen (the tail)."""
        self._out = out
        self.engine.flush(self.settings.tail_s)
        self._actions(self.engine.drain(), None, self.arrival)

    def pause(self, until: float, out: Out) -> None:
        """The end of a piece that stopped before a line past ``until``: move the clock
        there (timers due by then fire and are written); no tail."""
        self._out = out
        self.engine.advance_to(until)
        self._actions(self.engine.drain(), None, self.arrival)

    def save_state(self, *, until: float | None = None, stop: Stop | None = None) -> bytes:
        """Everything a later replay needs to go on where this one stopped."""
        profiles = self.profiles
        if not isinstance(profiles, ProfileBook):
            raise StateError("replay state can be saved only with profiles from a file")
        doc = {
            "stores": sorted(self.engine.stores),
            "lateness_s": self.settings.engine.lateness_s,
            "engine": _b64(self.engine.snapshot()),
            "guards": _b64(self.guards.snapshot()),
            "profiles": _b64(profiles.snapshot()),
            "replay": {
                "arrival": self.arrival,
                "until": until,
                "next_line": None if stop is None else stop.line,
                "next_ts": None if stop is None else stop.ts,
            },
        }
        return _STATE_HEADER.pack(STATE_MAGIC, STATE_VERSION) + orjson.dumps(doc)

    def load_state(self, data: bytes) -> ReplayState:
        """Take back what :meth:`save_state` wrote, into a replay built from the same
        stores and reorder window (the rules may differ: taken like a reload).

        Raises ``StateError`` for a damaged or foreign blob, an unknown version, other
        stores or another reorder window; after one, build a new replay.
        """
        doc = _state_document(data)
        try:
            stores = [str(s) for s in doc["stores"]]
            lateness = float(doc["lateness_s"])
            engine, guards, profiles = (_unb64(doc[k]) for k in ("engine", "guards", "profiles"))
            own = doc["replay"]
            state = ReplayState(
                arrival=float(own["arrival"]),
                until=_opt_float(own["until"]),
                next_line=None if own["next_line"] is None else int(own["next_line"]),
                next_ts=_opt_float(own["next_ts"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise StateError(f"replay state is damaged: {exc!r}") from exc
        serving = sorted(self.engine.stores)
        if stores != serving:
            raise StateError(
                f"replay state was saved for store(s) {', '.join(stores) or '-'}; "
                f"the registries given serve {', '.join(serving) or '-'}"
            )
        if lateness != self.settings.engine.lateness_s:
            raise StateError(
                f"replay state was saved with --lateness {lateness:g}s, "
                f"not {self.settings.engine.lateness_s:g}s"
            )
        if not isinstance(self.profiles, ProfileBook):
            raise StateError("replay state can be loaded only with profiles from a file")
        self.engine.restore(engine)
        self.guards.restore(guards)
        self.profiles.restore(profiles)
        self.arrival = state.arrival
        return state

    def _actions(self, actions: list[Action], _cause: Event | None, _arrival: float) -> None:
        out, prefix, zones = self._out, self.prefix, self.zones
        for action in actions:
            out(action.ts, action.topic(prefix), wire_payload(action, zones.get(action.store)))

    def _dead(self, letter: DeadLetter) -> None:
        if self.settings.deadletters:
            self._out(letter.at, letter.topic, letter.payload())


@dataclass(frozen=True)
class Stop:
    """Where a piece stopped: the first line not processed, and its ts."""

    line: int
    ts: float


@dataclass(frozen=True)
class ReplayState:
    """The replay's own part of a state file (the rest is the engine's)."""

    arrival: float
    until: float | None
    next_line: int | None
    next_ts: float | None


def _state_document(data: bytes) -> dict[str, Any]:
    if len(data) < _STATE_HEADER.size or data[:4] != STATE_MAGIC:
        raise StateError(
            f"not a Floorwalker replay state (expected it to start with {STATE_MAGIC!r})"
        )
    _magic, version = _STATE_HEADER.unpack_from(data)
    if version != STATE_VERSION:
        raise StateError(
            f"replay state schema version {version} is not one this build reads"
            f" (version {STATE_VERSION}); continue it with the Floorwalker release that wrote it"
        )
    try:
        doc = orjson.loads(data[_STATE_HEADER.size :])
    except orjson.JSONDecodeError as exc:
        raise StateError(f"replay state is damaged: {exc}") from exc
    if not isinstance(doc, dict):
        raise StateError("replay state is damaged: the document is not an object")
    return doc


def _first_ts(decoded: list[Event | Rejection]) -> float | None:
    if not decoded:
        return None
    first = decoded[0]
    return None if isinstance(first, Rejection) else first.ts


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected base64 text, got {type(value).__name__}")
    return base64.b64decode(value, validate=True)


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def parse_until(text: str) -> float:
    """``--until``: epoch seconds, or an ISO-8601 time with an offset (``Z``, ``+08:00``)."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"not a finite time: {text!r}")
        return value
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (epoch seconds, or ISO-8601 such as 2026-11-23T09:30:00+08:00)"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; add one, e.g. {text}+08:00 or {text}Z")
    return when.timestamp()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_state(path: Path) -> bytes:
    """A state file's bytes; a missing or unreadable one is a ``StateError``."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StateError(f"cannot read replay state {path}: {exc.strerror or exc}") from exc


def write_jsonl(stream: IO[bytes]) -> Out:
    def out(at: float, topic: str, payload: Any) -> None:
        stream.write(orjson.dumps({"at": at, "topic": topic, "payload": payload}) + b"\n")

    return out
