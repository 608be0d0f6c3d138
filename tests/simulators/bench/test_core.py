"""The core benchmark runs end to end on a tiny workload (no timing assertions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from floorwalker.rules.loader import load_rules
from floorwalker.simulators.bench.core import BenchSettings, format_report, main, run_core_bench
from floorwalker.simulators.rulegen import Flavour, synthetic_rules, write_rules_dir

TINY = BenchSettings(
    events=3000,
    extra_rules=12,
    stores=2,
    arrival_minutes=1.0,
    decode_events=2000,
    memory_shoppers=20,
    snapshot_shoppers=60,
    memory_arrival_s=10.0,
    memory_settle_s=10.0,
    profiles=200,
    profile_events=500,
    sweep_events=800,
    sweep_arrival_minutes=(10.0, 1.0),
    profile_top=5,
)


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return run_core_bench(TINY)


def test_results_have_every_measurement(results: dict[str, Any]) -> None:
    assert {
        "machine",
        "code",
        "settings",
        "workload",
        "harness_floor",
        "core",
        "decode_core",
        "concurrency_sweep",
        "memory",
        "snapshot",
        "compile",
        "profile",
        "extra_rule_cost_ratio",
        "targets",
        "wall_s",
    } <= set(results)
    core = results["core"]
    assert {"no_rules", "catalog", "extra_disjoint", "extra_realistic"} <= set(core)
    for run in [*core.values(), results["decode_core"]]:
        assert run["events"] > 0 and run["events_per_s"] > 0 and run["rejected"] == 0
    assert core["catalog"]["rules"] == 11
    assert core["extra_disjoint"]["rules"] == core["extra_realistic"]["rules"] == 11 + 12
    assert core["no_rules"]["actions"] == 0
    assert results["workload"]["events"] == 3000
    assert set(results["extra_rule_cost_ratio"]) == {"extra_disjoint", "extra_realistic"}
    assert set(results["targets"]) == {
        "core_events_per_s",
        "extra_rules_ratio",
        "extra_realistic_ratio",
        "bytes_per_active_shopper",
        "snapshot_bytes_per_active_shopper",
        "snapshot_snapshot_ms",
        "snapshot_restore_ms",
    }
    snap = results["snapshot"]
    assert snap["active_shoppers"] > 0 and snap["bytes"] > 0
    assert snap["bytes_per_active_shopper"] == round(snap["bytes"] / snap["active_shoppers"])
    memory = results["memory"]
    assert memory["active_shoppers"] > 0 and memory["bytes_per_active_shopper"] > 0
    assert results["compile"]["disjoint"]["rules"] == 23
    assert 0 < len(results["profile"]) <= 5
    assert [row["arrival_minutes"] for row in results["concurrency_sweep"]] == [10.0, 1.0]
    orjson.dumps(results)  # JSON-ready


def test_disjoint_rules_never_change_what_the_catalog_does(results: dict[str, Any]) -> None:
    core = results["core"]
    assert core["extra_disjoint"]["actions"] == core["catalog"]["actions"]
    assert core["extra_disjoint"]["triggered"] == core["catalog"]["triggered"]


def test_report_is_readable(results: dict[str, Any]) -> None:
    text = format_report(results)
    assert "core only: catalog" in text and "targets:" in text


def test_synthetic_rules_are_distinct_and_load(tmp_path: Path) -> None:
    flavours: tuple[Flavour, ...] = ("disjoint", "realistic")
    for flavour in flavours:
        rules = synthetic_rules(40, flavour, seed=3)
        assert len({r["id"] for r in rules}) == 40
        assert synthetic_rules(40, flavour, seed=3) == rules
        directory = tmp_path / flavour
        assert write_rules_dir(directory, rules) == 40
        assert len(load_rules(directory).rules) == 40


def test_main_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = main(
        ["--events", "1500", "--extra-rules", "5", "--stores", "1", "--memory-shoppers", "10",
         "--decode-events", "500", "--quiet", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    data = orjson.loads(out.read_bytes())
    assert data["workload"]["events"] == 1500
    assert "events/s" in capsys.readouterr().out
