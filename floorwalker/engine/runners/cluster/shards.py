"""The stores of one cluster worker: the engine core per store, no Kafka in sight.

A worker holds an :class:`~floorwalker.engine.core.engine.Engine` for each store
of its partitions that has state. Each store gets an engine of its own (built
for that store's registry only) so that, with the event clock, a store's clock
is its own events' ``ts``, exactly as in replay: the partitions of two stores
are consumed at unrelated paces, and one router clock over both would make the
slower store's events late (``clock_skew``) and fire its timers early. Guards
and profiles are shared by every store of the worker (in memory, as in replay,
or in Redis).

Everything here runs on one thread (the worker's core thread); the worker hands
it records and the time and takes back what to produce and what to save:

* :meth:`Shards.handle` runs one events record through its store's
  :class:`~floorwalker.engine.runners.step.Step` and returns the actions
  topic's values (replay's ``{"at","topic","payload"}``);
* :meth:`Shards.fire_due` (wall clock only) runs the timers due by now in every
  store and returns their actions; :meth:`Shards.next_wake` says when to call
  it next;
* :meth:`Shards.checkpoint` returns the table value (:func:`pack_state`: the
  events offset the state includes, then the store's snapshot) of every store
  that changed since the previous checkpoint;
* :meth:`Shards.own` takes the stores of a new assignment (their table values)
  and :meth:`Shards.release` marks every store as revoked until then.

Clocks. ``now=None`` is event time (``--clock event``): a store's clock is its
events' ``ts`` and a timer fires when the store's next event passes its due
time, as in replay. With ``now`` (``--clock wall``) a store's clock is the wall
clock, as on the edge, except while it *catches up*: a store restored from the
table after a move re-processes the records since its checkpoint on their own
``ts`` (``engine.feed``) until its partition reaches the end offset it had at
the assignment. The records a dead worker left behind then decide what they
would have decided, in their order, and only after that does the wall clock (and
with it every timer that fell due meanwhile) move on; a wall clock first would
see a shopper of the backlog as gone, and see them enter again.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo

from floorwalker.devices.decode import Decoder, DecoderSettings
from floorwalker.devices.events import Event
from floorwalker.devices.registry import Registry
from floorwalker.devices.topics import store_of
from floorwalker.engine.core.actions import Action, wire_payload
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.floor import StoreFloor, floor_view
from floorwalker.engine.core.guards import GuardStore, InMemoryGuardStore
from floorwalker.engine.core.profiles import ProfileBook, ProfileSource
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.runners.cluster.names import UNKNOWN_STORE, action_record
from floorwalker.engine.runners.metrics import Metrics
from floorwalker.engine.runners.step import (
    Clock,
    DeadLetter,
    ErrorPolicy,
    EventClock,
    Step,
    WallClock,
    log_and_continue,
)
from floorwalker.errors import StateError
from floorwalker.rules.model import RuleSet

_STATE = struct.Struct(">4sq")
_STATE_MAGIC = b"FWKS"
NO_OFFSET = -1
Now = Callable[[], float]


def pack_state(offset: int, snapshot: bytes) -> bytes:
    """A table value: the events offset the snapshot includes, then ``snapshot_store`` bytes."""
    return _STATE.pack(_STATE_MAGIC, offset) + snapshot


def unpack_state(value: bytes) -> tuple[int, bytes]:
    """``(offset, snapshot)`` of a table value; raises ``StateError`` for a foreign one."""
    if len(value) < _STATE.size or value[:4] != _STATE_MAGIC:
        raise StateError("not a Floorwalker cluster state value")
    _magic, offset = _STATE.unpack_from(value)
    return offset, value[_STATE.size :]


Record = tuple[str, bytes]
"""``(store, value)``: an actions record's key (the store id) and value."""


@dataclass
class Outcome:
    """What one events record did."""

    store: str
    records: list[Record] = field(default_factory=list)
    wake: float | None = None
    """When a store this record touched needs the timer task next (wall clock only)."""


@dataclass
class _Unit:
    """One store held by this worker."""

    step: Step
    partition: int | None
    applied: int = NO_OFFSET
    """The offset of the last events record the state includes."""
    owned: bool = True
    """False between a revoke and the next assignment: its state is no longer saved."""
    dirty: bool = False
    """Changed since the last checkpoint."""
    catching_up: bool = False


