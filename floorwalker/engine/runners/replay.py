"""Replay a capture through the engine on a virtual clock.

The clock is the capture's own timestamps: before each event the engine is
advanced to that event's ``ts``, so timers fire exactly when they would have
live, and a day of traffic replays in seconds. No broker, no Redis, and no real
budget: guard state is a fresh in-memory store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from floorwalker.devices.decode import Decoder, DecoderSettings
from floorwalker.devices.events import Rejection
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.actions import Decision
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.profiles import ProfileSource
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.rules.model import RuleSet


@dataclass(frozen=True)
class ReplaySettings:
    engine: EngineSettings = field(default_factory=EngineSettings)
    decoder: DecoderSettings = field(default_factory=DecoderSettings)
    tail_s: float = 86400.0
    """After the last message, let timers set by the capture fire for up to this long."""
    deadletters: bool = True
    """Also write the dead letters the live runner would publish."""


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
        self.engine = Engine(
            rules,
            registries,
            profiles=profiles,
            settings=self.settings.engine,
            on_decision=on_decision,
        )
        self.decoder = Decoder(registries, self.settings.decoder)
        self.prefix = self.settings.decoder.prefix

    def feed(self, line: CaptureLine | Rejection, out: Callable[[float, str, Any], None]) -> None:
        engine = self.engine
        if isinstance(line, Rejection):
            self._dead(line, out)
            return
        arrival = engine.clock if engine.clock > float("-inf") else 0.0
        for item in self.decoder.decode(line.topic, line.payload, arrival):
            if isinstance(item, Rejection):
                self._dead(item, out)
                continue
            reason = engine.feed(item)
            if reason is not None:
                raw = line.payload.decode("utf-8", "replace")
                rej = Rejection(reason, line.topic, raw, reason, engine.clock, item.store)
                self._dead(rej, out, counted=True)
            self._emit(out)

    def finish(self, out: Callable[[float, str, Any], None]) -> None:
        self.engine.flush(self.settings.tail_s)
        self._emit(out)

    def _emit(self, out: Callable[[float, str, Any], None]) -> None:
        for action in self.engine.drain():
            out(action.ts, action.topic(self.prefix), action.payload())

    def _dead(
        self, rej: Rejection, out: Callable[[float, str, Any], None], *, counted: bool = False
    ) -> None:
        if not counted:  # the engine already counts what it rejects itself
            self.engine.stats.rejected[rej.reason] += 1
        if self.settings.deadletters:
            store = rej.store or "_unknown"
            out(rej.arrival, f"{self.prefix}/{store}/deadletter", rej.deadletter_payload())


def write_jsonl(stream: IO[bytes]) -> Callable[[float, str, Any], None]:
    def out(at: float, topic: str, payload: Any) -> None:
        stream.write(orjson.dumps({"at": at, "topic": topic, "payload": payload}) + b"\n")

    return out
