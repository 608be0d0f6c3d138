"""``floorwalker bench live --quick`` end to end: real Mosquitto, Redis, runner, echo floor."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from floorwalker.simulators.bench.live import main

pytestmark = pytest.mark.integration


def test_quick_live_bench_writes_complete_json(tmp_path: Path) -> None:
    out = tmp_path / "live.json"
    assert main(["--quick", "--step-seconds", "2", "--json", str(out)]) == 0
    r = orjson.loads(out.read_bytes())
    assert {"bench", "settings", "machine", "setup", "floor", "engine", "summary"} <= set(r)
    assert {"floor_max_rate", "engine_max_rate", "ratios", "targets"} <= set(r["summary"])
    assert len(r["floor"]) == 2
    assert len(r["engine"]) == 2
    for target in ("floor", "engine"):
        for step in r[target]:
            assert step["generator"]["sent"] > 0
            assert step["processed"] > 0
            assert step["achieved_rate"] > 0
            assert step["lost"] == 0
            lat = step["latency_ms"]
            assert lat["n"] > 0
            for key in ("p50_ms", "p99_ms", "p999_ms"):
                assert isinstance(lat[key], float)
                assert lat[key] > 0
            assert step["cpu_pct"]["generator"] >= 0
    low = r["floor"][0]
    assert low["replies"]["expected"] == low["replies"]["received"] > 0
    for step in r["engine"]:
        actions = step["actions"]
        assert actions["received"]["offers"] == actions["expected"]["offers"] > 0
        assert actions["received"]["alerts"] == actions["expected"]["alerts"] > 0
        assert actions["received"]["escalations"] == actions["expected"]["escalations"]
        assert actions["duplicates"] == 0
        assert step["deadletters"] == {}
        assert step["rss_mb"] > 0
        timer = step["timer_lateness_ms"]
        assert timer["n"] > 0
        assert timer["p50_ms"] > 0
        assert timer["p99_ms"] > 0
    assert set(r["summary"]["targets"]) >= {"throughput", "timer_lateness_p99"}
