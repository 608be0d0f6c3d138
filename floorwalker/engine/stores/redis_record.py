"""The live runner's record for campaign reports: decisions, offers, redemptions, in Redis.

``floorwalker report --redis URL`` builds the same report from a live runner as
from a replay's files. The edge runner hands this recorder every decision, every
offer it publishes and every POS coupon line it accepts, on its core thread;
that costs a dict and a queue append, never a Redis round trip. A writer thread
appends them to three streams (``P`` = the runner's Redis prefix)::

    P record:decisions     field d: the decision as JSON (Decision.to_json)
    P record:offers        field o: {ts, store, shopper, rule, offer, code, expires}
    P record:redemptions   field r: {ts, store, receipt, code, shopper}

Checkouts are not recorded again: :mod:`.pos_history` already keeps every
loyalty checkout (``P pos:checkouts``), with its shopper resolved from the
receipt, and the report reads them there (anonymous checkouts convert nobody).

Retention: entries are trimmed ``retention_s`` (35 days) after they were written
(``XADD ... MINID ~``, the entry id being Redis' time of the write) and each stream
is capped at about ``maxlen`` entries. The queue is bounded (``queue_max``):
past it the oldest entries are dropped and counted, so a Redis outage costs the
record, never the engine. A failed write is retried after a back-off, and may
then append an entry twice (the reply of a timed-out XADD is unknown): readers
drop duplicates (a decision by its candidate, action and reason; an offer by its
code; a redemption by store, receipt and code).

Privacy: :func:`forget_shopper_records` deletes a shopper's entries (with
``profiles forget``); entries carry pseudonymous tokens only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import orjson
from redis import Redis
from redis.exceptions import RedisError

from floorwalker.devices.events import CouponRedeemed
from floorwalker.engine.core.actions import Action, Decision, Offer
from floorwalker.engine.stores._redis import connect, store_errors, text

log = logging.getLogger(__name__)

STREAMS = {"decisions": "d", "offers": "o", "redemptions": "r"}
"""stream name (after ``{prefix}record:``) -> the one field holding the JSON"""


@dataclass(frozen=True, slots=True)
class RecordSettings:
    prefix: str = "fw:"
    retention_s: float = 35 * 86400.0
    maxlen: int = 2_000_000
    """Approximate cap of each stream."""
    queue_max: int = 100_000
    batch: int = 500
    poll_s: float = 0.25
    backoff_min_s: float = 0.1
    backoff_max_s: float = 5.0
    socket_timeout_s: float = 5.0
    """Only the writer thread and report reads wait on it, never an event."""
    connect_timeout_s: float = 1.0
    read_count: int = 10_000

    def stream(self, name: str) -> str:
        return f"{self.prefix}record:{name}"


@dataclass(slots=True)
class RecordStats:
    queued: int = 0
    written: int = 0
    dropped: int = 0
    write_errors: int = 0


class ActivityRecorder:
    """Queues what the engine did and writes it to Redis streams from a thread of its own."""

    def __init__(
        self, client: Redis, settings: RecordSettings | None = None, *, own_client: bool = False
    ) -> None:
        self._redis = client
        self.settings = settings or RecordSettings()
        self._own_client = own_client
        self.stats = RecordStats()
        self._queue: deque[tuple[str, bytes]] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._writing = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "fw:") -> ActivityRecorder:
        settings = replace(RecordSettings(), prefix=prefix)
        client = connect(
            url,
            socket_timeout_s=settings.socket_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        )
        return cls(client, settings, own_client=True)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ActivityRecorder:
        self._thread = threading.Thread(target=self._run, name="fw-record-write", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._own_client:
            self._redis.close()

    def wait_idle(self, timeout: float) -> bool:
        """Until everything queued is written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._queue or self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # ------------------------------------------------------------------ the core thread

    def decision(self, d: Decision) -> None:
        self._put("decisions", orjson.dumps(d.to_json()))

    def actions(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, Offer):
                doc = {
                    "ts": a.ts,
                    "store": a.store,
                    "shopper": a.shopper,
                    "rule": a.rule,
                    "offer": a.offer,
                    "code": a.code,
                    "expires": a.expires,
                }
                self._put("offers", orjson.dumps(doc))

    def event(self, event: object) -> None:
        if isinstance(event, CouponRedeemed):
            doc = {
                "ts": event.ts,
                "store": event.store,
                "receipt": event.receipt,
                "code": event.code,
                "shopper": event.shopper,
            }
            self._put("redemptions", orjson.dumps(doc))

    def _put(self, stream: str, body: bytes) -> None:
        queue = self._queue
        queue.append((stream, body))
        self.stats.queued += 1
        if len(queue) > self.settings.queue_max:
            queue.popleft()
            self.stats.dropped += 1
        self._wake.set()

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        backoff = self.settings.backoff_min_s
        while True:
            self._wake.wait(self.settings.poll_s)
            self._wake.clear()
            stopping = self._stopping.is_set()
            with self._lock:
                n = min(len(self._queue), self.settings.batch)
                batch = [self._queue.popleft() for _ in range(n)]
                self._writing = n
            if not batch:
                if stopping:
                    return
                continue
            if self._write(batch):
                backoff = self.settings.backoff_min_s
                self.stats.written += len(batch)
                retry = False
            elif stopping:
                self.stats.dropped += len(batch)
                retry = False
            else:
                with self._lock:
                    self._queue.extendleft(reversed(batch))
                retry = True
            with self._idle:
                self._writing = 0
                self._idle.notify_all()
            if retry:
                self._stopping.wait(backoff)
                backoff = min(2 * backoff, self.settings.backoff_max_s)
            if retry or self._queue:
                self._wake.set()

    def _write(self, batch: list[tuple[str, bytes]]) -> bool:
        s = self.settings
        oldest = f"{max(0, int((time.time() - s.retention_s) * 1000))}-0"
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for name, body in batch:
                    fields: dict[Any, Any] = {STREAMS[name]: body}
                    pipe.xadd(s.stream(name), fields, minid=oldest, approximate=True)
                for name in {name for name, _ in batch}:
                    pipe.xtrim(s.stream(name), maxlen=s.maxlen, approximate=True)
                pipe.execute()
        except RedisError as exc:
            self.stats.write_errors += 1
            log.warning("writing the report record failed, will retry: %s", exc)
            return False
        return True


