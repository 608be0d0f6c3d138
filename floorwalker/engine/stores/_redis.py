"""Helpers shared by the Redis-backed stores (connections, errors, key scans).

Private to :mod:`floorwalker.engine.stores`. The conventions are those of
:mod:`~floorwalker.engine.stores.redis_guards`: clients built here have short
timeouts and no command retries, and every Redis failure surfaces as
:class:`~floorwalker.errors.GuardStoreError` naming the operation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, WatchError
from redis.retry import Retry

from floorwalker.errors import GuardStoreError

BATCH = 500
"""Keys per MGET / DEL / transaction: big enough to amortise a round trip, small
enough not to stall a shared Redis."""
_WATCH_ATTEMPTS = 50


def connect(
    url: str,
    *,
    socket_timeout_s: float,
    connect_timeout_s: float,
    health_check_s: int = 0,
    client_name: str | None = None,
) -> Redis:
    """A client for ``redis://host:port/db`` that decodes replies and never retries."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        health_check_interval=health_check_s,
        client_name=client_name,
    )


@contextlib.contextmanager
def store_errors(operation: str) -> Iterator[None]:
    """Turn any Redis failure into GuardStoreError, as the guard store does."""
    try:
        yield
    except RedisError as e:
        raise GuardStoreError(f"{operation} failed: {type(e).__name__}: {e}") from e


@contextlib.contextmanager
def client_for(
    client_or_url: Redis | str, *, socket_timeout_s: float, connect_timeout_s: float
) -> Iterator[Redis]:
    """Use a caller's client as is, or connect to a URL for the duration of the block."""
    if not isinstance(client_or_url, str):
        yield client_or_url
        return
    client = connect(
        client_or_url, socket_timeout_s=socket_timeout_s, connect_timeout_s=connect_timeout_s
    )
    try:
        yield client
    finally:
        client.close()


def text(value: str | bytes) -> str:
    """Clients built here decode replies; a caller's own client may not."""
    return value.decode() if isinstance(value, bytes) else value


def glob_escape(value: str) -> str:
    return "".join("\\" + ch if ch in "\\*?[]" else ch for ch in value)


def scan_keys(client: Redis, prefix: str, count: int = 1000) -> Iterator[str]:
    """Every key starting with ``prefix`` (SCAN: may repeat a key, never blocks Redis)."""
    for raw in client.scan_iter(match=glob_escape(prefix) + "*", count=count):
        yield text(raw)


def chunks(items: Sequence[str], size: int = BATCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def update_json(
    client: Redis,
    keys: Sequence[str],
    change: Callable[[str, dict[str, Any] | None], dict[str, Any] | None],
) -> list[str]:
    """Optimistic read-modify-write of JSON string keys (WATCH, MGET, MULTI, SET, EXEC).

    ``change(key, current)`` gets the decoded value (``None`` when the key is
    missing or not a JSON object) and returns the new value, or ``None`` to leave
    the key alone. The whole batch is one transaction; when another client
    changes a watched key first, the batch is read and decided again (that is
    not a retry of a failed command: nothing was written). Returns the keys written.
    """
    for _ in range(_WATCH_ATTEMPTS):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(*keys)  # type: ignore[no-untyped-call]
                raws: list[Any] = pipe.mget(list(keys))  # immediate while watching
                writes: list[tuple[str, bytes]] = []
                for key, raw in zip(keys, raws, strict=True):
                    new = change(key, load_object(raw))
                    if new is not None:
                        writes.append((key, orjson.dumps(new)))
                if not writes:
                    pipe.unwatch()
                    return []
                pipe.multi()
                for key, value in writes:
                    pipe.set(key, value)
                pipe.execute()
                return [key for key, _ in writes]
            except WatchError:
                continue
    raise GuardStoreError(f"gave up after {_WATCH_ATTEMPTS} conflicting concurrent updates")


def load_object(raw: str | bytes | None) -> dict[str, Any] | None:
    """A stored JSON object, or None when missing or unreadable."""
    if raw is None:
        return None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None