class Shards:
    """Every store this worker holds; see the module docstring."""

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
        now: Now | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.rules = rules
        self.registries = dict(registries)
        self.profiles: ProfileSource = profiles if profiles is not None else ProfileBook()
        self.guards: GuardStore = guards if guards is not None else InMemoryGuardStore()
        # The bridge drops an action id it has published: a decision re-made after a
        # move, which the shared guard store already holds, is sent again, not lost.
        self.engine_settings = dataclasses.replace(
            engine_settings or EngineSettings(), resend_decided=True
        )
        self.decoder_settings = decoder_settings or DecoderSettings()
        self.prefix = self.decoder_settings.prefix
        self.on_error = on_error
        self.now = now
        """The wall clock (``--clock wall``), or None for event time."""
        self.metrics = metrics
        """Dead letters always; decision latency and timer lateness with the wall clock."""
        self.decoder = Decoder(self.registries, self.decoder_settings)
        self._units: dict[str, _Unit] = {}
        self._catching: dict[int, int] = {}
        """partition -> the end offset a restored store of it catches up to."""
        self._out: list[Record] = []
        self.restored = 0
        """Stores restored from the table since start (a metric for tests and logs)."""
        self.skipped = 0
        """Records skipped because the restored state already included them."""
        # A record whose store no registry has (or whose topic names none) goes
        # through an engine with no stores: the decoder dead-letters it.
        self._nowhere = self._step_for({}, catching_up=False)

    @property
    def wall(self) -> bool:
        return self.now is not None

    @property
    def stores(self) -> list[str]:
        """The stores held right now."""
        return sorted(self._units)

    def engine(self, store: str) -> Engine | None:
        unit = self._units.get(store)
        return None if unit is None else unit.step.engine

    def floors(self) -> dict[str, StoreFloor]:
        """The floor picture of every store held now, each as of its own engine's clock."""
        out: dict[str, StoreFloor] = {}
        for store in sorted(self._units):
            out.update(floor_view(self._units[store].step.engine))
        return out

    def sync_metrics(self) -> None:
        """Bring :attr:`metrics` up to date with every held store's counters and gauges."""
        if self.metrics is not None:
            for unit in self._units.values():
                self.metrics.sync(unit.step.engine)

    def catching_up(self, store: str) -> bool:
        unit = self._units.get(store)
        return unit is not None and unit.catching_up

    # ------------------------------------------------------------------ records

    def handle(
        self, topic: str, payload: bytes, offset: int = NO_OFFSET, partition: int | None = None
    ) -> Outcome:
        """Run one events record (MQTT topic, payload bytes, offset, partition) through its store.

        A record at or before the offset the restored state already includes is
        skipped: the table can be ahead of the committed offsets (records after the
        commit come again after a move), and a record applied twice would be a late
        duplicate to the engine, not a replay.
        """
        store = store_of(topic, self.prefix)
        if store is None or store not in self.registries:
            self._run(self._nowhere, topic, payload)
            return Outcome(store or UNKNOWN_STORE, self._take())
        unit = self._units.get(store) or self._new_unit(store, partition, None)
        if offset != NO_OFFSET and offset <= unit.applied:
            self.skipped += 1
        else:
            self._run(unit.step, topic, payload)
            unit.applied = max(offset, unit.applied)
            unit.dirty = True
        wake = self._caught_up(partition, offset)
        mine = self._wake_of(unit)
        if mine is not None and (wake is None or mine < wake):
            wake = mine
        return Outcome(store, self._take(), wake)

    def handle_batch(
        self, items: Iterable[tuple[str, bytes, int, int | None]]
    ) -> tuple[list[Record], float | None]:
        """:meth:`handle` of ``(topic, payload, offset, partition)`` each; all the records
        and the earliest wake-up."""
        records: list[Record] = []
        wake: float | None = None
        for topic, payload, offset, partition in items:
            outcome = self.handle(topic, payload, offset, partition)
            records.extend(outcome.records)
            if outcome.wake is not None and (wake is None or outcome.wake < wake):
                wake = outcome.wake
        return records, wake

    # ------------------------------------------------------------------ timers

    def fire_due(self, now: float) -> list[Record]:
        """Wall clock: run every timer due by ``now`` in each store not catching up."""
        for store, unit in self._units.items():
            wake = self._wake_of(unit)
            if wake is None or wake > now:
                continue
            engine = unit.step.engine
            engine.advance_to(now)
            actions = engine.drain()
            if actions:
                self._actions(actions, None, now, store)
            unit.dirty = True
        return self._take()

    def next_wake(self) -> float | None:
        """When :meth:`fire_due` has something to do next (None: nothing pending)."""
        wakes = [w for w in map(self._wake_of, self._units.values()) if w is not None]
        return min(wakes, default=None)

    def _wake_of(self, unit: _Unit) -> float | None:
        if not self.wall or unit.catching_up:
            return None
        due = unit.step.engine.next_due()
        return None if due is None else due + self.engine_settings.lateness_s

    # ------------------------------------------------------------------ state

    def checkpoint(self) -> list[tuple[str, bytes]]:
        """``(store, table value)`` of every owned store changed since the last call."""
        out: list[tuple[str, bytes]] = []
        for store, unit in self._units.items():
            if unit.owned and unit.dirty:
                unit.dirty = False
                out.append(
                    (store, pack_state(unit.applied, unit.step.engine.snapshot_store(store)))
                )
        return out

    def release(self) -> None:
        """Partitions are being revoked: stop saving every store until :meth:`own` says."""
        for unit in self._units.values():
            unit.owned = False

    def own(
        self,
        assignment: Mapping[str, tuple[int, bytes | None]],
        backlog: Mapping[int, int] | None = None,
    ) -> None:
        """Take the stores of a new assignment: ``store -> (partition, table value)``.

        Stores held but not assigned any more are dropped. A store held all along
        keeps its state (it is at least as new as the table). Any other store with a
        table value is restored from it; with the wall clock it catches up while its
        partition is in ``backlog`` (``partition -> end offset``, where the records
        after the committed offset end).
        """
        self._catching = {p: end for p, end in (backlog or {}).items() if self.wall}
        for store in [s for s in self._units if s not in assignment]:
            del self._units[store]
        for store, (partition, value) in assignment.items():
            if store not in self.registries:
                continue
            unit = self._units.get(store)
            if unit is not None and value is not None and unpack_state(value)[0] > unit.applied:
                unit = None  # someone else moved it on meanwhile: the table wins
            if unit is not None:
                unit.owned, unit.partition = True, partition
            elif value is not None:
                self._new_unit(store, partition, value)

    def _new_unit(self, store: str, partition: int | None, value: bytes | None) -> _Unit:
        catching_up = partition is not None and partition in self._catching
        step = self._step_for({store: self.registries[store]}, catching_up=catching_up)
        unit = _Unit(step, partition, catching_up=catching_up)
        if value is not None:
            unit.applied, snapshot = unpack_state(value)
            step.engine.restore_store(snapshot)
            self.restored += 1
        self._units[store] = unit
        return unit

    def _caught_up(self, partition: int | None, offset: int) -> float | None:
        """Switch the stores of ``partition`` to the wall clock once its backlog is done;
        their earliest wake-up, if that happened."""
        if partition is None or partition not in self._catching:
            return None
        if offset < self._catching[partition] - 1:
            return None
        del self._catching[partition]
        assert self.now is not None  # backlogs are kept with the wall clock only
        wake: float | None = None
        for unit in self._units.values():
            if unit.partition == partition and unit.catching_up:
                unit.catching_up = False
                unit.step.clock = WallClock(self.now)
                mine = self._wake_of(unit)
                if mine is not None and (wake is None or mine < wake):
                    wake = mine
        return wake

    # ------------------------------------------------------------------ internals

    def _step_for(self, registries: Mapping[str, Registry], *, catching_up: bool) -> Step:
        engine = Engine(
            self.rules,
            registries,
            profiles=self.profiles,
            guards=self.guards,
            settings=self.engine_settings,
        )
        clock: Clock = (
            WallClock(self.now) if self.now is not None and not catching_up else EventClock()
        )
        store = next(iter(registries), UNKNOWN_STORE)
        return Step(
            engine,
            self.decoder,
            clock=clock,
            on_actions=lambda actions, cause, at: self._actions(actions, cause, at, store),
            on_deadletter=lambda letter: self._dead(letter, store),
            on_error=self.on_error,
        )

    def _run(self, step: Step, topic: str, payload: bytes) -> None:
        if isinstance(step.clock, WallClock):
            arrival = step.clock.now()
        else:
            # The dead letters' clock, as replay's: the store's clock, 0.0 before any event.
            clock = step.engine.clock
            arrival = clock if clock > float("-inf") else 0.0
        step(topic, payload, arrival)

    def _take(self) -> list[Record]:
        out, self._out = self._out, []
        return out

    def _actions(self, actions: list[Action], cause: Event | None, at: float, store: str) -> None:
        if self.metrics is not None and self.now is not None:
            # As the edge runner measures, but to the hand-off to the producer (the
            # bridge publishes one actions-topic round trip later).
            sent, event = self.now(), None if cause is None else (cause.ts, at)
            for action in actions:
                self.metrics.action_out(action, sent, event)
        prefix, regs = self.prefix, self.registries
        self._out.extend(
            (store, action_record(a.ts, a.topic(prefix), wire_payload(a, _tz(regs, a.store))))
            for a in actions
        )

    def _dead(self, letter: DeadLetter, store: str) -> None:
        if self.metrics is not None:
            self.metrics.deadletter(letter.reason, store=letter.store)
        self._out.append((store, action_record(letter.at, letter.topic, letter.payload())))


def _tz(registries: Mapping[str, Registry], store: str) -> tzinfo | None:
    registry = registries.get(store)
    return None if registry is None else registry.tzinfo
