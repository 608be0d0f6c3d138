"""POS history for RFM scoring: one stream entry per loyalty checkout.

The live runner hands POS events to :meth:`PosHistory.observe` on its hot path;
that costs a few dict operations and a queue append, never a Redis round trip.
A background writer thread appends the checkouts to a Redis stream::

    P pos:checkouts     stream, fields store, receipt, shopper, ts, total

Retention: entries are trimmed ``retention_s`` (400 days) after they were
written - RFM scoring looks back 365 days - by ``XADD ... MINID ~`` (the
stream entry id is Redis' time of the write), and the stream is also capped at
about ``maxlen`` entries (``XTRIM MAXLEN ~`` after each written batch). Both are
approximate: Redis trims whole internal nodes (100 entries by default), so a
few entries may outlive the limit briefly. A shopper's entries are erased at
once by :func:`delete_checkouts_of`.

What is recorded — **checkouts only**, one entry per checkout line:

* item and coupon lines are never recorded themselves, so a receipt is counted
  once, whatever its lines;
* the shopper is the checkout line's ``shopper`` or, when the loyalty card was
  scanned on an earlier line of the same receipt, that line's shopper;
* the amount is the checkout's ``total``; a checkout without one falls back to
  the sum of ``qty * price`` of the receipt's item lines this process saw
  (0.0 when none were priced) — never both, so nothing is counted twice;
* a checkout with no shopper at all (no loyalty scan) is not recorded: RFM has
  nobody to credit it to.

Receipts are remembered from their first line to their checkout in a bounded
map (``receipts_max``, oldest forgotten first), so abandoned receipts cannot
grow memory. A failed write is retried after a back-off; that may append an
entry twice (the reply of a timed-out XADD is unknown), so readers drop
duplicates by (store, receipt, ts) — which also absorbs QoS 1 redeliveries.
The queue is bounded too (``queue_max``); past it the oldest checkouts are
dropped and counted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from array import array
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from redis import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from floorwalker.devices.events import Checkout, CouponRedeemed, PosItem
from floorwalker.engine.stores._redis import connect, store_errors, text

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PosHistorySettings:
    prefix: str = "fw:"
    maxlen: int = 5_000_000
    """Approximate cap of the stream (about a year of a mid-size chain's loyalty checkouts)."""
    retention_s: float = 400 * 86400.0
    """Entries older than this (by when they were written) are trimmed; RFM uses 365 days."""
    socket_timeout_s: float = 5.0
    """Only the writer thread and bulk reads wait on it, never an event."""
    connect_timeout_s: float = 1.0
    queue_max: int = 100_000
    receipts_max: int = 10_000
    batch: int = 500
    poll_s: float = 0.25
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 5.0
    read_count: int = 10_000
    """Entries per XRANGE page when reading the history."""

    @property
    def stream(self) -> str:
        return f"{self.prefix}pos:checkouts"


@dataclass(slots=True)
class PosHistoryStats:
    queued: int = 0
    written: int = 0
    anonymous: int = 0
    """Checkouts without any shopper: not recorded."""
    dropped: int = 0
    """Checkouts lost to a full queue (Redis away too long), or at close."""
    write_errors: int = 0


class CheckoutRecord(NamedTuple):
    store: str
    receipt: str
    shopper: str
    ts: float
    total: float


class Checkouts(NamedTuple):
    """The history as arrays.

    Entry ``i`` is ``shoppers[shopper[i]]`` paying ``total[i]`` at ``ts[i]``.
    """

    shopper: npt.NDArray[np.int64]
    ts: npt.NDArray[np.float64]
    total: npt.NDArray[np.float64]
    shoppers: list[str]


class _Receipt:
    __slots__ = ("items_total", "shopper")

    def __init__(self) -> None:
        self.shopper: str | None = None
        self.items_total = 0.0


class PosHistory:
    """Records loyalty checkouts to the Redis stream without blocking the caller."""

    def __init__(
        self,
        client: Redis,
        settings: PosHistorySettings | None = None,
        *,
        own_client: bool = False,
    ) -> None:
        self._redis = client
        self.settings = settings or PosHistorySettings()
        self._own_client = own_client
        self.stats = PosHistoryStats()
        self._receipts: OrderedDict[tuple[str, str], _Receipt] = OrderedDict()
        """Touched by the caller's thread only."""
        self._queue: deque[CheckoutRecord] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._writing = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_url(
        cls, url: str, settings: PosHistorySettings | None = None, *, prefix: str | None = None
    ) -> PosHistory:
        """Connect to ``redis://host:port/db``; ``prefix`` overrides ``settings.prefix``."""
        settings = settings or PosHistorySettings()
        if prefix is not None:
            settings = replace(settings, prefix=prefix)
        client = connect(
            url,
            socket_timeout_s=settings.socket_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        )
        return cls(client, settings, own_client=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PosHistory:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._write_loop, name="fw-pos-write", daemon=True
            )
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (one attempt, within ``timeout``), stop the writer."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._own_client:
            self._redis.close()

    def __enter__(self) -> PosHistory:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued checkout is in Redis; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._writing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # ------------------------------------------------------------------ hot path

    def observe(self, event: object) -> None:
        """Take any accepted inbound event; POS lines are used, everything else ignored.

        Feed it every item, coupon and checkout line (not only checkouts), so a
        loyalty card scanned on an item line still credits the checkout.
        """
        if isinstance(event, PosItem):
            line = self._receipt(event.store, event.receipt)
            if event.shopper:
                line.shopper = event.shopper
            if event.price is not None:
                line.items_total += event.qty * event.price
        elif isinstance(event, CouponRedeemed):
            if event.shopper:
                self._receipt(event.store, event.receipt).shopper = event.shopper
        elif isinstance(event, Checkout):
            self.record_checkout(event)

    def record_checkout(self, event: Checkout) -> None:
        """A checkout line: credit it to the receipt's shopper, or count it anonymous."""
        memo: _Receipt | None = self._receipts.pop((event.store, event.receipt), None)
        shopper = event.shopper or (memo.shopper if memo is not None else None)
        if event.total is not None:
            total = event.total
        else:
            total = memo.items_total if memo is not None else 0.0
        if shopper:
            self.record(event.store, event.receipt, shopper, event.ts, total)
        else:
            self.stats.anonymous += 1

    def record(self, store: str, receipt: str, shopper: str, ts: float, total: float) -> None:
        """Queue one checkout for the stream (thread-safe, never blocks on Redis)."""
        self._queue.append(CheckoutRecord(store, receipt, shopper, float(ts), float(total)))
        self.stats.queued += 1
        while len(self._queue) > self.settings.queue_max:
            try:
                self._queue.popleft()
            except IndexError:
                break
            self.stats.dropped += 1
        self._wake.set()

    def forget(self, shopper: str) -> int:
        """Drop what this process still holds about ``shopper`` (erasure); how many items."""
        doomed = [k for k, memo in self._receipts.items() if memo.shopper == shopper]
        for key in doomed:
            del self._receipts[key]
        with self._cond:
            kept = [r for r in self._queue if r.shopper != shopper]
            removed = len(self._queue) - len(kept)
            self._queue.clear()
            self._queue.extend(kept)
        return len(doomed) + removed

    def _receipt(self, store: str, receipt: str) -> _Receipt:
        key = (store, receipt)
        memo = self._receipts.get(key)
        if memo is None:
            memo = self._receipts[key] = _Receipt()
            if len(self._receipts) > self.settings.receipts_max:
                self._receipts.popitem(last=False)
        return memo

    # ------------------------------------------------------------------ writer thread

    def _write_loop(self) -> None:
        backoff = self.settings.reconnect_min_s
        while True:
            self._wake.wait(self.settings.poll_s)
            self._wake.clear()
            stopping = self._stopping.is_set()
            with self._cond:
                batch = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self.settings.batch))
                ]
                self._writing = len(batch)
            if not batch:
                if stopping:
                    return
                continue
            try:
                self._append(batch)
            except RedisError as e:
                self.stats.write_errors += 1
                with self._cond:
                    self._writing = 0
                    if stopping:
                        self.stats.dropped += len(batch) + len(self._queue)
                        log.error("closing with %d checkouts unwritten: %s", len(batch), e)
                        self._queue.clear()
                        self._cond.notify_all()
                        return
                    self._queue.extendleft(reversed(batch))
                log.warning("writing checkouts failed, will retry: %s: %s", type(e).__name__, e)
                self._stopping.wait(backoff)
                backoff = min(2 * backoff, self.settings.reconnect_max_s)
                self._wake.set()
                continue
            backoff = self.settings.reconnect_min_s
            self.stats.written += len(batch)
            with self._cond:
                self._writing = 0
                more = bool(self._queue)
                self._cond.notify_all()
            if more:
                self._wake.set()

    def _append(self, batch: list[CheckoutRecord]) -> None:
        # Entry ids are milliseconds of Redis' clock; this host's is close enough
        # for a retention counted in days.
        oldest = f"{max(0, int((time.time() - self.settings.retention_s) * 1000))}-0"
        with self._redis.pipeline(transaction=False) as pipe:
            for rec in batch:
                fields: dict[FieldT, EncodableT] = {
                    "store": rec.store,
                    "receipt": rec.receipt,
                    "shopper": rec.shopper,
                    "ts": repr(rec.ts),
                    "total": repr(rec.total),
                }
                pipe.xadd(self.settings.stream, fields, minid=oldest, approximate=True)
            pipe.xtrim(self.settings.stream, maxlen=self.settings.maxlen, approximate=True)
            pipe.execute()


