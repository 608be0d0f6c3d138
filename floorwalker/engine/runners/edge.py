"""The live edge runner: one process, one broker, one Redis, the engine in between.

One *core thread* (the caller of :meth:`EdgeRunner.run`) owns the engine, the
decoder and every publish: it waits for the broker no longer than until the
next timer is due, advances the engine clock to the wall clock, decodes,
ingests, publishes what the engine decided and then acknowledges the message.
With ``network_loop = "core"`` (the default) that wait is a ``select`` on the
MQTT socket itself (:class:`~floorwalker.engine.runners.mqtt.CoreLoopLink`:
no network thread, no hand-off); with ``"thread"`` paho's network thread
fills the inbox and the core thread waits on it. The engine is
single-threaded by construction; nothing else touches it.

Intake, message by message (the accounting is exact: every message the broker
delivers ends in exactly one of three outcomes, each counted in
``floorwalker_messages_in_total{outcome}``):

1. The link puts it on the inbox (bounded in messages and bytes); a full inbox
   makes the link wait, so the broker keeps the backlog (see
   :mod:`~floorwalker.engine.runners.mqtt`). Nothing is dropped.
2. The core thread takes it, opens its Redis budget (``RedisBreaker.begin``)
   and, for a sighting message, decodes it first: if every sighting in it is
   older than ``shed_sightings_after_s`` (device ``ts``), the message is
   **shed** - it no longer says where anyone is, and catching up matters more.
3. Otherwise the step runs it through the engine: it is **processed**, or
   **dead-lettered** if any of it was rejected (the dead letter is published).
4. What it decided is published through the outbox (a known action id is not
   published twice), and only then is the message acknowledged to the broker.

Redis on the core thread is bounded by the breaker
(:mod:`~floorwalker.engine.stores.breaker`): a Redis that does not answer costs
an event 50 ms at most; then alerts fail open and offers fail closed, at once
while Redis is away; the
alert journal's missed writes are written as soon as it answers again.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import orjson

from floorwalker.devices.decode import Decoder, DecoderSettings
from floorwalker.devices.events import Checkout, CouponRedeemed, Event, PosItem, Rejection, Sighting
from floorwalker.devices.registry import load_registries
from floorwalker.devices.topics import inbound_filters
from floorwalker.engine.core.actions import Action, Alert, wire_payload
from floorwalker.engine.core.alerts import AlertJournal, NoJournal
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.guards import GuardStore, InMemoryGuardStore
from floorwalker.engine.core.profiles import ProfileBook, ProfileSource
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.runners.budgets import BudgetWatch
from floorwalker.engine.runners.checkpoint import Checkpointer
from floorwalker.engine.runners.floorfeed import FloorFeed
from floorwalker.engine.runners.inbox import Inbox
from floorwalker.engine.runners.memory import MemoryRelease
from floorwalker.engine.runners.metrics import OUTCOMES, Metrics
from floorwalker.engine.runners.mqtt import CoreLoopLink, Inbound, LinkSettings, MqttLink
from floorwalker.engine.runners.outbox import Outbox, default_directory
from floorwalker.engine.runners.settings import EdgeSettings
from floorwalker.engine.runners.step import DeadLetter, Step, WallClock
from floorwalker.errors import ConfigError, GuardStoreError, RuleSetError
from floorwalker.rules.loader import load_rules_for

log = logging.getLogger("floorwalker.edge")

IDLE_WAIT_S = 0.05
"""Longest wait on the inbox when no timer is due sooner (keeps metrics and reloads live)."""
BATCH = 256
"""Messages taken per wake-up before looking at the clock again."""
_SIGHTINGS = "/beacon/"


@dataclass
class _Backends:
    guards: GuardStore
    profiles: ProfileSource
    journal: AlertJournal
    history: Any | None = None
    recorder: Any | None = None
    """The report record (decisions, offers, redemptions to Redis streams)."""
    breaker: Any | None = None
    closers: list[Any] = field(default_factory=list)


def unsent_pages(
    records: list[dict[str, Any]], known: Callable[[str], bool], now: float, window_s: float = 600.0
) -> list[Action]:
    """The current page of each open journalled alert whose delivery the outbox never had.

    The journal is written before a page is published; a runner killed in
    between restores the alert as paged, and nothing would send the page. Only
    alerts created within ``window_s`` (the outbox's dedup window) count.
    """
    pages: list[Action] = []
    for rec in records:
        if any(rec.get(k) is not None for k in ("acked_at", "closed_at", "ended_at")):
            continue
        if float(rec.get("created") or 0.0) < now - window_s:
            continue
        declined = set(rec.get("declined") or ())
        band = next((b for b in reversed(rec.get("bands") or []) if b not in declined), None)
        if band is None:
            continue
        page = Alert(
            id=str(rec["id"]),
            store=str(rec["store"]),
            band=str(band),
            ts=now,
            rule=str(rec["rule"]),
            priority=str(rec.get("priority") or ""),
            zone=str(rec.get("zone") or ""),
            message=str(rec.get("message") or ""),
            step=int(rec.get("step") or 1),
            shopper=rec.get("summary"),
        )
        if not known(page.delivery_id):
            pages.append(page)
    return pages


def _all_stale(decoded: list[Event | Rejection], oldest: float) -> bool:
    """True if ``decoded`` is sightings only, every one older than ``oldest``."""
    return bool(decoded) and all(type(d) is Sighting and d.ts < oldest for d in decoded)


class EdgeRunner:
    """``with EdgeRunner(settings) as runner: runner.run()`` — or ``start()``/``stop()``."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.inbox: Inbox[Inbound] = Inbox(
            settings.queue_size, settings.inbox_bytes, size=Inbound.size
        )
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.memory = MemoryRelease()
        """Gives the heap back to the system once a backlog is over."""
        """Messages taken from the inbox, by outcome (processed, deadlettered, shed)."""
        self._letters = 0
        self._shed_after = settings.shed_sightings_after_s
        self.breaker: Any | None = None
        """The Redis breaker of the core thread's calls (None without Redis)."""
        self._journal: Any | None = None
        self._resent = 0
        self._stop = threading.Event()
        self._erase: queue.Queue[str] = queue.Queue()
        self._reload_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._stack = contextlib.ExitStack()
        self.engine: Engine | None = None
        self.checkpoint: Checkpointer | None = None
        """Store snapshots to Redis and back (None without Redis)."""
        self._running = False
        self._final_lock = threading.Lock()
        self._guard_errors_seen = 0
        self._reconnects_seen = 0
        self.metrics_port: int | None = None
        self.floor: FloorFeed | None = FloorFeed() if settings.http_port is not None else None
        """What the floor page shows, published by the core thread (None: no page)."""

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> EdgeRunner:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._stack.close()

    def _final_checkpoint(self) -> None:
        """The shutdown snapshot; only once the core loop no longer runs."""
        with self._final_lock:  # run() and stop() may both get here; one at a time
            if self.checkpoint is not None and self.engine is not None and not self._running:
                self.checkpoint.final(self.engine)

    def _open(self) -> None:
        s = self.settings
        registries = load_registries(s.registries)
        rules = load_rules_for(s.rules, registries)
        self.outbox = self._stack.enter_context(
            Outbox.open(s.outbox_dir or default_directory(), s.client_id)
        )
        backends = self._backends(s)
        self.history = backends.history
        self.recorder = backends.recorder
        self.breaker = backends.breaker
        self._journal = backends.journal if backends.breaker is not None else None
        self.engine = Engine(
            rules,
            registries,
            profiles=backends.profiles,
            guards=backends.guards,
            journal=backends.journal,
            on_decision=self.recorder.decision if self.recorder is not None else None,
            settings=EngineSettings(lateness_s=s.lateness_s, device_silence_s=s.device_silence_s),
        )
        if s.redis is not None:
            self._restore_snapshots(s.redis, s)
        # Journalled alerts are newer than the snapshot: restored after it, they win.
        journalled = self._load_journal(backends.journal)
        if journalled:
            restored = self.engine.restore_alerts(journalled)
            log.info("restored %d open alert(s) from Redis", restored)
        self.decoder = Decoder(registries, DecoderSettings(prefix=s.prefix))
        self.step = self._make_step(self.engine)
        self.registries = registries
        self.budgets = BudgetWatch(backends.guards, self.metrics)
        self.budgets.watch(rules, registries)
        if s.redis is not None:  # a shared store: read off the core thread
            self._stack.callback(self.budgets.start().stop)
        self._watch = _FileWatch(s.registries, s.rules)
        link = LinkSettings.to(s.broker, s.client_id, inbound_filters(prefix=s.prefix))
        self.core_link = (
            CoreLoopLink(link, self.inbox, outbox=self.outbox) if s.network_loop == "core" else None
        )
        self.link = self.core_link or MqttLink(link, self.inbox, outbox=self.outbox)
        if s.metrics_port is not None:
            server = self.metrics.serve(s.metrics_port)
            self._stack.callback(server.close)
            self.metrics_port = server.port
        self.link.start()
        self._stack.callback(self.link.stop)
        left = self.outbox.pending()
        if left:
            # Decided before the last stop (or kill) and never confirmed by the broker.
            self._resent = self.link.resend(left)
            log.info("outbox: publishing %d message(s) the broker had not confirmed", self._resent)
        unsent = unsent_pages(journalled, self.outbox.has, time.time())
        if unsent:
            # Journalled (written before the publish), then killed before the outbox had it.
            self._publish(unsent, time.time())
            self._resent += len(unsent)
            log.info("outbox: publishing %d journalled page(s) it never had", len(unsent))
        self.link.flush()

    def _load_journal(self, journal: AlertJournal) -> list[dict[str, Any]]:
        load = getattr(journal, "load", None)
        if load is None:
            return []
        try:
            records: list[dict[str, Any]] = load()
        except GuardStoreError as exc:
            self.metrics.redis_error()
            log.error("open alerts not restored, Redis did not answer: %s", exc)
            return []
        return records

    def _restore_snapshots(self, url: str, s: EdgeSettings) -> None:
        """Store snapshots back into the engine, before any traffic; then keep writing them."""
        from floorwalker.engine.stores.redis_snapshots import RedisSnapshotStore  # noqa: PLC0415

        assert self.engine is not None
        snapshots = RedisSnapshotStore.from_url(url, prefix=s.redis_prefix)
        self._stack.callback(snapshots.close)
        self.checkpoint = Checkpointer(snapshots, self.metrics, s.snapshot_every_s)
        report = self.checkpoint.restore(self.engine)
        log.info(
            "restored %d store snapshot(s), %d bytes, in %.1f ms%s",
            len(report.restored),
            report.size,
            report.seconds * 1000,
            f"; refused: {', '.join(report.refused)}" if report.refused else "",
        )
        self.checkpoint.start()

    def _backends(self, s: EdgeSettings) -> _Backends:
        if s.redis is None:
            book = ProfileBook.load(s.profiles) if s.profiles else ProfileBook()
            return _Backends(InMemoryGuardStore(), book, NoJournal())
        from floorwalker.engine.stores.breaker import BreakerSettings, RedisBreaker  # noqa: PLC0415
        from floorwalker.engine.stores.pos_history import PosHistory  # noqa: PLC0415
        from floorwalker.engine.stores.redis_alerts import RedisAlertJournal  # noqa: PLC0415
        from floorwalker.engine.stores.redis_guards import (  # noqa: PLC0415
            RedisGuardSettings,
            RedisGuardStore,
        )
        from floorwalker.engine.stores.redis_profiles import (  # noqa: PLC0415
            RedisProfiles,
            RedisProfileSettings,
        )
        from floorwalker.engine.stores.redis_record import ActivityRecorder  # noqa: PLC0415

        breaker = RedisBreaker(
            BreakerSettings(s.redis_budget_s, s.redis_call_timeout_s, s.redis_retry_s)
        )
        guards = RedisGuardStore.from_url(
            s.redis,
            RedisGuardSettings(prefix=s.redis_prefix + "guard:", owner=s.client_id),
            breaker=breaker,
            delivered=self.outbox.knows,
        )
        self._stack.callback(guards.close)
        profiles = self._stack.enter_context(RedisProfiles.from_url(s.redis, prefix=s.redis_prefix))
        journal = RedisAlertJournal.from_url(s.redis, prefix=s.redis_prefix, breaker=breaker)
        self._stack.callback(journal.close)
        history = self._stack.enter_context(PosHistory.from_url(s.redis, prefix=s.redis_prefix))
        record = ActivityRecorder.from_url(s.redis, prefix=s.redis_prefix)
        recorder = self._stack.enter_context(record)
        erasures = RedisProfileSettings(prefix=s.redis_prefix).erase_channel
        self._stack.enter_context(_EraseListener(s.redis, erasures, self._erase))
        return _Backends(guards, profiles, journal, history, recorder, breaker)

    def start(self) -> None:
        """Run the core loop in a background thread (tests, the demo)."""
        self._thread = threading.Thread(target=self.run, name="floorwalker-core", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the core loop; once it has stopped, write the final store snapshots."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self._thread = None
        self._final_checkpoint()

    def request_reload(self) -> None:
        """Reload rules and registries at the next loop turn (SIGHUP, file change)."""
        self._reload_requested.set()

    def install_signal_handlers(self) -> None:
        def on_hup(_sig: int, _frame: FrameType | None) -> None:
            self.request_reload()

        def on_term(_sig: int, _frame: FrameType | None) -> None:
            self._stop.set()

        signal.signal(signal.SIGHUP, on_hup)
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)

    # ------------------------------------------------------------------ core loop

    def run(self) -> None:
        engine = self.engine
        assert engine is not None, "use `with EdgeRunner(...)` first"
        next_sync = next_watch = time.monotonic()
        self._running = True
        try:
            self._loop(engine, next_sync, next_watch)
        finally:
            self._running = False
        self._final_checkpoint()

    def _loop(self, engine: Engine, next_sync: float, next_watch: float) -> None:
        checkpoint, floor = self.checkpoint, self.floor
        breaker = self.breaker
        while not self._stop.is_set():
            item = self._wait(engine)
            now = time.time()
            if breaker is not None:
                breaker.begin()  # the timers due now are one event for the Redis budget
            engine.advance_to(now)
            self._publish(engine.drain(), now)
            batch = 0
            while item is not None:
                self._handle_safely(engine, item)
                batch += 1
                item = self._next_nowait() if batch < BATCH else None
            mono = time.monotonic()
            if mono >= next_watch:
                next_watch = mono + self.settings.reload_poll_s
                if self._watch.changed():
                    self._reload_requested.set()
            self._erasures(engine)
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
            if self._journal is not None and self._journal.backlog:
                self._flush_journal()
            if mono >= next_sync:
                next_sync = mono + 1.0
                self._sync_metrics(engine)
                pressure = self.inbox.waits + self.outcomes["shed"]
                self.memory.tick(mono, pressure, self.inbox.qsize())
            if checkpoint is not None:
                checkpoint.tick(engine)  # serializes here; a writer thread talks to Redis
            if floor is not None:
                floor.tick(engine, mono)  # a frozen picture for the web thread, <= 2x/s
            self.link.flush()  # whatever this wake-up queued and did not write yet

    def _erasures(self, engine: Engine) -> None:
        while not self._erase.empty():
            shopper = self._erase.get_nowait()
            removed = engine.forget_shopper(shopper)
            if self.history is not None:
                self.history.forget(shopper)
            log.info("erased a shopper from this engine (%d entries)", removed)

    def _wait(self, engine: Engine) -> Inbound | None:
        due = engine.next_due()
        timeout = IDLE_WAIT_S
        if due is not None:
            timeout = min(timeout, max(0.0, due + self.settings.lateness_s - time.time()))
        if self.core_link is not None:  # the socket and the next timer in one wait
            if self.inbox.qsize() == 0:
                self.core_link.poll(timeout)
            return self._take()
        try:
            return self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queue.Empty:
            return None

    def _next_nowait(self) -> Inbound | None:
        if self.core_link is not None and self.inbox.qsize() == 0:
            self.core_link.flush()  # acks out first: the broker sends no more than its window
            self.core_link.poll(0.0)
        return self._take()

    def _take(self) -> Inbound | None:
        try:
            return self.inbox.get_nowait()
        except queue.Empty:
            return None

    def _handle_safely(self, engine: Engine, item: Inbound) -> None:
        """One message shed, or through the step (an internal error is logged and
        dead-lettered by the step's error policy); counted by outcome; then the ack."""
        if self.step.engine is not engine:
            self.step = self._make_step(engine)
        if self.breaker is not None:
            self.breaker.begin()
        decoded = None
        if self._shed_after > 0 and _SIGHTINGS in item.topic:
            decoded = self.step.decode(item.topic, item.payload, item.arrival)
            if _all_stale(decoded, time.time() - self._shed_after):
                self.outcomes["shed"] += 1
                self.link.ack(item)
                return
        letters = self._letters
        self.step(item.topic, item.payload, item.arrival, decoded)
        self.outcomes["deadlettered" if self._letters != letters else "processed"] += 1
        self.link.ack(item)  # only now: a crash before this gets the message redelivered

    def _make_step(self, engine: Engine) -> Step:
        return Step(
            engine,
            self.decoder,
            clock=WallClock(),
            on_actions=self._on_actions,
            on_deadletter=self._deadletter,
            on_event=self._observe if self.history is not None else None,
        )

    def _observe(self, event: Event) -> None:
        if self.history is not None and isinstance(event, PosItem | CouponRedeemed | Checkout):
            self.history.observe(event)  # RFM input; a background writer, never blocks
            if self.recorder is not None:
                self.recorder.event(event)  # the report's redemptions; never blocks either

    def _on_actions(self, actions: list[Action], cause: Event | None, arrival: float) -> None:
        if cause is None:  # timers that fell due as the clock moved to now
            self._publish(actions, time.time())
        else:
            self._publish(actions, time.time(), (cause.ts, arrival))

    def _publish(
        self, actions: list[Action], now: float, event: tuple[float, float] | None = None
    ) -> None:
        """Publish; measure timer lateness (due -> publish) or, for actions an event
        caused (``event``: its device ``ts`` and arrival), the latency from each."""
        prefix, regs = self.settings.prefix, self.registries
        if self.recorder is not None:
            self.recorder.actions(actions)  # the report's offers (a queue append)
        for action in actions:
            tz = regs[action.store].tzinfo if action.store in regs else None
            body = orjson.dumps(wire_payload(action, tz))
            if self.link.publish(action.topic(prefix), body, action.delivery_id) is None:
                log.info("not publishing %s again (the outbox has it)", action.delivery_id)
                continue
            self.metrics.action_out(action, time.time(), event)
        if actions:
            self.link.flush()  # an action goes out now, not at the end of the wake-up

    def _deadletter(self, letter: DeadLetter) -> None:
        self._letters += 1
        self.link.publish(letter.topic, orjson.dumps(letter.payload()))
        self.metrics.deadletter(letter.reason, store=letter.store)

    def _flush_journal(self) -> None:
        """Alert journal writes missed while Redis was away: written once it answers."""
        journal = self._journal
        if journal is not None and self.breaker is not None and not self.breaker.is_open:
            self.breaker.begin()
            written = journal.flush()
            if written:
                log.info("alert journal: %d missed write(s) caught up", written)

    def _sync_metrics(self, engine: Engine) -> None:
        self.metrics.sync(engine)
        for _ in range(engine.stats.guard_errors - self._guard_errors_seen):
            self.metrics.redis_error()
        self._guard_errors_seen = engine.stats.guard_errors
        for _ in range(self.link.reconnects - self._reconnects_seen):
            self.metrics.reconnect()
        self._reconnects_seen = self.link.reconnects
        self.metrics.queue_depth(self.inbox.qsize())
        self.metrics.outbox_pending(self.link.pending)
        if self.settings.redis is None:  # in memory: the core thread's own, no I/O
            self.budgets.poll(engine.clock)
        self.metrics.intake(self.outcomes, self.inbox.waits, self.inbox.nbytes)
        outbox = getattr(self, "outbox", None)
        if outbox is not None:
            self.metrics.outbox(outbox.duplicates, self._resent)
        if self.breaker is not None:
            backlog = self._journal.backlog if self._journal is not None else 0
            self.metrics.redis_breaker(self.breaker, backlog)

    # ------------------------------------------------------------------ hot reload

    def reload(self) -> bool:
        """Load rules and registries again; on any error keep what runs and say why."""
        engine = self.engine
        assert engine is not None
        try:
            registries = load_registries(self.settings.registries)
            rules = load_rules_for(self.settings.rules, registries)
        except (RuleSetError, ConfigError) as exc:
            log.error("reload refused, the running rules stay:\n%s", exc)
            self.metrics.reload("refused")
            return False
        engine.reload(rules, registries)
        self.decoder = Decoder(registries, DecoderSettings(prefix=self.settings.prefix))
        self.step.decoder = self.decoder
        self.registries = registries
        self.budgets.watch(rules, registries)
        self.metrics.reload("ok")
        log.info("reloaded %d rule(s) for %d store(s)", len(rules.rules), len(registries))
        return True


