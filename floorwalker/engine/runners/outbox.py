"""The durable outbox: every publish of the edge runner, on local disk until the broker's PUBACK.

The runner decides an action (or a dead letter), :meth:`Outbox.add` appends it
to the log, then the MQTT link publishes it (QoS 1); when the broker's PUBACK
comes (on paho's network thread) :meth:`Outbox.done` appends that. A runner
killed in between (``kill -9``, a crash, a power cut after the OS wrote the
page) finds the entry pending at its next start and publishes it again
(:meth:`Outbox.pending`). While the runner lives, paho itself keeps resending
across broker reconnects; the outbox is for what the process would forget.

Deduplication by action id: an action carries its ``delivery_id`` (an offer's
id; an alert's ``id/step/band``) as the key. :meth:`Outbox.add` refuses a key
it holds pending or published within ``dedup_s``, so an engine restored from a
slightly older snapshot, which decides the same step again, does not page
twice. Dead letters have no key: kept until PUBACK, never deduplicated.
:meth:`Outbox.knows` answers "did this runner already hand this action (an
offer id, or an alert id: any of its pages) to the broker?", which the Redis
guard store asks when it finds an action it admitted itself before a restart
(see :mod:`~floorwalker.engine.stores.redis_guards`).

Why a local file and not a Redis stream: the outbox must work exactly when
something else is down, and Redis being paused or gone is one of the faults
the runner rides out (alerts fail open); a local append costs microseconds and
no network round trip on the hot path. The runner is one process on one box,
like the broker it talks to, so a local file dies only with that box. The log
is not fsynced: ``kill -9`` loses nothing (the page cache survives the
process); a power cut loses what the OS had not written yet (seconds).

File: ``DIR/outbox-<client id>.jsonl``, one JSON object per line, each written
with one ``write(2)`` on an ``O_APPEND`` descriptor::

    {"n": 7, "k": "o-1f...", "t": "fw/s001/shopper/a/offer", "p": "{...}", "at": 1.7e9}
    {"d": 7}                          (PUBACK of entry 7)
    {"s": "o-1f...", "at": 1.7e9}     (a key published earlier: kept for dedup, compaction)

An unreadable line (the torn last line of a power cut) is skipped and
counted. The log is compacted at start and every ``compact_after`` lines:
rewritten (to a temporary file, fsynced, renamed) with only the pending
entries and the keys still inside the dedup window. A lock file makes sure
one runner (one client id) owns the log.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from floorwalker.errors import ConfigError

log = logging.getLogger("floorwalker.outbox")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class Entry(NamedTuple):
    seq: int
    key: str | None
    topic: str
    payload: bytes
    at: float


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    dedup_s: float = 600.0
    """How long a published key is remembered (against an engine that decides it again)."""
    max_keys: int = 50_000
    """At most this many keys remembered, oldest forgotten first."""
    compact_after: int = 200_000
    """Lines appended before the log is rewritten (so it holds at most this many lines
    plus ``max_keys`` and the pending entries)."""


def default_directory() -> Path:
    """``$XDG_STATE_HOME/floorwalker``, else ``~/.local/state/floorwalker``."""
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state) if state else Path.home() / ".local" / "state"
    return base / "floorwalker"


class Outbox:
    """Pending publishes and recently published keys of one runner; see the module docstring.

    ``add`` runs on the core thread, ``done`` on paho's network thread.
    """

    def __init__(
        self,
        path: Path,
        settings: OutboxSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.settings = settings or OutboxSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[int, Entry] = {}
        self._pending_keys: set[str] = set()
        """Keys of pending entries: refused however old (a broker away for long)."""
        self._keys: dict[str, float] = {}
        """Key -> when it was added; insertion order is time order."""
        self._bases: dict[str, int] = {}
        """Action id (a key up to its first ``/``) -> how many of its keys are remembered."""
        self._seq = 0
        self._appended = 0
        """Lines appended since the last compaction."""
        self.torn = 0
        """Unreadable lines skipped when the log was read."""
        self.duplicates = 0
        """Keys refused by :meth:`add`."""
        self.write_errors = 0
        self._lockfile = self._take_lock(path)
        self._read()
        self._fd = -1
        self._compact()

    @classmethod
    def open(
        cls, directory: Path, client_id: str, settings: OutboxSettings | None = None
    ) -> Outbox:
        """The outbox of the runner with ``client_id`` in ``directory`` (made if missing)."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the outbox directory: {exc.strerror}", file=str(directory)
            ) from None
        return cls(directory / f"outbox-{_UNSAFE.sub('_', client_id)}.jsonl", settings)

    # ------------------------------------------------------------------ lifecycle

    @staticmethod
    def _take_lock(path: Path) -> int:
        lock = path.with_suffix(".lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot open the outbox: {exc.strerror}", file=str(lock)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                "another runner with the same client id holds this outbox; give each"
                " runner its own --client-id (or stop the other one)",
                file=str(lock),
            ) from None
        return fd

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._lockfile >= 0:
                os.close(self._lockfile)
                self._lockfile = -1

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ core thread

    def add(self, topic: str, payload: bytes, key: str | None = None) -> int | None:
        """Record a publish about to be made; its entry number, or None for a known key."""
        now = self._clock()
        with self._lock:
            if key is not None:
                self._forget_old(now)
                if key in self._keys or key in self._pending_keys:
                    self.duplicates += 1
                    return None
                self._remember(key, now)
                self._pending_keys.add(key)
            self._seq += 1
            entry = Entry(self._seq, key, topic, payload, now)
            self._pending[entry.seq] = entry
            record: dict[str, Any] = {"n": entry.seq, "t": topic, "p": payload.decode(), "at": now}
            if key is not None:
                record["k"] = key
            self._append(orjson.dumps(record) + b"\n")
            if self._appended >= self.settings.compact_after:
                self._compact_locked()
            return entry.seq

    def knows(self, action_id: str) -> bool:
        """True if a key of ``action_id`` is pending or was published within ``dedup_s``."""
        with self._lock:
            if action_id in self._bases:
                return True
            return any(k.split("/", 1)[0] == action_id for k in self._pending_keys)

    def has(self, key: str) -> bool:
        """True if ``key`` itself is pending or was published within ``dedup_s``."""
        with self._lock:
            return key in self._keys or key in self._pending_keys

    def pending(self) -> list[Entry]:
        """Entries not confirmed by the broker, oldest first."""
        with self._lock:
            return sorted(self._pending.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    # ------------------------------------------------------------------ paho thread

    def done(self, seq: int) -> None:
        """The broker acknowledged entry ``seq``."""
        with self._lock:
            entry = self._pending.pop(seq, None)
            if entry is not None:
                if entry.key is not None:
                    self._pending_keys.discard(entry.key)
                self._append(b'{"d":%d}\n' % seq)

    # ------------------------------------------------------------------ the log

    def _append(self, line: bytes) -> None:
        try:
            os.write(self._fd, line)
        except OSError as exc:
            # The publish still goes out; only its durability is lost. Said once.
            if not self.write_errors:
                log.error("outbox %s not written (%s): publishing without it", self.path, exc)
            self.write_errors += 1
            return
        self._appended += 1

    def _forget_old(self, now: float) -> None:
        keys = self._keys
        oldest = now - self.settings.dedup_s
        while keys:
            key, at = next(iter(keys.items()))
            if at >= oldest and len(keys) < self.settings.max_keys:
                return
            del keys[key]
            base = key.split("/", 1)[0]
            left = self._bases.get(base, 0) - 1
            if left > 0:
                self._bases[base] = left
            else:
                self._bases.pop(base, None)

    def _remember(self, key: str, at: float) -> None:
        if key not in self._keys:
            base = key.split("/", 1)[0]
            self._bases[base] = self._bases.get(base, 0) + 1
        self._keys[key] = at

    def _read(self) -> None:
        for record in self._records():
            if "d" in record:
                done = self._pending.pop(int(record["d"]), None)
                if done is not None and done.key is not None:
                    self._pending_keys.discard(done.key)
            elif "n" in record:
                seq = int(record["n"])
                key = record.get("k")
                at = float(record.get("at", 0.0))
                self._seq = max(self._seq, seq)
                self._pending[seq] = Entry(
                    seq, key, str(record["t"]), str(record["p"]).encode(), at
                )
                if key is not None:
                    self._remember(str(key), at)
                    self._pending_keys.add(str(key))
            elif "s" in record:
                self._remember(str(record["s"]), float(record.get("at", 0.0)))
        self._forget_old(self._clock())

    def _records(self) -> Iterator[dict[str, Any]]:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                try:
                    record = orjson.loads(line)
                    if isinstance(record, dict) and (
                        "d" in record
                        or "s" in record
                        or ("n" in record and "t" in record and "p" in record)
                    ):
                        yield record
                        continue
                except (orjson.JSONDecodeError, TypeError, ValueError):
                    pass
                self.torn += 1

    def _compact(self) -> None:
        with self._lock:
            self._compact_locked()

    def _compact_locked(self) -> None:
        """Rewrite the log with what still matters; reopen it for appending."""
        self._forget_old(self._clock())
        lines = [
            orjson.dumps({"s": key, "at": at}) + b"\n"
            for key, at in self._keys.items()
            if key not in self._pending_keys
        ]
        for entry in sorted(self._pending.values()):
            record: dict[str, Any] = {
                "n": entry.seq,
                "t": entry.topic,
                "p": entry.payload.decode(),
                "at": entry.at,
            }
            if entry.key is not None:
                record["k"] = entry.key
            lines.append(orjson.dumps(record) + b"\n")
        tmp = self.path.with_suffix(".tmp")
        try:
            with tmp.open("wb") as out:
                out.writelines(lines)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            with contextlib.suppress(OSError):  # a directory fsync is not possible everywhere
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            log.error("outbox %s not compacted (%s); appending to it as it is", self.path, exc)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._appended = 0