# --------------------------------------------------------------------------- readers


def read_records(
    client: Redis, name: str, settings: RecordSettings | None = None, *, since: float = 0.0
) -> Iterator[dict[str, Any]]:
    """The JSON documents of stream ``name`` written since ``since`` (epoch s), oldest
    first, duplicates included; unreadable entries are skipped (and logged)."""
    settings = settings or RecordSettings()
    with store_errors(f"report record read ({name})"):
        for _, doc in _entries(client, name, settings, since):
            yield doc


def forget_shopper_records(
    client: Redis, shopper: str, settings: RecordSettings | None = None
) -> int:
    """Erase a shopper's entries from the record streams; how many."""
    settings = settings or RecordSettings()
    removed = 0
    keys = {"decisions": "subject", "offers": "shopper", "redemptions": "shopper"}
    with store_errors("report record erasure"):
        for name, key in keys.items():
            doomed = [
                eid for eid, doc in _entries(client, name, settings) if doc.get(key) == shopper
            ]
            for start in range(0, len(doomed), 500):
                removed += int(client.xdel(settings.stream(name), *doomed[start : start + 500]))
    return removed


def _entries(
    client: Redis, name: str, settings: RecordSettings, since: float = 0.0
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(entry id, document) of a stream, page by page, from ``since``."""
    stream, field = settings.stream(name), STREAMS[name]
    start = f"{max(0, int(since * 1000))}-0"
    while True:
        page: list[Any] = client.xrange(stream, min=start, count=settings.read_count) or []
        for entry_id, fields in page:
            start = "(" + text(entry_id)
            raw = fields.get(field, fields.get(field.encode()))
            try:
                doc = orjson.loads(raw) if raw is not None else None
            except orjson.JSONDecodeError:
                doc = None
            if isinstance(doc, dict):
                yield text(entry_id), doc
            else:
                log.warning("skipping an unreadable %s record entry", name)
        if len(page) < settings.read_count:
            return
