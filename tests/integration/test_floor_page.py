"""The live floor page in headless Chromium, against ``floorwalker run --http-port`` for real.

Mosquitto (authentication on), Redis, the runner as a subprocess, and Debian's
chromium driven by playwright. The page must show the registry's zones; a bell
press the test publishes must show up as an alert within a second, its
countdown must run; without the token everything is 401, and the token is in
no line the runner wrote.

``FLOORWALKER_REFRESH_SCREENSHOTS=1`` also writes the page's screenshot to
``docs/floor-page.png`` (README, "Floor page").
"""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from floorwalker import services
from floorwalker.dashboards.web.auth import PageToken
from floorwalker.dashboards.web.server import serve
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.runners.floorfeed import FloorFeed
from tests.engine.conftest import PERMISSIVE_POLICY, STORE, write_rules
from tests.integration.conftest import (
    Lingering,
    Probe,
    RunnerProcess,
    StartProcess,
    bell_rule,
    load_profiles,
    place_staff,
    token,
    wait_ready,
    write_store,
)

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs"
APPEARS_WITHIN_S = 1.0
"""A bell press on the page within this long (the issue's bound; a correctness bound here)."""
PAGE_LINE = re.compile(r"floor page (http://127\.0\.0\.1:(\d+)/)")


def page_url(proc: RunnerProcess, timeout: float = 15.0) -> str:
    """The page's address as the runner printed it at start."""
    deadline = time.monotonic() + timeout
    while True:
        found = PAGE_LINE.search(proc.log.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found[1]
        assert proc.alive and time.monotonic() < deadline, proc.log_tail()
        time.sleep(0.05)


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


def countdown_s(page: Page, alert: str) -> float:
    text = page.inner_text(f'li[data-alert="{alert}"] .countdown')
    number = re.match(r"([0-9.]+) s$", text.strip())
    assert number, text
    return float(number[1])


@pytest.fixture
def runner(
    tmp_path: Path,
    probe: Probe,
    start_process: StartProcess,
    redis_service: services.RunningService,
    unique_prefix: str,
) -> Iterator[tuple[RunnerProcess, Path]]:
    files = write_store(
        tmp_path / "store", rules={"bell": bell_rule("floor-bell", escalate=[("30s", "next")])}
    )
    load_profiles(redis_service.url, files, unique_prefix)
    token_file = tmp_path / "page-token"
    proc = start_process(
        files,
        redis=redis_service.url,
        client_id=f"{unique_prefix}-edge",
        args=["--http-port", "0", "--http-token-file", str(token_file)],
    )
    wait_ready(probe, [proc])
    yield proc, token_file


def test_the_floor_page_shows_the_store_and_a_bell_press_live(
    runner: tuple[RunnerProcess, Path], probe: Probe, chromium: Browser, tmp_path: Path
) -> None:
    proc, token_file = runner
    url = page_url(proc)
    secret = token_file.read_text(encoding="utf-8").strip()
    assert len(secret) >= 32 and (token_file.stat().st_mode & 0o077) == 0

    for path in ("", "api/state", "api/stores", "api/events", "report"):
        assert status_of(url + path) == 401, path

    place_staff(probe, {"band-07": "b-dairy", "band-08": "b-cosm"})
    with Lingering(probe) as floor:
        for shopper, beacon in (("app-loyal", "b-dairy"), ("app-vip", "b-dairy")):
            floor.add(shopper, beacon)
        floor.add("app-bday", "b-coffee")
        floor.add("band-07", "b-dairy", staff=True, rssi=-55)
        floor.add("band-08", "b-cosm", staff=True, rssi=-55)

        page = chromium.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(f"{url}?token={secret}")
            assert page.url == url  # the token left the address bar
            page.wait_for_selector("#live:text('live')", timeout=10_000)
            zones = page.eval_on_selector_all(
                "#floor [data-zone]", "nodes => nodes.map(n => n.dataset.zone)"
            )
            assert sorted(zones) == sorted(STORE["zones"])
            page.wait_for_selector('[data-zone="dairy-chilled"][data-shoppers="2"]', timeout=10_000)
            page.wait_for_selector('#floor [data-band="band-07"]', timeout=10_000)

            pressed = time.monotonic()
            probe.bell("bell-dairy", token("press"))
            item = page.wait_for_selector(
                'li[data-rule="floor-bell"]', timeout=APPEARS_WITHIN_S * 1000
            )
            seen_after = time.monotonic() - pressed
            assert item is not None and seen_after <= APPEARS_WITHIN_S, seen_after
            alert = item.get_attribute("data-alert")
            assert alert is not None
            row = page.inner_text(f'li[data-alert="{alert}"]')
            assert "dairy-chilled" in row and "step 1 of 2" in row and "Li Na" in row

            first = countdown_s(page, alert)
            assert 25.0 < first <= 30.0
            time.sleep(1.5)
            later = countdown_s(page, alert)
            assert later < first - 1.0, (first, later)
            page.wait_for_selector('#floor [data-band="band-07"].alerted', timeout=5_000)

            shot = tmp_path / "floor-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            if os.environ.get("FLOORWALKER_REFRESH_SCREENSHOTS") == "1":
                (DOCS / "floor-page.png").write_bytes(shot.read_bytes())

            page.goto(url + "report")  # today's report, built from the runner's Redis record
            assert "Today's campaign report" in page.inner_text("h1")
        finally:
            page.close()

    proc.stop()
    log = proc.log.read_text(encoding="utf-8", errors="replace")
    assert "floor page http://127.0.0.1:" in log and str(token_file) in log
    assert secret not in log


def test_the_store_picker_switches_between_the_stores_of_one_runner(
    chromium: Browser, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path / "rules", {"bell": bell_rule("pick-bell")}, PERMISSIVE_POLICY)
    small = {
        "store": "s002",
        "timezone": "Europe/Paris",
        "zones": {"door": {"adjacent": ["till"]}, "till": {}},
    }
    engine = Engine(
        rules, {"s001": Registry.from_mapping(STORE), "s002": Registry.from_mapping(small)}
    )
    feed = FloorFeed()
    feed.publish(engine)
    secret = "picker-token-0123456789abcdef"
    with serve(feed, PageToken(secret, "as given")) as server:
        page = chromium.new_page()
        try:
            page.goto(f"{server.url}?token={secret}")
            page.wait_for_selector("#store-picker option[value=s002]", state="attached")
            assert page.is_visible("#store-picker")
            page.wait_for_selector('#floor [data-zone="dairy-chilled"]')
            page.select_option("#store-picker", "s002")
            page.wait_for_selector('#floor [data-zone="till"]')
            assert page.inner_text("#store-name") == "s002"
            assert page.locator("#floor [data-zone]").count() == 2
            assert page.url.endswith("?store=s002")
        finally:
            page.close()
