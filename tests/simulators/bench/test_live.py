"""``floorwalker bench live --quick`` end to end: real Mosquitto (authenticated), Redis, runner."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from floorwalker.simulators.bench.live import main
from floorwalker.simulators.bench.live_report import format_report

pytestmark = pytest.mark.integration


def test_quick_live_bench_reports_every_target(tmp_path: Path) -> None:
    out = tmp_path / "live.json"
    plots = tmp_path / "plots"
    assert main(["--quick", "--step-seconds", "1", "--json", str(out), "--plots", str(plots)]) == 0
    r = orjson.loads(out.read_bytes())
    assert {"bench", "settings", "machine", "code", "setup", "calibration", "targets"} <= set(r)
    assert [c["series"] for c in r["calibration"]] == ["single", "batch20"]
    for row in r["calibration"]:
        assert row["offered_rate"] == 2 * row["top_rate_tested"]
        assert row["generator"]["sent"] > 0
        assert isinstance(row["sustained"], bool)
    assert set(r["targets"]) == {"floor", "floorwalker"}
    for name, steps in r["targets"].items():
        assert {(s["series"], s["offered_rate"]) for s in steps} >= {
            ("single", 1000),
            ("batch20", 2000),
        }, name
        for s in steps:
            assert s["generator"]["events"] > 0
            assert s["processed"] > 0
            assert s["probe"]["presses"] > 0
            assert s["alerts"]["step1"] > 0
            assert s["alerts"]["duplicates"] == 0
            assert s["latency_ms"]["n"] == s["alerts"]["step1"]
            assert isinstance(s["kept_up"], bool)
            assert s["cpu_pct"]["generator"] >= 0
    for s in r["targets"]["floorwalker"]:
        assert s["alerts"]["step2"] > 0  # escalations: the timers
        assert s["escalation_lateness_ms"]["n"] == s["alerts"]["step2"]
        assert s["deadletters"] == {}
    assert any(s["alerts"]["offers"] > 0 for s in r["targets"]["floorwalker"])  # dwell timers
    verdicts = r["summary"]["verdicts"]
    assert {"instrument", "throughput", "latency_at_1000"} <= set(verdicts)
    assert all(isinstance(v["met"], bool) for v in verdicts.values())
    text = format_report(r)
    for name in verdicts:
        assert f"{name}: " in text
    assert sorted(p.name for p in plots.iterdir()) == ["live-batch20.png", "live-single.png"]
