"""The floor page's routes (starlette): the page, its data as JSON and as a live stream.

=====================  =========================================================
``/``                  the page (static HTML; everything it shows comes from the API)
``/static/...``        its script and style sheet (no data; served without the token)
``/api/stores``        the stores this runner serves
``/api/state?store=``  one store's floor, as JSON
``/api/events?store=`` the same, as server-sent events: on every change, and at
                       least once a second (``push_every_s``)
``/report``            today's campaign report: a file, else built from the Redis record
=====================  =========================================================

Every route but ``/static`` needs the token (:mod:`.auth`). The app reads
only :attr:`FloorFeed.latest <floorwalker.engine.runners.floorfeed.FloorFeed.latest>`
(an immutable snapshot the core thread published) and the runner's
Prometheus registry: it never touches the engine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from floorwalker.dashboards.web.auth import COOKIE, PageToken
from floorwalker.dashboards.web.state import CountersCache, Layouts, state_json, stores_json
from floorwalker.engine.runners.floorfeed import FloorFeed, FloorSnapshot

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}
FIRST_VIEW_WAIT_S = 2.0
"""How long a request waits for the core thread's first picture after start."""

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class PageSettings:
    push_every_s: float = 1.0
    """Longest gap between two pushes of the stream when nothing changed."""
    poll_s: float = 0.1
    """How often the stream looks for a newer snapshot (it changes at most 2x/s)."""
    report: Path | None = None
    """The HTML file ``/report`` serves, if given."""
    live_report: Callable[[], str] | None = None
    """Else today's report, built per request from the runner's Redis record (blocking:
    run in a worker thread); None with no file either: a "no report yet" page."""


class FloorApp:
    """The page's state: where the snapshots come from, the token, caches."""

    def __init__(
        self,
        feed: FloorFeed,
        token: PageToken,
        metrics: CollectorRegistry | None = None,
        settings: PageSettings | None = None,
    ) -> None:
        self.feed = feed
        self.token = token
        self.settings = settings or PageSettings()
        self.layouts = Layouts()
        self.counters = CountersCache(metrics)
        self.stopping = False
        """Set when the server shuts down: open streams end."""

    # ------------------------------------------------------------------ access

    def guarded(self, endpoint: Endpoint, *, api: bool) -> Endpoint:
        async def check(request: Request) -> Response:
            given = request.query_params.get("token")
            if given is not None:
                return self._login(request, given, api=api)
            if self._allowed(request):
                return _secured(await endpoint(request))
            return _denied(api)

        return check

    def _allowed(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.token.matches(value.strip()):
            return True
        return self.token.matches_cookie(request.cookies.get(COOKIE))

    def _login(self, request: Request, given: str, *, api: bool) -> Response:
        """``?token=T``: set the cookie and send the browser to the URL without the token."""
        if not self.token.matches(given):
            return _denied(api)
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            self.token.cookie_value,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return _secured(response)

    # ------------------------------------------------------------------ routes

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def stores(self, request: Request) -> Response:
        return JSONResponse(stores_json(await self._snapshot()))

    async def state(self, request: Request) -> Response:
        snap = await self._snapshot()
        store, problem = self._store_of(request, snap)
        if problem is not None:
            return problem
        assert snap is not None and store is not None
        return Response(self._state_bytes(snap, store), media_type="application/json")

    async def events(self, request: Request) -> Response:
        snap = await self._snapshot()
        store, problem = self._store_of(request, snap)
        if problem is not None:
            return problem
        assert store is not None
        return StreamingResponse(
            self._stream(store),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )

    async def report(self, request: Request) -> Response:
        path, live = self.settings.report, self.settings.live_report
        if path is not None and path.is_file():
            return FileResponse(path, media_type="text/html")
        if path is None and live is not None:
            try:
                return HTMLResponse(await run_in_threadpool(live))
            except Exception as exc:  # Redis down, or a record it cannot read: say so
                log.warning("today's report failed: %s", type(exc).__name__)
                return HTMLResponse(
                    "<!doctype html><meta charset=utf-8><title>Report unavailable</title>"
                    "<h1>Today's report is unavailable</h1><p>The runner's Redis record"
                    " could not be read just now; the floor page itself is live."
                    " Try again in a minute.</p><p><a href=/>Back to the floor</a></p>",
                    status_code=503,
                )
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><title>No report yet</title>"
            "<h1>No report yet</h1><p>Today's campaign report appears here once"
            " <code>floorwalker report</code> has written one (<code>--http-report"
            " FILE</code>).</p><p><a href=/>Back to the floor</a></p>",
            status_code=404,
        )

    # ------------------------------------------------------------------ helpers

    async def _snapshot(self) -> FloorSnapshot | None:
        """The latest snapshot; right after start, wait briefly for the first one."""
        deadline = time.monotonic() + FIRST_VIEW_WAIT_S
        while self.feed.latest is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.feed.latest

    def _store_of(
        self, request: Request, snap: FloorSnapshot | None
    ) -> tuple[str | None, Response | None]:
        if snap is None:
            return None, JSONResponse({"error": "the engine has not started yet"}, 503)
        known = sorted(snap.stores)
        store = request.query_params.get("store")
        if store is None and len(known) == 1:
            return known[0], None
        if store not in snap.stores:
            what = "unknown store" if store is not None else "several stores: say which"
            return None, JSONResponse({"error": what, "stores": known}, 404)
        return store, None

    def _state_bytes(self, snap: FloorSnapshot, store: str) -> bytes:
        floor = snap.stores[store]
        plan = self.layouts.of(floor.registry)
        body = state_json(snap, store, time.time(), plan, self.counters.get(store))
        return orjson.dumps(body)

    async def _stream(self, store: str) -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        sent_version, sent_at = -1, float("-inf")
        every = self.settings.push_every_s
        while not self.stopping:
            snap = self.feed.latest
            mono = time.monotonic()
            if (
                snap is not None
                and store in snap.stores
                and (snap.version != sent_version or mono - sent_at >= every)
            ):
                data = self._state_bytes(snap, store)
                yield b"event: state\ndata: " + data + b"\n\n"
                sent_version, sent_at = snap.version, mono
            await asyncio.sleep(self.settings.poll_s)

    # ------------------------------------------------------------------ the app

    def asgi(self) -> Starlette:
        def route(path: str, endpoint: Endpoint, *, api: bool = True) -> Route:
            return Route(path, self.guarded(endpoint, api=api), methods=["GET"])

        return Starlette(
            routes=[
                route("/", self.page, api=False),
                route("/report", self.report, api=False),
                route("/api/stores", self.stores),
                route("/api/state", self.state),
                route("/api/events", self.events),
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
            ]
        )


def _secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _denied(api: bool) -> Response:
    if api:
        body: Any = {"error": "unauthorized: send Authorization: Bearer TOKEN"}
        response: Response = JSONResponse(body, 401)
    else:
        response = HTMLResponse(
            "<!doctype html><meta charset=utf-8><title>Floorwalker: token needed</title>"
            "<h1>Token needed</h1><p>This page shows staff names and where they are."
            " Open it as <code>/?token=TOKEN</code>; the operator finds the token where"
            " <code>floorwalker run</code> said it is.</p>",
            status_code=401,
        )
    response.headers["WWW-Authenticate"] = 'Bearer realm="floorwalker"'
    return _secured(response)
