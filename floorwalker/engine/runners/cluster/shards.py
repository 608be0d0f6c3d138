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
processed; :meth:`forget` drops every engine when partitions move.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from floorwalker.devices.decode import Decoder, DecoderSettings
from floorwalker.devices.events import Event
from floorwalker.devices.registry import Registry
from floorwalker.devices.topics import store_of
from floorwalker.engine.core.actions import Action
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
from floorwalker.rules.model import RuleSet

Loader = Callable[[str], bytes | None]
"""``store -> snapshot bytes`` from the state table, or None if it has none."""


@dataclass
class Outcome:
    """What one record did: values for the actions topic and the store's new state."""

    store: str
    records: list[bytes] = field(default_factory=list)
    snapshot: bytes | None = None
    """None when the record named no store this worker serves (nothing to save)."""


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

    def handle(self, topic: str, payload: bytes, load: Loader) -> Outcome:
        """Run one events record (MQTT topic, payload bytes) through its store."""
        store = store_of(topic, self.prefix)
        if store is None or store not in self.registries:
            self._run(self._nowhere, topic, payload)
            return Outcome(store or "", self._take())
        step = self._steps.get(store)
        if step is None:
            step = self._step_for({store: self.registries[store]})
            data = load(store)
            if data is not None:
                step.engine.restore_store(data)
                self.restored += 1
            self._steps[store] = step
        self._run(step, topic, payload)
        return Outcome(store, self._take(), step.engine.snapshot_store(store))

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
        prefix = self.prefix
        self._out.extend(action_record(a.ts, a.topic(prefix), a.payload()) for a in actions)

    def _dead(self, letter: DeadLetter) -> None:
        self._out.append(action_record(letter.at, letter.topic, letter.payload()))
