"""The floor page's HTTP server: uvicorn in a thread of its own, started and stopped by ``with``.

uvicorn runs the app on its own event loop in a daemon thread; the socket is
bound before it starts, so ``port=0`` works and the port is known at once.
uvicorn's access log is off (the page polls nothing, but a first visit's URL
carries ``?token=``), it leaves the process's logging configuration alone
(``log_config=None``), and :class:`RedactTokens` is installed on its loggers
so that no line of theirs can carry a token even so.

:func:`floor_page` wires a running :class:`~floorwalker.engine.runners.edge.EdgeRunner`
to a server: the runner's :class:`~floorwalker.engine.runners.floorfeed.FloorFeed`
and metrics registry in, the page's address and where its token is out.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry

from floorwalker.dashboards.web.app import FloorApp, PageSettings
from floorwalker.dashboards.web.auth import PageToken, resolve_token
from floorwalker.devices.registry import Registry
from floorwalker.engine.runners.edge import EdgeRunner
from floorwalker.engine.runners.floorfeed import FloorFeed
from floorwalker.errors import ConfigError, ServiceError
from floorwalker.rules.model import RuleSet

log = logging.getLogger("floorwalker.floorpage")

START_TIMEOUT_S = 10.0
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_SECRETS = re.compile(r"(?i)(token=|bearer\s+)[^\s&\"']+")


class RedactTokens(logging.Filter):
    """Masks ``token=...`` and ``Bearer ...`` in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = _SECRETS.sub(r"\1***", record.msg)
        return True


@dataclass(frozen=True)
class FloorServer:
    """A running page: its URL has no token; :attr:`token` says where the token is."""

    host: str
    port: int
    token: PageToken

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def banner(self) -> str:
        """Two lines for the operator: the address, and where the token is (not the token)."""
        where = (
            f"token in {self.token.file} (open {self.url}?token=$(cat {self.token.file}))"
            if self.token.file is not None
            else "token: the one given with --http-token / FLOORWALKER_HTTP_TOKEN"
        )
        return f"floor page {self.url}\n           {where}"


@contextlib.contextmanager
def serve(
    feed: FloorFeed,
    token: PageToken,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    metrics: CollectorRegistry | None = None,
    settings: PageSettings | None = None,
) -> Iterator[FloorServer]:
    """Serve the floor page until the ``with`` block ends."""
    app = FloorApp(feed, token, metrics, settings)
    sock = _bind(host, port)
    config = uvicorn.Config(
        app.asgi(),
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=2,
        server_header=False,
    )
    server = uvicorn.Server(config)
    _redact_uvicorn_logs()
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="floorwalker-floorpage", daemon=True
    )
    thread.start()
    try:
        _wait_started(server, thread)
        bound = sock.getsockname()
        running = FloorServer(host, int(bound[1]), token)
        log.info("floor page on %s", running.url)
        yield running
    finally:
        app.stopping = True
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def floor_page(
    runner: EdgeRunner, *, token_file: Path | None = None, push_every_s: float = 1.0
) -> Iterator[FloorServer]:
    """The page of a runner whose settings have ``http_port`` (its feed is running)."""
    s = runner.settings
    if runner.floor is None or s.http_port is None:
        raise ConfigError("the floor page needs --http-port (FLOORWALKER_HTTP_PORT)")
    with page_of(
        runner.floor,
        runner.metrics.registry,
        host=s.http_host,
        port=s.http_port,
        token=s.http_token.get_secret_value() if s.http_token is not None else None,
        token_file=token_file or s.http_token_file,
        settings=PageSettings(
            push_every_s=push_every_s, report=s.http_report, live_report=_live_report(runner)
        ),
    ) as server:
        yield server


@contextlib.contextmanager
def page_of(
    feed: FloorFeed,
    metrics: CollectorRegistry | None,
    *,
    host: str,
    port: int,
    token: str | None,
    token_file: Path | None,
    settings: PageSettings,
) -> Iterator[FloorServer]:
    """Any runner's page: the token as given, else from (or made into) ``token_file``."""
    with serve(
        feed,
        resolve_token(token, token_file, port),
        host=host,
        port=port,
        metrics=metrics,
        settings=settings,
    ) as server:
        yield server


def _live_report(runner: EdgeRunner) -> Callable[[], str] | None:
    """Today's report from the runner's Redis record, under the rules it runs now."""
    s = runner.settings
    if s.redis is None:
        return None

    def current() -> tuple[RuleSet, Mapping[str, Registry]]:
        # Attribute reads only: a reload swaps these objects, it never changes one.
        engine = runner.engine
        if engine is None:
            raise RuntimeError("the runner has not started yet")
        return engine.compiled.ruleset, runner.registries

    return redis_report(s.redis, s.redis_prefix, current)


def redis_report(
    url: str, prefix: str, current: Callable[[], tuple[RuleSet, Mapping[str, Registry]]]
) -> Callable[[], str]:
    """A builder of today's report from the Redis record at ``url`` (the floor page's
    ``/report``), under the rules and registries ``current`` gives at that moment."""

    def build() -> str:
        from floorwalker.dashboards.report import LiveReport  # noqa: PLC0415 - only when asked

        rules, registries = current()
        return LiveReport(url, rules, registries, prefix=prefix).html()

    return build


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"the floor page cannot listen on {host}:{port}: {exc.strerror or exc}"
            " (pick another --http-port, or 0 for a free one)"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise ServiceError("the floor page's web server stopped while starting")
        if time.monotonic() > deadline:
            raise ServiceError(f"the floor page's web server did not start in {START_TIMEOUT_S} s")
        time.sleep(0.01)


def _redact_uvicorn_logs() -> None:
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
