"""The live demo and its dashboard: rendering from fake snapshots, and one short real run."""

from __future__ import annotations

import io
import itertools
import os
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from rich.console import Console

from floorwalker.cli import _parser
from floorwalker.dashboards.demo import DemoResult, DemoSettings, demo_timezone, run_demo
from floorwalker.dashboards.live import (
    LiveDashboard,
    Snapshot,
    TailLine,
    describe,
    render_plain,
    render_rich,
)
from floorwalker.dashboards.quantiles import histogram_quantile
from floorwalker.simulators.live_devices import StaffCounts, StaffSettings, TrafficPlayer
from floorwalker.simulators.traffic import DEMO_PROFILES, DEMO_REGISTRY, load_layout, load_tokens

FAKE = Snapshot(
    elapsed_s=125.0,
    store="s001",
    clock="08:14:03",
    events_in=12345,
    events_per_s=23.4,
    published=12400,
    active_shoppers=14,
    actions={
        ("chilled-dwell-bogo", "offer"): 3,
        ("service-bell", "alert"): 5,
        ("vip-advisor", "alert"): 1,
    },
    suppressed={
        ("chilled-dwell-bogo", "no_consent"): 7,
        ("dormant-welcome-back", "condition:lifetime_value"): 9,
        ("service-bell", "already_open"): 0,
    },
    escalations=2,
    decision_p50_s=0.0012,
    decision_p99_s=0.0041,
    arrival_p50_s=0.0008,
    arrival_p99_s=0.003,
    timer_p50_s=0.0003,
    timer_p99_s=None,
    alerts_open=2,
    responses=4,
    response_mean_s=23.1,
    staff=StaffCounts(alerts=9, acks=4, done=2, declined=1, unanswered=3),
    deadletters={"malformed_json": 2},
    tail=(
        TailLine(
            1.8e9,
            "fw/s001/shopper/app-1/offer",
            "offer",
            "chilled-dwell-bogo",
            "yogurt-bogo AB-CD",
        ),
        TailLine(1.8e9, "fw/s001/band/band-03/alert", "alert", "service-bell", "step 2 high"),
    ),
)


def test_plain_rendering_of_a_snapshot() -> None:
    text = render_plain(FAKE)
    assert "\x1b" not in text, "plain output has no escape sequences"
    first = text.splitlines()[0]
    assert first.startswith("[0:02:05] store s001 08:14:03")
    assert "events in 12345 (23.4/s), published 12400" in first
    assert "offers 3, alerts 6, alerts open 2" in first
    assert "device->publish p50 1.2 ms p99 4.1 ms" in text
    assert "timer lateness p50 300 µs p99 -" in text
    # Busiest rule first; a rule that only suppressed still shows; zero counts do not.
    assert (
        "actions by rule: service-bell (5 alerts); chilled-dwell-bogo (3 offers, 7 suppressed); "
        "vip-advisor (1 alerts); dormant-welcome-back (9 suppressed)"
    ) in text
    assert "suppressed by reason: condition:lifetime_value 9, no_consent 7\n" in text
    assert "4 acked, 2 done, 1 declined, 3 unanswered; response n=4, mean 23.1 s" in text
    assert "escalations 2" in text
    assert "dead letters: malformed_json 2" in text
    assert "> fw/s001/band/band-03/alert service-bell: step 2 high" in text


def test_plain_rendering_of_an_empty_snapshot() -> None:
    text = render_plain(Snapshot())
    assert "actions by rule: none yet" in text
    assert "dead letters: none" in text


def test_rich_rendering_shows_every_part() -> None:
    console = Console(record=True, width=130, height=60, color_system=None)
    console.print(render_rich(FAKE))
    text = console.export_text()
    for expected in (
        "store time 08:14:03",
        "Actions by rule",
        "chilled-dwell-bogo",
        "dormant-welcome-back",
        "p50 1.2 ms  p99 4.1 ms",
        "response time",
        "condition:lifetime_value",
        "malformed_json",
        "Last actions",
        "fw/s001/band/band-03/alert",
    ):
        assert expected in text, expected


