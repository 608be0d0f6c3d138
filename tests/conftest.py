"""Fixtures shared by every test: real servers for the session, a private namespace per test.

``mosquitto_service`` and ``redis_service`` start one real Mosquitto and one real
Redis on free loopback ports, once per session. Tests share them, so each test
works under its own ``unique_prefix`` (MQTT topic prefix; append ``:`` for a
Redis key prefix). A missing server binary fails the test with the fix (run
scripts/bootstrap.sh); it never skips, so CI cannot go green without them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from floorwalker import services
from floorwalker.errors import ServiceError

_prefix_numbers = itertools.count(1)


def _serve(start: Callable[[], services.RunningService]) -> Iterator[services.RunningService]:
    try:
        service = start()
    except ServiceError as e:
        failure = str(e)
    else:
        try:
            yield service
        finally:
            service.stop()
        return
    # Outside the except block, so the report shows the hint once, not a chain.
    pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def mosquitto_service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[services.RunningService]:
    """A Mosquitto broker for the whole session (``.url`` is ``mqtt://127.0.0.1:PORT``)."""
    workdir: Path = tmp_path_factory.mktemp("mosquitto")
    yield from _serve(lambda: services.start_mosquitto(services.MosquittoSettings(), workdir))


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.RunningService]:
    """A Redis server for the whole session (``.url`` is ``redis://127.0.0.1:PORT/0``)."""
    workdir: Path = tmp_path_factory.mktemp("redis")
    yield from _serve(lambda: services.start_redis(services.RedisSettings(), workdir))


@pytest.fixture
def unique_prefix(request: pytest.FixtureRequest) -> str:
    """A name no other test of the session uses, e.g. ``t12-test_admit-redis``.

    Safe as an MQTT topic level (no ``/``, ``+``, ``#``) and as a Redis key prefix.
    """
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")[:60]
    return f"t{next(_prefix_numbers)}-{name}"
