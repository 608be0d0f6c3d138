"""The floor page's HTTP side on a real uvicorn: the token, the JSON, the stream, /report.

The engine is a StoreScenario on a virtual clock; a FloorFeed publishes its
picture as the edge runner's core thread would.
"""

from __future__ import annotations

import logging
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import orjson
import pytest

from floorwalker.dashboards.web.app import PageSettings
from floorwalker.dashboards.web.auth import COOKIE, PageToken, resolve_token
from floorwalker.dashboards.web.server import FloorServer, RedactTokens, serve
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.engine.runners.floorfeed import FloorFeed
from floorwalker.engine.runners.metrics import Metrics
from floorwalker.errors import ConfigError
from tests.engine.conftest import PERMISSIVE_POLICY, PROFILES, STORE, place_staff, write_rules

TOKEN = "test-token-0123456789abcdef"
BELL = """\
id: bell
when: {bell: {}}
alert:
  to: nearest
  priority: high
  message: Help in {zone}.
  escalate: [{after: 30s, to: next}]
"""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirect)


def get(
    server: FloorServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(server.url.rstrip("/") + path, headers=headers or {})
    try:
        with OPENER.open(request, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def scenario(tmp_path: Path) -> StoreScenario:
    rules = write_rules(tmp_path / "rules", {"bell": BELL}, PERMISSIVE_POLICY)
    sc = StoreScenario(rules, STORE, profiles=PROFILES)
    place_staff(sc, {"band-07": "b-dairy"}, start=T0, seconds=60)
    sc.linger("app-loyal", "b-dairy", start=T0, seconds=20)
    sc.bell(T0 + 15, "bell-dairy")
    sc.run_until(T0 + 20)
    return sc


@pytest.fixture
def server(scenario: StoreScenario, tmp_path: Path) -> Iterator[FloorServer]:
    feed = FloorFeed()
    feed.publish(scenario.engine)
    metrics = Metrics()
    metrics.deadletter("malformed_json", store="s001")
    metrics.decision_latency("device", 0.004, store="s001")
    report = tmp_path / "report.html"
    token = PageToken(TOKEN, "as given")
    settings = PageSettings(push_every_s=0.2, report=report)
    with serve(feed, token, metrics=metrics.registry, settings=settings) as running:
        yield running


def test_every_route_but_static_needs_the_token(server: FloorServer) -> None:
    for path in ("/", "/report", "/api/stores", "/api/state", "/api/events?store=s001"):
        status, headers, _ = get(server, path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert get(server, path, bearer("wrong-token-0123456789"))[0] == 401, path
        assert get(server, path + ("&" if "?" in path else "?") + "token=nope")[0] == 401
    status, _, body = get(server, "/static/floor.js")
    assert status == 200 and b"EventSource" in body  # code, no data: no token needed


def test_a_token_in_the_url_becomes_a_cookie_and_leaves_the_address_bar(
    server: FloorServer,
) -> None:
    status, headers, _ = get(server, f"/?store=s001&token={TOKEN}")
    assert status == 303
    assert headers["Location"] == "/?store=s001"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    jar = {"Cookie": cookie.split(";", 1)[0]}
    status, headers, body = get(server, "/?store=s001", jar)
    assert status == 200 and b"/static/floor.js" in body
    assert headers["Cache-Control"] == "no-store"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert get(server, "/api/state", jar)[0] == 200


def test_api_state_has_zones_bands_and_the_alert_schedule(server: FloorServer) -> None:
    status, headers, body = get(server, "/api/state?store=s001", bearer())
    assert status == 200 and headers["Content-Type"] == "application/json"
    state = orjson.loads(body)
    zones = {z["id"]: z for z in state["zones"]}
    assert set(zones) == set(STORE["zones"])
    assert zones["dairy-chilled"]["shoppers"] == 1
    assert {b["band"]: b["zone"] for b in state["bands"]}["band-07"] == "dairy-chilled"
    (alert,) = state["alerts"]
    assert (alert["rule"], alert["zone"], alert["step"], alert["state"]) == (
        "bell",
        "dairy-chilled",
        1,
        "open",
    )
    assert alert["paged"] == [{"band": "band-07", "name": "Li Na"}]
    due = alert["next_escalation"]
    assert due["ts"] == pytest.approx(T0 + 45) and due["at"].startswith("2026-11-23T09:00:45")
    assert due["in_s"] >= 0
    counters = state["counters"]
    assert counters["deadletters"] == 1 and counters["deadletters_by_reason"] == {
        "malformed_json": 1
    }
    assert 0.0 < counters["decision_latency_p50_s"] <= 0.005
    status, _, body = get(server, "/api/stores", bearer())
    assert [s["store"] for s in orjson.loads(body)["stores"]] == ["s001"]
    status, _, body = get(server, "/api/state?store=nope", bearer())
    assert status == 404 and orjson.loads(body)["stores"] == ["s001"]


def test_the_stream_pushes_the_state_as_server_sent_events(server: FloorServer) -> None:
    request = urllib.request.Request(server.url + "api/events?store=s001", headers=bearer())
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        frames: list[dict[str, Any]] = []
        while len(frames) < 2:  # nothing changes: the second comes after push_every_s
            line = resp.readline()
            if line.startswith(b"data: "):
                frames.append(orjson.loads(line[len(b"data: ") :]))
    assert frames[0]["store"] == "s001" and frames[0]["alerts"][0]["rule"] == "bell"
    assert frames[1]["now"] > frames[0]["now"]


def test_report_is_a_404_page_until_a_report_file_exists(
    server: FloorServer, tmp_path: Path
) -> None:
    status, _, body = get(server, "/report", bearer())
    assert status == 404 and b"No report yet" in body
    (tmp_path / "report.html").write_text("<h1>lift</h1>", encoding="utf-8")
    status, _, body = get(server, "/report", bearer())
    assert status == 200 and body == b"<h1>lift</h1>"


def test_no_log_line_carries_the_token(
    server: FloorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    get(server, f"/?token={TOKEN}")
    get(server, "/api/state", bearer())
    get(server, "/?token=wrong-but-secret-looking")
    assert TOKEN not in caplog.text
    assert "wrong-but-secret-looking" not in caplog.text
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, "GET /?token=%s", (TOKEN,), None
    )
    RedactTokens().filter(record)
    assert TOKEN not in record.getMessage() and "token=***" in record.getMessage()
    assert TOKEN not in repr(server.token) and TOKEN not in server.banner()


def test_a_missing_token_is_generated_into_a_private_file_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "http-token"
    first = resolve_token(None, path, 8080)
    assert len(first.value) >= 32 and first.file == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert resolve_token(None, path, 8080).value == first.value  # a restart keeps it
    path.chmod(0o644)
    resolve_token(None, path, 8080)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_token(TOKEN, path, 8080).value == TOKEN
    with pytest.raises(ConfigError, match="at least 16"):
        resolve_token("short", None, 8080)


def test_a_runner_with_two_stores_lists_both_and_asks_which(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", {"bell": BELL}, PERMISSIVE_POLICY)
    other = {**STORE, "store": "s002"}
    registries = {"s001": Registry.from_mapping(STORE), "s002": Registry.from_mapping(other)}
    engine = Engine(rules, registries)
    feed = FloorFeed()
    feed.publish(engine)
    with serve(feed, PageToken(TOKEN, "as given")) as running:
        status, _, body = get(running, "/api/stores", bearer())
        assert [s["store"] for s in orjson.loads(body)["stores"]] == ["s001", "s002"]
        status, _, body = get(running, "/api/state", bearer())
        assert status == 404 and orjson.loads(body)["stores"] == ["s001", "s002"]
        status, _, body = get(running, "/api/state?store=s002", bearer())
        assert status == 200 and orjson.loads(body)["store"] == "s002"


@pytest.mark.parametrize("works", [True, False])
def test_without_a_file_report_is_built_live_or_says_it_is_unavailable(
    scenario: StoreScenario, works: bool
) -> None:
    feed = FloorFeed()
    feed.publish(scenario.engine)

    def live() -> str:
        if not works:
            raise ConnectionError("redis://:secret@127.0.0.1:1/0 refused")
        return "<h1>Today's campaign report</h1>"

    settings = PageSettings(push_every_s=0.2, live_report=live)
    with serve(feed, PageToken(TOKEN, "as given"), settings=settings) as running:
        status, _, body = get(running, "/report", bearer())
    if works:
        assert status == 200 and b"Today's campaign report" in body
    else:
        assert status == 503 and b"unavailable" in body and b"secret" not in body