# ---------------------------------------------------------------------- readers


def iter_checkout_entries(
    client: Redis, settings: PosHistorySettings
) -> Iterator[tuple[str, dict[str, str]]]:
    """Every stream entry as (entry id, fields), oldest first, read page by page."""
    start = "-"
    while True:
        page: list[Any] = client.xrange(settings.stream, min=start, count=settings.read_count) or []
        last = ""
        for entry_id, fields in page:
            last = text(entry_id)
            yield last, {text(k): text(v) for k, v in fields.items()}
        if len(page) < settings.read_count:
            return
        start = "(" + last


def read_checkouts(client: Redis, settings: PosHistorySettings | None = None) -> Checkouts:
    """The whole history as arrays, duplicates (same store, receipt and ts) dropped.

    Entries that cannot be read (missing fields, non-numbers) are skipped.
    Memory stays at a few dozen bytes per entry (typed arrays, no per-entry objects).
    """
    import numpy as np  # noqa: PLC0415 - only the offline commands pay for numpy

    settings = settings or PosHistorySettings()
    index: dict[str, int] = {}
    who, when, paid, keys = array("q"), array("d"), array("d"), array("q")
    with store_errors("pos history read"):
        for _, f in iter_checkout_entries(client, settings):
            try:
                shopper, ts, total = f["shopper"], float(f["ts"]), float(f["total"])
                key = hash((f["store"], f["receipt"], ts))
            except (KeyError, ValueError):
                log.warning("skipping unreadable checkout entry %r", f)
                continue
            if not shopper or not (math.isfinite(ts) and math.isfinite(total)):
                continue
            who.append(index.setdefault(shopper, len(index)))
            when.append(ts)
            paid.append(total)
            keys.append(key)
    # First occurrence of each (store, receipt, ts); a 64-bit hash collision is
    # far less likely than anything else going wrong here.
    _, first = np.unique(np.frombuffer(keys, dtype=np.int64), return_index=True)
    keep = np.sort(first)
    return Checkouts(
        np.frombuffer(who, dtype=np.int64)[keep].copy(),
        np.frombuffer(when, dtype=np.float64)[keep].copy(),
        np.frombuffer(paid, dtype=np.float64)[keep].copy(),
        list(index),
    )


def delete_checkouts_of(
    client: Redis, shopper: str, settings: PosHistorySettings | None = None
) -> int:
    """Erase a shopper's entries from the stream (XRANGE scan + XDEL); how many."""
    settings = settings or PosHistorySettings()
    with store_errors("pos history erasure"):
        doomed = [
            eid for eid, f in iter_checkout_entries(client, settings) if f.get("shopper") == shopper
        ]
        removed = 0
        for start in range(0, len(doomed), 500):
            removed += int(client.xdel(settings.stream, *doomed[start : start + 500]))
    return removed
