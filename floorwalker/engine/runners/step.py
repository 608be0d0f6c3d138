"""One inbound message through the engine: the step every runner takes.

``decode -> ingest -> dead letter -> drain``, written once. A runner builds one
:class:`Step` around its engine and decoder, says how the clock moves (a
:class:`Clock`) and what to do with the results (callbacks), then calls
``step(topic, payload, arrival)`` for every message it receives:

* each event the decoder reads is ingested through the clock strategy:
  :class:`EventClock` (replay: the clock is the events' own ``ts``,
  ``engine.feed``) or :class:`WallClock` (live: advance to the wall clock once
  per message, then ``engine.ingest``);
* every :class:`~floorwalker.devices.events.Rejection`, the decoder's or the
  engine's, becomes a :class:`DeadLetter` handed to ``on_deadletter``. Decoder
  rejections are counted in ``engine.stats_for(store).rejected`` here; the engine counts
  its own;
* what the engine decided is drained after each event and handed to
  ``on_actions`` with its cause: the event, or ``None`` for actions of timers
  that fell due when the clock moved before the message;
* ``on_event`` (optional) sees each event the engine accepted, before its
  actions are handed on;
* an exception anywhere in the step (a bug: the decoder never raises) goes to
  the :data:`ErrorPolicy`; when it returns ``True`` the message is dead-lettered
  as ``internal_error`` and the runner goes on with the next one, otherwise the
  exception propagates. :func:`log_and_continue` is the default,
  :func:`reraise` the one for tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from floorwalker.devices.decode import Decoder
from floorwalker.devices.events import Event, Rejection
from floorwalker.devices.topics import deadletter_topic
from floorwalker.engine.core.actions import Action
from floorwalker.engine.core.engine import Engine

log = logging.getLogger("floorwalker.step")

UNKNOWN_STORE = "_unknown"
"""The store level of the dead-letter topic of a message whose store is not known."""


class DeadLetter(NamedTuple):
    """A rejected inbound message, ready to publish on its store's dead-letter topic."""

    topic: str
    rejection: Rejection

    @property
    def at(self) -> float:
        """When it arrived (the runner's clock): the payload's ``ts``."""
        return self.rejection.arrival

    @property
    def reason(self) -> str:
        return self.rejection.reason

    @property
    def store(self) -> str:
        """The store the message was for, or :data:`UNKNOWN_STORE`."""
        return self.rejection.store or UNKNOWN_STORE

    def payload(self) -> dict[str, object]:
        """The dead-letter payload of wire contract v1."""
        return self.rejection.deadletter_payload()


class Clock(Protocol):
    """How a step moves the engine clock and feeds it an event."""

    def before(self, engine: Engine) -> None:
        """Once per message, before it is decoded (e.g. advance to the wall clock)."""

    def ingest(self, engine: Engine, event: Event) -> str | None:
        """Give the engine one event; a rejection reason or ``None``."""

    def rejected_at(self, engine: Engine, arrival: float) -> float:
        """The ``ts`` of the dead letter of an event the engine refused."""


class EventClock:
    """Virtual time: the clock is the events' own ``ts`` (``engine.feed``); replay, backtests."""

    def before(self, engine: Engine) -> None:
        pass

    def ingest(self, engine: Engine, event: Event) -> str | None:
        return engine.feed(event)

    def rejected_at(self, engine: Engine, arrival: float) -> float:
        return engine.clock


class WallClock:
    """Live: advance the engine to ``now()`` before each message, then ingest its events."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.now = now

    def before(self, engine: Engine) -> None:
        engine.advance_to(self.now())

    def ingest(self, engine: Engine, event: Event) -> str | None:
        return engine.ingest(event)

    def rejected_at(self, engine: Engine, arrival: float) -> float:
        return arrival


ErrorPolicy = Callable[[Exception, str, bytes], bool]
"""``(exc, topic, payload) -> handled?``: ``True`` dead-letters the message as
``internal_error`` and goes on; ``False`` lets the exception propagate."""


def log_and_continue(exc: Exception, topic: str, payload: bytes) -> bool:
    """The default policy: a bug of ours, not bad input; log it, keep the message, go on."""
    log.error("internal error on a message from %s", topic, exc_info=exc)
    return True


def reraise(exc: Exception, topic: str, payload: bytes) -> bool:
    """Tests and strict replays: let the exception propagate."""
    return False


OnActions = Callable[[list[Action], Event | None, float], None]
"""``(actions, cause, arrival)``: actions one event caused, or (cause ``None``) timers'."""
OnDeadLetter = Callable[[DeadLetter], None]
OnEvent = Callable[[Event], None]


class Step:
    """Runs one inbound message through the engine; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        decoder: Decoder,
        *,
        clock: Clock,
        on_actions: OnActions,
        on_deadletter: OnDeadLetter,
        on_event: OnEvent | None = None,
        on_error: ErrorPolicy = log_and_continue,
    ) -> None:
        self.engine = engine
        self.decoder = decoder
        """A runner that reloads its registries sets a new one here; its prefix names
        the dead-letter topics."""
        self.clock = clock
        self.on_actions = on_actions
        self.on_deadletter = on_deadletter
        self.on_event = on_event
        self.on_error = on_error

    def __call__(
        self,
        topic: str,
        payload: bytes,
        arrival: float,
        decoded: Sequence[Event | Rejection] | None = None,
    ) -> None:
        """Process one message; ``decoded`` if the runner already ran :meth:`decode` on it."""
        try:
            engine = self.engine
            self.clock.before(engine)
            actions = engine.drain()
            if actions:
                self.on_actions(actions, None, arrival)
            if decoded is None:
                decoded = self.decoder.decode(topic, payload, arrival)
            self._process(topic, payload, arrival, decoded)
        except Exception as exc:
            if not self.on_error(exc, topic, payload):
                raise
            raw = payload.decode("utf-8", "replace")
            self.reject(Rejection("internal_error", topic, raw, "engine error", arrival, None))

    def decode(self, topic: str, payload: bytes, arrival: float) -> list[Event | Rejection]:
        """Only decode: for a runner that looks at a message before it processes it."""
        return self.decoder.decode(topic, payload, arrival)

    def _process(
        self, topic: str, payload: bytes, arrival: float, decoded: Sequence[Event | Rejection]
    ) -> None:
        engine = self.engine
        clock = self.clock
        for item in decoded:
            if isinstance(item, Rejection):
                self.reject(item)
                continue
            reason = clock.ingest(engine, item)
            if reason is not None:
                # Timers that fell due as the clock moved to this event go out before
                # its dead letter: they happened first (and a replay cut at a time
                # between them writes them first too).
                actions = engine.drain()
                if actions:
                    self.on_actions(actions, item, arrival)
                raw = payload.decode("utf-8", "replace")
                at = clock.rejected_at(engine, arrival)
                self.reject(Rejection(reason, topic, raw, reason, at, item.store), counted=True)
                continue
            if self.on_event is not None:
                self.on_event(item)
            actions = engine.drain()
            if actions:
                self.on_actions(actions, item, arrival)

    def reject(self, rejection: Rejection, *, counted: bool = False) -> None:
        """Dead-letter a rejected message; count it unless the engine already did."""
        if not counted:
            self.engine.stats_for(rejection.store).rejected[rejection.reason] += 1
        prefix = self.decoder.settings.prefix
        topic = deadletter_topic(rejection.store or UNKNOWN_STORE, prefix=prefix)
        self.on_deadletter(DeadLetter(topic, rejection))
