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
from floorwalker.devices.events import Event, Rejection
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.actions import Action, Decision
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.profiles import ProfileSource
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.runners.step import (
    DeadLetter,
    ErrorPolicy,
    EventClock,
    Step,
    log_and_continue,
)
from floorwalker.rules.model import RuleSet


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
        self.engine = Engine(
            rules,
            registries,
            profiles=profiles,
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

    def feed(self, line: CaptureLine | Rejection, out: Out) -> None:
        self._out = out
        if isinstance(line, Rejection):
            self.step.reject(line)
            return
        self.step(line.topic, line.payload, self.arrival)
        self._moved()

    def _moved(self) -> None:
        clock = self.engine.clock
        if clock > float("-inf"):
            self.arrival = clock

    def finish(self, out: Out) -> None:
        self._out = out
        self.engine.flush(self.settings.tail_s)
        self._actions(self.engine.drain(), None, self.arrival)

    def _actions(self, actions: list[Action], _cause: Event | None, _arrival: float) -> None:
        out, prefix = self._out, self.prefix
        for action in actions:
            out(action.ts, action.topic(prefix), action.payload())

    def _dead(self, letter: DeadLetter) -> None:
        if self.settings.deadletters:
            self._out(letter.at, letter.topic, letter.payload())


def write_jsonl(stream: IO[bytes]) -> Out:
    def out(at: float, topic: str, payload: Any) -> None:
        stream.write(orjson.dumps({"at": at, "topic": topic, "payload": payload}) + b"\n")

    return out