class _EraseListener:
    """Hands erasure requests from Redis pub/sub to the core thread (which owns the engine)."""

    def __init__(self, url: str, channel: str, inbox: queue.Queue[str]) -> None:
        import redis  # noqa: PLC0415

        self._client = redis.Redis.from_url(url, socket_connect_timeout=1.0)
        self._channel = channel
        self._inbox = inbox
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="floorwalker-erase", daemon=True)

    def __enter__(self) -> _EraseListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._client.close()

    def _listen(self) -> None:
        import redis  # noqa: PLC0415

        while not self._stop.is_set():
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(self._channel)
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is not None and isinstance(msg.get("data"), bytes):
                        self._inbox.put(msg["data"].decode("utf-8", "replace"))
            except redis.RedisError:
                self._stop.wait(1.0)  # Redis away: erasures wait until it is back


class _FileWatch:
    """Notices edits to rule and registry files by their modification times."""

    def __init__(self, registries: tuple[Any, ...], rules_dir: Any) -> None:
        from pathlib import Path  # noqa: PLC0415

        self._registries = [Path(p) for p in registries]
        self._rules = Path(rules_dir)
        self._seen = self._snapshot()

    def _snapshot(self) -> dict[str, float]:
        files = list(self._registries)
        if self._rules.is_dir():
            files += sorted(self._rules.glob("*.y*ml"))
        stamp: dict[str, float] = {}
        for f in files:
            with contextlib.suppress(OSError):
                stat = f.stat()
                stamp[str(f)] = stat.st_mtime_ns + stat.st_size
        return stamp

    def changed(self) -> bool:
        now = self._snapshot()
        if now != self._seen:
            self._seen = now
            return True
        return False


@contextlib.contextmanager
def running(settings: EdgeSettings) -> Iterator[EdgeRunner]:
    """An edge runner with its core loop in a background thread (tests, the demo)."""
    with EdgeRunner(settings) as runner:
        runner.start()
        try:
            yield runner
        finally:
            runner.stop()
