"""The stores of one cluster worker: the engine core per store, no Kafka in sight.

A worker holds an :class:`~floorwalker.engine.core.engine.Engine` for each store
it has seen since its partitions were last assigned. Each store gets an engine of
its own (built for that store's registry only) so that, with the event clock, a
store's clock is its own events' ``ts``, exactly as in replay: the partitions of
two stores are consumed at unrelated paces, and one router clock over both would
make the slower store's events late (``clock_skew``) and fire its timers early.
Guards and profiles are shared by every store of the worker (in memory, as in
replay, or in Redis).

:meth:`Shards.handle` runs one events record through the store's
:class:`~floorwalker.engine.runners.step.Step` and returns what to produce (the
actions topic's values, replay's ``{"at","topic","payload"}``) and the store's
snapshot to write back to the state table. The first record of a store after
start or a rebalance restores the store from the table (``load``) before it is
processed; :meth:`forget` drops every engine when partitions move. A table value
is the events offset the snapshot includes and the snapshot (:func:`pack_state`),
so that records the state already holds are skipped after a move.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo

from floorwalker.devices.decode import Decoder, DecoderSettings
from floorwalker.devices.events import Event
from floorwalker.devices.registry import Registry
from floorwalker.devices.topics import store_of
from floorwalker.engine.core.actions import Action, wire_payload
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.guards import GuardStore, InMemoryGuardStore
from floorwalker.engine.core.profiles import ProfileBook, ProfileSource
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.runners.cluster.names import action_record
from floorwalker.engine.runners.step import (
    DeadLetter,
    ErrorPolicy,
    EventClock,
    Step,
    log_and_continue,
)
from floorwalker.errors import StateError
from floorwalker.rules.model import RuleSet

Loader = Callable[[str], bytes | None]
"""``store -> table value`` (:func:`pack_state`) from the state table, or None if it has none."""

_STATE = struct.Struct(">4sq")
_STATE_MAGIC = b"FWKS"
NO_OFFSET = -1


def pack_state(offset: int, snapshot: bytes) -> bytes:
    """A table value: the events offset the snapshot includes, then ``snapshot_store`` bytes."""
    return _STATE.pack(_STATE_MAGIC, offset) + snapshot


def unpack_state(value: bytes) -> tuple[int, bytes]:
    """``(offset, snapshot)`` of a table value; raises ``StateError`` for a foreign one."""
    if len(value) < _STATE.size or value[:4] != _STATE_MAGIC:
        raise StateError("not a Floorwalker cluster state value")
    _magic, offset = _STATE.unpack_from(value)
    return offset, value[_STATE.size :]


@dataclass
class Outcome:
    """What one record did: values for the actions topic and the store's new state."""

    store: str
    records: list[bytes] = field(default_factory=list)
    snapshot: bytes | None = None
    """The table value to write (:func:`pack_state`); None when the record named no
    store this worker serves, or was already in the restored state (nothing to save)."""


class Shards:
    """Every store this worker has seen since its last assignment; see the module docstring."""

    def __init__(
        self,
        rules: RuleSet,
        registries: Mapping[str, Registry],
        *,
        profiles: ProfileSource | None = None,
        guards: GuardStore | None = None,
        engine_settings: EngineSettings | None = None,
        decoder_settings: DecoderSettings | None = None,
        on_error: ErrorPolicy = log_and_continue,
    ) -> None:
        self.rules = rules
        self.registries = dict(registries)
        self.profiles: ProfileSource = profiles if profiles is not None else ProfileBook()
        self.guards: GuardStore = guards if guards is not None else InMemoryGuardStore()
        self.engine_settings = engine_settings or EngineSettings()
        self.decoder_settings = decoder_settings or DecoderSettings()
        self.prefix = self.decoder_settings.prefix
        self.on_error = on_error
        self.decoder = Decoder(self.registries, self.decoder_settings)
        self._steps: dict[str, Step] = {}
        self._out: list[bytes] = []
        self.restored = 0
        """Stores restored from the table since start (a metric for tests and logs)."""
        self.skipped = 0
        """Records skipped because the restored state already included them."""
        self._applied: dict[str, int] = {}
        # A record whose store no registry has (or whose topic names none) goes
        # through an engine with no stores: the decoder dead-letters it.
        self._nowhere = self._step_for({})

    @property
    def stores(self) -> list[str]:
        """The stores held right now."""
        return sorted(self._steps)

    def engine(self, store: str) -> Engine | None:
        step = self._steps.get(store)
        return None if step is None else step.engine

    def forget(self) -> None:
        """Partitions moved: drop every store (the next record of one restores it)."""
        self._steps.clear()
        self._applied.clear()

    def handle(self, topic: str, payload: bytes, load: Loader, offset: int = NO_OFFSET) -> Outcome:
        """Run one events record (MQTT topic, payload bytes, its offset) through its store.

        A record at or before the offset the restored state already includes is
        skipped: the table can be ahead of the committed offsets (faust writes the
        changelog as it goes and commits offsets every second), and a record applied
        twice would be a late duplicate to the engine, not a replay.
        """
        store = store_of(topic, self.prefix)
        if store is None or store not in self.registries:
            self._run(self._nowhere, topic, payload)
            return Outcome(store or "", self._take())
        step = self._steps.get(store)
        if step is None:
            step = self._step_for({store: self.registries[store]})
            self._applied[store] = NO_OFFSET
            value = load(store)
            if value is not None:
                applied, snapshot = unpack_state(value)
                step.engine.restore_store(snapshot)
                self._applied[store] = applied
                self.restored += 1
            self._steps[store] = step
        if offset != NO_OFFSET and offset <= self._applied[store]:
            self.skipped += 1
            return Outcome(store)
        self._run(step, topic, payload)
        self._applied[store] = max(offset, self._applied[store])
        state = pack_state(self._applied[store], step.engine.snapshot_store(store))
        return Outcome(store, self._take(), state)

    # ------------------------------------------------------------------ internals

    def _step_for(self, registries: Mapping[str, Registry]) -> Step:
        engine = Engine(
            self.rules,
            registries,
            profiles=self.profiles,
            guards=self.guards,
            settings=self.engine_settings,
        )
        return Step(
            engine,
            self.decoder,
            clock=EventClock(),
            on_actions=self._actions,
            on_deadletter=self._dead,
            on_error=self.on_error,
        )

    def _run(self, step: Step, topic: str, payload: bytes) -> None:
        # The dead letters' clock, as replay's: the store's clock, 0.0 before any event.
        clock = step.engine.clock
        step(topic, payload, clock if clock > float("-inf") else 0.0)

    def _take(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def _actions(self, actions: list[Action], _cause: Event | None, _arrival: float) -> None:
        prefix, regs = self.prefix, self.registries
        self._out.extend(
            action_record(a.ts, a.topic(prefix), wire_payload(a, _tz(regs, a.store)))
            for a in actions
        )

    def _dead(self, letter: DeadLetter) -> None:
        self._out.append(action_record(letter.at, letter.topic, letter.payload()))


def _tz(registries: Mapping[str, Registry], store: str) -> tzinfo | None:
    registry = registries.get(store)
    return None if registry is None else registry.tzinfo
