"""``floorwalker cluster-demo`` for a bounded time: actions flow, every child exits."""

from __future__ import annotations

import io
import os
import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from floorwalker.cli import _parser
from floorwalker.dashboards.cluster_demo import ClusterDemoSettings, run_cluster_demo
from floorwalker.simulators.live_devices import StaffSettings


def test_cli_cluster_demo_options() -> None:
    args = _parser().parse_args(["cluster-demo", "--seconds", "30", "--workers", "2"])
    assert (args.seconds, args.minutes, args.workers, args.partitions) == (30.0, None, 2, 4)


PAGE = re.compile(r"page     (http://127\.0\.0\.1:\d+/)")


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return orjson.loads(resp.read())


def _floor_pages(out: io.StringIO, workdir: Path, done: threading.Event) -> dict[str, Any]:
    """While the demo runs: each worker's page, and the demo store's state from the one
    that holds it (once it shows a decision latency, i.e. actions went out)."""
    deadline = time.monotonic() + 150
    while not done.is_set() and time.monotonic() < deadline:
        urls = PAGE.findall(out.getvalue())
        if len(urls) == 2 and "published" in out.getvalue():
            token = (workdir / "http-token").read_text(encoding="utf-8").strip()
            stores = {url: _get(url + "api/stores", token)["stores"] for url in urls}
            held = [(url, s["store"]) for url, ss in stores.items() for s in ss]
            if held:
                url, store = held[0]
                state = _get(f"{url}api/state?store={store}", token)
                if state["counters"]["decision_latency_p50_s"] is not None:
                    return {"stores": stores, "state": state}
        time.sleep(0.5)
    raise AssertionError(f"no floor page with a decision on it:\n{out.getvalue()}")


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_the_cluster_demo_runs_end_to_end_and_stops_everything(tmp_path: Path) -> None:
    out = io.StringIO()
    settings = ClusterDemoSettings(
        seconds=30.0,
        shoppers=200,
        speed=2.0,
        block_minutes=3.0,
        warm_minutes=2.0,
        staff=StaffSettings(
            ack_delay_s=(1.0, 6.0), decline_delay_s=(0.5, 2.0), done_after_s=(2, 8)
        ),
        workdir=tmp_path,
    )
    done = threading.Event()
    pages: list[dict[str, Any]] = []
    looker = threading.Thread(target=lambda: pages.append(_floor_pages(out, tmp_path, done)))
    looker.start()
    try:
        result = run_cluster_demo(settings, out=out)
    finally:
        done.set()
        looker.join(timeout=10)
    text = out.getvalue()

    # Every worker served a page; the one holding the demo store shows its zones.
    assert pages, "the floor pages were looked at while the demo ran"
    (seen,) = pages
    assert sorted(s["store"] for ss in seen["stores"].values() for s in ss) == ["s001"]
    assert {z["id"] for z in seen["state"]["zones"]} >= {"entrance", "checkout"}
    assert set(result.pages) == {"worker-0", "worker-1"}
    token = (tmp_path / "http-token").read_text(encoding="utf-8").strip()
    assert token not in text
    for child in ("worker-0", "worker-1", "bridge"):
        assert token not in (tmp_path / f"{child}.log").read_text(encoding="utf-8")

    assert not result.interrupted
    assert result.published > 500
    assert sum(result.received.values()) > 0, "actions reached the devices through the cluster"
    assert result.exit_codes == {"worker-1": 0, "worker-0": 0, "bridge": 0}, text
    for what in (
        "mqtt     mqtt://127.0.0.1:",
        "kafka    127.0.0.1:",
        "worker-0 pid",
        "bridge   pid",
    ):
        assert what in text, what
    assert "[   " in text and "exit codes: worker-1 0, worker-0 0, bridge 0" in text
    assert "password" not in text.lower()
    for pid in result.pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
