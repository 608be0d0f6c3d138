"""Fixtures shared by every test: real servers for the session, a private namespace per test.

``mosquitto_service`` and ``redis_service`` start one real Mosquitto and one real
Redis on free loopback ports, once per session. Tests share them, so each test
works under its own ``unique_prefix`` (MQTT topic prefix; append ``:`` for a
Redis key prefix).

The broker runs with authentication and ACLs on, as in production: its config
comes from ``floorwalker broker-config``'s generator for the test store
(tests.engine.conftest.STORE) under any topic prefix (``+``), with a TLS
listener. ``session_broker.address(who)`` is the broker with an identity:
``"test-harness"`` (the harness's superuser: probes that play every device),
``"engine"`` (runners under test), a device id, or a shopper token of the test
profiles. A missing server binary fails the test with the fix (run
scripts/bootstrap.sh); it never skips, so CI cannot go green without them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from floorwalker import services
from floorwalker.devices.broker_config import (
    ANY_PREFIX,
    TESTER_USER,
    BrokerConfig,
    write_broker_config,
)
from floorwalker.devices.registry import load_registry
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.errors import ServiceError
from tests.engine.conftest import PROFILES, STORE

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


SESSION_SHOPPERS = ("app-loyal", "app-nocons", *(p.shopper for p in PROFILES))
"""Shopper tokens with an identity on the session broker."""


@dataclass(frozen=True)
class SessionBroker:
    """The session's Mosquitto and the identities its generated config knows."""

    service: services.RunningService
    config: BrokerConfig

    def address(self, who: str = TESTER_USER, *, tls: bool = False) -> BrokerAddress:
        """The broker (``mqtts://localhost:PORT`` with ``tls``) as ``who``."""
        ident = self.config.credentials.identity(who)
        if tls:
            assert self.config.auth.tls is not None and self.service.tls_port is not None
            base = BrokerAddress(
                "localhost", self.service.tls_port, tls=True, ca_file=self.config.auth.tls.ca_cert
            )
        else:
            base = BrokerAddress(self.service.host, self.service.port)
        return base.with_identity(ident.username, ident.password)

    def password_file(self, who: str, directory: Path) -> Path:
        """A file holding ``who``'s password (for ``--mqtt-password-file``)."""
        path = directory / f"{who}.password"
        path.write_text(self.config.credentials.identity(who).password + "\n")
        path.chmod(0o600)
        return path


@pytest.fixture(scope="session")
def session_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionBroker]:
    """A Mosquitto broker for the whole session, authentication and ACLs on."""
    workdir: Path = tmp_path_factory.mktemp("mosquitto")
    registry = workdir / "store.yaml"
    registry.write_text(yaml.safe_dump(STORE, sort_keys=False), encoding="utf-8")
    config = write_broker_config(
        [load_registry(registry)],
        workdir / "broker",
        prefix=ANY_PREFIX,  # every test has a prefix of its own
        tls=True,
        shoppers=SESSION_SHOPPERS,
        tester=True,
        simulator=True,
    )
    settings = services.MosquittoSettings(auth=config.auth)
    for service in _serve(lambda: services.start_mosquitto(settings, workdir)):
        yield SessionBroker(service, config)


@pytest.fixture(scope="session")
def mosquitto_service(session_broker: SessionBroker) -> services.RunningService:
    """The session's broker (``.url`` is ``mqtt://127.0.0.1:PORT``; it needs an identity)."""
    return session_broker.service


@pytest.fixture(scope="session")
def tester(session_broker: SessionBroker) -> BrokerAddress:
    """The session broker as the test harness (may read and write every topic)."""
    return session_broker.address(TESTER_USER)


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