def test_dashboard_falls_back_to_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    dashboard = LiveDashboard(lambda: FAKE, out=out, plain_every_s=0.05)
    assert not dashboard.live
    with dashboard:
        threading.Event().wait(0.2)
    assert dashboard.frames >= 2
    assert out.getvalue().count("[0:02:05] store s001") == dashboard.frames


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    inf = float("inf")
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(0.001, 0.0), (inf, 0.0)]) is None
    buckets = [(0.001, 0.0), (0.002, 10.0), (0.005, 10.0), (inf, 10.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.0015)
    assert histogram_quantile(0.99, [(0.001, 1.0), (inf, 100.0)]) == 0.001


def test_describe_makes_short_tail_lines() -> None:
    offer = describe("fw/s/shopper/a/offer", {"rule": "r", "offer": "o", "code": "C"})
    assert offer is not None and (offer.kind, offer.text) == ("offer", "o C")
    alert = describe(
        "fw/s/band/b/alert",
        {"rule": "r", "step": 2, "priority": "high", "zone": "z", "message": "Help\n now"},
    )
    assert alert is not None and alert.text == "step 2 high @z: Help now"
    assert describe("fw/s/deadletter", {"rule": "r"}) is None


def test_demo_timezone_makes_it_breakfast_time() -> None:
    for hour in range(24):
        now = datetime(2026, 11, 23, hour, 37, tzinfo=UTC).timestamp()
        local = datetime.fromtimestamp(now, ZoneInfo(demo_timezone(now)))
        assert (local.hour, local.minute) == (8, 37)


def test_traffic_blocks_merge_in_order_with_unique_ids() -> None:
    layout = load_layout(DEMO_REGISTRY)
    player = TrafficPlayer(
        layout, load_tokens(DEMO_PROFILES), "127.0.0.1", 1, shoppers=30, block_minutes=2.0
    )
    t0 = 1.8e9
    messages = list(itertools.takewhile(lambda m: m[0] < t0 + 600, player.messages(t0)))
    stamps = [ts for ts, _, _ in messages]
    assert stamps == sorted(stamps)
    ids = [p["id"] for _, _, p in messages if "id" in p]
    assert ids and len(ids) == len(set(ids)), "ids stay unique across blocks"
    assert {i.rsplit(".", 1)[1] for i in ids} >= {"0", "1", "2"}
    # The staff walk on in the newest block only: each band reports about every
    # 2 s, never as two interleaved streams (which would halve the gaps).
    last: dict[str, float] = {}
    gaps = []
    for ts, _, payload in messages:
        band = payload.get("band")
        if band is not None:
            if band in last:
                gaps.append(ts - last[band])
            last[band] = ts
    assert len(gaps) > 1000
    assert sum(gap < 1.0 for gap in gaps) < 0.02 * len(gaps)


def test_cli_demo_options() -> None:
    args = _parser().parse_args(["demo", "--minutes", "0.5", "--speed", "5", "--shoppers", "9"])
    assert (args.minutes, args.speed, args.shoppers, args.replay) == (0.5, 5.0, 9, False)
    assert _parser().parse_args(["demo", "--replay"]).replay


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_live_demo_runs_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    out = io.StringIO()  # not a terminal: the dashboard prints plain lines
    settings = DemoSettings(
        workdir=tmp_path,
        minutes=0.4,
        shoppers=300,
        speed=5.0,
        block_minutes=3.0,
        warm_minutes=2.0,
        plain_every_s=5.0,
        staff=StaffSettings(
            ack_delay_s=(1.0, 6.0), decline_delay_s=(0.5, 2.0), done_after_s=(2, 8)
        ),
    )
    done: list[DemoResult] = []
    demo = threading.Thread(target=lambda: done.append(run_demo(settings, out=out)))
    demo.start()
    page = _floor_page_while_running(out, tmp_path / "http-token")
    demo.join(100)
    (result,) = done
    text = out.getvalue()
    assert page["store"] == "s001" and len(page["zones"]) == len(
        load_layout(DEMO_REGISTRY).registry.zones
    )
    assert result.page_url in text and f"{tmp_path / 'http-token'}" in text
    assert (tmp_path / "http-token").read_text().strip() not in text

    assert not result.interrupted
    assert result.published > 1000
    kinds = {kind for (_, kind), n in result.stats.sent.items() if n}
    assert kinds == {"offer", "alert"}, result.stats.sent
    assert result.received.get("offer", 0) > 0 and result.received.get("alert", 0) > 0

    # Where things are, then plain dashboard lines with the rules that acted, then the summary.
    assert "broker   mqtt://127.0.0.1:" in text and "metrics  http://127.0.0.1:" in text
    blocks = [line for line in text.splitlines() if line.startswith("[0:")]
    assert len(blocks) >= 4
    for rule, _ in result.stats.sent:
        assert f"actions by rule: {rule}" in text or f"; {rule} (" in text, rule
    assert "new-visitor-greet" in text
    assert "Per-rule summary" in text

    # Staff answered: acknowledgements went out and the engine timed them.
    assert result.staff.acks > 0
    assert result.final.responses > 0 and result.final.response_mean_s is not None
    assert sum(len(times) for times in result.stats.response_s.values()) > 0

    # Nothing left behind: no server process, no demo thread.
    for pid in result.server_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    leftovers = [t.name for t in threading.enumerate() if t.name.startswith("floorwalker-")]
    assert leftovers == []


def _floor_page_while_running(out: io.StringIO, token_file: Path) -> dict[str, Any]:
    """The demo's floor page, read while the demo runs: 401 without the token, data with it."""
    deadline = time.monotonic() + 60
    while (found := re.search(r"page     (http://127\.0\.0\.1:\d+/)", out.getvalue())) is None:
        assert time.monotonic() < deadline, out.getvalue()
        time.sleep(0.1)
    url = found[1] + "api/state"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(url, timeout=5)
    assert denied.value.code == 401
    token = token_file.read_text(encoding="utf-8").strip()
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        state: dict[str, Any] = orjson.loads(resp.read())
    return state
